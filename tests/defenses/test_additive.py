"""Tests of the finite-sample equilibrium shift (advgame.defenses.additive).

Oracles: brute force over the ball in d = 2 (a grid plus every vertex of the hyperplane
arrangement, perturbed into each incident cell), the exact MILP for the fast heuristic,
the closed-form Gaussian equilibrium of a linear classifier, and FGM on a linear model.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from advgame.defenses.additive import (
    ShiftResult,
    equilibrium_shift,
    gaussian_accuracy,
    gaussian_equilibrium,
    max_feasible_shift,
)
from advgame.errors import InputError

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def strict_count(a: np.ndarray, c: np.ndarray, v: np.ndarray) -> int:
    return int(np.count_nonzero(a @ v > c))


def in_ball(v: np.ndarray, eps: float, norm: str) -> bool:
    size = np.abs(v).max() if norm == "inf" else np.linalg.norm(v)
    return bool(size <= eps * (1 + 1e-9) + 1e-12)


def brute_force_2d(a: np.ndarray, c: np.ndarray, eps: float, norm: str,
                   clean_c: np.ndarray | None = None, min_clean: int = 0) -> int:
    """Best strict count over a grid of the ball plus perturbed arrangement vertices
    (of the rows and, with a count constraint, of its rows too); -1 if no candidate meets
    the constraint #{a_i . v > clean_c_i} >= min_clean."""
    assert a.shape[1] == 2
    a_obj, c_obj = a, c
    if clean_c is not None:
        a, c = np.vstack([a, a]), np.r_[c, clean_c]
    g = np.linspace(-eps, eps, 301)
    pts = [np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)]
    theta = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    if norm == "2":
        pts.append(eps * np.stack([np.cos(theta), np.sin(theta)], -1))
    verts: list[np.ndarray] = []
    for i, j in itertools.combinations(range(len(c)), 2):
        m = a[[i, j]]
        if abs(np.linalg.det(m)) > 1e-12:
            verts.append(np.linalg.solve(m, c[[i, j]]))
    for i in range(len(c)):
        ai, ci = a[i], c[i]
        if norm == "inf":  # lines against the box edges
            for k in (0, 1):
                if abs(ai[1 - k]) > 1e-12:
                    for s in (-eps, eps):
                        p = np.zeros(2)
                        p[k] = s
                        p[1 - k] = (ci - ai[k] * s) / ai[1 - k]
                        verts.append(p)
        else:  # line against the circle
            nrm = np.linalg.norm(ai)
            if nrm > 0 and abs(ci) / nrm <= eps:
                foot = ai * ci / nrm**2
                along = np.array([-ai[1], ai[0]]) / nrm
                h = math.sqrt(max(eps**2 - (ci / nrm) ** 2, 0.0))
                verts += [foot + h * along, foot - h * along]
    if norm == "inf":
        verts += [np.array([sx, sy]) for sx in (-eps, eps) for sy in (-eps, eps)]
    if verts:
        vv = np.array(verts)
        dirs = np.stack([np.cos(theta[::125]), np.sin(theta[::125])], -1)  # 32 directions
        for r in (1e-4 * eps, 1e-3 * eps):
            pts.append((vv[:, None, :] + r * dirs[None]).reshape(-1, 2))
    cand = np.concatenate(pts)
    if norm == "inf":
        cand = np.clip(cand, -eps, eps)
    else:
        cand = cand / np.maximum(np.linalg.norm(cand, axis=1, keepdims=True) / eps, 1.0)
    counts = (cand @ a_obj.T > c_obj).sum(axis=1)
    if clean_c is not None:
        counts = np.where((cand @ a_obj.T > clean_c).sum(axis=1) >= min_clean, counts, -1)
    return int(counts.max())


