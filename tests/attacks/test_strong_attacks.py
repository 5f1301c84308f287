"""APGD, Square, FAB, CW-L2 and the AutoAttack cascade against oracles.

Oracles: on a binary linear model g = w.x + b the worst margin over ball ∩ box is known
exactly (:func:`advgame.linear.worst_linear_margin`), and so is the minimum-norm
adversarial distance (the projection onto the hyperplane inside the box); the DLR loss
against its formula; a model whose backward raises (Square queries only); stage inputs
counted (the cascade attacks only still-robust points).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advgame.attacks import (
    ATTACKS,
    StrongAttack,
    apgd,
    auto_attack,
    cw_l2,
    dlr_loss,
    dlr_loss_targeted,
    fab,
    fab_minimum_norm,
    run_cascade,
    square,
)
from advgame.errors import InputError
from advgame.linear import worst_linear_margin
from advgame.models import LinearModel
from advgame.threat import project_onto_hyperplane_in_box


def linear_binary(d: int, seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """logits (0, w.x + b): g = w.x + b, float64."""
    g = torch.Generator().manual_seed(seed)
    m = LinearModel((d,), 2).double()
    w = torch.randn(d, generator=g, dtype=torch.float64)
    b = torch.randn((), generator=g, dtype=torch.float64) * 0.1
    with torch.no_grad():
        m[1].weight.copy_(torch.stack([torch.zeros(d, dtype=torch.float64), w]))
        m[1].bias.copy_(torch.stack([torch.zeros((), dtype=torch.float64), b]))
    return m, w, b


def points(n: int, d: int, seed: int, zero_frac: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[torch.rand(n, d, generator=g) < zero_frac] = 0.0
    return x


def margins(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (2 * y - 1).double() * (x @ w + b)


def inside(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> bool:
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "inf" else d.norm(dim=1)
    return bool((size <= eps * (1 + 1e-6) + 1e-9).all() and (x_adv >= 0).all()
                and (x_adv <= 1).all())


class NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        raise AssertionError("backward was called")


class QueryOnly(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(NoBackward.apply(x))


# ------------------------------------------------------------------------------ losses


def test_dlr_losses_against_their_formulas() -> None:
    z = torch.tensor([[2.0, 5.0, -1.0, 0.5, 3.0], [1.0, 0.0, 4.0, 2.0, -2.0]])
    y = torch.tensor([0, 2])
    # sorted: row 0: 5, 3, 2, 0.5, -1; row 1: 4, 2, 1, 0, -2
    expected = torch.tensor([-(2.0 - 5.0) / (5.0 - 2.0), -(4.0 - 2.0) / (4.0 - 1.0)])
    torch.testing.assert_close(dlr_loss(z, y), expected)
    t = torch.tensor([4, 3])
    exp_t = torch.tensor([-(2.0 - 3.0) / (5.0 - (2.0 + 0.5) / 2),
                          -(4.0 - 2.0) / (4.0 - (1.0 + 0.0) / 2)])
    torch.testing.assert_close(dlr_loss_targeted(z, y, t), exp_t)
    # invariant to shifting and scaling the logits
    torch.testing.assert_close(dlr_loss(3 * z + 7, y), dlr_loss(z, y))
    # two classes: the margin
    z2 = torch.tensor([[1.0, 3.0]])
    assert float(dlr_loss(z2, torch.tensor([0]))) == pytest.approx(2.0)


# ------------------------------------------------------------------------------ APGD


@pytest.mark.parametrize("norm,eps", [("inf", 0.1), ("2", 0.5)])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_reaches_the_exact_worst_margin_of_a_linear_model(norm: str, eps: float,
                                                               loss: str) -> None:
    model, w, b = linear_binary(12, seed=1)
    x = points(40, 12, seed=2)
    y = (x @ w + b > 0).long()  # correctly classified at x
    x_adv = apgd(model, x, y, eps, norm, steps=100, loss=loss,
                 generator=torch.Generator().manual_seed(0))
    assert inside(x_adv, x, eps, norm)
    exact = worst_linear_margin(w.expand(40, 12), b.expand(40), x, 2 * y - 1, eps, norm)
    got = margins(w, b, x_adv, y)
    assert bool((got >= exact - 1e-9).all())  # nobody beats the exact minimum
    fooled = got < 0
    # every point the exact attack can flip (with some room) is flipped
    assert bool(fooled[exact < -1e-3 * float(w.norm())].all())
    # on the points it does not flip, APGD (loss maximizer) gets the margin to the optimum
    # (for two classes DLR is the negative margin itself)
    unflipped = ~fooled
    tol = 2e-2 * float(w.abs().sum() if norm == "inf" else w.norm()) * eps
    assert bool((got[unflipped] - exact[unflipped] <= tol).all())


@pytest.mark.parametrize("norm,eps", [("inf", 0.1), ("2", 0.5)])
def test_apgd_t_fools_every_point_a_linear_multiclass_model_lets_it(norm: str, eps: float
                                                                     ) -> None:
    """K = 5 affine logits: a point can be fooled iff some class t has a negative worst
    z_y - z_t over ball ∩ box, each a binary linear problem with a closed form. APGD-T over
    the K - 1 targets solves each of them, so it must fool every such point (with some
    room); the untargeted CE and DLR runs (non-convex here) fool most of them."""
    k, d, n = 5, 12, 60
    g = torch.Generator().manual_seed(0)
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(k, generator=g, dtype=torch.float64)
    model = nn.Linear(d, k).double()
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.copy_(b)
    x = points(n, d, seed=10)
    y = (x @ w.T + b).argmax(1)
    room = torch.zeros(n, dtype=torch.bool)
    can = torch.zeros(n, dtype=torch.bool)
    for t in range(k):
        wd, bd = w[y] - w[t], b[y] - b[t]
        worst = worst_linear_margin(wd, bd, x, torch.ones(n, dtype=torch.float64), eps, norm)
        scale = (wd.abs().sum(1) if norm == "inf" else wd.norm(dim=1)) * eps
        other = y != t
        can |= other & (worst < 0)
        room |= other & (worst < -0.01 * scale)
    assert 10 < int(room.sum()) < n
    for kw in ({"targeted": True, "n_target_classes": k - 1}, {"loss": "dlr"}, {}):
        x_adv = apgd(model, x, y, eps, norm, steps=100,
                     generator=torch.Generator().manual_seed(0), **kw)  # type: ignore[arg-type]
        assert inside(x_adv, x, eps, norm)
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y
        assert not bool((fooled & ~can).any())  # nobody beats the closed form
        if kw.get("targeted"):
            assert bool(fooled[room].all())
        else:
            assert float(fooled[room].float().mean()) >= 0.75


def test_apgd_targeted_and_restarts_keep_the_ball(gen: torch.Generator) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5))
    x = torch.rand(20, 1, 4, 4, generator=gen)
    y = model(x).argmax(1)
    for kw in ({"targeted": True, "n_target_classes": 3}, {"restarts": 3},
               {"loss": "dlr", "eot": 2}):
        x_adv = apgd(model, x, y, 0.2, "inf", steps=20, generator=gen, **kw)
        assert inside(x_adv, x, 0.2, "inf")
    # the same generator state gives the same bits
    a = apgd(model, x, y, 0.2, "2", steps=15, generator=torch.Generator().manual_seed(3))
    b2 = apgd(model, x, y, 0.2, "2", steps=15, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b2)


# ------------------------------------------------------------------------------ Square


@pytest.mark.parametrize("norm,eps", [("inf", 0.04), ("2", 0.5)])
def test_square_finds_what_the_exact_linear_attack_finds(norm: str, eps: float) -> None:
    """On a linear model the worst margin over ball ∩ box is known exactly: Square reaches
    it in L-inf and most of it in L2. 8x8 images (Square's L2 windows are at least 3 x 3,
    too coarse for 4 x 4)."""
    model, w, b = linear_binary(64, seed=4)
    x = points(30, 64, seed=5).reshape(30, 1, 8, 8)
    xf = x.reshape(30, 64)
    y = (xf @ w + b > 0).long()
    query_only = QueryOnly(model)  # raises if anything calls backward
    x_adv = square(query_only, x, y, eps, norm, queries=2000,
                   generator=torch.Generator().manual_seed(0))
    assert inside(x_adv, x, eps, norm)
    exact = worst_linear_margin(w.expand(30, 64), b.expand(30), xf, 2 * y - 1, eps, norm)
    assert 5 < int((exact < 0).sum()) < 30  # some points attackable, not all
    got = margins(w, b, x_adv.reshape(30, 64), y)
    assert bool((got >= exact - 1e-9).all())
    m0 = margins(w, b, xf, y)
    share = (m0 - got) / (m0 - exact)  # of the best possible decrease of the margin
    kept = got >= 0
    if norm == "inf":
        # the optimum is a vertex of the box-clipped cube: Square's +-eps windows reach it
        assert bool((got[exact < 0] < 0).all())
        assert bool((share[kept] > 1 - 1e-6).all())
    else:
        # the L2 optimum spreads along w; Square's windows move mass locally. Measured
        # over 10 seeds: 88-92% of the flippable points flipped, every other point at
        # >= 70% of the optimal decrease (mean 78%)
        assert float((got[exact < 0] < 0).float().mean()) >= 0.8
        assert bool((share[kept] >= 0.6).all())


def test_square_never_calls_backward_and_is_reproducible() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 16), nn.ReLU(), nn.Linear(16, 4))
    model = QueryOnly(net)
    x = torch.rand(10, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    y = net(x).argmax(1)
    for norm, eps in (("inf", 0.1), ("2", 0.8)):
        a = square(model, x, y, eps, norm, queries=200, generator=torch.Generator().manual_seed(2))
        b = square(model, x, y, eps, norm, queries=200, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a, b) and inside(a, x, eps, norm)
    flat = torch.rand(6, 20, generator=torch.Generator().manual_seed(3))
    lin = nn.Sequential(nn.Linear(20, 3))
    out = square(lin, flat, lin(flat).argmax(1), 0.5, "2", queries=100,
                 generator=torch.Generator().manual_seed(0))
    assert inside(out, flat, 0.5, "2")


# ------------------------------------------------------------------------------ FAB, CW


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_hyperplane_projection_in_the_box_matches_scipy(norm: str) -> None:
    from scipy.optimize import linprog, minimize

    g = torch.Generator().manual_seed(7)
    z = torch.rand(8, 6, generator=g, dtype=torch.float64)
    z[:, :2] = 0.0
    w = torch.randn(8, 6, generator=g, dtype=torch.float64)
    b = (w * z).sum(1) + 0.5 * torch.randn(8, generator=g, dtype=torch.float64)
    d = project_onto_hyperplane_in_box(z, w, b, norm)
    torch.testing.assert_close((w * (z + d)).sum(1), b, atol=1e-9, rtol=0)
    assert bool(((z + d) >= -1e-12).all() and ((z + d) <= 1 + 1e-12).all())
    for i in range(8):
        zi, wi, bi = z[i].numpy(), w[i].numpy(), float(b[i])
        bounds = list(zip(-zi, 1 - zi, strict=True))
        if norm == "2":
            ref = minimize(lambda v: v @ v, np.zeros(6), jac=lambda v: 2 * v, bounds=bounds,
                           constraints=[{"type": "eq", "fun": lambda v, wi=wi, zi=zi, bi=bi:
                                         wi @ (zi + v) - bi}], method="SLSQP",
                           options={"ftol": 1e-14, "maxiter": 500})
            best = math.sqrt(ref.fun)
            assert float(d[i].norm()) == pytest.approx(best, rel=1e-5, abs=1e-8)
        else:  # min t s.t. |v_j| <= t, w.v = b - w.z, box: an LP in (v, t)
            c = np.r_[np.zeros(6), 1.0]
            a_ub = np.block([[np.eye(6), -np.ones((6, 1))], [-np.eye(6), -np.ones((6, 1))]])
            res = linprog(c, A_ub=a_ub, b_ub=np.zeros(12), A_eq=np.r_[wi, 0.0][None],
                          b_eq=[bi - wi @ zi], bounds=bounds + [(0, None)], method="highs")
            assert float(d[i].abs().max()) == pytest.approx(res.fun, rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_fab_finds_the_minimum_norm_of_a_linear_model(norm: str) -> None:
    model, w, b = linear_binary(10, seed=8)
    x = points(25, 10, seed=9, zero_frac=0.2)
    y = (x @ w + b > 0).long()
    res = fab_minimum_norm(model, x, y, norm, steps=50, targeted=False)
    # the exact minimum: project x onto the decision hyperplane w.z = -b inside the box
    d = project_onto_hyperplane_in_box(x, w.expand(25, 10), -b.expand(25), norm)
    reachable = torch.isclose((w * (x + d)).sum(1), -b.expand(25), atol=1e-9)
    opt = d.abs().amax(1) if norm == "inf" else d.norm(dim=1)
    found = torch.isfinite(res.norm)
    assert bool(found[reachable].all())
    assert bool((res.norm[found] >= opt[found] * (1 - 1e-6)).all())
    assert bool((res.norm[found] <= opt[found] * 1.06 + 1e-9).all())
    # reported at eps: inside the ball, adversarial where the norm fits
    eps = float(opt.median())
    x_adv = fab(model, x, y, eps, norm, steps=50, targeted=False)
    assert inside(x_adv, x, eps, norm)
    assert bool(((model(x_adv).argmax(1) != y) == (res.norm <= eps)).all())


def test_cw_l2_minimum_norm_of_a_linear_model() -> None:
    model, w, b = linear_binary(8, seed=10)
    x = 0.3 + 0.4 * points(10, 8, seed=11, zero_frac=0.0)  # the box does not bind
    y = (x @ w + b > 0).long()
    res = cw_l2(model, x, y, steps=300, binary_search_steps=8, lr=0.01)
    opt = (x @ w + b).abs() / w.norm()
    assert bool(torch.isfinite(res.norm).all())
    assert bool((res.norm >= opt * (1 - 1e-6)).all())
    assert bool((res.norm <= opt * 1.05).all())
    assert res.robust_accuracy(float(opt.min()) * 0.99) == 1.0
    assert bool((model(res.x_adv).argmax(1) != y).all())


def test_cw_l2_counts_a_point_only_with_confidence_kappa() -> None:
    """CW's criterion: a point is adversarial (for the search and the smallest norm kept)
    only when z_y - max_{i != y} z_i < -kappa; on a linear model the smallest such
    perturbation is (m + kappa) / ||w|| (the box does not bind)."""
    model, w, b = linear_binary(8, seed=10)
    x = 0.4 + 0.2 * points(10, 8, seed=11, zero_frac=0.0)
    y = (x @ w + b > 0).long()
    kappa = 0.3
    res = cw_l2(model, x, y, steps=300, binary_search_steps=8, lr=0.01, kappa=kappa)
    found = torch.isfinite(res.norm)
    assert bool(found.all())
    got = margins(w, b, res.x_adv, y)
    assert bool((got < -kappa).all())
    opt = ((x @ w + b).abs() + kappa) / w.norm()
    assert bool((res.norm >= opt * (1 - 1e-6)).all())
    assert bool((res.norm <= opt * 1.05).all())


def test_fab_restarts_are_reproducible_and_start_inside_eps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4))
    x = torch.rand(12, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    y = model(x).argmax(1)
    for norm, eps in (("inf", 0.1), ("2", 0.5)):
        runs = [fab(model, x, y, eps, norm, steps=20, restarts=3,
                    generator=torch.Generator().manual_seed(1)) for _ in range(2)]
        assert torch.equal(runs[0], runs[1]) and inside(runs[0], x, eps, norm)


def test_apgd_targeted_losses() -> None:
    """targeted=True defaults to targeted DLR (APGD-T, bit for bit loss='dlr'); loss='ce'
    with targeted=True maximizes the target's log-probability and reaches the target."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    x = torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    y = model(x).argmax(1)

    def run(**kw: object) -> torch.Tensor:
        return apgd(model, x, y, 0.3, "inf", steps=30, targeted=True, n_target_classes=1,
                    generator=torch.Generator().manual_seed(0), **kw)  # type: ignore[arg-type]

    assert torch.equal(run(), run(loss="dlr"))
    ce = run(loss="ce")
    assert inside(ce, x, 0.3, "inf") and not torch.equal(ce, run())
    # one target class: the second most likely; every point fooled lands on it
    second = model(x).argsort(1, descending=True)[:, 1]
    with torch.no_grad():
        pred = model(ce).argmax(1)
    hit = pred != y
    assert int(hit.sum()) >= 10 and bool((pred[hit] == second[hit]).all())


