"""Minimax / maximin between a classifier and an attack network (S2): a generic
alternating gradient solver with an optional sensitivity penalty, and its application
to a classifier and an AttNet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from advgame.attacks.learned import attnet_attack
from advgame.errors import InputError
from advgame.validate import check_images, check_labels, check_nonnegative, check_positive_int

__all__ = [
    "AlternatingHistory",
    "alternating_gradient",
    "attnet_payoff",
    "learned_minimax",
]


# --------------------------------------------------------------------------- minimax


@dataclass
class AlternatingHistory:
    """Objective curves of :func:`alternating_gradient`, one entry per outer iteration.

    Attributes:
        min_objective: mean over the iteration's descent steps of the minimizer's
            objective f (+ rho ||grad_v f||^2 when penalized).
        max_objective: mean over the iteration's ascent steps of f (the maximizer's
            objective).
        value: f after the iteration (one more evaluation).
    """

    min_objective: list[float] = field(default_factory=list)
    max_objective: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)


def _optimizer(params: list[torch.Tensor], kind: str, lr: float,
               maximize: bool) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, maximize=maximize)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, maximize=maximize)
    raise InputError("optimizer", f"must be 'sgd' or 'adam', got {kind!r}")


def alternating_gradient(
    f: Callable[[], torch.Tensor],
    u_params: Sequence[torch.Tensor],
    v_params: Sequence[torch.Tensor],
    *,
    iterations: int,
    k_min: int = 1,
    k_max: int = 1,
    leader: Literal["min", "max"] = "min",
    lr_min: float = 1e-2,
    lr_max: float = 1e-2,
    optimizer: Literal["sgd", "adam"] = "sgd",
    rho: float = 0.0,
    callback: Callable[[int, AlternatingHistory], None] | None = None,
) -> AlternatingHistory:
    """Alternating gradient descent (on u) / ascent (on v) for min_u max_v f or max_v min_u f.

    Each iteration lets the *follower* move first, then the leader:

    - ``leader="min"`` (minimax, min_u max_v f; the defender leads): ``k_max`` ascent
      steps on v (the attacker best-responds), then ``k_min`` descent steps on u;
    - ``leader="max"`` (maximin, max_v min_u f; the attacker leads): ``k_min`` descent
      steps on u, then ``k_max`` ascent steps on v.

    Use a large follower count (e.g. k_max = 5, k_min = 1 for minimax) so that the inner
    problem is approximately solved. With ``rho > 0`` each descent step minimizes
    f(u, v) + rho ||grad_v f(u, v)||^2 (differentiated through grad_v f), penalizing how
    much the attacker could still gain: f(u, v + s grad_v f) ~ f + s ||grad_v f||^2, so the
    penalty is a one-step look-ahead of the attacker's ascent step (Hamm & Mehra's
    sensitivity-penalized minimax; rho = 0 is their "Alt"). It vanishes with its gradient
    where grad_v f = 0, so at an interior best response the penalized and plain solvers
    share their fixed points. ``advgame paper2`` uses k = 5 follower steps
    (``minimax_k``, 3 with ``--quick``) and rho = 1.0 (``minimax_rho``).

    ``f`` is a closure evaluating the payoff at the current parameters (it may draw a new
    mini-batch per call); the parameters are updated in place with SGD or Adam
    (``maximize=True`` for v). Pure: no randomness of its own.

    Args:
        f: () -> scalar tensor, differentiable in ``u_params`` and ``v_params``.
        u_params, v_params: leaf tensors of the minimizer and of the maximizer.
        iterations: outer iterations. k_min, k_max: descent / ascent steps per iteration.
        leader: "min" or "max" (see above).
        lr_min, lr_max: step sizes. optimizer: "sgd" or "adam".
        rho: sensitivity penalty weight (>= 0).
        callback: called as ``callback(iteration, history)`` after each iteration.

    Returns:
        :class:`AlternatingHistory`.

    Example:
        >>> u = torch.tensor([1.0], requires_grad=True)
        >>> v = torch.tensor([-1.0], requires_grad=True)
        >>> h = alternating_gradient(lambda: (u**2 / 2 - v**2 / 2 + u * v).sum(), [u], [v],
        ...                          iterations=300, lr_min=0.1, lr_max=0.1)
        >>> abs(u.item()) < 1e-3 and abs(v.item()) < 1e-3
        True
    """
    check_positive_int("iterations", iterations, minimum=0)
    check_positive_int("k_min", k_min)
    check_positive_int("k_max", k_max)
    rho = check_nonnegative("rho", rho)
    if leader not in ("min", "max"):
        raise InputError("leader", f"must be 'min' or 'max', got {leader!r}")
    up, vp = list(u_params), list(v_params)
    if not up or not vp:
        raise InputError("u_params", "both players need at least one parameter tensor")
    opt_u = _optimizer(up, optimizer, lr_min, maximize=False)
    opt_v = _optimizer(vp, optimizer, lr_max, maximize=True)
    hist = AlternatingHistory()

    def descend() -> float:
        val = f()
        obj = val
        if rho > 0:
            gv = torch.autograd.grad(val, vp, create_graph=True, allow_unused=True)
            obj = val + rho * sum((g.pow(2).sum() for g in gv if g is not None),
                                  torch.zeros_like(val))
        grads = torch.autograd.grad(obj, up, allow_unused=True)
        for p, g in zip(up, grads, strict=True):
            p.grad = g
        opt_u.step()
        return float(obj.detach())

    def ascend() -> float:
        val = f()
        grads = torch.autograd.grad(val, vp, allow_unused=True)
        for p, g in zip(vp, grads, strict=True):
            p.grad = g
        opt_v.step()
        return float(val.detach())

    for it in range(iterations):
        if leader == "min":
            maxs = [ascend() for _ in range(k_max)]
            mins = [descend() for _ in range(k_min)]
        else:
            mins = [descend() for _ in range(k_min)]
            maxs = [ascend() for _ in range(k_max)]
        hist.min_objective.append(sum(mins) / len(mins))
        hist.max_objective.append(sum(maxs) / len(maxs))
        with torch.no_grad():
            hist.value.append(float(f()))
        if callback is not None:
            callback(it, hist)
    return hist


def attnet_payoff(
    model: nn.Module, attnet: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
) -> torch.Tensor:
    """f(u, v) = mean_i l(h(z_v(x_i); u), y_i), z_v = clip(x + eps attnet(x), 0, 1). Scalar.

    Example:
        >>> from advgame.attacks.learned import AttNet
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> attnet_payoff(model, AttNet((1, 2, 2), hidden=(4,)), torch.rand(3, 1, 2, 2),
        ...               torch.tensor([0, 1, 1]), 0.1).ndim
        0
    """
    return F.cross_entropy(model(attnet_attack(attnet, x, eps)), y)


def learned_minimax(
    model: nn.Module,
    attnet: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    leader: Literal["min", "max"] = "min",
    iterations: int = 1000,
    k_min: int = 1,
    k_max: int = 5,
    lr_min: float = 1e-3,
    lr_max: float = 1e-3,
    batch_size: int = 64,
    rho: float = 0.0,
    generator: torch.Generator,
    callback: Callable[[int, AlternatingHistory], None] | None = None,
) -> AlternatingHistory:
    """Solve min_u max_v f(u, v) (``leader="min"``) or max_v min_u f between a classifier
    and an attack network by :func:`alternating_gradient` with Adam on mini-batches.

    f(u, v) = E l(h(clip(x + eps tanh(a(x; v)), 0, 1); u), y). Every payoff evaluation
    draws a mini-batch of ``batch_size`` training examples uniformly with replacement
    (``generator``, CPU). Both networks are trained in place and left in eval mode.

    ``advgame paper2`` runs it with k = 5 follower steps (k_max = 5, k_min = 1 for minimax;
    k_min = 5, k_max = 1 for maximin) and, for the sensitivity-penalized minimax, rho = 1.0:
    the defender then minimizes f + rho ||grad_v f||^2, the first-order value of f after
    one attacker step (f(u, v + s grad_v f) ~ f + s ||grad_v f||^2).

    Args:
        model: classifier h(.; u). attnet: attack network a(.; v).
        x: (N, ...) training inputs in [0, 1]. y: (N,) labels.
        eps: L-inf budget. leader, iterations, k_min, k_max, lr_min, lr_max, rho: see
            :func:`alternating_gradient`.
        batch_size: examples per payoff evaluation.
        generator: CPU generator for the mini-batches.

    Returns:
        :class:`AlternatingHistory` of mini-batch objectives.

    Example:
        >>> from advgame.attacks.learned import AttNet
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(16, 1, 2, 2); y = torch.randint(0, 2, (16,))
        >>> h = learned_minimax(model, AttNet((1, 2, 2), hidden=(4,)), x, y, 0.1,
        ...                     iterations=3, k_max=2, generator=torch.Generator())
        >>> len(h.value)
        3
    """
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    eps = check_nonnegative("eps", eps)
    check_positive_int("batch_size", batch_size)
    n = x.shape[0]

    def f() -> torch.Tensor:
        idx = torch.randint(n, (min(batch_size, n),), generator=generator).to(x.device)
        return attnet_payoff(model, attnet, x[idx], y[idx], eps)

    model.train()
    attnet.train()
    try:
        return alternating_gradient(
            f, [p for p in model.parameters() if p.requires_grad],
            [p for p in attnet.parameters() if p.requires_grad],
            iterations=iterations, k_min=k_min, k_max=k_max, leader=leader, lr_min=lr_min,
            lr_max=lr_max, optimizer="adam", rho=rho, callback=callback,
        )
    finally:
        model.eval()
        attnet.eval()
