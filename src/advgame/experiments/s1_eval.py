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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from advgame import smoothing
from advgame.attacks import attack_loop
from advgame.linear import binary_logit, linear_logit
from advgame.threat import Norm, dual_norm


@dataclass(frozen=True)
class Defense:
    """A defender strategy of the additive game.

    kind: ``"shift"`` (one v, or v = 0 for "none"), ``"mixture"`` (uniform or weighted
    finite set of shifts), ``"gaussian_vote"`` (Cohen's smoothed classifier, majority vote)
    or ``"gaussian_payoff"`` (v ~ N(0, sigma^2 I), expected accuracy: the game's payoff).
    """

    name: str
    kind: str
    shifts: torch.Tensor | None = None  # (k, ...) one per strategy in the support
    probs: torch.Tensor | None = None  # (k,)
    sigma: float = 0.0


class Shifted(nn.Module):
    """model(x + v): the network behind a fixed additive defense (for adaptive attacks)."""

    def __init__(self, model: nn.Module, v: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.v: torch.Tensor
        self.register_buffer("v", v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x + self.v)


class ExpectedOverShifts(nn.Module):
    """log E_v softmax(model(x + v)): the soft smoothed classifier, for EOT attacks.

    ``sampler(n)`` returns the shifts (k, ...) to average over at each call (fixed support
    for a mixture, fresh Gaussian noise for smoothing).
    """

    def __init__(self, model: nn.Module, sampler: Callable[[], torch.Tensor],
                 weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.sampler = sampler
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifts = self.sampler()
        k = shifts.shape[0]
        z = (x[None] + shifts[:, None]).reshape(k * x.shape[0], *x.shape[1:])
        p = torch.softmax(self.model(z), dim=1).reshape(k, x.shape[0], -1)
        wts = (self.weights if self.weights is not None
               else torch.full((k,), 1.0 / k, device=x.device, dtype=p.dtype))
        return torch.log((wts[:, None, None] * p).sum(0).clamp_min(1e-12))


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
        assert defense.shifts is not None
        probs = (defense.probs if defense.probs is not None
                 else torch.full((defense.shifts.shape[0],), 1.0 / defense.shifts.shape[0]))
        true = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        approx = torch.zeros_like(true)
        for v, p in zip(defense.shifts, probs.tolist(), strict=True):
            zv = z + v
            true += p * _correct_true(model, zv, ys)
            approx += p * _correct_approx(w, b, zv, ys)
        return true, approx
    y01 = ((ys + 1) // 2).long()
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


def adaptive_model(defense: Defense, model: nn.Module, *, eot: int = 16,
                   generator: torch.Generator | None = None) -> nn.Module:
    """The network an adaptive white-box attacker differentiates for this defense."""
    if defense.kind == "shift":
        assert defense.shifts is not None
        return Shifted(model, defense.shifts[0])
    if defense.kind == "mixture":
        assert defense.shifts is not None
        shifts = defense.shifts
        return ExpectedOverShifts(model, lambda: shifts, defense.probs)
    sigma = defense.sigma

    def noise_like(ref: torch.Tensor) -> Callable[[], torch.Tensor]:
        def draw() -> torch.Tensor:
            return sigma * torch.randn((eot, *ref.shape), generator=generator,
                                       device=ref.device, dtype=ref.dtype)
        return draw

    class _Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return ExpectedOverShifts(self.model, noise_like(x[0]))(x)

    return _Noisy()


def adaptive_pgd(defense: Defense, model: nn.Module, x: torch.Tensor, y01: torch.Tensor,
                 eps: float, norm: Norm, *, steps: int, generator: torch.Generator | None,
                 eot: int = 16) -> torch.Tensor:
    """PGD against the defended classifier (expectation over transformation if random)."""
    target = adaptive_model(defense, model, eot=eot, generator=generator)
    return attack_loop(target, x, y01, eps=eps, norm=norm, steps=steps,
                       step_size=2.5 * eps / steps, random_start=True, generator=generator,
                       validate=False)


def game_constraints(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, ys: torch.Tensor,
                     eps_a: float, norm_a: Norm) -> tuple[np.ndarray, np.ndarray]:
    """(a, c) of the finite-sample problem: a_i = y_i w_i, c_i = eps_a ||w_i||_{p*} - m_i."""
    m = ys.to(w.dtype) * linear_logit(w, b, x)
    c = eps_a * dual_norm(w, norm_a) - m
    a = ys.to(w.dtype)[:, None] * w
    return a.double().cpu().numpy(), c.double().cpu().numpy()


def vc_gap_bound(n: np.ndarray, vc_dim: int, delta: float = 0.05) -> np.ndarray:
    """2 * sqrt((8/n)(D ln(2en/D) + ln(4/delta))): the uniform-convergence (Vapnik) bound
    on Phi(v*) - Phi(v_n) with probability >= 1 - delta, for a class of VC dimension D."""
    n = np.asarray(n, dtype=float)
    term = vc_dim * np.log(2 * math.e * np.maximum(n, vc_dim) / vc_dim) + math.log(4 / delta)
    return 2 * np.sqrt(8 * term / n)
