"""Oracle tests of the S2 learning code (issue #15, items 5-6).

The alternating solver, plain ("Alt", rho = 0) and sensitivity-penalized (rho > 0, Hamm &
Mehra's "Minimax"), is checked against minimax / maximin points known in closed form or
by brute force on a grid; ``learned_minimax`` and the cat-and-mouse rounds are checked on
real digits with tests built to fail when the two players are swapped or when a round is
trained on clean data instead of FGSM-k.

Follower and leader: the solver approximates min_u max_v f only if the follower's inner
problem is (nearly) solved between two leader steps. Every game below therefore takes
k = 5 follower steps per leader step (paper2's ``minimax_k``) and, where the inner
problem is not strongly concave, a follower step size 10x the leader's (timescale
separation). rho = 1.0 is paper2's ``minimax_rho``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from advgame.attacks.learned import AttNet
from advgame.data import Dataset, load_dataset
from advgame.defenses.training import (
    alternating_gradient,
    attnet_payoff,
    cat_and_mouse,
    cat_and_mouse_errors,
    error_rate,
    fgsm_examples,
    learned_minimax,
)
from advgame.models import TrainConfig, train

K_FOLLOWER = 5  # paper2's Paper2Config.minimax_k
RHO_PAPER = 1.0  # paper2's Paper2Config.minimax_rho

# ------------------------------------------------------------------ a convex-concave game

_DT = torch.float64
_A = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.5]], dtype=_DT)  # SPD
_B = torch.tensor([[1.0, -0.5], [0.4, 0.8], [-0.7, 0.2]], dtype=_DT)
_C = torch.tensor([[1.0, 0.3], [0.3, 2.0]], dtype=_DT)  # SPD


def _quadratic(u: torch.Tensor, v: torch.Tensor, d: torch.Tensor,
               e: torch.Tensor) -> torch.Tensor:
    """f(u, v) = u.A u / 2 + u.B v - v.C v / 2 + d.u + e.v, u in R^3, v in R^2 (scalar)."""
    return u @ _A @ u / 2 + u @ _B @ v - v @ _C @ v / 2 + d @ u + e @ v


def _quadratic_saddle(d: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unique saddle of :func:`_quadratic`: grad_u f = A u + B v + d = 0 and
    grad_v f = B^T u - C v + e = 0, one 5 x 5 linear system (A, C positive definite, so f
    is strongly convex in u and strongly concave in v: min max = max min = f(u*, v*))."""
    kkt = torch.cat([torch.cat([_A, _B], 1), torch.cat([_B.T, -_C], 1)])
    sol = torch.linalg.solve(kkt, -torch.cat([d, e]))
    return sol[:3], sol[3:]


_SHIFTS = {
    "saddle-at-0": (torch.zeros(3, dtype=_DT), torch.zeros(2, dtype=_DT)),
    "shifted": (torch.tensor([1.0, -2.0, 0.5], dtype=_DT), torch.tensor([-1.0, 0.7], dtype=_DT)),
}


@pytest.mark.parametrize("shift", sorted(_SHIFTS))
@pytest.mark.parametrize(("leader", "rho"), [("min", 0.0), ("min", RHO_PAPER), ("max", 0.0)])
def test_quadratic_game_closed_form_saddle(shift: str, leader: str, rho: float) -> None:
    """Alt (rho = 0), the sensitivity-penalized minimax (rho = 1) and maximin find (u*, v*).

    With d = e = 0 the saddle is at 0; with the shift it is the solution of the linear
    system of :func:`_quadratic_saddle` (u* = (-0.424, 1.687, -0.912), v* = (-0.443,
    1.106), value -1.518). k = 5 follower steps, both step sizes 0.1 (the game is
    strongly convex-concave, so no timescale separation is needed; with rho = 1 the
    defender's Hessian is A + 2 B B^T, largest eigenvalue < 5, so 0.1 is stable). The
    penalty rho ||grad_v f||^2 vanishes with its gradient at the saddle (grad_v f = 0
    there), so the penalized solver must converge to the same point, not a shifted one.
    """
    d, e = _SHIFTS[shift]
    u_star, v_star = _quadratic_saddle(d, e)
    u = torch.zeros(3, dtype=_DT, requires_grad=True)
    v = torch.zeros(2, dtype=_DT, requires_grad=True)
    k_min, k_max = (1, K_FOLLOWER) if leader == "min" else (K_FOLLOWER, 1)
    h = alternating_gradient(lambda: _quadratic(u, v, d, e), [u], [v], iterations=200,
                             k_min=k_min, k_max=k_max, leader=leader,  # type: ignore[arg-type]
                             lr_min=0.1, lr_max=0.1, rho=rho)
    assert torch.allclose(u.detach(), u_star, atol=1e-5)
    assert torch.allclose(v.detach(), v_star, atol=1e-5)
    assert h.value[-1] == pytest.approx(float(_quadratic(u_star, v_star, d, e)), abs=1e-8)
    if shift == "shifted":
        assert float(u_star.abs().min()) > 0.4  # a saddle away from the initial point 0