# ------------------------------------------------------------------------------ cascade


def test_cascade_attacks_only_still_robust_points(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    x = torch.rand(12, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 4  # two points wrong without attack
    seen: list[int] = []

    def first(m: nn.Module, xx: torch.Tensor, yy: torch.Tensor, e: float, p: str,
              g: torch.Generator | None) -> torch.Tensor:
        seen.append(xx.shape[0])
        out = xx.clone()
        # fool the first three points it is given: replace them by a point of another class
        for i in range(3):
            k = int(torch.nonzero(y != yy[i])[0])
            out[i] = x[k]
        return out

    def second(m: nn.Module, xx: torch.Tensor, yy: torch.Tensor, e: float, p: str,
               g: torch.Generator | None) -> torch.Tensor:
        seen.append(xx.shape[0])
        return xx

    monkeypatch.setitem(ATTACKS, "first", first)
    monkeypatch.setitem(ATTACKS, "second", second)
    res = run_cascade(model, x, y, 1.0, "inf", ["first", "second"])
    fooled = int((res.fooled_by == 0).sum())
    assert seen == [10, 10 - fooled] and fooled >= 1
    assert res.stages[1].attacked == 10 - fooled
    assert res.clean_accuracy == pytest.approx(10 / 12)
    assert res.robust_accuracy == pytest.approx((10 - fooled) / 12)
    assert bool((res.fooled_by[:2] == -2).all())


def test_cascade_takes_attack_objects_of_its_threat_model() -> None:
    """An Attack object is a stage: it runs on the still-robust points with the cascade's
    generator (same bits as calling it there), and one of another eps or norm is refused."""
    from advgame.attacks import GradientAttack, StrongAttack

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4))
    x = torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    sq = StrongAttack("square-200", 0.1, "inf", method="square", queries=200, batch_size=None)
    r = run_cascade(model, x, y, 0.1, "inf", [sq], torch.Generator().manual_seed(3))
    direct = square(model, x, y, 0.1, "inf", queries=200,
                    generator=torch.Generator().manual_seed(3))
    assert [s.name for s in r.stages] == ["square-200"]
    with torch.no_grad():
        assert torch.equal(r.robust, model(direct).argmax(1) == y)
    for wrong in (GradientAttack("PGD", "pgd", 0.2, "inf"), GradientAttack("PGD", "pgd", 0.1, 2)):
        with pytest.raises(InputError, match="attacks"):
            run_cascade(model, x, y, 0.1, "inf", ["apgd-ce", wrong])
    with pytest.raises(InputError, match="attacks"):
        run_cascade(model, x, y, 0.1, "inf", [42])  # type: ignore[list-item]


