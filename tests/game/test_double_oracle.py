"""Double oracle against the LP solution of known matrix games."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import pytest

from advgame.errors import InputError
from advgame.game import (
    DoubleOracleIteration,
    DoubleOracleResult,
    double_oracle,
    exploitability,
    matrix_oracles,
    solve_zero_sum,
)

RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def full_strategies(res: DoubleOracleResult[int, int], shape: tuple[int, int]) -> tuple[
    np.ndarray, np.ndarray
]:
    p = np.zeros(shape[0])
    q = np.zeros(shape[1])
    p[list(res.rows)] = res.defender_strategy
    q[list(res.cols)] = res.attacker_strategy
    return p, q


def planted_game(seed: int, size: int = 60, support: int = 4) -> np.ndarray:
    """Rows in R dominate every other row (+1.5 > range) and columns in C dominate every
    other column for the attacker (-1.5), so the equilibrium lives on R x C."""
    rng = np.random.default_rng(seed)
    a = rng.random((size, size))
    a[rng.choice(size, support, replace=False), :] += 1.5
    a[:, rng.choice(size, support, replace=False)] -= 1.5
    return a


def test_rock_paper_scissors_from_one_strategy() -> None:
    res = double_oracle(*matrix_oracles(RPS), initial_rows=[0], initial_cols=[0])
    assert res.converged
    assert res.value == pytest.approx(0.0, abs=1e-12)
    assert sorted(res.rows) == [0, 1, 2] and sorted(res.cols) == [0, 1, 2]
    np.testing.assert_allclose(res.defender_strategy[np.argsort(res.rows)], 1 / 3, atol=1e-12)
    assert res.payoff.shape == (3, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_game_matches_lp_with_fewer_evaluations(seed: int) -> None:
    a = np.random.default_rng(seed).random((60, 60))
    lp = solve_zero_sum(a)
    res = double_oracle(*matrix_oracles(a), initial_rows=[0], initial_cols=[0], tol=1e-9)
    assert res.converged
    assert res.value == pytest.approx(lp.value, abs=1e-9)
    p, q = full_strategies(res, a.shape)
    assert exploitability(a, p, q) <= 1e-9
    # every bound brackets the full game's value (exact oracles)
    assert (res.lower_bounds <= lp.value + 1e-12).all()
    assert (res.upper_bounds >= lp.value - 1e-12).all()
    assert res.gap <= 1e-9 and res.lower - 1e-12 <= res.value <= res.upper + 1e-12
    assert res.iterations == len(res.values) == len(res.lower_bounds)
    assert res.evaluations < 0.5 * a.size  # a fraction of the 3600 cells
    assert len(res.rows) < 60 and len(res.cols) < 60


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_support_game_is_solved_with_few_strategies(seed: int) -> None:
    a = planted_game(seed)
    lp = solve_zero_sum(a)
    res = double_oracle(*matrix_oracles(a), initial_rows=[0], initial_cols=[0], tol=1e-9)
    assert res.converged
    assert res.value == pytest.approx(lp.value, abs=1e-9)
    assert len(res.rows) <= 8 and len(res.cols) <= 8
    assert res.evaluations <= 64  # of 3600
    p, q = full_strategies(res, a.shape)
    assert exploitability(a, p, q) <= 1e-9


def test_payoff_is_evaluated_once_per_cell() -> None:
    a = np.random.default_rng(4).random((30, 40))
    payoff_fn, row_oracle, col_oracle = matrix_oracles(a)
    calls: Counter[tuple[int, int]] = Counter()

    def counted(row: int, col: int) -> float:
        calls[(row, col)] += 1
        return payoff_fn(row, col)

    res = double_oracle(counted, row_oracle, col_oracle, [0, 1], [0], tol=1e-9)
    assert res.converged
    assert max(calls.values()) == 1
    assert res.evaluations == len(calls)
    # the restricted payoff matrix holds exactly the evaluated values
    np.testing.assert_array_equal(res.payoff, a[np.ix_(res.rows, res.cols)])


def test_opaque_hashable_strategies_and_mixtures() -> None:
    names_r = ["none", "adv-train", "smooth"]
    names_c = ["fgm", "pgd", "attnet"]
    a = np.array([[0.9, 0.1, 0.3], [0.6, 0.5, 0.4], [0.7, 0.4, 0.6]])
    index_r = {k: i for i, k in enumerate(names_r)}
    index_c = {k: j for j, k in enumerate(names_c)}
    seen_q: list[Mapping[str, float]] = []

    def payoff_fn(r: str, c: str) -> float:
        return float(a[index_r[r], index_c[c]])

    def row_oracle(q_mix: Mapping[str, float]) -> str:
        seen_q.append(dict(q_mix))
        q = np.array([q_mix.get(c, 0.0) for c in names_c])
        return names_r[int(np.argmax(a @ q))]

    def col_oracle(p_mix: Mapping[str, float]) -> str:
        p = np.array([p_mix.get(r, 0.0) for r in names_r])
        return names_c[int(np.argmin(p @ a))]

    iterations: list[DoubleOracleIteration[str, str]] = []
    res = double_oracle(payoff_fn, row_oracle, col_oracle, ["none"], ["fgm", "fgm"],
                        tol=1e-12, callback=iterations.append)
    assert res.converged
    assert res.value == pytest.approx(solve_zero_sum(a).value, abs=1e-12)
    assert set(res.rows) <= set(names_r) and res.cols[0] == "fgm"
    assert len(iterations) == res.iterations
    assert iterations[0].num_rows == 1 and iterations[0].num_cols == 1
    for q_mix in seen_q:  # oracles see the support only, as probabilities
        assert all(w > 0 for w in q_mix.values())
        assert sum(q_mix.values()) == pytest.approx(1.0)
    p_mix = res.defender_mixture()
    assert sum(p_mix.values()) == pytest.approx(1.0) and set(p_mix) <= set(res.rows)
    assert sum(res.attacker_mixture().values()) == pytest.approx(1.0)


def test_iteration_limit_returns_consistent_partial_result() -> None:
    a = np.random.default_rng(5).random((40, 40))
    res = double_oracle(*matrix_oracles(a), initial_rows=[0], initial_cols=[0], max_iters=3)
    assert not res.converged and res.iterations == 3
    assert res.payoff.shape == (len(res.rows), len(res.cols)) == (3, 3)
    assert res.defender_strategy.shape == (3,) and res.attacker_strategy.shape == (3,)
    assert res.gap > 0


def test_stops_when_oracles_add_nothing() -> None:
    a = np.random.default_rng(6).random((5, 5))
    payoff_fn, _, _ = matrix_oracles(a)
    res = double_oracle(payoff_fn, lambda q: 0, lambda p: 0, [0], [0], tol=0.0)
    assert res.iterations == 1 and res.rows == (0,) and res.cols == (0,)
    assert res.converged  # a 1x1 game: both "best responses" give the value itself


def test_bad_arguments_name_the_argument() -> None:
    payoff_fn, row_oracle, col_oracle = matrix_oracles(RPS)
    cases = [
        (lambda: double_oracle(payoff_fn, row_oracle, col_oracle, [], [0]), "initial_rows"),
        (lambda: double_oracle(payoff_fn, row_oracle, col_oracle, [0], [[0]]), "initial_cols"),
        (lambda: double_oracle(payoff_fn, row_oracle, col_oracle, [0], [0], tol=-1.0), "tol"),
        (lambda: double_oracle(payoff_fn, row_oracle, col_oracle, [0], [0], tol=float("nan")),
         "tol"),
        (lambda: double_oracle(payoff_fn, row_oracle, col_oracle, [0], [0], max_iters=0),
         "max_iters"),
        (lambda: double_oracle(None, row_oracle, col_oracle, [0], [0]), "payoff_fn"),
        (lambda: double_oracle(lambda r, c: float("nan"), row_oracle, col_oracle, [0], [0]),
         "payoff_fn"),
        (lambda: double_oracle(lambda r, c: "high", row_oracle, col_oracle, [0], [0]),
         "payoff_fn"),
        (lambda: double_oracle(payoff_fn, lambda q: [1], col_oracle, [0], [0]), "row_oracle"),
        (lambda: double_oracle(payoff_fn, row_oracle, col_oracle, [0], [0], callback=3),
         "callback"),
        (lambda: matrix_oracles([[np.inf]]), "payoff"),
    ]
    for fn, name in cases:
        with pytest.raises(InputError) as info:
            fn()
        assert info.value.argument == name, name


def test_matrix_oracles_break_ties_by_lowest_index() -> None:
    payoff_fn, row_oracle, col_oracle = matrix_oracles(np.zeros((3, 4)))
    assert row_oracle({2: 1.0}) == 0 and col_oracle({1: 0.5, 2: 0.5}) == 0
    payoff_fn, row_oracle, col_oracle = matrix_oracles(RPS)
    assert payoff_fn(1, 0) == 1.0
    assert row_oracle({0: 1.0}) == 1 and col_oracle({0: 1.0}) == 1
