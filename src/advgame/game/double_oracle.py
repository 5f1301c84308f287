"""Double oracle for zero-sum games whose strategy sets are too large to enumerate.

McMahan, Gordon & Blum (2003), "Planning in the presence of cost functions controlled by
an adversary". The game is only known through three callables:

- ``payoff_fn(row, col) -> float``: the defender's payoff (e.g. accuracy) of a pure pair;
- ``row_oracle(q_mixture) -> row``: a defender best response to the attacker's mixture
  (e.g. a model adversarially trained against the mixture of attacks);
- ``col_oracle(p_mixture) -> col``: an attacker best response to the defender's mixture
  (e.g. a new AttNet trained against the mixed defense).

Strategies are opaque hashable keys. Each iteration solves the restricted game over the
strategies found so far (:func:`advgame.game.solvers.solve_zero_sum`), asks both oracles
for best responses to the restricted equilibrium (p, q), and records the bounds

    lower = sum_i p_i payoff(row_i, col_new) <= v <= sum_j q_j payoff(row_new, col_j) = upper,

which hold for the full game's value v whenever the oracles return exact best responses
(with approximate oracles they are as good as the oracles). It stops when
upper - lower <= tol or when neither oracle returns a new strategy. This is the convergent
counterpart of the "cat and mouse" of attack / retraining (SPEC section 3).

This module is pure Python + numpy: no torch, no I/O.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from advgame.errors import InputError
from advgame.game.solvers import check_payoff, solve_zero_sum

__all__ = [
    "DoubleOracleIteration",
    "DoubleOracleResult",
    "MatrixOracles",
    "double_oracle",
    "matrix_oracles",
]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=Hashable)
C = TypeVar("C", bound=Hashable)
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DoubleOracleIteration(Generic[R, C]):
    """What one double-oracle iteration did (passed to ``callback``).

    Attributes:
        iteration: 1-based iteration number.
        value: value of the restricted game solved at this iteration.
        lower: payoff of the restricted defender mixture against ``new_col`` (<= v).
        upper: payoff of ``new_row`` against the restricted attacker mixture (>= v).
        num_rows, num_cols: sizes of the restricted game that was solved.
        new_row, new_col: the oracles' answers (possibly already known strategies).
    """

    iteration: int
    value: float
    lower: float
    upper: float
    num_rows: int
    num_cols: int
    new_row: R
    new_col: C


@dataclass(frozen=True)
class DoubleOracleResult(Generic[R, C]):
    """Outcome of :func:`double_oracle`.

    Attributes:
        value: value of the last restricted game solved.
        defender_strategy: p over ``rows``, shape (len(rows),).
        attacker_strategy: q over ``cols``, shape (len(cols),).
        rows, cols: the strategies of that restricted game, in the order they were added.
        payoff: its payoff matrix, shape (len(rows), len(cols)).
        values, lower_bounds, upper_bounds: per-iteration restricted values and bounds,
            shape (iterations,).
        converged: True iff the last gap upper - lower is <= tol.
        iterations: number of restricted games solved.
        evaluations: number of ``payoff_fn`` calls (each pure pair is evaluated once).
    """

    value: float
    defender_strategy: FloatArray
    attacker_strategy: FloatArray
    rows: tuple[R, ...]
    cols: tuple[C, ...]
    payoff: FloatArray
    values: FloatArray
    lower_bounds: FloatArray
    upper_bounds: FloatArray
    converged: bool
    iterations: int
    evaluations: int

    @property
    def lower(self) -> float:
        """Last lower bound: what the returned defender mixture guarantees (exact oracle)."""
        return float(self.lower_bounds[-1])

    @property
    def upper(self) -> float:
        """Last upper bound: what the returned attacker mixture concedes at most."""
        return float(self.upper_bounds[-1])

    @property
    def gap(self) -> float:
        """upper - lower at the last iteration."""
        return self.upper - self.lower

    def defender_mixture(self) -> dict[R, float]:
        """The defender's mixture as {row: probability} over its support."""
        return _mixture(self.rows, self.defender_strategy)

    def attacker_mixture(self) -> dict[C, float]:
        """The attacker's mixture as {col: probability} over its support."""
        return _mixture(self.cols, self.attacker_strategy)


