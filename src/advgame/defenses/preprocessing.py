"""Input-dependent preprocessing defenses and BPDA, the attack that sees through them.

Unlike the additive shift of S1 (one v for every input), these defenses transform each
test point by a function of the point itself (a reviewer of S1 asks about them):

* :class:`MedianFilter`: each pixel replaced by the median of its k x k neighbourhood
  (per channel, reflect padding) -- feature squeezing / denoising (Xu et al. 2018);
* :class:`BitDepthReduction`: x -> round(x (2^b - 1)) / (2^b - 1) (Xu et al. 2018).

Both are (almost everywhere) non-differentiable or gradient-destroying: the median's
gradient goes to one pixel per window, the rounding's is 0. Gradient attacks on
``model(transform(x))`` therefore fail -- gradient masking. BPDA (Athalye, Carlini &
Wagner 2018) replaces the transform in the *backward* pass by a differentiable
approximation, here the identity: :func:`bpda` returns the same forward with the
straight-through gradient, and attacking ``TransformDefense(name, t, model).with_bpda()``
while evaluating ``TransformDefense(name, t, model)``
(:class:`advgame.defenses.TransformDefense`) is BPDA-PGD.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from advgame.errors import InputError
from advgame.validate import check_positive_int


class MedianFilter(nn.Module):
    """k x k median filter per channel (k odd), reflect padding.

    Shape: (N, C, H, W) -> (N, C, H, W) ((N, H, W) and (N, d) pass through the same way
    after viewing as one channel; (N, d) is filtered along d).

    Example:
        >>> x = torch.zeros(1, 1, 3, 3); x[0, 0, 1, 1] = 1.0   # one hot pixel
        >>> MedianFilter(3)(x).abs().max().item()
        0.0
    """

    def __init__(self, size: int = 3) -> None:
        super().__init__()
        check_positive_int("size", size)
        if size % 2 == 0:
            raise InputError("size", f"must be odd, got {size}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        z = x.reshape(x.shape[0], 1, 1, -1) if x.ndim == 2 else (
            x.unsqueeze(1) if x.ndim == 3 else x)
        k, r = self.size, self.size // 2
        kh = k if z.shape[2] > 1 else 1
        rh = r if z.shape[2] > 1 else 0
        pad = F.pad(z, (r, r, rh, rh), mode="reflect" if min(z.shape[2:]) > r else "replicate")
        patches = pad.unfold(2, kh, 1).unfold(3, k, 1)  # (N, C, H, W, kh, k)
        med = patches.reshape(*patches.shape[:4], -1).median(dim=-1).values
        return med.reshape(shape)


class BitDepthReduction(nn.Module):
    """Quantize [0, 1] inputs to ``bits`` bits: round(x (2^b - 1)) / (2^b - 1).

    Example:
        >>> BitDepthReduction(1)(torch.tensor([[0.2, 0.6]]))
        tensor([[0., 1.]])
    """

    def __init__(self, bits: int = 3) -> None:
        super().__init__()
        check_positive_int("bits", bits)
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = 2 ** self.bits - 1
        return torch.round(x.clamp(0.0, 1.0) * levels) / levels


class StraightThrough(nn.Module):
    """``transform`` forward, identity backward (BPDA with the identity approximation)."""

    def __init__(self, transform: nn.Module) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.transform(x) - x).detach()


def preprocessing(kind: str, value: int) -> nn.Module:
    """The transform named ``kind``: ``"median"`` (:class:`MedianFilter`, ``value`` = window
    size) or ``"bit-depth"`` (:class:`BitDepthReduction`, ``value`` = bits).

    Example:
        >>> preprocessing("bit-depth", 1)(torch.tensor([[0.2, 0.6]]))
        tensor([[0., 1.]])
    """
    if kind == "median":
        return MedianFilter(value)
    if kind == "bit-depth":
        return BitDepthReduction(value)
    raise InputError("transform", f"unknown preprocessing {kind!r}; choose median or bit-depth")


def bpda(transform: nn.Module) -> nn.Module:
    """The transform with the straight-through (identity) backward pass of BPDA.

    Example:
        >>> t = bpda(BitDepthReduction(2)); x = torch.rand(2, 4, requires_grad=True)
        >>> t(x).sum().backward(); bool((x.grad == 1).all())
        True
    """
    return StraightThrough(transform)
