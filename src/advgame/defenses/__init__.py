"""Defenses. ``base``: the :class:`Defense` protocol (a defender strategy as the module that
is deployed: a classifier, a shift, smoothing, a transform, a mixture); ``additive``: the
S1 equilibrium shift; ``training``: adversarial, cat-and-mouse, Sens-FGSM and minimax
training (S2); ``transforms``: the autoencoder reformer; ``preprocessing``: median filter
and bit-depth reduction."""

from advgame.defenses.additive import (
    EquilibriumShiftDetails,
    GaussianEquilibrium,
    ShiftResult,
    equilibrium_shift,
    gaussian_accuracy,
    gaussian_equilibrium,
    max_feasible_shift,
)
from advgame.defenses.base import (
    ClassifierDefense,
    Defense,
    ExpectedMixture,
    MixedDefense,
    ShiftDefense,
    SmoothingDefense,
    TransformDefense,
)

__all__ = [
    "ClassifierDefense", "Defense", "ExpectedMixture", "MixedDefense", "ShiftDefense",
    "SmoothingDefense", "TransformDefense",
    "EquilibriumShiftDetails", "GaussianEquilibrium", "ShiftResult", "equilibrium_shift",
    "gaussian_accuracy", "gaussian_equilibrium", "max_feasible_shift",
]
