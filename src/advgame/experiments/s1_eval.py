"""Evaluation pieces of the additive game (S1) used by ``advgame paper1``.

A defense of the additive game is a distribution mu over shifts v added to every input.
On perturbed inputs z (N, ...) with labels y in {-1, +1} and the linearization (w, b) of
the binary logit at the *clean* points, each defense yields per-point expected correctness

    true_i   = E_{v~mu} 1[ y_i g(z_i + v) > 0 ]              (the network)
    approx_i = E_{v~mu} 1[ y_i (w_i.(z_i + v) + b_i) > 0 ]   (its linearization at x_i)

averaged into the game's payoff U (SPEC section 1). Cohen et al.'s smoothed classifier is
a majority vote (abstention counts as an error) and is scored as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advgame import smoothing
from advgame.defenses.base import Defense as LibraryDefense
from advgame.defenses.base import (
    MixedDefense,
    ShiftDefense,
    SmoothingDefense,
    TransformDefense,
)
from advgame.linear import binary_logit, linear_logit, worst_linear_margin
from advgame.threat import Norm, clip_box, dual_norm


@dataclass(frozen=True)
class Defense:
    """A defender strategy of the additive game.

    kind: ``"shift"`` (one v, or v = 0 for "none"), ``"mixture"`` (uniform or weighted
    finite set of shifts), ``"gaussian_vote"`` (Cohen's smoothed classifier, majority vote)
    or ``"gaussian_payoff"`` (v ~ N(0, sigma^2 I), expected accuracy: the game's payoff).
    ``clip``: shifts only: the defended input clip(z + v, 0, 1) instead of z + v (the
    paper's additive model leaves the box; clipping is an evaluated variant).
    ``"transform"``: an input-dependent preprocessing T (median filter, bit-depth
    reduction; :mod:`advgame.defenses.preprocessing`): the network sees T(z), the
    linearization w.T(z) + b.
    """

    name: str
    kind: str
    shifts: torch.Tensor | None = None  # (k, ...) one per strategy in the support
    probs: torch.Tensor | None = None  # (k,)
    sigma: float = 0.0
    clip: bool = False
    transform: nn.Module | None = None  # kind "transform": the input-dependent defense

    def support(self) -> tuple[torch.Tensor, list[float]]:
        """Shift defenses: the shifts (k, ...) and their probabilities."""
        assert self.shifts is not None, self.kind
        k = self.shifts.shape[0]
        probs = [1.0 / k] * k if self.probs is None else self.probs.tolist()
        return self.shifts, probs

    def deployed(self, model: nn.Module, *, eot: int = 16,
                 generator: torch.Generator | None = None) -> LibraryDefense:
        """This strategy as the library's :class:`advgame.defenses.Defense` around
        ``model``: a :class:`ShiftDefense` (clip straight through when ``clip``), a
        :class:`MixedDefense` of shifts (attack model: the exact expectation over the
        support), a :class:`SmoothingDefense` (``eot`` noise draws per forward from
        ``generator``, shared by the batch) or a :class:`TransformDefense`."""
        if self.kind == "transform":
            assert self.transform is not None
            return TransformDefense(self.name, self.transform, model)
        if self.kind in ("shift", "mixture"):
            shifts, probs = self.support()
            parts = [ShiftDefense(f"{self.name}[{i}]", model, v, clip=self.clip)
                     for i, v in enumerate(shifts)]
            return parts[0] if self.kind == "shift" else MixedDefense(self.name, parts, probs)
        smooth = SmoothingDefense(self.name, model, self.sigma, eot=eot, noise="shared")
        smooth.set_generator(generator)
        return smooth


def _correct_true(model: nn.Module, z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (binary_logit(model, z) * ys > 0).to(z.dtype)


def _correct_approx(w: torch.Tensor, b: torch.Tensor, z: torch.Tensor,
                    ys: torch.Tensor) -> torch.Tensor:
    return (linear_logit(w, b, z) * ys > 0).to(z.dtype)


def evaluate(
    defense: Defense,
    model: nn.Module,
    w: torch.Tensor,
    b: torch.Tensor,
    z: torch.Tensor,
    ys: torch.Tensor,
    *,
    n_noise: int = 1000,
    alpha: float = 0.001,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point expected correctness (true, approx), each (N,) float, of a defense on z."""
    if defense.kind in ("shift", "mixture"):
        shifts, probs = defense.support()
        true = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        approx = torch.zeros_like(true)
        for v, p in zip(shifts, probs, strict=True):
            zv = clip_box(z + v) if defense.clip else z + v
            true += p * _correct_true(model, zv, ys)
            approx += p * _correct_approx(w, b, zv, ys)
        return true, approx
    y01 = ((ys + 1) // 2).long()
    if defense.kind == "transform":
        assert defense.transform is not None
        with torch.no_grad():
            tz = defense.transform(z)
        return _correct_true(model, tz, ys), _correct_approx(w, b, tz, ys)
    if defense.kind == "gaussian_vote":
        pred = smoothing.predict(model, z, defense.sigma, n=n_noise, alpha=alpha,
                                 generator=generator, num_classes=2)
        return (pred == y01).to(z.dtype), _correct_approx(w, b, z, ys)
    if defense.kind == "gaussian_payoff":
        counts = smoothing.gaussian_counts(model, z, defense.sigma, n=n_noise,
                                           generator=generator, num_classes=2)
        true = counts.gather(1, y01[:, None]).squeeze(1).to(z.dtype) / n_noise
        # linear logit under noise: N(w.z + b, sigma^2 ||w||^2)
        s = defense.sigma * w.norm(dim=1).clamp_min(1e-12)
        approx = torch.special.ndtr(ys * linear_logit(w, b, z) / s)
        return true, approx.to(z.dtype)
    raise ValueError(f"unknown defense kind {defense.kind}")


def outside_box(defense: Defense, z: torch.Tensor) -> float:
    """Fraction of the defended pixels outside [0, 1] (over points and pixels).

    Shifts: z + v (0 when the defense clips); mixtures: the expectation over the support;
    Gaussian noise: E P[z_j + N(0, sigma^2) outside [0, 1]] = Phi(-z_j / sigma) +
    Phi((z_j - 1) / sigma), averaged.
    """
    if defense.kind == "transform":
        assert defense.transform is not None
        with torch.no_grad():
            tz = defense.transform(z)
        return float(((tz < 0) | (tz > 1)).double().mean())
    if defense.kind in ("shift", "mixture"):
        if defense.clip:
            return 0.0
        shifts, probs = defense.support()
        return float(sum(p * float(((z + v < 0) | (z + v > 1)).double().mean())
                         for v, p in zip(shifts, probs, strict=True)))
    s = defense.sigma
    zd = z.double()
    return float((torch.special.ndtr(-zd / s) + torch.special.ndtr((zd - 1) / s)).mean())


def adaptive_model(defense: Defense, model: nn.Module, *, eot: int = 16,
                   generator: torch.Generator | None = None) -> nn.Module:
    """The module an adaptive white-box attacker differentiates for this defense: the
    deployed defense's attack model (EOT over the mixture or the noise; for a transform,
    the defense itself, whose gradient the transform may mask -- see
    :meth:`advgame.defenses.TransformDefense.with_bpda`)."""
    return defense.deployed(model, eot=eot, generator=generator).attack_model()


def game_constraints(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, ys: torch.Tensor,
                     eps_a: float, norm_a: Norm,
                     box: tuple[float, float] | None = (0.0, 1.0),
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(a, c) of the finite-sample problem, float64: a_i = y_i w_i and c_i = minus the
    linear margin after the attacker's best response: the exact minimum over ball ∩ box
    (:func:`advgame.linear.worst_linear_margin`), or, with ``box=None`` (the paper's
    model), c_i = eps_a ||w_i||_{p*} - m_i."""
    if box is None:
        m = ys.to(w.dtype) * linear_logit(w, b, x)
        c = eps_a * dual_norm(w, norm_a) - m
    else:
        c = -worst_linear_margin(w, b, x, ys, eps_a, norm_a, box)
    a = ys.to(w.dtype)[:, None] * w
    return a.double().cpu().numpy(), c.double().cpu().numpy()


def clean_thresholds(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor,
                     ys: torch.Tensor) -> np.ndarray:
    """-m_i, float64: point i stays correct without attack under v iff a_i . v > -m_i."""
    xd = x.detach().double().reshape(x.shape[0], -1)
    m = ys.double() * linear_logit(w.detach().double(), b.detach().double(), xd)
    return (-m).cpu().numpy()


def vc_gap_bound(n: np.ndarray, vc_dim: int, delta: float = 0.05) -> np.ndarray:
    """2 * sqrt((8/n)(D ln(2en/D) + ln(4/delta))): the uniform-convergence (Vapnik) bound
    on Phi(v*) - Phi(v_n) with probability >= 1 - delta, for a class of VC dimension D."""
    n = np.asarray(n, dtype=float)
    term = vc_dim * np.log(2 * math.e * np.maximum(n, vc_dim) / vc_dim) + math.log(4 / delta)
    return 2 * np.sqrt(8 * term / n)
