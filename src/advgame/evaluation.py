"""Robustness evaluation to the field's standard: an AutoAttack-style cascade and checks
that the evaluation itself did not fail (gradient masking, randomness, weak attacks).

A robust accuracy is only an upper bound on what the strongest attack would leave, and
gradient attacks overstate it on models whose gradients are useless (Athalye, Carlini &
Wagner 2018; Croce & Hein 2020). :func:`evaluate` runs the cascade
(:func:`advgame.attacks.cascade.run_cascade`), folds in a single-step attack, and raises a
:class:`Flag` for every sign that the number is not trustworthy:

``zero_gradients``
    the input gradient of the DLR loss (scale-invariant: it does not vanish on confident
    points the way cross-entropy does) is exactly or nearly 0 on some clean points;
``gradient_free_beats_gradient``
    a gradient-free stage (Square) fooled points every gradient stage before it missed;
``single_step_beats_iterative``
    FGM (one step) fooled points that survived every iterative stage;
``accuracy_not_falling_with_eps``
    APGD-CE's robust accuracy does not fall from eps to 4 eps (or along the given eps);
``unbounded_attack_not_zero``
    with the whole box as the budget (L-inf eps = 1, L2 eps = sqrt(d)), APGD-CE and Square
    together leave more than 2% of the points correct;
``random_outputs_without_eot``
    two forward passes on the same inputs differ (a randomized defense), but no stage
    averages gradients over the randomness (use ``attacks="rand"``);
``softmax_outputs``
    the model returns probabilities (rows in [0, 1] summing to 1), not logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from advgame.attacks.apgd import apgd, dlr_loss
from advgame.attacks.cascade import (
    CascadeResult,
    StageReport,
    Stages,
    run_cascade,
)
from advgame.attacks.gradient import fgm
from advgame.attacks.score import square
from advgame.models.training import eval_mode
from advgame.threat import Norm, parse_norm
from advgame.validate import check_nonnegative

#: A flag needs at least this many points (and this fraction of all points).
MIN_POINTS, MIN_FRACTION = 2, 0.01


@dataclass(frozen=True)
class Flag:
    """A warning that the evaluation itself may have failed."""

    name: str
    message: str


@dataclass(frozen=True)
class Evaluation:
    """Clean and robust accuracy at one eps, per stage, with the checks' flags.

    Attributes:
        eps, norm: the threat model.
        n: number of points evaluated.
        clean_accuracy: fraction correct without attack.
        robust_accuracy: fraction correct under every stage and FGM (the worst case).
        per_attack: stage name -> robust accuracy after it (cumulative, in order), then
            ``"fgm (single step)"``.
        robust: (N,) bool, the per-point worst case.
        x_adv: (N, ...) the adversarial input of each fooled point (x elsewhere).
        stages: the cascade's :class:`advgame.attacks.cascade.StageReport` s.
        flags: the checks that fired (empty for a healthy evaluation).
        checks: the figures behind the checks (fractions, accuracies).
    """

    eps: float
    norm: str
    n: int
    clean_accuracy: float
    robust_accuracy: float
    per_attack: dict[str, float]
    robust: torch.Tensor
    x_adv: torch.Tensor
    stages: tuple[StageReport, ...]
    flags: tuple[Flag, ...]
    checks: dict[str, float | bool] = field(default_factory=dict)


def enough(count: int, n: int) -> bool:
    """Whether ``count`` of ``n`` points are enough for a flag: at least :data:`MIN_POINTS`
    and :data:`MIN_FRACTION` of them."""
    return count >= MIN_POINTS and count >= MIN_FRACTION * n


def zero_gradient_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of points whose DLR-loss input gradient is (nearly) zero: L1 norm <=
    1e-10 times the number of input features."""
    with eval_mode(model):
        xa = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(dlr_loss(model(xa), y).sum(), xa)
    size = g.flatten(1).abs().sum(1)
    return float((size <= 1e-10 * g[0].numel()).float().mean())


