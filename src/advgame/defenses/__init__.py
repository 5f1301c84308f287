"""Defenses. ``additive``: the S1 equilibrium shift; ``training``: adversarial, cat-and-mouse,
Sens-FGSM and minimax training (S2); ``transforms``: the autoencoder reformer."""

from advgame.defenses.additive import (
    EquilibriumShiftDetails,
    GaussianEquilibrium,
    ShiftResult,
    equilibrium_shift,
    gaussian_accuracy,
    gaussian_equilibrium,
    max_feasible_shift,
)

__all__ = [
    "EquilibriumShiftDetails", "GaussianEquilibrium", "ShiftResult", "equilibrium_shift",
    "gaussian_accuracy", "gaussian_equilibrium", "max_feasible_shift",
]
