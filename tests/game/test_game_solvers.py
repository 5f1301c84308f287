"""Zero-sum solvers against textbook games, nashpy, and mathematical properties."""

from __future__ import annotations

import subprocess
import sys

import nashpy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from threadpoolctl import ThreadpoolController, threadpool_limits

from advgame.errors import InputError
from advgame.game import (
    ApproximateEquilibrium,
    GameIterate,
    ZeroSumSolution,
    best_response_col,
    best_response_row,
    exploitability,
    fictitious_play,
    fictitious_play_equilibrium,
    regret_matching,
    regret_matching_equilibrium,
    solve_zero_sum,
)

METHODS = ("auto", "highs", "interior-point")


PENNIES = np.array([[1.0, -1.0], [-1.0, 1.0]])
RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def assert_distribution(p: np.ndarray, size: int) -> None:
    assert p.shape == (size,)
    assert p.dtype == np.float64
    assert (p >= 0).all()
    assert p.sum() == pytest.approx(1.0, abs=1e-12)


def assert_equilibrium(a: np.ndarray, sol: ZeroSumSolution, tol: float = 1e-9) -> None:
    assert_distribution(sol.defender_strategy, a.shape[0])
    assert_distribution(sol.attacker_strategy, a.shape[1])
    scale = max(float(np.ptp(a)), 1.0)
    assert exploitability(a, sol.defender_strategy, sol.attacker_strategy) <= tol * scale
    p, q = sol.defender_strategy, sol.attacker_strategy
    assert (p @ a).min() - tol * scale <= sol.value <= (a @ q).max() + tol * scale


# ------------------------------------------------------------------ textbook games