@pytest.mark.parametrize("rho", [0.0, RHO_PAPER, 3.0])
def test_penalized_descent_step_minimizes_f_plus_rho_grad_v_squared(rho: float) -> None:
    """With the attacker frozen (lr_max = 0) the descent steps minimize, by definition,
    f(u, v0) + rho ||grad_v f(u, v0)||^2 = f + rho ||B^T u - C v0 + e||^2, whose minimizer
    solves (A + 2 rho B B^T) u = -B v0 - d + 2 rho B (C v0 - e). (The penalty is the
    first-order gain of an attacker step s grad_v f: f(u, v0 + s g) ~ f + s ||g||^2.)

    The three minimizers differ (e.g. u_1 = (0.409, -0.291, -0.784) against
    u_0 = (-1.912, 3.646, -0.453)), so a penalty with the wrong sign, weight or variable
    lands elsewhere. The recorded ``min_objective`` must be that penalized value.
    """
    d, e = _SHIFTS["shifted"]
    v0 = torch.tensor([0.5, -1.0], dtype=_DT)
    u = torch.zeros(3, dtype=_DT, requires_grad=True)
    v = v0.clone().requires_grad_(True)
    h = alternating_gradient(lambda: _quadratic(u, v, d, e), [u], [v], iterations=400,
                             k_min=1, k_max=1, lr_min=0.05, lr_max=0.0, rho=rho)
    u_star = torch.linalg.solve(_A + 2 * rho * _B @ _B.T,
                                -_B @ v0 - d + 2 * rho * _B @ (_C @ v0 - e))
    assert torch.equal(v.detach(), v0)
    assert torch.allclose(u.detach(), u_star, atol=1e-6)
    grad_v = _B.T @ u_star - _C @ v0 + e
    penalized = float(_quadratic(u_star, v0, d, e) + rho * grad_v @ grad_v)
    assert h.min_objective[-1] == pytest.approx(penalized, abs=1e-6)
    if rho > 0:
        unpenalized = torch.linalg.solve(_A, -_B @ v0 - d)
        assert float((u_star - unpenalized).abs().max()) > 1.0


# ------------------------------------------------------- a game with min max > max min

_BETA, _PHI, _GAMMA, _PSI = 0.5, 1.0, 0.3, 2.0


