"""Gradient attacks as one iterative loop: FGM / FGSM and PGD in L2 and L-inf.

The loop (Madry et al. 2018; Foolbox 3's ``gradient_descent_base``):

    delta_0 = random point of the eps-ball (or 0)
    for t in 1..steps:
        g      = grad_x loss(model(x + delta), y)
        delta  = project_eps(delta + step_size * steepest(g))      # threat.project
        delta  = clip(x + delta, 0, 1) - x                         # stay in the box

``steepest`` is ``sign(g)`` for L-inf and ``g / ||g||_2`` for L2 (``threat.steepest_direction``).
FGM is the loop with one step of size eps from delta_0 = 0; FGSM is FGM in L-inf.
For a linear binary classifier g(x) = w.x + b and cross-entropy on logits (0, g), FGM
moves x by -eps * y * w / ||w||_2 (L2) or -eps * y * sign(w) (L-inf), y in {-1, +1},
lowering the margin y g(x) by eps ||w||_{p*} (before box clipping).

The model is passed at call time and kept in eval mode during the attack; its mode is
restored afterwards. Only input gradients are computed (no parameter .grad is touched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from advgame.errors import InputError
from advgame.models.training import eval_mode
from advgame.threat import (
    Norm,
    clip_box,
    parse_norm,
    project,
    random_in_ball,
    steepest_direction,
    steepest_in_box,
)
from advgame.validate import check_images, check_labels, check_nonnegative, check_positive_int

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_example_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


@dataclass(frozen=True)
class AttackResult:
    """Outcome of an attack on a batch.

    Attributes:
        x_adv: (N, ...) adversarial inputs, in [0, 1] and in the eps-ball around x.
        success: (N,) bool, the model misclassifies x_adv (per-example success flag).
        loss: (N,) loss of the model at x_adv.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    loss: torch.Tensor


def _check_logits(logits: torch.Tensor, y: torch.Tensor) -> None:
    n = y.shape[0]
    if logits.ndim != 2 or logits.shape[0] != n or logits.shape[1] < 2:
        raise InputError(
            "model", f"must return logits of shape (N={n}, K>=2), returned {tuple(logits.shape)}"
        )
    if int(y.max()) >= logits.shape[1]:
        raise InputError(
            "y", f"labels must be in [0, {logits.shape[1] - 1}] for a model with "
            f"{logits.shape[1]} outputs, got {int(y.max())}"
        )


def attack_loop(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor,
    *,
    eps: float,
    norm: Norm | str | float,
    steps: int,
    step_size: float,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    keep_best: bool = False,
    loss_fn: Loss | None = None,
    validate: bool = True,
    box_aware: bool = False,
) -> torch.Tensor:
    """The one gradient attack loop; returns x_adv (N, ...) on x's device.

    Args:
        model: classifier returning logits (N, K).
        x: (N, ...) inputs in [0, 1]. y: (N,) labels in [0, K).
        eps: radius of the threat ball (>= 0). norm: 2 or inf.
        steps: number of gradient steps (>= 1). step_size: step length in the norm.
        random_start: start from a uniform point of the ball (needs ``generator`` for
            reproducibility; a default generator is used otherwise).
        generator: ``torch.Generator`` on x's device for the random start.
        keep_best: return, per example, the iterate with the highest loss (costs one
            extra forward pass) instead of the last one.
        loss_fn: per-example loss ``loss_fn(logits, y) -> (N,)`` to maximize; default
            cross-entropy.
        validate: check the inputs (disable in inner loops on already checked data).
        box_aware: L2 only: each step is the exact maximizer of the linearized loss over
            the step's ball ∩ the box (:func:`advgame.threat.steepest_in_box`) instead of
            step-then-clip, so no budget is spent on coordinates the box stops. L-inf
            steps are already exact (the ball and the box are both coordinate intervals).
    """
    p = parse_norm(norm)
    if validate:
        check_images("x", x)
        eps = check_nonnegative("eps", eps)
        check_positive_int("steps", steps)
        step_size = check_nonnegative("step_size", step_size)
        check_labels("y", y, x.shape[0])
    lossf = loss_fn or _per_example_ce
    with eval_mode(model):
        x = x.detach()
        cur = x  # the current iterate x + delta, inside the ball and the box
        if random_start and eps > 0:
            cur = clip_box(x + random_in_ball(x.shape, eps, p, generator=generator,
                                              device=x.device, dtype=x.dtype))
        best = x.clone() if keep_best else None
        best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device) if keep_best else None
        lo: torch.Tensor | None = None
        hi: torch.Tensor | None = None
        for step in range(steps):
            xa = cur.detach().requires_grad_(True)
            logits = model(xa)
            if validate and step == 0:
                _check_logits(logits, y)
            losses = lossf(logits, y)
            (grad,) = torch.autograd.grad(losses.sum(), xa)
            if keep_best:
                assert best is not None and best_loss is not None
                better = losses.detach() > best_loss
                best[better] = xa.detach()[better]
                best_loss = torch.where(better, losses.detach(), best_loss)
            direction = steepest_direction(grad, p)
            if p == "inf":
                # Ball and box are both coordinate intervals: projecting onto their
                # intersection is one clamp between lo = max(x - eps, 0) and
                # hi = min(x + eps, 1) (3 passes over the batch a step).
                if step == 0 and cur is x and step_size <= eps:
                    # first step from x stays in the ball: only the box binds (FGSM)
                    cur = clip_box(x.add(direction, alpha=step_size))
                    continue
                if lo is None or hi is None:
                    lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
                cur = torch.clamp(xa.detach().add(direction, alpha=step_size), min=lo, max=hi)
            elif box_aware:  # L2: the exact step in ball ∩ box, then back onto the eps-ball
                step_d = steepest_in_box(grad, xa.detach(), step_size, p)
                cur = clip_box(x + project(xa.detach() - x + step_d, eps, p))
            else:  # L2: project delta + step_size * direction on the ball, then the box
                delta = (xa.detach() - x).add_(direction.mul_(step_size))
                cur = clip_box(x + project(delta, eps, p))
        x_adv = cur.detach().clone() if cur is x else cur.detach()
        if keep_best:
            assert best is not None and best_loss is not None
            with torch.no_grad():
                last = lossf(model(x_adv), y)
            better = last > best_loss
            best[better] = x_adv[better]
            x_adv = best
    return x_adv


