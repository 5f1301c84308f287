"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks") with the cross-entropy, DLR and targeted DLR
losses.

The iteration (L-inf or L2; P = projection onto the eps-ball around x, then the box [0, 1]):

    z_(k+1) = P(x_k + eta_k * steepest(grad f(x_k)))
    x_(k+1) = P(x_k + a (z_(k+1) - x_k) + (1 - a) (x_k - x_(k-1)))     a = 0.75 (1 at k = 0)

eta_0 = 2 eps. At the checkpoints w_0 = 0, w_1 = floor(0.22 N), and intervals that shrink
by floor(0.03 N) down to floor(0.06 N) (each at least 1; AutoAttack's code rounds down where
the paper writes ceil), the step size is halved (and the iterate restarts from
the best point so far) for every example where (1) the loss rose in at most 75% of the
steps since the last checkpoint, or (2) the step was not halved at the last checkpoint
and the best loss has not improved since. The best point by the loss and the first
adversarial point found are tracked; the result is the adversarial point where one was
found, else the highest-loss point.

DLR loss (for K >= 3 classes; z sorted decreasingly z_pi1 >= z_pi2 >= ...):

    DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)
    targeted:   -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)   (K >= 4)

Targeted cross-entropy (``loss="ce", targeted=True``) maximizes -CE(z, t) = log softmax(z)_t;
APGD-T, AutoAttack's targeted attack, is the targeted DLR loss (the default when
``targeted`` is set).

Both are invariant to shifting and scaling the logits, so a model cannot hide behind
saturated softmax outputs. With fewer classes the normalizers are undefined; the
unnormalized margins (max_{i != y} z_i - z_y, resp. z_t - z_y) are used instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from advgame.attacks.base import check_attack_args, checked_logits
from advgame.errors import InputError
from advgame.models.training import eval_mode
from advgame.threat import Norm, clip_box, project, steepest_direction
from advgame.validate import check_positive_int

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES = ("ce", "dlr")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example DLR loss (to maximize); the margin max_{i != y} z_i - z_y for K < 3.

    Shape: logits (N, K), y (N,) -> (N,).

    Example:
        >>> z = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
        >>> float(dlr_loss(z, torch.tensor([0])))     # -(3 - 1) / (3 - 0)
        -0.6666666865348816
    """
    other = logits.scatter(1, y[:, None], -math.inf).amax(dim=1)
    margin = logits.gather(1, y[:, None]).squeeze(1) - other
    if logits.shape[1] < 3:
        return -margin
    top = logits.topk(3, dim=1).values
    return -margin / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_loss_targeted(logits: torch.Tensor, y: torch.Tensor,
                      target: torch.Tensor) -> torch.Tensor:
    """Per-example targeted DLR loss (to maximize); z_t - z_y for K < 4.

    Shape: logits (N, K), y, target (N,) -> (N,).

    Example:
        >>> z = torch.tensor([[3.0, 1.0, 0.0, -1.0]])
        >>> float(dlr_loss_targeted(z, torch.tensor([0]), torch.tensor([1])))  # -2 / 3.5
        -0.5714285969734192
    """
    zy = logits.gather(1, y[:, None]).squeeze(1)
    zt = logits.gather(1, target[:, None]).squeeze(1)
    if logits.shape[1] < 4:
        return zt - zy
    top = logits.topk(4, dim=1).values
    return -(zy - zt) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _targeted(loss: str, target: torch.Tensor) -> LossFn:
    """The targeted loss (to maximize) towards ``target`` (N,): -CE(z, t) or targeted DLR."""
    if loss == "ce":
        return lambda z, y: -F.cross_entropy(z, target, reduction="none")
    return lambda z, y: dlr_loss_targeted(z, y, target)


def _project_ball_box(z: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    if norm == "inf":
        return torch.minimum(torch.maximum(z, x - eps), x + eps).clamp_(0.0, 1.0)
    return clip_box(x + project(z - x, eps, norm))


def _random_start(x: torch.Tensor, eps: float, norm: Norm,
                  generator: torch.Generator | None) -> torch.Tensor:
    """AutoAttack's start: a random direction scaled to the sphere of radius eps, clipped."""
    if norm == "inf":
        t = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
        t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).reshape(-1, *[1] * (x.ndim - 1))
    else:
        t = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        t = t / t.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (x.ndim - 1))
    return clip_box(x + eps * t)