def random_instance(n: int, d: int, seed: int, noise: float = 0.3) -> tuple[np.ndarray, ...]:
    """Rows a_i = y_i w_i with w_i near a common w (like a network's gradients)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d) + noise * rng.normal(size=(n, d))
    y = rng.choice([-1, 1], size=n)
    margin = rng.normal(size=n) * np.abs(w).sum(axis=1) * 0.3
    c = 0.1 * np.abs(w).sum(axis=1) - margin
    return y[:, None] * w, c


def check_result(r: ShiftResult, a: np.ndarray, c: np.ndarray, eps: float, norm: str) -> None:
    assert in_ball(r.v, eps, norm)
    assert r.count == strict_count(a, c, r.v)
    assert r.count_at_zero == int(np.count_nonzero(c < 0))
    assert r.count >= r.count_at_zero
    for v in r.maximizers:
        assert in_ball(v, eps, norm)
        assert strict_count(a, c, v) == r.count


# --------------------------------------------------------------------------------------
# exact against brute force
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("seed", range(6))
def test_exact_equals_brute_force_2d(norm: str, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 14
    a = rng.normal(size=(n, 2))
    c = rng.normal(scale=0.5, size=n)
    eps = 0.8
    r = max_feasible_shift(a, c, eps, norm, "exact")
    check_result(r, a, c, eps, norm)
    assert r.status == "optimal"
    brute = brute_force_2d(a, c, eps, norm)
    assert brute <= r.count  # the exact count is achieved (checked strictly above)
    assert r.count == brute  # and nothing better exists on a fine grid + every vertex
    assert r.upper_bound == r.count and r.gap == 0.0
    if norm == "2":
        assert r.approximation_error == 0


def test_exact_all_maximizers_are_maximizers() -> None:
    # four quadrants: at most one row of each opposite pair, four optimal sets
    a = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [1.0, 1.0]])
    c = np.array([0.1, 0.1, 0.1, 0.1, 5.0])
    for norm in ("inf", "2"):
        r = max_feasible_shift(a, c, 0.5, norm, "exact", num_maximizers=10)
        check_result(r, a, c, 0.5, norm)
        assert r.count == 2 and len(r.maximizers) == 4
        patterns = {tuple(a @ v > c) for v in r.maximizers}
        assert len(patterns) == 4  # distinct satisfied sets
        f = max_feasible_shift(a, c, 0.5, norm, "fast", num_maximizers=10, restarts=16)
        check_result(f, a, c, 0.5, norm)
        assert f.count == 2 and len({tuple(a @ v > c) for v in f.maximizers}) >= 2
    rng = np.random.default_rng(7)
    a = rng.normal(size=(12, 2))
    c = rng.normal(scale=0.6, size=12)
    for norm in ("inf", "2"):
        r = max_feasible_shift(a, c, 0.7, norm, "exact", num_maximizers=6)
        check_result(r, a, c, 0.7, norm)
        assert len({tuple(a @ v > c) for v in r.maximizers}) == len(r.maximizers)
        assert r.count == brute_force_2d(a, c, 0.7, norm)


def test_exact_l2_higher_dimension_with_cuts() -> None:
    a, c = random_instance(40, 4, seed=3)
    eps = 0.2 * 2
    r = max_feasible_shift(a, c, eps, "2", "exact")
    check_result(r, a, c, eps, "2")
    assert r.status == "optimal"
    f = max_feasible_shift(a, c, eps, "2", "fast")
    assert f.count <= r.count
    # one MILP round only: the outer approximation's error is reported
    early = max_feasible_shift(a, c, eps, "2", "exact", max_rounds=1)
    check_result(early, a, c, eps, "2")
    if early.status == "round_limit":
        assert early.approximation_error is not None and early.approximation_error >= 0
        assert early.upper_bound is not None and early.upper_bound >= r.count


def test_exact_time_limit_reports_bound() -> None:
    a, c = random_instance(300, 30, seed=0, noise=0.7)
    r = max_feasible_shift(a, c, 0.2, "inf", "exact", time_limit=1.0)
    check_result(r, a, c, 0.2, "inf")
    assert r.status in ("time_limit", "optimal")
    assert r.upper_bound is not None and r.upper_bound >= r.count
    assert r.gap is not None and 0.0 <= r.gap <= 1.0
    assert r.time_s < 10.0


# --------------------------------------------------------------------------------------
# fast against exact
# --------------------------------------------------------------------------------------


def test_fast_close_to_exact_small() -> None:
    a, c = random_instance(150, 8, seed=1)
    e = max_feasible_shift(a, c, 0.2, "inf", "exact")
    f = max_feasible_shift(a, c, 0.2, "inf", "fast")
    check_result(f, a, c, 0.2, "inf")
    assert e.status == "optimal"
    assert e.count - 2 <= f.count <= e.count
    assert f.status == "heuristic" and f.upper_bound is None


@pytest.mark.slow
@pytest.mark.parametrize("d", [10, 30, 50])
def test_fast_within_one_percent_of_exact(d: int) -> None:
    a, c = random_instance(300, d, seed=0)
    e = max_feasible_shift(a, c, 0.2, "inf", "exact", time_limit=120)
    assert e.status == "optimal"
    f = max_feasible_shift(a, c, 0.2, "inf", "fast")
    check_result(f, a, c, 0.2, "inf")
    assert f.count >= 0.99 * e.count


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_fast_within_one_percent_of_exact_l2(seed: int) -> None:
    a, c = random_instance(300, 3, seed=seed)
    eps = 0.2 * math.sqrt(3)
    e = max_feasible_shift(a, c, eps, "2", "exact", time_limit=120)
    assert e.status == "optimal"
    f = max_feasible_shift(a, c, eps, "2", "fast")
    check_result(f, a, c, eps, "2")
    assert f.count >= 0.99 * e.count


def test_fast_all_maximizers_share_the_count() -> None:
    a, c = random_instance(200, 6, seed=5)
    f = max_feasible_shift(a, c, 0.3, "inf", "fast", num_maximizers=5, restarts=12)
    check_result(f, a, c, 0.3, "inf")


def test_fast_is_reproducible() -> None:
    a, c = random_instance(200, 6, seed=4)
    r1 = max_feasible_shift(a, c, 0.3, "2", "fast", seed=3)
    r2 = max_feasible_shift(a, c, 0.3, "2", "fast", seed=np.random.default_rng(3))
    assert r1.count == r2.count and np.array_equal(r1.v, r2.v)


@pytest.mark.parametrize("method", ["exact", "fast"])
def test_trivial_cases(method: str) -> None:
    a, c = random_instance(30, 3, seed=2)
    r = max_feasible_shift(a, c, 0.0, "inf", method)  # no budget: v = 0
    assert r.count == r.count_at_zero and not np.any(r.v) and r.solver == "trivial"
    zero_rows = np.zeros((4, 3))
    r = max_feasible_shift(zero_rows, np.array([-1.0, 0.0, 1.0, -2.0]), 1.0, "2", method)
    assert r.count == 2 and r.count_at_zero == 2
    if method == "exact":  # the optimum grows with the budget
        counts = [max_feasible_shift(a, c, e, "inf", method).count for e in (0.1, 0.3, 1e3)]
        assert counts == sorted(counts)


# --------------------------------------------------------------------------------------
# closed form on two Gaussian classes
# --------------------------------------------------------------------------------------


GAUSS = {
    "w": np.array([1.0, -0.5, 0.25, 0.0, 0.5]),
    "b": 0.3,
    "mu_pos": np.array([0.6, -0.2, 0.1, 0.0, 0.3]),
    "mu_neg": np.array([-0.5, 0.3, 0.0, 0.1, -0.2]),
    "sigma": 0.6,
}


@pytest.mark.parametrize("norms", [("inf", "inf"), ("2", "2"), ("inf", "2")])
@pytest.mark.parametrize("prior", [0.5, 0.3])
def test_gaussian_closed_form_is_the_optimum(norms: tuple[str, str], prior: float) -> None:
    na, nd = norms
    g = gaussian_equilibrium(**GAUSS, eps_a=0.3, eps_d=0.2, norm_a=na, norm_d=nd,
                             prior_pos=prior)
    ts = np.linspace(-g.t_max, g.t_max, 2001)
    vals = [gaussian_accuracy(**GAUSS, eps_a=0.3, norm_a=na, t=t, prior_pos=prior) for t in ts]
    assert g.value >= max(vals) - 1e-12
    assert g.value == pytest.approx(
        gaussian_accuracy(**GAUSS, eps_a=0.3, norm_a=na, t=g.t, prior_pos=prior))
    assert abs(g.t) <= g.t_max + 1e-12
    assert float(GAUSS["w"] @ g.v) == pytest.approx(g.t)
    assert in_ball(g.v, 0.2, nd)
    assert g.value >= g.value_no_defense


def sample_gaussian(n: int, seed: int, prior: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.where(rng.uniform(size=n) < prior, 1, -1)
    mu = np.where(y[:, None] > 0, GAUSS["mu_pos"], GAUSS["mu_neg"])
    return mu + GAUSS["sigma"] * rng.normal(size=mu.shape), y


@pytest.mark.parametrize("norms", [("inf", "inf"), ("2", "2")])
def test_solvers_reach_the_closed_form_on_large_samples(norms: tuple[str, str]) -> None:
    na, nd = norms
    eps_a, eps_d, prior = 0.4, 0.3, 0.35
    g = gaussian_equilibrium(**GAUSS, eps_a=eps_a, eps_d=eps_d, norm_a=na, norm_d=nd,
                             prior_pos=prior)
    assert g.value - g.value_no_defense > 0.01  # the defense matters here
    n = 20000
    x, y = sample_gaussian(n, seed=11, prior=prior)
    # tiny per-point jitter makes the rows non-collinear: the fast heuristic runs, and the
    # population optimum is unchanged to ~1e-4
    w = GAUSS["w"] + 1e-4 * np.random.default_rng(0).normal(size=x.shape)
    v, acc, det = equilibrium_shift(
        torch.tensor(w), torch.full((n,), GAUSS["b"], dtype=torch.float64), torch.tensor(x),
        torch.tensor(y), eps_a, eps_d, na, nd, "fast", return_details=True, box=None,
    )  # Gaussian data, not images: the closed form is the unbounded model
    assert det.result.solver == "surrogate+lns"
    sd = math.sqrt(g.value * (1 - g.value) / n)
    assert abs(acc - g.value) < 4 * sd + 0.003
    t_n = float(GAUSS["w"] @ v.numpy())
    pop = gaussian_accuracy(**GAUSS, eps_a=eps_a, norm_a=na, t=t_n, prior_pos=prior)
    assert pop >= g.value - 0.005  # the sample optimum is near-optimal in population
    assert abs(det.accuracy_no_defense - g.value_no_defense) < 4 * sd + 0.003


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_linear_classifier_sweep_reaches_the_closed_form(norm: str) -> None:
    eps_a, eps_d = 0.4, 0.3
    g = gaussian_equilibrium(**GAUSS, eps_a=eps_a, eps_d=eps_d, norm_a=norm, norm_d=norm)
    n = 20000
    x, y = sample_gaussian(n, seed=12)
    wv = GAUSS["w"]
    m = y * (x @ wv + GAUSS["b"])
    a = y[:, None] * wv
    c = eps_a * (np.abs(wv).sum() if norm == "inf" else np.linalg.norm(wv)) - m
    e = max_feasible_shift(a, c, eps_d, norm, "exact", num_maximizers=3)
    check_result(e, a, c, eps_d, norm)
    assert e.solver == "sweep-1d" and e.status == "optimal"
    # brute force over t = w.v on a fine grid (the problem is one-dimensional)
    t_max = eps_d * (np.abs(wv).sum() if norm == "inf" else np.linalg.norm(wv))
    ts = np.linspace(-t_max, t_max, 4001)
    grid_best = max(int(np.count_nonzero(y * t > c)) for t in ts)
    assert grid_best <= e.count <= grid_best + 3
    pop = gaussian_accuracy(**GAUSS, eps_a=eps_a, norm_a=norm, t=float(wv @ e.v))
    assert pop >= g.value - 0.005
    sd = math.sqrt(g.value * (1 - g.value) / n)
    assert abs(e.value - g.value) < 4 * sd + 0.003


# --------------------------------------------------------------------------------------
# equilibrium_shift on a linear model
# --------------------------------------------------------------------------------------


def linear_setup(n: int = 120, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    x = torch.rand(n, 1, 4, 4, generator=gen, dtype=torch.float64)
    y = torch.where(torch.rand(n, generator=gen) < 0.5, 1, -1)
    lin = model[1]
    wrow = lin.weight[1] - lin.weight[0]
    w = wrow.detach().expand(n, 16).clone()
    b = (lin.bias[1] - lin.bias[0]).detach().expand(n).clone()
    # shift the bias so that classes are partly right at x
    return model, x, y, w, b


@pytest.mark.parametrize("norms", [("inf", "inf"), ("2", "2"), ("2", "inf")])
@pytest.mark.parametrize("method", ["exact", "fast"])
def test_equilibrium_shift_matches_core_and_fgm(norms: tuple[str, str], method: str) -> None:
    na, nd = norms
    model, x, y, w, b = linear_setup()
    eps_a, eps_d = (0.05, 0.08) if na == "inf" else (0.3, 0.4)
    v, acc, det = equilibrium_shift(w, b, x, y, eps_a, eps_d, na, nd, method,
                                    return_details=True, box=None)  # the paper's model
    assert v.shape == x.shape[1:] and v.dtype == x.dtype and v.device == x.device
    # the core on the same rows
    yd = y.double()
    m = yd * (w @ x.reshape(len(x), -1).T).diagonal() + yd * b
    pnorm = w.abs().sum(1) if na == "inf" else w.norm(dim=1)
    a = (yd[:, None] * w).numpy()
    c = (eps_a * pnorm - m).numpy()
    core = max_feasible_shift(a, c, eps_d, nd, method)
    assert det.result.count == core.count
    assert acc == core.count / len(x)
    assert np.allclose(det.c.numpy(), c)
    # the accuracy is that of the linear model under FGM plus the shift
    direction = w.sign() if na == "inf" else w / w.norm(dim=1, keepdim=True)
    x_adv = x - eps_a * (yd[:, None] * direction).reshape(x.shape)
    with torch.no_grad():
        out = model(x_adv + v)
        g = out[:, 1] - out[:, 0]
        assert float((yd * g > 0).double().mean()) == pytest.approx(acc)
        g0 = model(x_adv)
        assert float((yd * (g0[:, 1] - g0[:, 0]) > 0).double().mean()) == pytest.approx(
            det.accuracy_no_defense)
        gc = model(x + v)
        assert float((yd * (gc[:, 1] - gc[:, 0]) > 0).double().mean()) == pytest.approx(
            det.clean_accuracy)
    vn = v.abs().max() if nd == "inf" else v.norm()
    assert float(vn) <= eps_d * (1 + 1e-6)
    assert acc >= det.accuracy_no_defense
    assert all(s.shape == x.shape[1:] for s in det.mixed_strategy)


def test_equilibrium_shift_per_point_gradients_and_shapes() -> None:
    rng = np.random.default_rng(3)
    n, d = 80, 6
    w = torch.tensor(rng.normal(size=(n, 2, 3)), dtype=torch.float32)
    x = torch.tensor(rng.uniform(size=(n, 2, 3)), dtype=torch.float32)
    b = torch.tensor(rng.normal(size=n), dtype=torch.float32)
    y = torch.tensor(rng.choice([-1, 1], size=n))
    v1, acc1 = equilibrium_shift(w, b, x, y, 0.05, 0.1, "inf", "inf", "exact")
    v2, acc2 = equilibrium_shift(w.reshape(n, d), b, x, y, 0.05, 0.1, "inf", "inf", "exact")
    assert v1.shape == (2, 3) and v1.dtype == torch.float32
    assert acc1 == acc2
    v3, acc3 = equilibrium_shift(w, b, x, y, 0.05, 0.1, generator=torch.Generator().manual_seed(1))
    assert acc3 <= acc1
    v4, acc4 = equilibrium_shift(w, b, x, y, 0.05, 0.1, seed=5, restarts=4)
    v5, acc5 = equilibrium_shift(w, b, x, y, 0.05, 0.1, generator=5, restarts=4)
    assert acc4 == acc5 and torch.equal(v4, v5)


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


def test_bad_input_names_the_argument() -> None:
    _, x, y, w, b = linear_setup(n=10)
    good = dict(w=w, b=b, x=x, y=y, eps_a=0.1, eps_d=0.1)

    def raises(arg: str, **change: object) -> None:
        kw = {**good, **change}
        with pytest.raises(InputError) as info:
            equilibrium_shift(**kw)  # type: ignore[arg-type]
        assert info.value.argument == arg

    raises("w", w=w[:5])
    raises("w", w=torch.zeros(10, 15, dtype=torch.float64))
    raises("b", b=b[:3])
    raises("x", x=torch.full_like(x, float("nan")))
    raises("w", w=torch.full_like(w, float("inf")))
    raises("y", y=torch.tensor([0, 1] * 5))
    raises("y", y=y[:4])
    raises("eps_a", eps_a=-0.1)
    raises("eps_d", eps_d=float("nan"))
    raises("norm_a", norm_a="3")
    raises("norm_d", norm_d=1)
    raises("method", method="greedy")
    raises("generator", generator="seed")
    a = np.ones((3, 2))
    for arg, call in [
        ("a", lambda: max_feasible_shift(np.ones(3), np.ones(3), 0.1)),
        ("c", lambda: max_feasible_shift(a, np.ones(2), 0.1)),
        ("a", lambda: max_feasible_shift(np.full((3, 2), np.nan), np.ones(3), 0.1)),
        ("eps_d", lambda: max_feasible_shift(a, np.ones(3), -1.0)),
        ("method", lambda: max_feasible_shift(a, np.ones(3), 0.1, "inf", "milp")),
        ("tol", lambda: max_feasible_shift(a, np.ones(3), 0.1, tol=0.0)),
        ("seed", lambda: max_feasible_shift(a, np.ones(3), 0.1, seed="x")),  # type: ignore[arg-type]
        ("sigma", lambda: gaussian_equilibrium([1.0], 0.0, [1.0], [0.0], 0.0, 0.1, 0.1)),
        ("mu_neg", lambda: gaussian_equilibrium([1.0], 0.0, [1.0], [0.0, 1.0], 1.0, 0.1, 0.1)),
    ]:
        with pytest.raises(InputError) as info:
            call()
        assert info.value.argument == arg


# --------------------------------------------------------------------------------------
# the game played in the box, and the clean-accuracy constraint
# --------------------------------------------------------------------------------------


def boxed_instance(n: int, d: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Per-point gradients near a common w, MNIST-like inputs (many zero pixels)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        n, d, generator=g, dtype=torch.float64)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[torch.rand(n, d, generator=g) < 0.6] = 0.0
    y = torch.where(torch.rand(n, generator=g) < 0.5, 1, -1)
    b = -(w * x).sum(1) + y * 0.4 * torch.randn(n, generator=g, dtype=torch.float64).abs() * (
        w.abs().sum(1) * 0.1) * torch.where(torch.rand(n, generator=g) < 0.8, 1.0, -1.0)
    return w, b, x, y


@pytest.mark.parametrize("norms", [("inf", "inf"), ("2", "2"), ("2", "inf")])
@pytest.mark.parametrize("method", ["exact", "fast"])
@pytest.mark.parametrize("box", [(0.0, 1.0), None])
def test_reported_accuracy_is_the_best_response_then_v(norms: tuple[str, str], method: str,
                                                       box: tuple[float, float] | None) -> None:
    """equilibrium_shift's accuracy = apply the exact best response, then v, to the
    linear model (in both the boxed game and the paper's unbounded one)."""
    from advgame.linear import best_response

    na, nd = norms
    for seed in range(3):
        w, b, x, y = boxed_instance(40, 6, seed)
        eps_a, eps_d = (0.1, 0.1) if na == "inf" else (0.3, 0.3)
        v, acc, det = equilibrium_shift(w, b, x, y, eps_a, eps_d, na, nd, method, box=box,
                                        return_details=True, time_limit=20)
        delta = best_response(w, b, x, y, eps_a, na, box=box)
        yd = y.double()
        measured = float((yd * ((w * (x + delta + v)).sum(1) + b) > 0).double().mean())
        assert acc == measured
        assert det.accuracy_no_defense == float((yd * ((w * (x + delta)).sum(1) + b) > 0)
                                                .double().mean())
        assert det.box == box


def test_the_box_changes_the_game_on_zero_pixels() -> None:
    """Most pixels at 0: the clipped attacker lowers margins far less than the unbounded
    one, so v = 0 already wins more rows in the boxed game."""
    w, b, x, y = boxed_instance(200, 20, seed=7)
    _, _, boxed = equilibrium_shift(w, b, x, y, 0.2, 0.1, method="fast", return_details=True)
    _, _, free = equilibrium_shift(w, b, x, y, 0.2, 0.1, method="fast", box=None,
                                   return_details=True)
    assert bool((boxed.c <= free.c + 1e-12).all())
    assert boxed.accuracy_no_defense > free.accuracy_no_defense


def constrained_instance(seed: int, n: int = 16) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(300 + seed)
    a = rng.normal(size=(n, 2))
    margin = rng.normal(scale=0.4, size=n)
    c = 0.3 * np.abs(a).sum(1) - margin  # attacked rows
    return a, c, -margin  # clean rows: a . v > -m


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("seed", range(5))
def test_clean_constraint_exact_equals_brute_force_2d(norm: str, seed: int) -> None:
    a, c, clean_c = constrained_instance(seed)
    eps = 0.6
    free = max_feasible_shift(a, c, eps, norm, "exact")
    clean_at_free = strict_count(a, clean_c, free.v)
    best_clean = brute_force_2d(a, clean_c, eps, norm)
    for k in sorted({int(np.count_nonzero(clean_c < 0)), clean_at_free + 1, best_clean}):
        if k > best_clean:
            continue
        r = max_feasible_shift(a, c, eps, norm, "exact", clean_c=clean_c, min_clean=k)
        check_result(r, a, c, eps, norm)
        assert r.status == "optimal"
        assert r.clean_count == strict_count(a, clean_c, r.v) and r.clean_count >= k
        assert r.constraint_satisfied and r.clean_required == k
        assert r.count == brute_force_2d(a, c, eps, norm, clean_c, k)
        for v in r.maximizers:
            assert strict_count(a, clean_c, v) >= k
        f = max_feasible_shift(a, c, eps, norm, "fast", clean_c=clean_c, min_clean=k)
        assert f.constraint_satisfied and strict_count(a, clean_c, f.v) >= k
        assert f.count <= r.count and f.count >= r.count - 2


def test_clean_constraint_that_binds_costs_attacked_rows() -> None:
    """A cheap oracle of the trade-off: on a linear classifier (exact 1-d sweep) the
    constrained optimum is the brute-force optimum over t = w . v with the constraint."""
    rng = np.random.default_rng(5)
    n = 200
    w = rng.normal(size=4)
    y = rng.choice([-1, 1], size=n)
    margin = rng.normal(scale=1.0, size=n) + 0.6
    a = y[:, None] * w
    c = 0.5 * np.abs(w).sum() - margin
    clean_c = -margin
    eps = 0.5
    t = np.linspace(-eps * np.abs(w).sum(), eps * np.abs(w).sum(), 200001)
    att = (y[None, :] * t[:, None] > c).sum(1)
    cln = (y[None, :] * t[:, None] > clean_c).sum(1)
    free = max_feasible_shift(a, c, eps, "inf", "exact")
    k = strict_count(a, clean_c, np.zeros(4))  # no clean loss at all
    assert strict_count(a, clean_c, free.v) < k  # the free optimum does lose some
    for method in ("exact", "fast"):
        r = max_feasible_shift(a, c, eps, "inf", method, clean_c=clean_c, min_clean=k)
        assert r.solver == "sweep-1d"
        assert r.count == int(att[cln >= k].max()) < free.count
        assert r.clean_count >= k


def pushed_instance(seed: int, n: int = 50, d: int = 6, eps: float = 0.3,
                    drop: float = 0.6) -> tuple[np.ndarray, ...]:
    """Rows like a network's that FGM breaks on one class: the free optimum pushes every
    input towards class +1 and costs clean accuracy on class -1 (the 44-of-45-pairs case).
    Returns (a, c, clean_c) with clean rows a_i . v > -m_i."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d) + 0.4 * rng.normal(size=(n, d))
    y = np.where(rng.uniform(size=n) < 0.6, 1, -1)
    reach = eps * np.abs(w).sum(1)
    m = np.where(y > 0, rng.uniform(0.3, 0.9, n), rng.uniform(0.05, 0.5, n)) * reach
    return y[:, None] * w, drop * reach - m, -m


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("seed", [11, 13])
def test_fast_constrained_on_network_like_rows(norm: str, seed: int) -> None:
    """Rows not collinear, a constraint that binds: the fast method's Lagrangian + repair
    meets it and comes within 2 rows of the exact constrained MILP."""
    a, c, clean_c = pushed_instance(seed)
    eps = 0.3
    free = max_feasible_shift(a, c, eps, norm, "exact", time_limit=20)
    k0 = strict_count(a, clean_c, np.zeros(a.shape[1]))  # no clean loss at all
    assert strict_count(a, clean_c, free.v) < k0  # the free optimum loses some
    exact = max_feasible_shift(a, c, eps, norm, "exact", clean_c=clean_c, min_clean=k0,
                               time_limit=30)
    fast = max_feasible_shift(a, c, eps, norm, "fast", clean_c=clean_c, min_clean=k0)
    assert exact.status == "optimal"
    assert fast.solver == "surrogate+lagrangian+repair"
    for r in (exact, fast):
        assert r.constraint_satisfied and strict_count(a, clean_c, r.v) >= k0
        assert r.count >= r.count_at_zero
        check_result(r, a, c, eps, norm)
    assert exact.count - 2 <= fast.count <= exact.count < free.count


def test_clean_constraint_in_equilibrium_shift_and_infeasible() -> None:
    w, b, x, y = boxed_instance(40, 6, seed=3)
    _, acc, det = equilibrium_shift(w, b, x, y, 0.2, 0.2, method="exact", return_details=True,
                                    time_limit=20)
    _, acc_c, det_c = equilibrium_shift(w, b, x, y, 0.2, 0.2, method="exact",
                                        return_details=True, max_clean_drop=0.0, time_limit=20)
    assert det_c.constraint_satisfied
    assert det_c.clean_accuracy >= det_c.clean_accuracy_no_defense
    assert det_c.min_clean_count == round(det.clean_accuracy_no_defense * 40)
    assert acc_c <= acc
    _, _, det_m = equilibrium_shift(w, b, x, y, 0.2, 0.2, return_details=True,
                                    min_clean_accuracy=det.clean_accuracy_no_defense - 0.05)
    assert det_m.clean_accuracy >= det.clean_accuracy_no_defense - 0.05
    for method in ("exact", "fast"):
        with pytest.raises(InputError) as info:  # nobody can be right on every point
            equilibrium_shift(w, b, x, y, 0.2, 1e-3, method=method, min_clean_accuracy=1.0)
        assert info.value.argument == "min_clean_accuracy"
    # each row can be met alone, not both: the MILP proves it, the fast method finds none
    a = np.array([[1.0, 0.2], [-1.0, 0.2], [0.3, 1.0]])
    for method in ("exact", "fast"):
        with pytest.raises(InputError, match="no shift") as info:
            max_feasible_shift(a, np.zeros(3), 0.1, "inf", method,
                               clean_c=np.array([0.06, 0.06, -1.0]), min_clean=3)
        assert info.value.argument == "min_clean"


def test_box_and_constraint_bad_input() -> None:
    w, b, x, y = boxed_instance(10, 3, seed=0)
    good = dict(w=w, b=b, x=x, y=y, eps_a=0.1, eps_d=0.1)
    for arg, change in [("box", {"box": (1.0, 0.0)}), ("box", {"box": (0.0, 1.0, 2.0)}),
                        ("box", {"box": (0.0, float("nan"))}), ("x", {"x": x + 1.5}),
                        ("min_clean_accuracy", {"min_clean_accuracy": 1.2}),
                        ("min_clean_accuracy", {"min_clean_accuracy": -0.1}),
                        ("max_clean_drop", {"max_clean_drop": float("nan")}),
                        ("max_clean_drop", {"max_clean_drop": 0.1, "min_clean_accuracy": 0.5})]:
        with pytest.raises(InputError) as info:
            equilibrium_shift(**{**good, **change})  # type: ignore[arg-type]
        assert info.value.argument == arg
    a = np.ones((3, 2))
    for arg, kw in [("min_clean", {"clean_c": np.zeros(3)}), ("clean_c", {"min_clean": 1}),
                    ("clean_c", {"clean_c": np.zeros(2), "min_clean": 1}),
                    ("min_clean", {"clean_c": np.zeros(3), "min_clean": 4}),
                    ("min_clean", {"clean_c": np.zeros(3), "min_clean": 1.5})]:
        with pytest.raises(InputError) as info:
            max_feasible_shift(a, np.ones(3), 0.1, **kw)  # type: ignore[arg-type]
        assert info.value.argument == arg