def _circle_game(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """f(u, v) = cos(u - v) + beta cos(v - phi) + gamma cos(u - psi), angles u, v."""
    return torch.cos(u - v) + _BETA * torch.cos(v - _PHI) + _GAMMA * torch.cos(u - _PSI)


def _grid_values(n: int = 2000) -> tuple[float, float]:
    """(min_u max_v f, max_v min_u f) of :func:`_circle_game` by brute force on an n x n
    grid of the torus [-pi, pi)^2 (float64)."""
    g = torch.linspace(-math.pi, math.pi, n + 1, dtype=_DT)[:-1]
    m = _circle_game(g[:, None], g[None, :])
    return float(m.amax(dim=1).amin()), float(m.amin(dim=0).amax())


def test_circle_game_grid_values_match_envelopes() -> None:
    """The brute-force values agree with the envelopes in closed form:
    max_v f = |e^(iu) + beta e^(i phi)| + gamma cos(u - psi),
    min_u f = beta cos(v - phi) - |e^(iv) + gamma e^(i psi)|, and they differ by ~0.93."""
    minimax, maximin = _grid_values()
    t = torch.linspace(-math.pi, math.pi, 200_001, dtype=_DT)
    env_max = (torch.sqrt(1 + _BETA ** 2 + 2 * _BETA * torch.cos(t - _PHI))
               + _GAMMA * torch.cos(t - _PSI))
    env_min = (_BETA * torch.cos(t - _PHI)
               - torch.sqrt(1 + _GAMMA ** 2 + 2 * _GAMMA * torch.cos(t - _PSI)))
    assert minimax == pytest.approx(float(env_max.min()), abs=1e-5)
    assert maximin == pytest.approx(float(env_min.max()), abs=1e-5)
    assert minimax - maximin > 0.9


@pytest.mark.parametrize(("leader", "rho"), [("min", 0.0), ("min", RHO_PAPER), ("max", 0.0)])
@pytest.mark.parametrize("start", [(0.3, 2.0), (2.5, -1.0), (-1.0, 0.5)])
def test_minimax_and_maximin_values_differ_and_are_found(
    leader: str, rho: float, start: tuple[float, float]
) -> None:
    """A game that is not convex-concave: min_u max_v f = 0.3103 > max_v min_u f = -0.6229.

    Why this game: for each u, f(u, .) is one sinusoid in v (cos(u - v) + beta cos(v - phi)
    = R cos(v - theta)), so its only local maximum on the circle is global and gradient
    ascent finds the attacker's true best response; likewise f(., v) has one local minimum.
    Both envelopes have a single local extremum (checked on the grid), so the leader's
    descent on the envelope finds the global value from any start. (On an interval, e.g.
    tanh-bounded strategies, unimodal inner problems force min max = max min by Sion's
    theorem; a gap there needs a follower with several local optima, which a gradient
    follower does not solve.) The follower takes k = 5 steps of 0.3 per leader step of
    0.03; 400 iterations (about 0.3 s). rho = 1 (paper2's) must not move the minimax
    point, since grad_v f = 0 at the attacker's best response.
    """
    minimax, maximin = _grid_values()
    assert minimax == pytest.approx(0.3103, abs=1e-4)
    assert maximin == pytest.approx(-0.6229, abs=1e-4)
    u = torch.tensor([start[0]], dtype=_DT, requires_grad=True)
    v = torch.tensor([start[1]], dtype=_DT, requires_grad=True)
    fast, slow = 0.3, 0.03
    mini = leader == "min"
    h = alternating_gradient(lambda: _circle_game(u, v).sum(), [u], [v], iterations=400,
                             k_min=1 if mini else K_FOLLOWER, k_max=K_FOLLOWER if mini else 1,
                             leader=leader,  # type: ignore[arg-type]
                             lr_min=slow if mini else fast, lr_max=fast if mini else slow,
                             rho=rho)
    assert h.value[-1] == pytest.approx(minimax if mini else maximin, abs=1e-3)


# ------------------------------------------------------------- learned_minimax on digits


@pytest.fixture(scope="module")
def digits01() -> Dataset:
    """Real scikit-learn digits 0 vs 1 (288 training, 72 test images of 1 x 8 x 8)."""
    return load_dataset("digits-8x8", classes=(0, 1))


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.parametrize("rho", [0.0, RHO_PAPER])
def test_learned_minimax_defender_descends_attacker_ascends(digits01: Dataset,
                                                            rho: float) -> None:
    """After ``learned_minimax`` (leader "min", k = 5, 100 iterations, Adam 1e-2, eta 0.2)
    the classifier u must have *lowered* its clean loss from the untrained ~0.68 and the
    attack network v must *raise* the final classifier's loss above the zero attacker's
    (z = x, i.e. the clean loss) and above its own initial weights'. Swapping the two
    players (the classifier ascending, the attacker descending) breaks all three.
    """
    x, y, eta = digits01.x_train, digits01.y_train, 0.2
    model = _mlp(0)
    torch.manual_seed(1)
    att = AttNet((1, 8, 8), hidden=(32,))
    att0 = copy.deepcopy(att)
    with torch.no_grad():
        clean0 = float(F.cross_entropy(model(x), y))
    learned_minimax(model, att, x, y, eta, iterations=100, k_min=1, k_max=K_FOLLOWER,
                    lr_min=1e-2, lr_max=1e-2, batch_size=64, rho=rho,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean1 = float(F.cross_entropy(model(x), y))
        payoff = float(attnet_payoff(model, att, x, y, eta))
        payoff_init_attacker = float(attnet_payoff(model, att0, x, y, eta))
    assert clean0 > 0.5 and clean1 < 0.1 * clean0
    assert error_rate(model, digits01.x_test, digits01.y_test) < 0.05
    assert payoff > 2 * clean1
    assert payoff > payoff_init_attacker


# ------------------------------------------------------------ cat-and-mouse on digits


@pytest.mark.parametrize(("warm_start", "with_clean"), [(True, False), (False, True)])
def test_cat_and_mouse_round_learns_its_fgsm_attack(digits01: Dataset, warm_start: bool,
                                                    with_clean: bool) -> None:
    """Each round k trains u_k against FGSM-k (FGSM at eta = 0.3 against u_(k-1)), so u_k's
    error on FGSM-k must be far below u_(k-1)'s, on the training and on the test set.

    Measured (3 rounds, 10 epochs of Adam 1e-2, batch 32): u_(k-1) errs 0.96-1.00 on
    FGSM-k, u_k 0.00. A round trained on the clean images instead leaves u_k as
    fooled as u_(k-1) (the clean digits are already separated, so nothing changes).
    """
    x, y, eta = digits01.x_train, digits01.y_train, 0.3
    gen = torch.Generator().manual_seed(0)
    u0 = _mlp(0)
    cfg = TrainConfig(epochs=10, batch_size=32, lr=1e-2)
    train(u0, x, y, cfg, generator=gen)
    us = [u0, *cat_and_mouse(u0, x, y, eps=eta, rounds=3, config=cfg, warm_start=warm_start,
                             with_clean=with_clean, make_model=lambda: _mlp(2),
                             generator=gen)]
    for k in range(1, 4):
        fgsm_k = fgsm_examples(us[k - 1], x, y, eta)
        before, after = error_rate(us[k - 1], fgsm_k, y), error_rate(us[k], fgsm_k, y)
        assert before > 0.5, f"round {k}: u_(k-1) on FGSM-k (train) {before:.3f}"
        assert after < 0.05, f"round {k}: u_k on FGSM-k (train) {after:.3f}"
    e = cat_and_mouse_errors(us, digits01.x_test, digits01.y_test, eta)
    for k in range(1, 4):
        before, after = e.error[k - 1][k - 1], e.error[k][k - 1]
        assert after < 0.05 < 0.5 < before, f"round {k} (test): {after:.3f} vs {before:.3f}"
    assert max(e.clean) < 0.05
