"""Local linearization of ReLU networks and the linearized ("approximate") classifier.

A ReLU network is affine on the activation region of x, so the binary logit
g(z) = logit_1(z) - logit_0(z) equals w(x).z + b(x) for z in that region, with

    w(x) = grad_x g(x),    b(x) = g(x) - w(x).x        (exact for piecewise-affine nets)

The *approximate* game of SPEC section 1 replaces the classifier on the whole perturbation
ball by sign(w(x).z + b(x)). Labels in that game are y in {-1, +1} (class 1 is +1).
"""

from __future__ import annotations

import torch
from torch import nn

from advgame.errors import InputError
from advgame.validate import check_tensor


def binary_logit(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """g(x) = logit_1 - logit_0 of a two-logit model. (N, ...) -> (N,)."""
    out = model(x)
    if out.ndim != 2 or out.shape[1] != 2 or out.shape[0] != x.shape[0]:
        raise InputError(
            "model", f"must return two logits per input (N={x.shape[0]}, 2) for the "
            f"binary game, returned {tuple(out.shape)}"
        )
    return out[:, 1] - out[:, 0]


def linearize(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, b) of the binary logit at each input: g(z) ~= w_i.z + b_i near x_i.

    One forward and one backward pass for the whole batch (the rows of g depend on
    their own inputs only, so grad of sum_i g_i gives every w_i). The model runs in eval
    mode; its mode is restored.

    Shape: x (N, ...) -> w (N, d) with d = prod(x.shape[1:]), b (N,).

    Example:
        >>> lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))
        >>> w, b = linearize(lin, torch.rand(5, 3))
        >>> torch.allclose(w[0], lin[1].weight[1] - lin[1].weight[0])
        True
    """
    check_tensor("x", x, min_ndim=2)
    was_training = model.training
    model.eval()
    try:
        xa = x.detach().requires_grad_(True)
        g = binary_logit(model, xa)
        (w,) = torch.autograd.grad(g.sum(), xa)
    finally:
        model.train(was_training)
    w = w.reshape(x.shape[0], -1)
    b = g.detach() - (w * x.detach().reshape(x.shape[0], -1)).sum(dim=1)
    return w, b


def linear_logit(w: torch.Tensor, b: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The linearized logit w_i.z_i + b_i. w (N, d), b (N,), z (N, ...) -> (N,)."""
    return (w * z.reshape(z.shape[0], -1)).sum(dim=1) + b


def approximate_correct(
    w: torch.Tensor, b: torch.Tensor, z: torch.Tensor, y_signed: torch.Tensor
) -> torch.Tensor:
    """Whether the linearized classifier labels z correctly: y_i (w_i.z_i + b_i) > 0. (N,)."""
    return y_signed * linear_logit(w, b, z) > 0


def relu_pattern(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Activation pattern of every ReLU in ``model`` at x: (N, total units) bool.

    Two inputs lie in the same activation region iff their patterns are equal (for a
    network whose only nonlinearities are ``nn.ReLU`` modules).
    """
    pieces: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        pieces.append((out > 0).reshape(out.shape[0], -1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    if not handles:
        raise InputError("model", "has no nn.ReLU modules: activation regions are undefined")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return torch.cat(pieces, dim=1)