@pytest.mark.parametrize("method", METHODS)
def test_matching_pennies(method: str) -> None:
    value, p, q = solve_zero_sum(PENNIES, method=method)
    assert value == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(p, [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(q, [0.5, 0.5], atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_rock_paper_scissors(method: str) -> None:
    value, p, q = solve_zero_sum(RPS, method=method)
    assert value == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(p, np.full(3, 1 / 3), atol=1e-12)
    np.testing.assert_allclose(q, np.full(3, 1 / 3), atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_two_by_two_closed_form(method: str) -> None:
    # No saddle point: p_1 = (d - c) / (a - b - c + d), v = (ad - bc) / (a - b - c + d).
    a, b, c, d = 0.9, 0.3, 0.5, 0.7
    value, p, q = solve_zero_sum([[a, b], [c, d]], method=method)
    den = a - b - c + d
    assert value == pytest.approx((a * d - b * c) / den, abs=1e-12)
    assert p[0] == pytest.approx((d - c) / den, abs=1e-12)
    assert q[0] == pytest.approx((d - b) / den, abs=1e-12)


def test_saddle_point_gives_lowest_index_pure_strategies() -> None:
    a = np.array([[0.2, 0.9, 0.4], [0.6, 0.8, 0.6], [0.6, 0.7, 0.6]])
    value, p, q = solve_zero_sum(a)
    assert value == 0.6
    assert p.tolist() == [0.0, 1.0, 0.0]
    assert q.tolist() == [1.0, 0.0, 0.0]


def test_constant_and_single_row_or_column_games() -> None:
    value, p, q = solve_zero_sum(np.full((3, 4), 0.7))
    assert value == 0.7 and p.tolist() == [1, 0, 0] and q.tolist() == [1, 0, 0, 0]
    value, p, q = solve_zero_sum([[0.3, 0.1, 0.5]])
    assert value == 0.1 and q.tolist() == [0, 1, 0]
    value, p, q = solve_zero_sum([[0.3], [0.1], [0.5]])
    assert value == 0.5 and p.tolist() == [0, 0, 1]


def test_solution_unpacks_and_is_deterministic() -> None:
    a = np.random.default_rng(3).random((80, 70))
    sol = solve_zero_sum(a)
    assert isinstance(sol, ZeroSumSolution)
    value, p, q = sol
    assert (value, p, q) == (sol.value, sol.defender_strategy, sol.attacker_strategy)
    again = solve_zero_sum(a)
    assert again.value == sol.value
    np.testing.assert_array_equal(again.defender_strategy, p)
    np.testing.assert_array_equal(again.attacker_strategy, q)


def blas_thread_counts() -> list[int]:
    return [lib["num_threads"] for lib in ThreadpoolController().info()
            if lib["user_api"] == "blas"]


@pytest.mark.parametrize("method", METHODS)
def test_solver_uses_one_blas_thread_whatever_the_caller_set(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The solver's BLAS work runs on one thread even when the caller allows two, and
    # the caller's setting is back afterwards; blas_threads=2 keeps two.
    import advgame.game.solvers as solvers

    seen: list[list[int]] = []
    original = solvers._support_equilibrium

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(blas_thread_counts())
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(solvers, "_support_equilibrium", spy)
    a = np.random.default_rng(5).random((70, 80))
    with threadpool_limits(limits=2, user_api="blas"):
        solve_zero_sum(a, method=method)  # type: ignore[arg-type]
        assert seen and all(counts and set(counts) == {1} for counts in seen)
        assert set(blas_thread_counts()) == {2}
        seen.clear()
        solve_zero_sum(a, method=method, blas_threads=2)  # type: ignore[arg-type]
        assert seen and all(set(counts) == {2} for counts in seen)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_blas_threads_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(InputError, match="blas_threads"):
        solve_zero_sum(PENNIES, blas_threads=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ against nashpy


def nashpy_value(a: np.ndarray) -> tuple[float, float]:
    """What nashpy's strategies guarantee: its row player maximizes A (our defender)."""
    p, q = nashpy.Game(a).linear_program()
    return float((p @ a).min()), float((a @ q).max())


@pytest.mark.parametrize("shape", [(3, 3), (4, 7), (10, 6), (25, 25), (70, 90), (120, 80)])
@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_nashpy_on_random_games(shape: tuple[int, int], seed: int) -> None:
    a = np.random.default_rng(seed).normal(size=shape)
    lower, upper = nashpy_value(a)
    assert upper - lower <= 1e-6  # nashpy's own pair is an equilibrium
    for method in METHODS:
        sol = solve_zero_sum(a, method=method)
        assert sol.value == pytest.approx(lower, abs=1e-6)
        assert sol.value == pytest.approx(upper, abs=1e-6)
        assert exploitability(a, sol.defender_strategy, sol.attacker_strategy) <= 1e-6
        assert_equilibrium(a, sol)


def degenerate_games() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.random((70, 70))
    return {
        "integers": rng.integers(0, 3, size=(90, 110)).astype(float),
        "binary": rng.integers(0, 2, size=(120, 70)).astype(float),
        "duplicate rows": np.vstack([base, base[:30]]),
        "duplicate columns": np.hstack([base, base[:, :40]]),
        "accuracy-like": np.round(rng.beta(5, 2, size=(100, 100)) * 200) / 200,
        "identity": np.eye(100),
        "low rank": rng.random((90, 3)) @ rng.random((3, 80)),
        "skew-symmetric": (lambda r: r - r.T)(rng.random((80, 80))),
        "wide": rng.random((4, 300)),
        "tall": rng.random((300, 4)),
    }


@pytest.mark.parametrize("name", sorted(degenerate_games()))
def test_methods_agree_on_degenerate_games(name: str) -> None:
    a = degenerate_games()[name]
    sols = [solve_zero_sum(a, method=m) for m in ("highs", "interior-point")]
    for sol in sols:
        assert_equilibrium(a, sol, tol=1e-9)
    assert sols[0].value == pytest.approx(sols[1].value, abs=1e-9)


def test_interior_point_on_a_larger_game() -> None:
    a = np.random.default_rng(11).random((160, 130))
    sol = solve_zero_sum(a, method="interior-point")
    assert_equilibrium(a, sol, tol=1e-10)
    assert 30 < np.count_nonzero(sol.defender_strategy) < 130  # genuinely mixed


# ------------------------------------------------------------------ properties

small_games = st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(
    lambda shape: arrays(
        np.float64, shape, elements=st.floats(-10, 10, allow_nan=False, width=32)
    )
)


@settings(max_examples=60, deadline=None)
@given(a=small_games, method=st.sampled_from(METHODS))
def test_value_between_pure_maximin_and_minimax(a: np.ndarray, method: str) -> None:
    sol = solve_zero_sum(a, method=method)
    assert_equilibrium(a, sol)
    maximin, minimax = a.min(axis=1).max(), a.max(axis=0).min()
    tol = 1e-9 * max(float(np.ptp(a)), 1.0)
    assert maximin - tol <= sol.value <= minimax + tol


@settings(max_examples=40, deadline=None)
@given(
    a=small_games,
    shift=st.floats(-100, 100, allow_nan=False),
    scale=st.floats(0.01, 100, allow_nan=False),
)
def test_invariance_to_positive_affine_maps(a: np.ndarray, shift: float, scale: float) -> None:
    base = solve_zero_sum(a)
    mapped = solve_zero_sum(scale * a + shift)
    tol = 1e-8 * (abs(shift) + scale * max(float(np.ptp(a)), 1.0))
    assert mapped.value == pytest.approx(scale * base.value + shift, abs=tol)
    # the mapped game's equilibrium is an equilibrium of the original game
    p, q = mapped.defender_strategy, mapped.attacker_strategy
    assert exploitability(a, p, q) <= 1e-7 * max(float(np.ptp(a)), 1.0)


@settings(max_examples=40, deadline=None)
@given(a=small_games)
def test_transposed_game_swaps_roles(a: np.ndarray) -> None:
    sol = solve_zero_sum(a)
    dual = solve_zero_sum(-a.T)  # the attacker's game, attacker as maximizer
    assert dual.value == pytest.approx(-sol.value, abs=1e-9 * max(float(np.ptp(a)), 1.0))
    assert exploitability(a, dual.attacker_strategy, dual.defender_strategy) <= 1e-9 * max(
        float(np.ptp(a)), 1.0
    )


# ------------------------------------------------------------------ best responses


def test_exploitability_values() -> None:
    assert exploitability(PENNIES, [0.5, 0.5], [0.5, 0.5]) == 0.0
    assert exploitability(PENNIES, [1.0, 0.0], [0.5, 0.5]) == pytest.approx(1.0)
    assert exploitability(PENNIES, [1.0, 0.0], [1.0, 0.0]) == pytest.approx(2.0)
    a = np.array([[0.8, 0.1], [0.3, 0.6]])
    p, q = np.array([0.7, 0.3]), np.array([0.4, 0.6])
    expected = (a @ q).max() - (p @ a).min()
    assert exploitability(a, p, q) == pytest.approx(expected)
    assert exploitability(a.tolist(), p.tolist(), q.tolist()) == pytest.approx(expected)


def test_best_responses_and_lowest_index_ties() -> None:
    assert best_response_row(RPS, [1.0, 0.0, 0.0]) == 1  # paper beats rock
    assert best_response_col(RPS, [1.0, 0.0, 0.0]) == 1  # attacker's paper
    assert best_response_row(RPS, np.full(3, 1 / 3)) == 0  # all tied (rounding too)
    assert best_response_col(RPS, np.full(3, 1 / 3)) == 0
    a = np.array([[0.1, 0.5, 0.5], [0.5, 0.5, 0.1]])
    assert best_response_row(a, [0.0, 1.0, 0.0]) == 0
    assert best_response_col(a, [0.5, 0.5]) == 0


# ------------------------------------------------------------------ iterative methods


def test_fictitious_play_converges_on_random_game() -> None:
    a = np.random.default_rng(5).random((20, 30))
    value = solve_zero_sum(a).value
    res = fictitious_play_equilibrium(a, 3000, stride=100)
    assert isinstance(res, ApproximateEquilibrium)
    assert res.iterations.tolist() == list(range(100, 3001, 100))
    assert res.exploitability.shape == (30,)
    assert res.lower <= value + 1e-12 and value <= res.upper + 1e-12
    assert res.exploitability[-1] <= 0.02
    assert res.exploitability[-1] < 0.5 * res.exploitability[0]
    assert abs(res.value - value) <= res.upper - res.lower
    assert exploitability(a, res.defender_strategy, res.attacker_strategy) == pytest.approx(
        res.exploitability[-1], abs=1e-12
    )


@pytest.mark.parametrize(
    ("kwargs", "bound"),
    [({}, 1e-3), ({"plus": False, "alternating": False}, 0.03)],
)
def test_regret_matching_converges_on_random_game(kwargs: dict[str, bool], bound: float) -> None:
    a = np.random.default_rng(6).random((40, 25))
    value = solve_zero_sum(a).value
    res = regret_matching_equilibrium(a, 2000, stride=7, **kwargs)
    assert res.iterations[-1] == 2000 and res.iterations[0] == 7
    assert res.lower <= value + 1e-12 and value <= res.upper + 1e-12
    assert res.exploitability[-1] <= bound
    assert res.exploitability[-1] < 0.2 * res.exploitability[0]


def test_every_iterate_is_valid_and_brackets_the_value() -> None:
    a = np.random.default_rng(8).normal(size=(6, 9))
    value = solve_zero_sum(a).value
    for iterates in (fictitious_play(a, 300), regret_matching(a, 300),
                     fictitious_play(a, 300, alternating=False)):
        seen = 0
        for it in iterates:
            assert isinstance(it, GameIterate)
            seen += 1
            assert it.iteration == seen
            assert_distribution(it.defender_strategy, 6)
            assert_distribution(it.attacker_strategy, 9)
            assert it.lower <= value + 1e-12 <= it.upper + 2e-12
            assert it.exploitability == pytest.approx(
                exploitability(a, it.defender_strategy, it.attacker_strategy), abs=1e-9
            )
        assert seen == 300


def test_fictitious_play_rps_and_explicit_randomness() -> None:
    last = list(fictitious_play(RPS, 2000))[-1]
    assert last.exploitability <= 0.05
    runs = [
        [it.defender_strategy for it in fictitious_play(
            RPS, 50, generator=np.random.default_rng(0))]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))
    first = next(iter(fictitious_play(RPS, 5, initial_row=2, initial_col=1)))
    assert first.defender_strategy.tolist() == [0, 0, 1]
    assert first.attacker_strategy.tolist() == [0, 1, 0]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "payoff",
    [
        [1.0, 2.0],
        np.zeros((2, 2, 2)),
        np.zeros((0, 3)),
        np.zeros((3, 0)),
        [[1.0, np.nan]],
        [[np.inf, 0.0]],
        [["a", "b"]],
        np.array([[1 + 1j]]),
        [[1.0, 2.0], [3.0]],
        None,
    ],
)
def test_bad_payoff_names_the_argument(payoff: object) -> None:
    for fn in (
        lambda: solve_zero_sum(payoff),
        lambda: fictitious_play(payoff, 10),
        lambda: regret_matching_equilibrium(payoff, 10),
        lambda: exploitability(payoff, [1.0], [1.0]),
    ):
        with pytest.raises(InputError) as info:
            fn()
        assert info.value.argument == "payoff"
        assert str(info.value).startswith("payoff: ")


@pytest.mark.parametrize(
    ("p", "q", "name"),
    [
        ([0.5, 0.5, 0.0], [0.5, 0.5], "p"),
        ([1.0, 0.0], [1.0], "q"),
        ([1.5, -0.5], [0.5, 0.5], "p"),
        ([0.4, 0.4], [0.5, 0.5], "p"),
        ([0.5, 0.5], [np.nan, 1.0], "q"),
        ([[0.5, 0.5]], [0.5, 0.5], "p"),
        ([0.5, 0.5], "ab", "q"),
    ],
)
def test_bad_strategies_name_the_argument(p: object, q: object, name: str) -> None:
    with pytest.raises(InputError) as info:
        exploitability(PENNIES, p, q)
    assert info.value.argument == name


def test_other_bad_arguments() -> None:
    cases = [
        (lambda: solve_zero_sum(PENNIES, method="simplex"), "method"),
        (lambda: solve_zero_sum(PENNIES, tol=-1.0), "tol"),
        (lambda: fictitious_play(PENNIES, 0), "iterations"),
        (lambda: regret_matching(PENNIES, 2.5), "iterations"),
        (lambda: fictitious_play_equilibrium(PENNIES, 10, stride=0), "stride"),
        (lambda: fictitious_play(PENNIES, 10, initial_row=2), "initial_row"),
        (lambda: fictitious_play(PENNIES, 10, generator=0), "generator"),
        (lambda: best_response_row(PENNIES, [1.0]), "q"),
        (lambda: best_response_col(PENNIES, [1.0]), "p"),
    ]
    for fn, name in cases:
        with pytest.raises(InputError) as info:
            fn()
        assert info.value.argument == name


def test_solvers_module_does_not_import_torch() -> None:
    code = (
        "import sys; import advgame.game.solvers, advgame.game.dynamics, "
        "advgame.game.double_oracle; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_restricted_lp_fallback_grows_to_the_full_equilibrium() -> None:
    # The route taken when the interior point finds no square support: HiGHS on a
    # restricted game plus row/column generation; started here from a single cell.
    from advgame.game.solvers import _restricted_highs_equilibrium

    a = np.random.default_rng(9).random((40, 50))
    b = 1.0 + (a - a.min()) / np.ptp(a)
    p, q = _restricted_highs_equilibrium(b, np.array([0]), np.array([0]), 1e-10)
    assert exploitability(a, p, q) <= 1e-9
    assert p @ a @ q == pytest.approx(solve_zero_sum(a).value, abs=1e-9)
