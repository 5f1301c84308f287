"""Local linearization of ReLU networks and the linearized ("approximate") classifier.

A ReLU network is affine on the activation region of x, so the binary logit
g(z) = logit_1(z) - logit_0(z) equals w(x).z + b(x) for z in that region, with

    w(x) = grad_x g(x),    b(x) = g(x) - w(x).x        (exact for piecewise-affine nets)

The *approximate* game of SPEC section 1 replaces the classifier on the whole perturbation
ball by sign(w(x).z + b(x)). Labels in that game are y in {-1, +1} (class 1 is +1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advgame.errors import InputError
from advgame.models.training import eval_mode
from advgame.threat import Box, Norm, check_box, parse_norm, steepest_direction, steepest_in_box
from advgame.validate import check_nonnegative, check_signed_labels, check_tensor


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
    with eval_mode(model):
        xa = x.detach().requires_grad_(True)
        g = binary_logit(model, xa)
        (w,) = torch.autograd.grad(g.sum(), xa)
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
    network whose only nonlinearities are ``nn.ReLU`` modules; a model without ReLU is
    affine, one region, and gets an empty pattern (N, 0)).
    """
    pieces: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        pieces.append((out > 0).reshape(out.shape[0], -1))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    if not handles:  # an affine model is one region
        return torch.zeros((x.shape[0], 0), dtype=torch.bool, device=x.device)
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return torch.cat(pieces, dim=1)


@dataclass(frozen=True)
class LinearityDiagnostics:
    """Per-point checks of the locally linear model at one eps (SPEC section 1).

    All fields are (N,) bool tensors, with y in {-1, +1} and (w, b) the linearization at x:

    Attributes:
        same_region: the FGM point x_fgm lies in the activation region of x (so the
            network equals its linearization there).
        labels_agree: at x_fgm the linearized label sign(w.x_fgm + b) equals the network's.
        linear_robust: the linearized game says no attack in the ball flips the point:
            the linear margin at the worst point of ball ∩ box (the exact best response,
            :func:`best_response`) is > 0.
        pgd_robust: the network is still correct under PGD.
        pgd_disagrees: ``linear_robust != pgd_robust`` — the linear model and PGD disagree
            on whether the ball contains an adversarial point.
        sampled_disagree: at some sampled point of the ball (uniform samples, the FGM
            segment and the PGD path) the linearized and true labels differ — the ball
            meets a part of the decision boundary that the hyperplane of x does not model.
        faithful: labels_agree & ~pgd_disagrees & ~sampled_disagree.
    """

    same_region: torch.Tensor
    labels_agree: torch.Tensor
    linear_robust: torch.Tensor
    pgd_robust: torch.Tensor
    pgd_disagrees: torch.Tensor
    sampled_disagree: torch.Tensor
    faithful: torch.Tensor

    def fractions(self) -> dict[str, float]:
        """Mean of every flag (fraction of points)."""
        return {k: float(getattr(self, k).float().mean()) for k in self.__dataclass_fields__}


def _box_or_none(box: object) -> Box | None:
    return None if box is None else check_box(box)


