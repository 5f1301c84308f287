from __future__ import annotations

import numpy as np
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


# --------------------------------------------------------------------------------------
# the exact best response over ball ∩ box
# --------------------------------------------------------------------------------------


def _random_instance(n: int, d: int, seed: int, zero_frac: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[torch.rand(n, d, generator=g) < zero_frac] = 0.0  # MNIST-like: many zero pixels
    x[torch.rand(n, d, generator=g) < zero_frac / 4] = 1.0
    y = torch.where(torch.rand(n, generator=g) < 0.5, 1, -1)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return w, b, x, y


def _gain(w: torch.Tensor, y: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """y w . delta: what the attacker minimizes."""
    return (y.double()[:, None] * w * delta.reshape(len(w), -1)).sum(1)


def _feasible(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> bool:
    z = x + delta
    size = delta.abs().amax(1) if norm == "inf" else delta.norm(dim=1)
    return bool((size <= eps * (1 + 1e-12) + 1e-15).all()
                and (z >= -1e-15).all() and (z <= 1 + 1e-15).all())


@pytest.mark.parametrize("norm", ["2", "inf"])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_best_response_equals_brute_force(norm: str, d: int) -> None:
    from advgame.linear import best_response

    w, b, x, y = _random_instance(12, d, seed=d, zero_frac=0.3)
    eps = 0.4
    delta = best_response(w, b, x, y, eps, norm)
    assert _feasible(delta, x, eps, norm)
    ours = _gain(w, y, delta)
    k = {1: 20001, 2: 801, 3: 161}[d]
    grid = torch.linspace(-eps, eps, k, dtype=torch.float64)
    cand = torch.cartesian_prod(*([grid] * d)).reshape(-1, d)
    if norm == "2":
        cand = cand[cand.norm(dim=1) <= eps]
    for i in range(len(w)):
        z = x[i] + cand
        ok = ((z >= 0) & (z <= 1)).all(1)
        best = float((cand[ok] @ (y[i] * w[i])).min())
        if norm == "inf":  # the optimum is a vertex of the box [max(-eps,-x), min(eps,1-x)]
            lo, hi = torch.clamp(-x[i], min=-eps), torch.clamp(1 - x[i], max=eps)
            verts = torch.cartesian_prod(*[torch.stack([lo[j], hi[j]]) for j in range(d)])
            best = min(best, float((verts.reshape(-1, d) @ (y[i] * w[i])).min()))
            assert float(ours[i]) == pytest.approx(best, abs=1e-12)
        else:
            step = 2 * eps / (k - 1)
            assert float(ours[i]) <= best + 1e-12  # nothing on the grid does better
            assert float(ours[i]) >= best - 2 * step * float(w[i].norm())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_response_l2_matches_scipy_with_many_zero_pixels(seed: int) -> None:
    from scipy.optimize import minimize

    from advgame.linear import best_response

    w, b, x, y = _random_instance(6, 40, seed=10 + seed, zero_frac=0.6)
    eps = 0.8
    delta = best_response(w, b, x, y, eps, "2")
    assert _feasible(delta, x, eps, "2")
    ours = _gain(w, y, delta)
    for i in range(len(w)):
        a = (y[i] * w[i]).numpy()
        xi = x[i].numpy()
        res = minimize(lambda dl, a=a: a @ dl, np.zeros(40), jac=lambda dl, a=a: a,
                       method="SLSQP", bounds=list(zip(-xi, 1 - xi, strict=True)),
                       constraints=[{"type": "ineq", "fun": lambda dl: eps**2 - dl @ dl,
                                     "jac": lambda dl: -2 * dl}],
                       options={"ftol": 1e-12, "maxiter": 500})
        # SLSQP may end on "positive directional derivative" at the optimum (its success
        # flag varies between runs): judge its point by feasibility, not by the flag
        assert res.x @ res.x <= eps**2 + 1e-8
        assert bool(np.all(res.x >= -xi - 1e-9) and np.all(res.x <= 1 - xi + 1e-9))
        assert float(ours[i]) <= res.fun + 1e-7
        assert float(ours[i]) == pytest.approx(res.fun, abs=1e-5)
    # project-then-clip (the clipped normalized-gradient FGM) is strictly worse here
    direction = -(y.double()[:, None] * w) / w.norm(dim=1, keepdim=True)
    clipped = (x + eps * direction).clamp(0, 1) - x
    assert bool((_gain(w, y, clipped) >= ours - 1e-12).all())
    assert bool((_gain(w, y, clipped) > ours + 1e-3).any())


def test_best_response_without_box_is_fgm_and_margin_drop() -> None:
    from advgame.linear import best_response, worst_linear_margin

    w, b, x, y = _random_instance(20, 7, seed=5)
    yd = y.double()
    m = yd * ((w * x).sum(1) + b)
    for norm, dual in (("inf", w.abs().sum(1)), ("2", w.norm(dim=1))):
        delta = best_response(w, b, x, y, 0.3, norm, box=None)
        steep = w.sign() if norm == "inf" else w / w.norm(dim=1, keepdim=True)
        torch.testing.assert_close(delta, -0.3 * yd[:, None] * steep, rtol=0, atol=1e-15)
        torch.testing.assert_close(worst_linear_margin(w, b, x, y, 0.3, norm, box=None),
                                   m - 0.3 * dual, rtol=0, atol=1e-12)
        # with the box the attacker can do no better than without it
        assert bool((worst_linear_margin(w, b, x, y, 0.3, norm) >= m - 0.3 * dual - 1e-12).all())


def test_best_response_budget_larger_than_the_box_and_dtype() -> None:
    from advgame.linear import best_response

    w = torch.tensor([[1.0, -1.0, 0.0]])
    x = torch.tensor([[0.2, 0.7, 0.5]])
    d = best_response(w, torch.zeros(1), x, torch.tensor([1]), 10.0, "2")
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, torch.tensor([[-0.2, 0.3, 0.0]]))  # every room used


def test_best_response_bad_input() -> None:
    from advgame.linear import best_response

    w, b, x, y = _random_instance(4, 3, seed=0)
    for arg, kw in [("box", {"box": (1.0, 0.0)}), ("box", {"box": (0.0,)}),
                    ("box", {"box": "unit"}), ("eps", {"eps": -1.0}), ("norm", {"norm": "1"}),
                    ("x", {"x": x + 2.0}), ("w", {"w": w[:, :2]}), ("y_signed", {"y": y * 0})]:
        args = {"w": w, "b": b, "x": x, "y": y, "eps": 0.1, "norm": "2", **kw}
        with pytest.raises(InputError) as info:
            best_response(args["w"], args["b"], args["x"], args["y"], args["eps"],
                          args["norm"], **({"box": args["box"]} if "box" in args else {}))
        assert info.value.argument == arg