def checkpoints(steps: int) -> list[int]:
    """APGD's step-size checkpoints (iteration indices) for ``steps`` iterations.

    Example:
        >>> checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    first = max(int(0.22 * steps), 1)
    shrink = max(int(0.03 * steps), 1)
    least = max(int(0.06 * steps), 1)
    out, k, at = [], first, first
    while at <= steps:
        out.append(at)
        k = max(k - shrink, least)
        at += k
    return out


def _apgd_run(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: LossFn, eps: float, norm: Norm,
    steps: int, generator: torch.Generator | None, eot: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run from a random start; returns (x_result, fooled (N,) bool)."""

    def value_and_grad(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        grad = torch.zeros_like(z)
        total = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
        for _ in range(eot):
            za = z.detach().requires_grad_(True)
            logits = model(za)
            lv = loss(logits, y)
            (g,) = torch.autograd.grad(lv.sum(), za)
            grad += g
            total += lv.detach()
        return total / eot, grad / eot, logits.detach()

    x_adv = _random_start(x, eps, norm, generator)
    lv, grad, logits = value_and_grad(x_adv)
    fooled = logits.argmax(1) != y
    x_best_adv = x_adv.clone()
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), lv.clone()
    view = (-1,) + (1,) * (x.ndim - 1)
    step = torch.full((x.shape[0],), 2.0 * eps, device=x.device, dtype=x.dtype)
    x_old = x_adv.clone()
    marks = set(checkpoints(steps))
    last_mark = 0
    increases = torch.zeros(x.shape[0], device=x.device)
    prev_loss = lv.clone()
    best_at_mark = loss_best.clone()
    halved_at_mark = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for i in range(steps):
        with torch.no_grad():
            a = 0.75 if i > 0 else 1.0
            z = _project_ball_box(x_adv + step.reshape(view) * steepest_direction(grad, norm),
                                  x, eps, norm)
            z = _project_ball_box(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_old),
                                  x, eps, norm)
            x_old, x_adv = x_adv, z
        lv, grad, logits = value_and_grad(x_adv)
        with torch.no_grad():
            now = logits.argmax(1) != y
            x_best_adv[now] = x_adv[now]
            fooled |= now
            increases += (lv > prev_loss).float()
            prev_loss = lv
            better = lv > loss_best
            x_best[better], grad_best[better], loss_best[better] = (
                x_adv[better], grad[better], lv[better])
            if i + 1 in marks:
                k = i + 1 - last_mark
                oscillating = increases <= 0.75 * k
                stalled = ~halved_at_mark & (best_at_mark >= loss_best)
                halve = oscillating | stalled
                halved_at_mark = halve
                best_at_mark = loss_best.clone()
                if halve.any():
                    step[halve] /= 2.0
                    x_adv[halve] = x_best[halve]
                    grad[halve] = grad_best[halve]
                increases.zero_()
                last_mark = i + 1
    return torch.where(fooled.reshape(view), x_best_adv, x_best), fooled


def apgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    steps: int = 100,
    loss: str | None = None,
    targeted: bool = False,
    n_target_classes: int = 9,
    restarts: int = 1,
    generator: torch.Generator | None = None,
    *,
    eot: int = 1,
) -> torch.Tensor:
    """Auto-PGD: APGD-CE, APGD-DLR, or APGD-T (targeted DLR) with ``targeted=True``.

    ``loss``: ``"ce"`` or ``"dlr"``; None (default): ``"ce"``, or ``"dlr"`` when
    ``targeted`` (APGD-T). ``targeted=True, loss="ce"`` maximizes the target's log-softmax.

    Each restart starts from a random point of the eps-sphere; later restarts (and, for
    APGD-T, the runs against the 2nd, 3rd, ... most likely classes up to
    ``n_target_classes`` of them) attack only the points not yet fooled. ``eot``: average
    the gradient (and loss) over this many forward passes, for randomized models (EOT).

    Shape: x (N, ...) in [0, 1], y (N,) -> x_adv (N, ...), same device and dtype, inside the
    eps-ball and the box.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(5, 1, 2, 2); y = model(x).argmax(1)
        >>> g = torch.Generator().manual_seed(0)
        >>> x_adv = apgd(model, x, y, 0.3, "inf", steps=20, generator=g)
        >>> bool(((x_adv - x).abs() <= 0.3 + 1e-6).all())
        True
    """
    x, p, e = check_attack_args(x, y, eps, norm)
    check_positive_int("steps", steps)
    check_positive_int("restarts", restarts)
    check_positive_int("eot", eot)
    check_positive_int("n_target_classes", n_target_classes)
    if loss is None:
        loss = "dlr" if targeted else "ce"
    if loss not in LOSSES:
        raise InputError("loss", f"must be one of {LOSSES}, got {loss!r}")
    with eval_mode(model):
        logits = checked_logits(model, x, y)
        out = x.clone()
        if e == 0:
            return out
        fooled = logits.argmax(1) != y
        lossf: LossFn = dlr_loss if loss == "dlr" else _ce
        runs: list[torch.Tensor | None] = [None]
        if targeted:
            order = logits.argsort(dim=1, descending=True)
            n_t = min(n_target_classes, logits.shape[1] - 1)
            runs = [order[:, k] for k in range(1, n_t + 1)]
        for target in runs:
            for _ in range(restarts):
                todo = torch.nonzero(~fooled).squeeze(1)
                if todo.numel() == 0:
                    return out
                run_loss = lossf if target is None else _targeted(loss, target[todo])
                x_res, ok = _apgd_run(model, x[todo], y[todo], run_loss, e, p, steps,
                                      generator, eot)
                # unfooled points keep the highest-loss result of their latest run
                out[todo] = x_res
                fooled[todo[ok]] = True
    return out