def _mixture(keys: Sequence[R], weights: FloatArray) -> dict[R, float]:
    return {k: float(w) for k, w in zip(keys, weights, strict=True) if w > 0}


def _unique_strategies(name: str, values: Iterable[object]) -> list[Hashable]:
    try:
        items = list(values)
    except TypeError as exc:
        raise InputError(name, f"must be a sequence of strategies ({exc})") from exc
    out: list[Hashable] = []
    seen: set[Hashable] = set()
    for v in items:
        try:
            hash(v)
        except TypeError as exc:
            raise InputError(name, f"strategies must be hashable, got {v!r}") from exc
        if v not in seen:
            seen.add(v)
            out.append(v)
    if not out:
        raise InputError(name, "must contain at least one strategy")
    return out


def double_oracle(
    payoff_fn: Callable[[R, C], float],
    row_oracle: Callable[[Mapping[C, float]], R],
    col_oracle: Callable[[Mapping[R, float]], C],
    initial_rows: Sequence[R],
    initial_cols: Sequence[C],
    *,
    tol: float = 1e-6,
    max_iters: int = 50,
    callback: Callable[[DoubleOracleIteration[R, C]], None] | None = None,
) -> DoubleOracleResult[R, C]:
    """Solve a zero-sum game by double oracle (rows = defender, maximizer).

    Iteration k: solve the restricted game on (rows, cols) -> (v_k, p, q); ask
    ``row_oracle(q_mixture)`` and ``col_oracle(p_mixture)`` for best responses r*, c*;
    record lower_k = sum_i p_i A(row_i, c*) and upper_k = sum_j q_j A(r*, col_j); stop
    if upper_k - lower_k <= tol, or if r* and c* are both known already; else add the new
    ones and repeat (at most ``max_iters`` restricted games).

    With exact oracles lower_k <= v <= upper_k for the full game's value v, and the
    returned (p, q) is a tol-equilibrium of the full game when ``converged``. The loop
    terminates after at most |rows| + |cols| iterations on finite games.

    Args:
        payoff_fn: ``payoff_fn(row, col)`` -> defender payoff; called once per pure pair
            (results are cached), only for the pairs the algorithm needs.
        row_oracle: defender best response to ``{col: probability}`` (support only, in the
            order of the restricted strategy list).
        col_oracle: attacker best response to ``{row: probability}``.
        initial_rows, initial_cols: non-empty starting strategies (duplicates dropped).
        tol: stop when upper - lower <= tol (>= 0).
        max_iters: maximal number of restricted games solved (>= 1).
        callback: called with a :class:`DoubleOracleIteration` after every iteration
            (e.g. for progress bars).

    Returns:
        :class:`DoubleOracleResult`.

    Raises:
        InputError: bad arguments, or ``payoff_fn`` returning a non-finite / non-number
            (named ``payoff_fn``), or an oracle returning an unhashable strategy.

    Example:
        >>> import numpy as np
        >>> a = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
        >>> res = double_oracle(*matrix_oracles(a), initial_rows=[0], initial_cols=[0])
        >>> res.converged, abs(res.value) < 1e-9, sorted(res.rows)
        (True, True, [0, 1, 2])
    """
    for name, fn in (("payoff_fn", payoff_fn), ("row_oracle", row_oracle),
                     ("col_oracle", col_oracle)):
        if not callable(fn):
            raise InputError(name, f"must be callable, got {type(fn).__name__}")
    if callback is not None and not callable(callback):
        raise InputError("callback", f"must be callable or None, got {type(callback).__name__}")
    rows: list[R] = _unique_strategies("initial_rows", initial_rows)  # type: ignore[assignment]
    cols: list[C] = _unique_strategies("initial_cols", initial_cols)  # type: ignore[assignment]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) \
            or tol < 0:
        raise InputError("tol", f"must be a finite number >= 0, got {tol!r}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise InputError("max_iters", f"must be an integer >= 1, got {max_iters!r}")

    cache: dict[tuple[R, C], float] = {}

    def cell(r: R, c: C) -> float:
        key = (r, c)
        if key not in cache:
            value = payoff_fn(r, c)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(float(value)):
                raise InputError(
                    "payoff_fn", f"must return a finite number, got {value!r} for ({r!r}, {c!r})"
                )
            cache[key] = float(value)
        return cache[key]

    def checked(name: str, strategy: object) -> object:
        try:
            hash(strategy)
        except TypeError as exc:
            raise InputError(name, f"must return a hashable strategy, got {strategy!r}") from exc
        return strategy

    values: list[float] = []
    lowers: list[float] = []
    uppers: list[float] = []
    converged = False
    while True:
        matrix = np.array([[cell(r, c) for c in cols] for r in rows], dtype=np.float64)
        value, p, q = solve_zero_sum(matrix)
        p_mix = _mixture(rows, p)
        q_mix = _mixture(cols, q)
        new_row: R = checked("row_oracle", row_oracle(q_mix))  # type: ignore[assignment]
        new_col: C = checked("col_oracle", col_oracle(p_mix))  # type: ignore[assignment]
        upper = float(sum(w * cell(new_row, c) for c, w in q_mix.items()))
        lower = float(sum(w * cell(r, new_col) for r, w in p_mix.items()))
        values.append(value)
        lowers.append(lower)
        uppers.append(upper)
        iteration = len(values)
        logger.debug(
            "double oracle %d: %d x %d, value %.6g, bounds [%.6g, %.6g]",
            iteration, len(rows), len(cols), value, lower, upper,
        )
        if callback is not None:
            callback(DoubleOracleIteration(
                iteration, value, lower, upper, len(rows), len(cols), new_row, new_col
            ))
        if upper - lower <= tol:
            converged = True
            break
        grew = new_row not in rows or new_col not in cols
        if not grew or iteration >= max_iters:
            break
        if new_row not in rows:
            rows.append(new_row)
        if new_col not in cols:
            cols.append(new_col)

    return DoubleOracleResult(
        value=value,
        defender_strategy=p,
        attacker_strategy=q,
        rows=tuple(rows),
        cols=tuple(cols),
        payoff=matrix,
        values=np.asarray(values),
        lower_bounds=np.asarray(lowers),
        upper_bounds=np.asarray(uppers),
        converged=converged,
        iterations=len(values),
        evaluations=len(cache),
    )


class MatrixOracles(NamedTuple):
    """Exact oracles of a known matrix game over strategy indices (for tests and demos);
    unpacks as ``(payoff_fn, row_oracle, col_oracle)`` for :func:`double_oracle`."""

    payoff_fn: Callable[[int, int], float]
    row_oracle: Callable[[Mapping[int, float]], int]
    col_oracle: Callable[[Mapping[int, float]], int]


def matrix_oracles(payoff: ArrayLike) -> MatrixOracles:
    """Oracles for the matrix game A: strategies are row / column indices.

    ``row_oracle(q)`` = argmax_i (A q)_i and ``col_oracle(p)`` = argmin_j (p^T A)_j over
    the *full* matrix, ties to the lowest index (within 1e-12 of the payoff range).

    Shapes: payoff (m, n); rows are ints in [0, m), columns ints in [0, n).

    Example:
        >>> payoff_fn, row_oracle, col_oracle = matrix_oracles([[3.0, 0.0], [1.0, 2.0]])
        >>> payoff_fn(0, 1), row_oracle({1: 1.0}), col_oracle({0: 0.5, 1: 0.5})
        (0.0, 1, 1)
    """
    a = check_payoff(payoff)
    m, n = a.shape
    atol = 1e-12 * max(float(a.max() - a.min()), 1e-300)

    def payoff_fn(row: int, col: int) -> float:
        return float(a[row, col])

    def row_oracle(q_mixture: Mapping[int, float]) -> int:
        q = np.zeros(n)
        for j, w in q_mixture.items():
            q[j] += w
        u = a @ q
        return int(np.flatnonzero(u >= u.max() - atol)[0])

    def col_oracle(p_mixture: Mapping[int, float]) -> int:
        p = np.zeros(m)
        for i, w in p_mixture.items():
            p[i] += w
        u = p @ a
        return int(np.flatnonzero(u <= u.min() + atol)[0])

    return MatrixOracles(payoff_fn, row_oracle, col_oracle)
