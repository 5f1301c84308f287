"""Threat models: L2 and L-inf balls inside the box [0, 1].

A norm is written ``"2"`` or ``"inf"`` (``2``, ``float('inf')``, ``"linf"``, ``"l2"`` are
accepted). For a perturbation ``delta`` of shape (N, ...) every function works per example
(over all non-batch dimensions).

Dual norms: ||.||_2* = ||.||_2 and ||.||_inf* = ||.||_1, so that
``max_{||u||_p <= 1} w.u = ||w||_{p*}`` (Hoelder).
"""

from __future__ import annotations

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