def test_auto_attack_is_reproducible_and_inside() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 4))
    x = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    y = model(x).argmax(1)
    a = auto_attack(model, x, y, 0.1, "inf", generator=torch.Generator().manual_seed(0))
    b = auto_attack(model, x, y, 0.1, "inf", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and inside(a, x, 0.1, "inf")
    r = run_cascade(model, x, y, 0.1, "inf", "standard", torch.Generator().manual_seed(0))
    assert [s.name for s in r.stages] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    accs = [s.robust_accuracy for s in r.stages]
    assert accs == sorted(accs, reverse=True)  # cumulative: never rises
    assert torch.equal(r.x_adv, a)


@pytest.mark.parametrize("version", ["standard", "rand"])
def test_auto_attack_l2_stays_in_ball_and_box(version: str) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 4))
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    y = model(x).argmax(1)
    a = auto_attack(model, x, y, 0.3, "2", version, torch.Generator().manual_seed(0))
    b = auto_attack(model, x, y, 0.3, "2", version, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and inside(a, x, 0.3, "2")


def test_strong_attacks_bad_input() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(3, 1, 2, 2)
    y = model(x).argmax(1)  # correctly classified: every stage runs
    cases = [
        ("attacks", lambda: run_cascade(model, x, y, 0.1, "inf", ["apgd-ce", "magic"])),
        ("attacks", lambda: run_cascade(model, x, y, 0.1, "inf", [])),
        ("version", lambda: auto_attack(model, x, y, 0.1, version="fast")),
        ("eps", lambda: apgd(model, x, y, -0.1)),
        ("eps", lambda: square(model, x, y, -1.0)),
        ("queries", lambda: square(model, x, y, 0.1, queries=0)),
        ("loss", lambda: apgd(model, x, y, 0.1, loss="hinge")),
        ("x", lambda: apgd(model, torch.full_like(x, float("nan")), y, 0.1)),
        ("x", lambda: square(model, x + 2, y, 0.1)),
        ("model", lambda: apgd(nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.Flatten(0)), x,
                               y, 0.1)),
        ("model", lambda: square(nn.Sequential(nn.Flatten(), nn.Linear(4, 1)), x,
                                 torch.zeros(3, dtype=torch.long), 0.1)),
        ("y", lambda: fab(model, x, torch.tensor([0, 1, 7]), 0.1)),
        ("steps", lambda: cw_l2(model, x, y, steps=0)),
        ("c_init", lambda: cw_l2(model, x, y, c_init=0.0)),
        ("lr", lambda: cw_l2(model, x, y, lr=0.0)),
        ("kappa", lambda: cw_l2(model, x, y, kappa=-1.0)),
        ("attacks", lambda: run_cascade(model, x, y, 0.1, "inf", ["cw"])),
        ("method", lambda: StrongAttack("x", 0.1, "inf", method="bogus")),
        ("loss", lambda: StrongAttack("x", 0.1, "inf", loss="hinge")),
        ("norm", lambda: StrongAttack("x", 0.1, "inf", method="cw")),
        ("queries", lambda: StrongAttack("x", 0.1, "inf", method="square", queries=0)),
        ("version", lambda: StrongAttack("x", 0.1, "inf", method="autoattack",
                                         version="fast")),
    ]
    for k, (arg, call) in enumerate(cases):
        with pytest.raises(InputError) as info:
            call()
        assert info.value.argument == arg, (k, arg, info.value)


def test_square_flat_window_indices_match_the_advanced_indices() -> None:
    """Square's L-inf step reads and writes its windows through one flat index tensor
    (take / put_); it must address the same pixels as the four-tensor advanced index."""
    from advgame.attacks.score import _flat_windows, _index, _offsets

    g = torch.Generator().manual_seed(0)
    for k, c, h, w, s in ((5, 3, 7, 9, 2), (4, 1, 28, 28, 1), (3, 2, 6, 6, 6)):
        x = torch.rand(k, c, h, w, generator=g)
        rows, cols = _offsets(k, s, h, g, x.device), _offsets(k, s, w, g, x.device)
        flat = _flat_windows(k, c, h, w, rows, cols)
        assert torch.equal(x.take(flat), x[_index(k, c, rows, cols)])
        y, z = x.clone(), x.clone()
        vals = torch.rand(k, c, s, s, generator=g)
        y.put_(flat, vals)
        z[_index(k, c, rows, cols)] = vals
        assert torch.equal(y, z)
