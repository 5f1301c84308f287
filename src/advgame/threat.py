"""Threat models: L2 and L-inf balls inside the box [0, 1].

A norm is written ``"2"`` or ``"inf"`` (``2``, ``float('inf')``, ``"linf"``, ``"l2"`` are
accepted). For a perturbation ``delta`` of shape (N, ...) every function works per example
(over all non-batch dimensions).

Dual norms: ||.||_2* = ||.||_2 and ||.||_inf* = ||.||_1, so that
``max_{||u||_p <= 1} w.u = ||w||_{p*}`` (Hoelder).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from advgame.errors import InputError

Norm = Literal["2", "inf"]

_ALIASES: dict[str, Norm] = {
    "2": "2", "l2": "2", "2.0": "2",
    "inf": "inf", "linf": "inf", "infinity": "inf", "l_inf": "inf",
}


def parse_norm(norm: object, name: str = "norm") -> Norm:
    """Normalize a norm specification to ``"2"`` or ``"inf"``.

    Example:
        >>> parse_norm(float("inf")), parse_norm(2)
        ('inf', '2')
    """
    if isinstance(norm, bool):
        raise InputError(name, f"must be 2 or inf, got {norm!r}")
    if isinstance(norm, (int, float)):
        if norm == 2:
            return "2"
        if norm == float("inf"):
            return "inf"
    elif isinstance(norm, str) and norm.strip().lower() in _ALIASES:
        return _ALIASES[norm.strip().lower()]
    raise InputError(name, f"must be 2 or inf, got {norm!r}")


def dual(norm: Norm) -> Literal["2", "1"]:
    """The dual exponent p* of p: 2 -> 2, inf -> 1."""
    return "2" if norm == "2" else "1"


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _view(per_example: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return per_example.reshape((-1,) + (1,) * (like.ndim - 1))


def lp_norm(t: torch.Tensor, p: str) -> torch.Tensor:
    """Per-example Lp norm of ``t`` (N, ...) -> (N,), for p in {"1", "2", "inf"}."""
    f = _flat(t)
    if p == "1":
        return f.abs().sum(dim=1)
    if p == "2":
        return f.norm(p=2, dim=1)
    if p == "inf":
        return f.abs().amax(dim=1)
    raise InputError("p", f"must be '1', '2' or 'inf', got {p!r}")


def dual_norm(w: torch.Tensor, norm: Norm) -> torch.Tensor:
    """||w||_{p*} per row: the largest w.u over ||u||_p <= 1. (N, ...) -> (N,)."""
    return lp_norm(w, dual(norm))


def steepest_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """argmax_{||u||_p <= 1} grad.u per example: sign(grad) for inf, grad/||grad||_2 for 2.

    Zero gradients give a zero direction.
    """
    if norm == "inf":
        return grad.sign()
    n = _view(lp_norm(grad, "2"), grad)
    return grad / n.clamp_min(1e-12)


def project(delta: torch.Tensor, eps: float | torch.Tensor, norm: Norm) -> torch.Tensor:
    """Euclidean projection of each example of ``delta`` onto the Lp ball of radius eps.

    For L-inf this is coordinate clipping; for L2 a rescaling by min(1, eps/||delta||_2).
    ``eps`` may be a scalar or a per-example tensor of shape (N,).
    """
    if norm == "inf" and not isinstance(eps, torch.Tensor) and eps >= 0:
        return delta.clamp(-eps, eps)  # one pass; the same values as minimum/maximum
    e = eps if isinstance(eps, torch.Tensor) else torch.tensor(eps, dtype=delta.dtype)
    e = e.to(delta.device, delta.dtype)
    if e.ndim == 1:
        e = _view(e, delta)
    if norm == "inf":
        return torch.maximum(torch.minimum(delta, e), -e)
    n = _view(lp_norm(delta, "2"), delta)
    factor = torch.clamp(e / n.clamp_min(1e-12), max=1.0)
    return delta * factor


def random_in_ball(
    shape: torch.Size | tuple[int, ...],
    eps: float,
    norm: Norm,
    *,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniform samples from the Lp ball of radius eps, one per example. Shape ``shape``.

    L-inf: U[-eps, eps]^d. L2: Gaussian direction times radius eps * U^(1/d).
    """
    if norm == "inf":
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return (2 * u - 1) * eps
    g = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    g = g / _view(lp_norm(g, "2").clamp_min(1e-12), g)
    d = g[0].numel()
    r = torch.rand((shape[0],), generator=generator, device=device, dtype=dtype) ** (1.0 / d)
    return g * _view(r * eps, g)


