"""Iterative learning dynamics for finite zero-sum games: fictitious play (Brown 1951,
Robinson 1951) and regret matching (Hart & Mas-Colell 2000). Both yield their iterates
(:class:`GameIterate`); :func:`fictitious_play_equilibrium` and
:func:`regret_matching_equilibrium` run them and return the average strategies with a
convergence curve. Conventions as in :mod:`advgame.game.solvers` (rows maximize).

This module imports numpy only (never torch).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from advgame.errors import InputError
from advgame.game.solvers import FloatArray, _check_index, _check_iterations, _scale, check_payoff

__all__ = [
    "ApproximateEquilibrium",
    "GameIterate",
    "fictitious_play",
    "fictitious_play_equilibrium",
    "regret_matching",
    "regret_matching_equilibrium",
]


# --------------------------------------------------------------------------------------
# Iterative methods
# --------------------------------------------------------------------------------------


class GameIterate(NamedTuple):
    """One iterate of an iterative game solver.

    Attributes:
        iteration: 1-based iteration number t.
        defender_strategy: average defender strategy p_bar, shape (m,).
        attacker_strategy: average attacker strategy q_bar, shape (n,).
        lower: min_j (p_bar^T A)_j, a lower bound on the value.
        upper: max_i (A q_bar)_i, an upper bound on the value.
    """

    iteration: int
    defender_strategy: FloatArray
    attacker_strategy: FloatArray
    lower: float
    upper: float

    @property
    def exploitability(self) -> float:
        """upper - lower (>= 0), the exploitability of (p_bar, q_bar)."""
        return self.upper - self.lower


def _best_index(
    values: FloatArray, atol: float, generator: np.random.Generator | None
) -> int:
    """argmax with ties (within atol): lowest index, or uniform via ``generator``."""
    ties = np.flatnonzero(values >= values.max() - atol)
    if generator is None or ties.size == 1:
        return int(ties[0])
    return int(ties[generator.integers(ties.size)])


def fictitious_play(
    payoff: ArrayLike,
    iterations: int,
    *,
    alternating: bool = True,
    initial_row: int | None = None,
    initial_col: int | None = None,
    generator: np.random.Generator | None = None,
) -> Iterator[GameIterate]:
    """Fictitious play (Brown 1951; convergence: Robinson 1951): each player best
    responds to the empirical average of the other's past plays.

    With counts c_t (rows) and d_t (columns), at iteration t the defender plays
    i_t = argmax_i (A d_(t-1))_i and the attacker j_t = argmin_j (c_t^T A)_j (alternating,
    the default: the attacker already sees i_t) or (c_(t-1)^T A)_j (simultaneous). The
    averages p_bar = c_t / t, q_bar = d_t / t converge to an equilibrium; the bounds
    min_j (p_bar^T A)_j <= v <= max_i (A q_bar)_i close at rate O(t^(-1/2)) or better in
    practice. Each iteration costs O(m + n) (running sums of rows/columns of A).

    Iteration 1 plays ``initial_row`` (default: the maximin pure row) and ``initial_col``
    (default: the attacker's best response to it, or the minimax pure column when
    simultaneous).

    Args:
        payoff: (m, n) defender payoff.
        iterations: number of iterates to yield (>= 1).
        alternating: attacker responds to the defender's updated average.
        initial_row, initial_col: first pure plays.
        generator: if given, ties between best responses are broken uniformly at random
            with it; otherwise by lowest index (deterministic).

    Yields:
        :class:`GameIterate` for t = 1..iterations (arrays are fresh copies).

    Example:
        >>> rps = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]
        >>> last = list(fictitious_play(rps, 2000))[-1]
        >>> last.exploitability < 0.05
        True
    """
    a = check_payoff(payoff)
    t_max = _check_iterations("iterations", iterations)
    m, n = a.shape
    i0 = None if initial_row is None else _check_index("initial_row", initial_row, m)
    j0 = None if initial_col is None else _check_index("initial_col", initial_col, n)
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise InputError("generator", f"must be a numpy Generator, got {type(generator).__name__}")
    return _fictitious_play(a, t_max, alternating, i0, j0, generator)


def _fictitious_play(
    a: FloatArray,
    t_max: int,
    alternating: bool,
    i0: int | None,
    j0: int | None,
    generator: np.random.Generator | None,
) -> Iterator[GameIterate]:
    m, n = a.shape
    atol = 1e-12 * _scale(a)
    row_counts = np.zeros(m)
    col_counts = np.zeros(n)
    row_sum = np.zeros(n)  # sum of played rows: c_t^T A
    col_sum = np.zeros(m)  # sum of played columns: A d_t
    for t in range(1, t_max + 1):
        if t == 1:
            i = i0 if i0 is not None else _best_index(a.min(axis=1), atol, None)
        else:
            i = _best_index(col_sum / (t - 1), atol, generator)
        if t == 1 and j0 is not None:
            j = j0
        elif alternating:
            j = _best_index(-(row_sum + a[i]) / t, atol, generator)
        elif t == 1:
            j = _best_index(-a.max(axis=0), atol, None)
        else:
            j = _best_index(-row_sum / (t - 1), atol, generator)
        row_counts[i] += 1.0
        col_counts[j] += 1.0
        row_sum += a[i]
        col_sum += a[:, j]
        yield GameIterate(
            t,
            row_counts / t,
            col_counts / t,
            float(row_sum.min() / t),
            float(col_sum.max() / t),
        )


def regret_matching(
    payoff: ArrayLike,
    iterations: int,
    *,
    plus: bool = True,
    alternating: bool = True,
    linear_averaging: bool | None = None,
) -> Iterator[GameIterate]:
    """Regret matching (Hart & Mas-Colell 2000) and regret matching+ (Tammelin 2014).

    Each player keeps cumulative regrets r (one per pure strategy) and plays
    proportionally to their positive part (uniform when all are <= 0). For the defender,
    with u = A q_t: r <- r + u - (p_t . u); RM+ instead clips r at 0 after every update.
    The average strategies p_bar, q_bar converge to an equilibrium, at rate O(t^(-1/2))
    (RM+ with alternating updates and linear averaging -- weights t -- is usually much
    faster in practice). Each iteration costs two matrix-vector products.

    Args:
        payoff: (m, n) defender payoff.
        iterations: number of iterates to yield (>= 1).
        plus: regret matching+ (clip regrets at 0) instead of plain regret matching.
        alternating: the attacker updates against the defender's new strategy.
        linear_averaging: weight iterate t by t in the averages (default: ``plus``).

    Yields:
        :class:`GameIterate` for t = 1..iterations. Deterministic (no randomness).

    Example:
        >>> last = list(regret_matching([[1.0, -1.0], [-1.0, 1.0]], 100))[-1]
        >>> last.exploitability < 1e-2
        True
    """
    a = check_payoff(payoff)
    t_max = _check_iterations("iterations", iterations)
    linear = plus if linear_averaging is None else bool(linear_averaging)
    return _regret_matching(a, t_max, bool(plus), bool(alternating), linear)


def _regret_matching(
    a: FloatArray, t_max: int, plus: bool, alternating: bool, linear: bool
) -> Iterator[GameIterate]:
    m, n = a.shape
    p = np.full(m, 1.0 / m)
    q = np.full(n, 1.0 / n)
    regret_p = np.zeros(m)
    regret_q = np.zeros(n)
    sum_p = np.zeros(m)
    sum_q = np.zeros(n)
    sum_pa = np.zeros(n)  # weighted sum of p_t^T A
    sum_aq = np.zeros(m)  # weighted sum of A q_t
    total = 0.0
    aq = a @ q
    for t in range(1, t_max + 1):
        pa_old = None if alternating else p @ a
        # defender (maximizer) regrets against q_t
        regret_p += aq - p @ aq
        if plus:
            np.maximum(regret_p, 0.0, out=regret_p)
        p = _regret_strategy(regret_p)
        pa = p @ a
        # attacker (minimizer) regrets against p_(t+1) (alternating) or p_t
        against = pa if pa_old is None else pa_old
        regret_q += q @ against - against
        if plus:
            np.maximum(regret_q, 0.0, out=regret_q)
        q = _regret_strategy(regret_q)
        aq = a @ q
        weight = float(t) if linear else 1.0
        total += weight
        sum_p += weight * p
        sum_q += weight * q
        sum_pa += weight * pa
        sum_aq += weight * aq
        yield GameIterate(
            t,
            sum_p / total,
            sum_q / total,
            float(sum_pa.min() / total),
            float(sum_aq.max() / total),
        )


def _regret_strategy(regret: FloatArray) -> FloatArray:
    pos = np.maximum(regret, 0.0)
    s = pos.sum()
    if s > 0:
        return pos / s
    return np.full(regret.shape[0], 1.0 / regret.shape[0])


@dataclass(frozen=True)
class ApproximateEquilibrium:
    """Result of running an iterative solver.

    Attributes:
        value: (lower + upper) / 2, the estimate of the game value.
        defender_strategy: final average p_bar, shape (m,).
        attacker_strategy: final average q_bar, shape (n,).
        lower: min_j (p_bar^T A)_j <= v.
        upper: max_i (A q_bar)_i >= v.
        iterations: recorded iteration numbers, shape (k,) (every ``stride``-th and the last).
        exploitability: upper - lower at those iterations, shape (k,) -- the convergence
            curve.
    """

    value: float
    defender_strategy: FloatArray
    attacker_strategy: FloatArray
    lower: float
    upper: float
    iterations: NDArray[np.int64]
    exploitability: FloatArray


def _run(iterates: Iterator[GameIterate], total: int, stride: int) -> ApproximateEquilibrium:
    steps: list[int] = []
    curve: list[float] = []
    last: GameIterate | None = None
    for it in iterates:
        last = it
        if it.iteration % stride == 0 or it.iteration == total:
            steps.append(it.iteration)
            curve.append(it.exploitability)
    assert last is not None
    return ApproximateEquilibrium(
        value=0.5 * (last.lower + last.upper),
        defender_strategy=last.defender_strategy,
        attacker_strategy=last.attacker_strategy,
        lower=last.lower,
        upper=last.upper,
        iterations=np.asarray(steps, dtype=np.int64),
        exploitability=np.asarray(curve, dtype=np.float64),
    )


def fictitious_play_equilibrium(
    payoff: ArrayLike,
    iterations: int,
    *,
    stride: int = 1,
    alternating: bool = True,
    generator: np.random.Generator | None = None,
) -> ApproximateEquilibrium:
    """Run :func:`fictitious_play` for ``iterations`` steps; record the exploitability
    every ``stride`` steps (and at the last).

    Example:
        >>> res = fictitious_play_equilibrium([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], 1000,
        ...                                   stride=100)
        >>> res.iterations.tolist()[:3], bool(res.exploitability[-1] < 0.05)
        ([100, 200, 300], True)
    """
    total = _check_iterations("iterations", iterations)
    stride = _check_iterations("stride", stride)
    it = fictitious_play(payoff, total, alternating=alternating, generator=generator)
    return _run(it, total, stride)


def regret_matching_equilibrium(
    payoff: ArrayLike,
    iterations: int,
    *,
    stride: int = 1,
    plus: bool = True,
    alternating: bool = True,
    linear_averaging: bool | None = None,
) -> ApproximateEquilibrium:
    """Run :func:`regret_matching` for ``iterations`` steps; record the exploitability
    every ``stride`` steps (and at the last).

    Example:
        >>> res = regret_matching_equilibrium([[1.0, -1.0], [-1.0, 1.0]], 200, stride=50)
        >>> res.iterations.tolist(), bool(abs(res.value) < 1e-2)
        ([50, 100, 150, 200], True)
    """
    total = _check_iterations("iterations", iterations)
    stride = _check_iterations("stride", stride)
    it = regret_matching(
        payoff, total, plus=plus, alternating=alternating, linear_averaging=linear_averaging
    )
    return _run(it, total, stride)