def best_response(
    w: torch.Tensor,
    b: torch.Tensor,
    x: torch.Tensor,
    y_signed: torch.Tensor,
    eps: float,
    norm: Norm | str | float,
    box: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """The attacker's exact best response in the linearized game, per point.

        delta_i = argmin { y_i (w_i . (x_i + delta) + b_i) : ||delta||_p <= eps,
                           box[0] <= x_i + delta <= box[1] }

    i.e. the maximizer of (-y_i w_i) . delta over ball ∩ box
    (:func:`advgame.threat.steepest_in_box`): for L-inf each coordinate moves
    min(eps, room) against sign(y_i w_ij) (= clipped FGSM); for L2 the KKT solution
    clip(-lambda y_i w_i, lo - x_i, hi - x_i) with lambda set by the budget (exact sort, not
    project-then-clip). ``box=None``: the paper's unbounded model, delta_i = -eps y_i
    times the steepest p-direction of w_i, which lowers the margin by eps ||w_i||_{p*}.
    The defender's shift does not change it: the linear margin is additive in v.

    Computed in float64 (``b`` does not enter the argmin; it is taken for symmetry with
    the margin). Shape: w (N, d), b (N,), x (N, ...), y_signed (N,) in {-1, +1} -> delta
    with the shape of x, x's dtype and device.

    Example:
        >>> w = torch.tensor([[1.0, -2.0]]); x = torch.tensor([[0.05, 0.5]])
        >>> best_response(w, torch.zeros(1), x, torch.tensor([1]), 0.1, "inf")
        tensor([[-0.0500,  0.1000]])
        >>> best_response(w, torch.zeros(1), x, torch.tensor([1]), 0.1, "inf", box=None)
        tensor([[-0.1000,  0.1000]])
    """
    p = parse_norm(norm)
    bx = _box_or_none(box)
    check_tensor("x", x, min_ndim=2)
    n = x.shape[0]
    check_tensor("w", w, ndim=2)
    if w.shape != (n, x[0].numel()):
        raise InputError("w", f"must have shape ({n}, {x[0].numel()}) (one row per input), "
                              f"got {tuple(w.shape)}")
    check_tensor("b", b, ndim=1)
    if b.shape[0] != n:
        raise InputError("b", f"must have {n} entries (one per input), got {b.shape[0]}")
    check_signed_labels("y_signed", y_signed, n)
    e = check_nonnegative("eps", eps)
    xf = x.detach().reshape(n, -1).to(torch.float64)
    if bx is not None:
        lo, hi = float(xf.min()), float(xf.max())
        if lo < bx[0] - 1e-6 or hi > bx[1] + 1e-6:
            raise InputError("x", f"must lie in the box [{bx[0]:g}, {bx[1]:g}] when a box is "
                                  f"given, got range [{lo:.4g}, {hi:.4g}]")
        xf = xf.clamp(bx[0], bx[1])
    gain = -(y_signed.to(torch.float64)[:, None] * w.detach().to(torch.float64))
    if bx is None:
        delta = e * steepest_direction(gain, p)
    else:
        delta = steepest_in_box(gain, xf, e, p, bx)
    return delta.reshape(x.shape).to(x.dtype)


def worst_linear_margin(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y_signed: torch.Tensor, eps: float,
    norm: Norm | str | float, box: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    """min over z in B_p(x, eps) ∩ box of y (w.z + b): the margin after the best response.

    Exact for both norms (see :func:`best_response`); with ``box=None`` it is
    y (w.x + b) - eps ||w||_{p*}. Float64, (N,).

    Example:
        >>> w = torch.tensor([[1.0, 1.0]]); x = torch.tensor([[0.9, 0.0]])
        >>> m = worst_linear_margin(w, torch.zeros(1), x, torch.tensor([-1]), 1.0, "2")
        >>> round(float(m), 4)   # -0.9 - 0.1 - sqrt(1 - 0.1^2)
        -1.995
    """
    delta = best_response(w, b, x, y_signed, eps, norm, box).to(torch.float64)
    z = x.detach().to(torch.float64).reshape(x.shape[0], -1) + delta.reshape(x.shape[0], -1)
    return y_signed.to(torch.float64) * linear_logit(w.detach().to(torch.float64),
                                                     b.detach().to(torch.float64), z)


def linearity_diagnostics(
    model: nn.Module, x: torch.Tensor,
    y_signed: torch.Tensor,
    eps: float,
    norm: Norm | str | float,
    *,
    samples: int = 32,
    pgd_steps: int = 20,
    generator: torch.Generator | None = None,
    batch_size: int = 250,
) -> LinearityDiagnostics:
    """How faithful is the locally linear model on the eps-ball around each point?

    For each x_i (label y_i in {-1, +1}) with linearization (w_i, b_i): attack with FGM (the
    linearized best response in ball ∩ box, box-aware for L2) and
    PGD, compare activation regions and labels of the network and of its linearization at
    the FGM point, at ``samples`` uniform points of the ball, along the FGM segment and at
    every PGD iterate (all inside the box [0, 1]).

    Shape: x (N, ...), y_signed (N,) -> :class:`LinearityDiagnostics` of (N,) bools.
    """
    from advgame.attacks import attack_loop, fgm
    from advgame.threat import clip_box, project, random_in_ball

    p = parse_norm(norm)
    check_tensor("x", x, min_ndim=2)
    check_signed_labels("y_signed", y_signed, x.shape[0])
    out: dict[str, list[torch.Tensor]] = {k: [] for k in LinearityDiagnostics.__dataclass_fields__}
    for i in range(0, x.shape[0], batch_size):
        xb, ys = x[i:i + batch_size], y_signed[i:i + batch_size]
        y01 = ((ys + 1) // 2).long()
        w, b = linearize(model, xb)
        n = xb.shape[0]

        def true_logit(z: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return binary_logit(model, z)

        def disagree(z: torch.Tensor, w: torch.Tensor = w, b: torch.Tensor = b) -> torch.Tensor:
            return (linear_logit(w, b, z) > 0) != (true_logit(z) > 0)

        x_fgm = fgm(model, xb, y01, eps, p, box_aware=True)  # the S1 attacker
        same = (relu_pattern(model, x_fgm) == relu_pattern(model, xb)).all(1)
        agree = ~disagree(x_fgm)
        lin_robust = worst_linear_margin(w, b, xb, ys, eps, p) > 0
        # PGD, one step at a time, so that every iterate of its path is checked
        sampled = torch.zeros(n, dtype=torch.bool, device=x.device)
        z = xb
        step = 2.5 * eps / pgd_steps
        for _ in range(pgd_steps):
            z = attack_loop(model, z, y01, eps=eps, norm=p, steps=1, step_size=step,
                            validate=False)
            z = clip_box(xb + project(z - xb, eps, p))  # back onto the ball around x
            sampled |= disagree(z)
        with torch.no_grad():
            pgd_ok = true_logit(z) * ys > 0
        pgd_ok &= ~(true_logit(x_fgm) * ys <= 0)  # worst of FGM and PGD
        for t in torch.linspace(0, 1, 5)[1:-1].tolist():
            sampled |= disagree(xb + t * (x_fgm - xb))
        for _ in range(samples):
            delta = random_in_ball(xb.shape, eps, p, generator=generator, device=xb.device,
                                   dtype=xb.dtype)
            sampled |= disagree(clip_box(xb + delta))
        pgd_dis = lin_robust != pgd_ok
        for k, v in (("same_region", same), ("labels_agree", agree),
                     ("linear_robust", lin_robust), ("pgd_robust", pgd_ok),
                     ("pgd_disagrees", pgd_dis), ("sampled_disagree", sampled),
                     ("faithful", agree & ~pgd_dis & ~sampled)):
            out[k].append(v)
    return LinearityDiagnostics(**{k: torch.cat(v) for k, v in out.items()})
