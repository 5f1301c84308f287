from __future__ import annotations

import pytest
import torch

from advgame.errors import InputError
from advgame.linear import approximate_correct, linear_logit, linearize, relu_pattern
from advgame.models import MLP, SmallCNN


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_linearize_reproduces_logit_exactly(arch: str, gen: torch.Generator) -> None:
    torch.manual_seed(0)
    model = (MLP((1, 10, 10), 2, hidden=(32, 16)) if arch == "mlp"
             else SmallCNN((1, 10, 10), 2, channels=(4, 8), head=16)).double()
    x = torch.rand(25, 1, 10, 10, generator=gen, dtype=torch.float64)
    w, b = linearize(model, x)
    assert w.shape == (25, 100) and b.shape == (25,)
    out = model(x)
    torch.testing.assert_close(linear_logit(w, b, x), out[:, 1] - out[:, 0], atol=1e-10, rtol=0)
    # inside the activation region the linearization is the network itself
    z = x + 1e-7 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    same = (relu_pattern(model, z) == relu_pattern(model, x)).all(1)
    assert same.float().mean() > 0.5
    out_z = model(z)
    torch.testing.assert_close(linear_logit(w, b, z)[same], (out_z[:, 1] - out_z[:, 0])[same],
                               atol=1e-10, rtol=0)


def test_linearize_per_example_gradient_matches_loop(gen: torch.Generator) -> None:
    torch.manual_seed(1)
    model = MLP((6,), 2, hidden=(8,))
    x = torch.rand(4, 6, generator=gen)
    w, _ = linearize(model, x)
    for i in range(4):
        xi = x[i:i + 1].clone().requires_grad_(True)
        o = model(xi)
        (gi,) = torch.autograd.grad((o[0, 1] - o[0, 0]), xi)
        torch.testing.assert_close(w[i], gi.flatten())


def test_approximate_correct_sign() -> None:
    w = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([-0.5])
    z = torch.tensor([[1.0, 0.0]])
    assert approximate_correct(w, b, z, torch.tensor([1])).item()
    assert not approximate_correct(w, b, z, torch.tensor([-1])).item()


def test_linearize_needs_two_logits() -> None:
    model = MLP((4,), 3, hidden=(8,))
    with pytest.raises(InputError, match="two logits"):
        linearize(model, torch.rand(2, 4))