def clip_box(x: torch.Tensor) -> torch.Tensor:
    """Clip into the image box [0, 1]."""
    return x.clamp(0.0, 1.0)


Box = tuple[float, float]


def check_box(box: object, name: str = "box") -> Box:
    """A box (lo, hi) of two finite numbers with lo < hi, as floats.

    Example:
        >>> check_box((0, 1))
        (0.0, 1.0)
    """
    if (not isinstance(box, (tuple, list)) or len(box) != 2
            or any(isinstance(t, bool) or not isinstance(t, (int, float)) for t in box)):
        raise InputError(name, f"must be a pair (lo, hi) of numbers or None, got {box!r}")
    lo, hi = float(box[0]), float(box[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(name, f"must be a pair (lo, hi) of finite numbers with lo < hi, "
                               f"got {box!r}")
    return lo, hi


def steepest_in_box(
    grad: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm, box: Box = (0.0, 1.0)
) -> torch.Tensor:
    """The exact maximizer of the linear gain over ball ∩ box, per example.

        delta* = argmax { grad . delta : ||delta||_p <= eps, lo <= x + delta <= hi }

    Each coordinate can move by at most its *room* r_j in the direction of sign(grad_j):
    r_j = hi - x_j if grad_j > 0, x_j - lo if grad_j < 0 (0 if grad_j = 0).

    * L-inf: separable, delta_j = sign(grad_j) min(eps, r_j) (= clipped FGSM).
    * L2: the KKT conditions of this convex problem give
      delta_j(lambda) = sign(grad_j) min(lambda |grad_j|, r_j) (the box projection of
      lambda grad), with lambda >= 0 the root of ||delta(lambda)||_2 = eps, or lambda = inf
      when the whole box room fits in the ball. ||delta(lambda)||^2 is piecewise quadratic
      in lambda with breakpoints t_j = r_j / |grad_j|; sorting them gives the root exactly:
      with the s smallest breakpoints saturated, lambda^2 = (eps^2 - sum_{j<=s} r_j^2) /
      sum_{j>s} grad_j^2. This is *not* project-then-clip, which wastes budget on
      coordinates the box stops.

    Computed in float64 for float64 inputs, vectorized over the batch (one sort per row).

    Shape: grad, x (N, ...) -> delta (N, ...), x's dtype and device.

    Example:
        >>> g = torch.tensor([[1.0, 1.0]]); x = torch.tensor([[0.9, 0.0]])
        >>> steepest_in_box(g, x, 1.0, "2")   # x_0 can only move 0.1; the rest goes to x_1
        tensor([[0.1000, 0.9950]])
    """
    if grad.shape != x.shape:
        raise InputError("grad", f"must have the shape of x {tuple(x.shape)}, got "
                                 f"{tuple(grad.shape)}")
    lo, hi = box
    g = _flat(grad)
    xf = _flat(x).to(g.dtype)
    room = torch.where(g > 0, hi - xf, torch.where(g < 0, xf - lo, torch.zeros_like(xf)))
    room = room.clamp_min(0.0)
    sgn = g.sign()
    if norm == "inf":
        return (sgn * room.clamp(max=eps)).reshape(x.shape).to(x.dtype)
    ag = g.abs()
    active = ag > 0
    t = torch.where(active, room / ag.clamp_min(torch.finfo(g.dtype).tiny),
                    torch.full_like(room, math.inf))
    t_sorted, order = torch.sort(t, dim=1)
    r2 = room.gather(1, order).square()
    g2 = ag.gather(1, order).square()
    # at lambda = t_(k) the k coordinates before it are saturated:
    # F_k = sum_{j<k} r_j^2 + t_k^2 sum_{j>=k} g_j^2 (non-decreasing in k)
    prefix = torch.cumsum(r2, dim=1) - r2
    suffix = g2.flip(1).cumsum(1).flip(1)
    reach = torch.where(suffix > 0, t_sorted.square() * suffix, torch.zeros_like(suffix))
    f_k = prefix + torch.nan_to_num(reach, nan=math.inf)
    s = (f_k < eps * eps).sum(dim=1, keepdim=True)  # breakpoints passed before the budget
    d = g.shape[1]
    idx = s.clamp(max=d - 1)
    pre_s = torch.where(s < d, prefix.gather(1, idx), r2.sum(1, keepdim=True))
    suf_s = torch.where(s < d, suffix.gather(1, idx), torch.zeros_like(pre_s))
    lam = torch.where(suf_s > 0, ((eps * eps - pre_s).clamp_min(0.0) / suf_s.clamp_min(
        torch.finfo(g.dtype).tiny)).sqrt(), torch.full_like(pre_s, math.inf))
    delta = torch.where(active, sgn * torch.minimum(lam * ag, room), torch.zeros_like(room))
    return delta.reshape(x.shape).to(x.dtype)


def project_onto_hyperplane_in_box(
    z: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: Norm, box: Box = (0.0, 1.0)
) -> torch.Tensor:
    """The smallest step d (in the p-norm) onto the hyperplane w.(z + d) = b inside the box.

        d* = argmin { ||d||_p : w . (z + d) = b, lo <= z + d <= hi }       (per row)

    With r = b - w.z, every coordinate moves towards sign(r w_j), by at most its room to
    the box. L2 (KKT): d_j = sign(r w_j) min(lambda |w_j|, room_j); L-inf: d_j =
    sign(r w_j) min(t, room_j); the gain sum_j |w_j| |d_j| is piecewise linear and
    increasing in lambda (t), so sorting the breakpoints room_j / |w_j| (room_j) gives the
    exact root. When the box cannot reach the hyperplane, d moves every coordinate by its
    full room (the closest the box gets). This is FAB's projection step (Croce & Hein
    2020).

    Shape: z, w (N, d), b (N,) -> d (N, d), z's dtype.

    Example:
        >>> z = torch.tensor([[0.5, 0.9]]); w = torch.tensor([[1.0, 1.0]])
        >>> project_onto_hyperplane_in_box(z, w, torch.tensor([1.8]), "inf")  # z_1 stops at 1
        tensor([[0.3000, 0.1000]])
    """
    lo, hi = box
    r = b - (w * z).sum(1)
    g = w * r.sign()[:, None]
    sg = g.sign()  # float products instead of torch.where on masks (slower on CPU)
    room = (sg.relu() * (hi - z) + (-sg).relu() * (z - lo)).clamp_min(0.0)  # 0 where g = 0
    a = g.abs()
    c = a if norm == "2" else sg.abs()
    target = r.abs()[:, None]
    tiny = torch.finfo(z.dtype).tiny
    t = torch.where(c > 0, room / c.clamp_min(tiny), math.inf)
    t_sorted, order = torch.sort(t, dim=1)
    ar = (a * room).gather(1, order)
    ac = (a * c).gather(1, order)
    prefix = torch.cumsum(ar, 1) - ar  # saturated before breakpoint k
    suffix = ac.flip(1).cumsum(1).flip(1)
    # t_k * suffix_k; inf * 0 (only past the last active coordinate) reaches nothing
    f_k = prefix + torch.nan_to_num(t_sorted * suffix, nan=0.0, posinf=math.inf)
    s = (f_k < target).sum(1, keepdim=True)
    d_ = z.shape[1]
    idx = s.clamp(max=d_ - 1)
    pre = torch.where(s < d_, prefix.gather(1, idx), ar.sum(1, keepdim=True))
    suf = torch.where(s < d_, suffix.gather(1, idx), torch.zeros_like(pre))
    tau = torch.where(suf > 0, (target - pre).clamp_min(0.0) / suf.clamp_min(tiny),
                      torch.full_like(pre, math.inf))
    # c = 0 means room = 0: min(tau c, 0) is 0, or NaN (inf * 0), which is 0
    step = torch.nan_to_num(torch.minimum(tau * c, room), nan=0.0, posinf=math.inf)
    return sg * step