def fgm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf", *, box_aware: bool = False,
) -> torch.Tensor:
    """Fast Gradient Method: one step of length eps along the steepest ascent direction.

    x_adv = clip(x + eps * steepest_p(grad_x CE(model(x), y)), 0, 1); for L-inf this is
    FGSM (Goodfellow et al. 2015), for L2 the normalized-gradient FGM.

    ``box_aware=True`` (L2): the step is the exact maximizer of the linearized loss
    grad . delta over ||delta||_2 <= eps and x + delta in [0, 1]
    (:func:`advgame.threat.steepest_in_box`, the KKT solution clip(lambda grad, -x, 1 - x)),
    not the clipped normalized gradient: on images with many pixels at 0 or 1 the
    clipped step loses the budget those pixels cannot use. For a two-logit model the
    cross-entropy gradient is a positive multiple of -y grad g, so this is the linearized
    game's exact best response (:func:`advgame.linear.best_response`) at x. For L-inf
    both are clipped FGSM.

    Shape: x (N, ...) in [0, 1], y (N,) -> x_adv (N, ...), same device and dtype.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(3, 1, 2, 2); y = torch.tensor([0, 1, 1])
        >>> bool(((fgm(model, x, y, 0.1, "inf") - x).abs() <= 0.1 + 1e-7).all())
        True
    """
    return attack_loop(model, x, y, eps=eps, norm=norm, steps=1, step_size=eps,
                       box_aware=box_aware)


def pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    keep_best: bool = False,
    *,
    box_aware: bool = False,
) -> torch.Tensor:
    """Projected Gradient Descent (Madry et al. 2018) on the cross-entropy loss.

    ``steps`` steps of ``step_size`` (default 2.5 * eps / steps, Madry's rule), projected
    on the Lp eps-ball and the box [0, 1], from a uniform random start when
    ``random_start``. Returns the last iterate (or the highest-loss one, ``keep_best``).
    ``box_aware`` (L2): exact steps in ball ∩ box, as in :func:`fgm`.

    Shape: x (N, ...) in [0, 1], y (N,) -> x_adv (N, ...), same device and dtype.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(3, 1, 2, 2); y = torch.tensor([0, 1, 1])
        >>> g = torch.Generator().manual_seed(0)
        >>> x_adv = pgd(model, x, y, 0.5, 2, steps=5, generator=g)
        >>> bool(((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-6).all())
        True
    """
    eps = check_nonnegative("eps", eps)
    check_positive_int("steps", steps)
    size = 2.5 * eps / steps if step_size is None else step_size
    return attack_loop(
        model, x, y, eps=eps, norm=norm, steps=steps, step_size=size,
        random_start=random_start, generator=generator, keep_best=keep_best,
        box_aware=box_aware,
    )


@torch.no_grad()
def evaluate_attack(
    model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, batch_size: int = 2048
) -> AttackResult:
    """Per-example success flags and losses of ``model`` on adversarial inputs."""
    with eval_mode(model):
        losses, success = [], []
        for i in range(0, x_adv.shape[0], batch_size):
            logits = model(x_adv[i:i + batch_size])
            losses.append(_per_example_ce(logits, y[i:i + batch_size]))
            success.append(logits.argmax(1) != y[i:i + batch_size])
    return AttackResult(x_adv, torch.cat(success), torch.cat(losses))
