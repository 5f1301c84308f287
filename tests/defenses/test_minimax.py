"""The alternating gradient solver on games with known solutions, and the cat-and-mouse."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from advgame.attacks.learned import AttNet
from advgame.defenses.training import (
    alternating_gradient,
    attnet_payoff,
    cat_and_mouse,
    cat_and_mouse_errors,
    detect_oscillation,
    learned_minimax,
)
from advgame.errors import InputError
from advgame.models import TrainConfig


@pytest.mark.parametrize("leader", ["min", "max"])
@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_saddle_point_of_convex_concave_quadratic(leader: str, rho: float) -> None:
    """f(u, v) = |u-a|^2/2 - |v-b|^2/2 + (u-a).C(v-b) has its unique saddle at (a, b)."""
    a, b = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0, -1.0])
    c = torch.tensor([[1.0, -0.5, 0.3], [0.2, 0.8, -1.0]])
    u = torch.zeros(2, requires_grad=True)
    v = torch.zeros(3, requires_grad=True)

    def f() -> torch.Tensor:
        du, dv = u - a, v - b
        return du @ du / 2 - dv @ dv / 2 + du @ c @ dv

    h = alternating_gradient(f, [u], [v], iterations=250, k_min=1 if leader == "min" else 3,
                             k_max=3 if leader == "min" else 1, leader=leader,  # type: ignore
                             lr_min=0.1, lr_max=0.1, rho=rho)
    assert torch.allclose(u.detach(), a, atol=1e-4)
    assert torch.allclose(v.detach(), b, atol=1e-4)
    assert abs(h.value[-1]) < 1e-6 and len(h.min_objective) == 250


def test_saddle_scalar_with_adam() -> None:
    """u^2/2 - v^2/2 + 2uv: saddle (0, 0), value 0, also with Adam."""
    u = torch.tensor([1.5], requires_grad=True)
    v = torch.tensor([-0.7], requires_grad=True)
    alternating_gradient(lambda: (u ** 2 / 2 - v ** 2 / 2 + 2 * u * v).sum(), [u], [v],
                         iterations=800, k_max=2, lr_min=1e-2, lr_max=1e-2, optimizer="adam")
    assert abs(float(u.detach())) < 3e-2 and abs(float(v.detach())) < 3e-2


def test_minimax_exceeds_maximin_on_pure_matching_pennies() -> None:
    """Matching pennies in pure strategies on a circle: f(u, v) = cos(u - v).

    The attacker (v) wants to match the defender's angle, the defender to avoid it. Every
    local maximum of f over v is global (v = u mod 2 pi), every local minimum over u too,
    so gradient steps solve the inner problems: min_u max_v f = 1 > max_v min_u f = -1.
    """
    values = {}
    for leader in ("min", "max"):
        u = torch.tensor([0.3], requires_grad=True)
        v = torch.tensor([2.0], requires_grad=True)
        # the follower takes 10 large steps per small step of the leader
        fast, slow = 0.3, 0.05
        h = alternating_gradient(
            lambda u=u, v=v: torch.cos(u - v).sum(), [u], [v], iterations=300,
            k_min=1 if leader == "min" else 10, k_max=10 if leader == "min" else 1,
            leader=leader,  # type: ignore[arg-type]
            lr_min=slow if leader == "min" else fast, lr_max=fast if leader == "min" else slow,
        )
        values[leader] = float(torch.tensor(h.value[-50:]).mean())
    assert values["min"] == pytest.approx(1.0, abs=1e-2)
    assert values["max"] == pytest.approx(-1.0, abs=1e-2)
    assert values["min"] >= values["max"]


def test_solver_rejects_bad_arguments() -> None:
    u = torch.zeros(1, requires_grad=True)
    with pytest.raises(InputError, match="leader"):
        alternating_gradient(lambda: u.sum(), [u], [u], iterations=1, leader="both")  # type: ignore
    with pytest.raises(InputError, match="rho"):
        alternating_gradient(lambda: u.sum(), [u], [u], iterations=1, rho=-1.0)
    with pytest.raises(InputError, match="optimizer"):
        alternating_gradient(lambda: u.sum(), [u], [u], iterations=1, optimizer="lbfgs")  # type: ignore


def test_detect_oscillation() -> None:
    osc = detect_oscillation([0.9, 0.1, 0.8, 0.15, 0.85, 0.1])
    assert osc.oscillates and osc.sign_changes == 4 and osc.period == 2.0
    mono = detect_oscillation([0.9, 0.4, 0.3, 0.29, 0.30], tol=0.02)
    assert not mono.oscillates and mono.sign_changes == 0 and mono.period is None
    assert detect_oscillation([0.5]).significant == 0
    with pytest.raises(InputError, match="series"):
        detect_oscillation([0.1, math.nan])


def test_cat_and_mouse_errors_shapes_and_fgsm_curr(gen: torch.Generator) -> None:
    y = torch.randint(0, 2, (60,), generator=gen)
    x = (0.3 * torch.rand(60, 1, 4, 4, generator=gen) + 0.5 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    torch.manual_seed(0)
    u0 = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    cfg = TrainConfig(epochs=3, batch_size=20, lr=1e-2)
    models = [u0, *cat_and_mouse(u0, x, y, eps=0.2, rounds=2, config=cfg, generator=gen)]
    assert len(models) == 3 and models[1] is not u0
    e = cat_and_mouse_errors(models, x, y, 0.2)
    assert len(e.error) == 3 and all(len(r) == 3 for r in e.error)
    assert e.fgsm_curr == [e.error[k][k] for k in range(3)]
    assert all(0.0 <= v <= 1.0 for r in e.error for v in r)
    fresh = list(cat_and_mouse(u0, x, y, eps=0.2, rounds=1, config=cfg, warm_start=False,
                               with_clean=True, generator=gen,
                               make_model=lambda: nn.Sequential(nn.Flatten(),
                                                                nn.Linear(16, 2))))
    assert isinstance(fresh[0][1], nn.Linear) and fresh[0][1].in_features == 16
    with pytest.raises(InputError, match="make_model"):
        next(cat_and_mouse(u0, x, y, eps=0.2, rounds=1, config=cfg, warm_start=False,
                           generator=gen))


def test_learned_minimax_runs_and_records_both_curves(gen: torch.Generator) -> None:
    y = torch.randint(0, 2, (64,), generator=gen)
    x = (0.3 * torch.rand(64, 1, 4, 4, generator=gen) + 0.5 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    att = AttNet((1, 4, 4), hidden=(8,))
    h = learned_minimax(model, att, x, y, 0.1, iterations=5, k_max=2, rho=0.1, generator=gen)
    assert len(h.min_objective) == len(h.max_objective) == len(h.value) == 5
    assert not model.training and not att.training
    assert float(attnet_payoff(model, att, x, y, 0.1).detach()) >= 0
