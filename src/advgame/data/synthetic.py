"""Synthetic two-class data for which the linear theory of the additive game is exact.

Both generators return images of shape (N, 1, 8, 8) in [0, 1] (d = 64) and labels in {0, 1}.

- ``gaussians``: x | y ~ N(0.5 + (2y - 1) * delta * u, s^2 I) clipped to [0, 1], with a
  random unit direction u; the Bayes classifier is linear (sign of u.(x - 0.5)).
- ``linear``: x ~ U[0, 1]^d, y = 1[w.(x - 0.5) > 0] for a random unit w, keeping only points
  with |w.(x - 0.5)| >= margin (linearly separable with a known margin).
"""

from __future__ import annotations

import torch

SHAPE = (1, 8, 8)


def _direction(generator: torch.Generator) -> torch.Tensor:
    d = SHAPE[0] * SHAPE[1] * SHAPE[2]
    u = torch.randn(d, generator=generator, dtype=torch.float64)
    return u / u.norm()


def gaussians(
    n: int, *, generator: torch.Generator, delta: float = 0.15, scale: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two Gaussian classes. Returns x (n, 1, 8, 8) float32, y (n,) long, direction u (64,).

    Example:
        >>> x, y, u = gaussians(10, generator=torch.Generator().manual_seed(0))
        >>> x.shape, y.shape
        (torch.Size([10, 1, 8, 8]), torch.Size([10]))
    """
    u = _direction(generator)
    y = torch.randint(0, 2, (n,), generator=generator)
    noise = torch.randn(n, u.numel(), generator=generator, dtype=torch.float64) * scale
    x = 0.5 + (2 * y.double() - 1)[:, None] * delta * u[None, :] + noise
    return x.clamp(0, 1).float().reshape(n, *SHAPE), y, u.float()


def linear(
    n: int, *, generator: torch.Generator, margin: float = 0.05
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linearly separable uniform data. Returns x (n, 1, 8, 8), y (n,) long, w (64,)."""
    w = _direction(generator)
    chunks_x, chunks_y, have = [], [], 0
    while have < n:
        x = torch.rand(2 * n, w.numel(), generator=generator, dtype=torch.float64)
        s = (x - 0.5) @ w
        keep = s.abs() >= margin
        chunks_x.append(x[keep])
        chunks_y.append((s[keep] > 0).long())
        have += int(keep.sum())
    x = torch.cat(chunks_x)[:n]
    y = torch.cat(chunks_y)[:n]
    return x.float().reshape(n, *SHAPE), y, w.float()
