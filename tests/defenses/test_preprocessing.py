"""Median filter and bit-depth reduction against references; BPDA sees through them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advgame.attacks import pgd
from advgame.defenses import TransformDefense
from advgame.defenses.preprocessing import BitDepthReduction, MedianFilter, bpda
from advgame.errors import InputError


def test_median_filter_equals_scipy_and_bit_depth_levels() -> None:
    from scipy.ndimage import median_filter

    x = torch.rand(3, 2, 7, 6, generator=torch.Generator().manual_seed(0))
    for k in (3, 5):
        ref = median_filter(x.numpy(), size=(1, 1, k, k), mode="mirror")
        np.testing.assert_allclose(MedianFilter(k)(x).numpy(), ref, atol=0)
    q = BitDepthReduction(2)(x)
    levels = np.unique(q.numpy())
    assert len(levels) <= 4
    np.testing.assert_allclose(levels * 3, np.round(levels * 3), atol=1e-6)  # k / 3
    assert float((q - x).abs().max()) <= 1 / 6 + 1e-6
    with pytest.raises(InputError):
        MedianFilter(4)
    with pytest.raises(InputError):
        BitDepthReduction(0)


def test_bpda_is_straight_through_and_beats_plain_pgd() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    defended = TransformDefense("bits", BitDepthReduction(3), net)
    y = defended(x).argmax(1)
    # forward identical, gradient the identity's
    torch.testing.assert_close(defended.with_bpda()(x), defended(x))
    xa = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(bpda(BitDepthReduction(3))(xa).sum(), xa)
    assert bool((g == 1).all())
    xp = x.clone().requires_grad_(True)
    (g0,) = torch.autograd.grad(defended(xp).sum(), xp)
    assert float(g0.abs().max()) == 0.0  # the rounding masks the gradient
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = pgd(defended, x, y, 0.1, "inf", steps=20, generator=gen())
    through = pgd(defended.with_bpda(), x, y, 0.1, "inf", steps=20, generator=gen())
    with torch.no_grad():
        acc_plain = float((defended(plain).argmax(1) == y).float().mean())
        acc_bpda = float((defended(through).argmax(1) == y).float().mean())
    assert acc_bpda < acc_plain - 0.2