def _robust_under(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  x_adv: torch.Tensor) -> torch.Tensor:
    with eval_mode(model), torch.no_grad():
        return model(x_adv).argmax(1) == y


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    attacks: Stages = "standard",
    generator: torch.Generator | None = None,
    *,
    checks: bool = True,
    progress: bool | Callable[[str], None] | None = False,
) -> Evaluation:
    """Robust accuracy of ``model`` at radius ``eps`` under the cascade ``attacks`` (a
    version of :data:`advgame.attacks.cascade.VERSIONS` or attack names), the worst case
    with FGM folded in, and the gradient-masking checks of the module docstring
    (``checks=False`` skips the extra attacks they cost). ``progress`` as in
    :func:`advgame.attacks.cascade.run_cascade` (off by default).

    Shape: x (N, ...) in [0, 1], y (N,) -> :class:`Evaluation`.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(8, 1, 2, 2); y = model(x).argmax(1)
        >>> ev = evaluate(model, x, y, 0.05, "inf", ["apgd-ce", "square"],
        ...               torch.Generator().manual_seed(0), checks=False)
        >>> ev.clean_accuracy, list(ev.per_attack)
        (1.0, ['apgd-ce', 'square', 'fgm (single step)'])
    """
    p = parse_norm(norm)
    e = check_nonnegative("eps", eps)
    res: CascadeResult = run_cascade(model, x, y, e, p, attacks, generator, progress=progress)
    x = x.detach()
    n = x.shape[0]
    per_attack = {s.name: s.robust_accuracy for s in res.stages}
    x_adv = res.x_adv.clone()
    robust = res.robust.clone()
    # the single-step attack, on the points the cascade left robust
    left = torch.nonzero(robust).squeeze(1)
    fgm_wins = 0
    if left.numel() > 0:
        xa = fgm(model, x[left], y[left], e, p, box_aware=True)
        ok = _robust_under(model, x[left], y[left], xa)
        hit = left[~ok]
        x_adv[hit] = xa[~ok]
        robust[hit] = False
        fgm_wins = int((~ok).sum())
    per_attack["fgm (single step)"] = float(robust.float().mean())
    flags: list[Flag] = []
    figures: dict[str, float | bool] = {"fgm_fooled_after_cascade": fgm_wins}
    if enough(fgm_wins, n):
        flags.append(Flag("single_step_beats_iterative",
                          f"FGM fooled {fgm_wins} of {n} points that survived every iterative "
                          "attack: the iterative attacks are failing (gradient masking?)"))
    grad_fooled = 0
    for k, s in enumerate(res.stages):
        if s.gradient_free and any(not r.gradient_free for r in res.stages[:k]):
            grad_fooled += s.fooled
    figures["gradient_free_fooled_after_gradient"] = grad_fooled
    if enough(grad_fooled, n):
        flags.append(Flag("gradient_free_beats_gradient",
                          f"the gradient-free attack fooled {grad_fooled} of {n} points that "
                          "every gradient attack before it missed: the gradients are masked"))
    if checks:
        flags += _checks(model, x, y, e, p, res, attacks, generator, figures)
    return Evaluation(e, p, n, res.clean_accuracy, float(robust.float().mean()), per_attack,
                      robust, x_adv, res.stages, tuple(flags), figures)


def _checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm,
            res: CascadeResult, attacks: Stages, gen: torch.Generator | None,
            figures: dict[str, float | bool]) -> list[Flag]:
    flags: list[Flag] = []
    n = x.shape[0]
    clean = torch.nonzero(res.clean).squeeze(1)
    xc, yc = x[clean], y[clean]
    with eval_mode(model), torch.no_grad():
        out1, out2 = model(x[:64]), model(x[:64])
    probs = bool((out1 >= 0).all() and (out1 <= 1).all()
                 and torch.allclose(out1.sum(1), torch.ones_like(out1[:, 0]), atol=1e-5))
    figures["softmax_outputs"] = probs
    if probs:
        flags.append(Flag("softmax_outputs", "the model returns probabilities, not logits: "
                          "cross-entropy and DLR attacks lose their scale; return logits"))
    random_out = not torch.equal(out1, out2)
    figures["random_outputs"] = random_out
    eot = any("eot" in s.name for s in res.stages)
    if random_out and not eot:
        flags.append(Flag("random_outputs_without_eot",
                          "two forward passes on the same inputs differ (a randomized "
                          "model), but no attack averages over the randomness: use "
                          "attacks='rand' (EOT)"))
    if clean.numel() == 0:
        return flags
    frac = zero_gradient_fraction(model, xc, yc)
    figures["zero_gradient_fraction"] = frac
    if enough(round(frac * clean.numel()), n):
        flags.append(Flag("zero_gradients",
                          f"the input gradient is zero on {frac:.1%} of the correctly "
                          "classified points: gradient attacks cannot work there (gradient "
                          "masking, e.g. a non-differentiable input transform)"))
    accs = []
    for k in (1.0, 4.0):
        xa = apgd(model, xc, yc, k * eps, norm, steps=50, generator=gen)
        accs.append(float(_robust_under(model, xc, yc, xa).float().sum()) / n)
    figures["apgd_ce_accuracy_eps"], figures["apgd_ce_accuracy_4eps"] = accs
    if eps > 0 and accs[0] > MIN_FRACTION and accs[1] >= accs[0] - MIN_FRACTION:
        flags.append(Flag("accuracy_not_falling_with_eps",
                          f"APGD-CE leaves {accs[0]:.3f} at eps={eps:g} and {accs[1]:.3f} at "
                          f"4 eps: robust accuracy should fall as the budget grows"))
    big = 1.0 if norm == "inf" else math.sqrt(x[0].numel())
    xa = apgd(model, xc, yc, big, norm, steps=50, generator=gen)
    ok = _robust_under(model, xc, yc, xa)
    if bool(ok.any()):
        sub = torch.nonzero(ok).squeeze(1)
        xs = square(model, xc[sub], yc[sub], big, norm, queries=500, generator=gen)
        ok[sub] = _robust_under(model, xc[sub], yc[sub], xs)
    left = float(ok.float().sum()) / n
    figures["unbounded_accuracy"] = left
    if left > 0.02:
        flags.append(Flag("unbounded_attack_not_zero",
                          f"with the whole box as budget (eps={big:g}) APGD-CE and Square "
                          f"still leave {left:.3f} correct: the attacks are failing"))
    return flags


def accuracy_curve(evaluations: Sequence[Evaluation]) -> list[Flag]:
    """Flag robust accuracy that does not fall along increasing eps (several evaluations).

    Example:
        >>> accuracy_curve([])
        []
    """
    flags = []
    ordered = sorted(evaluations, key=lambda ev: ev.eps)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.robust_accuracy > a.robust_accuracy + 1e-12:
            flags.append(Flag("accuracy_not_falling_with_eps",
                              f"robust accuracy rises from {a.robust_accuracy:.3f} at eps="
                              f"{a.eps:g} to {b.robust_accuracy:.3f} at eps={b.eps:g}"))
    return flags
