"""Solvers for finite two-player zero-sum games given as a payoff matrix.

Convention (used everywhere in :mod:`advgame.game`): ``payoff`` is an (m, n) array whose
rows are the **defender**'s pure strategies (the maximizer), whose columns are the
**attacker**'s pure strategies (the minimizer), and whose entry ``A[i, j]`` is the
defender's payoff (e.g. accuracy) when row i meets column j. A mixed strategy is a
probability vector: p of shape (m,) for the defender, q of shape (n,) for the attacker.
The defender's expected payoff is ``p @ A @ q``.

By the minimax theorem (von Neumann, 1928)

    max_p min_q p^T A q  =  v  =  min_q max_p p^T A q,

and (p*, q*) is an equilibrium iff ``min_j (p*^T A)_j = v = max_i (A q*)_i``.

Contents:

- :func:`solve_zero_sum` -- an exact equilibrium by linear programming (HiGHS through
  :func:`scipy.optimize.linprog`), with a faster interior-point + support route for large
  matrices whose answer is checked by an equilibrium certificate.
- :func:`exploitability`, :func:`best_response_row`, :func:`best_response_col`.
- the iterative dynamics (fictitious play, regret matching) are in
  :mod:`advgame.game.dynamics`.

This module imports numpy and scipy only (never torch).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import Iterator
from typing import Literal, NamedTuple

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.linalg.lapack
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog
from threadpoolctl import ThreadpoolController

from advgame.errors import InputError

__all__ = [
    "ZeroSumSolution",
    "best_response_col",
    "best_response_row",
    "check_payoff",
    "check_strategy",
    "exploitability",
    "solve_zero_sum",
]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
Method = Literal["auto", "highs", "interior-point"]

# Above this many cells (min(m, n) >= _AUTO_MIN_SIDE as well) "auto" takes the
# interior-point route; below it one HiGHS solve is as fast.
_AUTO_MIN_SIDE = 64
# Up to this min(m, n) the solver limits BLAS to one thread (blas_threads=None): its
# interior point makes a few dozen small BLAS calls per iteration, which one thread does
# faster than several, and a lot faster when the machine is busy. Measured with
# benchmarks/game.py on 2 cores: 800x800 0.23 s with one thread against 0.42 s with two
# (1.5 s with the other core busy); 1600x1600 1.9 s against 2.6 s. Above it the caller's
# setting stands, where several threads may pay off for the large normal matrix.
_SINGLE_THREAD_MAX_SIDE = 2048
# Tolerance on the sum of a user-given mixed strategy, and on its negative entries.
_STRATEGY_ATOL = 1e-6


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def check_payoff(payoff: object, name: str = "payoff") -> FloatArray:
    """Check a payoff matrix: real, finite, 2-D, with at least one row and one column.

    Args:
        payoff: array-like of shape (m, n) (lists, numpy arrays, CPU tensors).
        name: argument name used in the error message.

    Returns:
        The matrix as a float64 numpy array of shape (m, n).

    Raises:
        InputError: naming ``name`` when the matrix is not 2-D, empty, not real, or
            contains NaN/inf.

    Example:
        >>> check_payoff([[1, 0], [0, 1]]).dtype
        dtype('float64')
    """
    try:
        arr = np.asarray(payoff)
    except Exception as exc:  # ragged lists and other non-arrays
        raise InputError(name, f"must be a 2-D array of numbers ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise InputError(name, f"must contain real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InputError(name, f"must be a 2-D array (m, n), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(name, f"must not be empty, got shape {arr.shape}")
    out = np.array(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise InputError(name, "contains NaN or inf values")
    return out


def check_strategy(value: object, size: int, name: str) -> FloatArray:
    """Check a mixed strategy: a finite probability vector of shape (size,).

    Entries may be negative or sum away from 1 by at most 1e-6 (rounding); the returned
    vector is clipped to >= 0 and renormalized, so it is an exact probability vector.

    Example:
        >>> check_strategy([0.25, 0.75], 2, "p").tolist()
        [0.25, 0.75]
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(name, f"must be a 1-D array of probabilities ({exc})") from exc
    if arr.ndim != 1:
        raise InputError(name, f"must be a 1-D probability vector, got shape {arr.shape}")
    if arr.shape[0] != size:
        raise InputError(name, f"must have {size} entries to match the payoff, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise InputError(name, "contains NaN or inf values")
    if arr.min() < -_STRATEGY_ATOL:
        raise InputError(name, f"must be >= 0, got minimum {arr.min():.3g}")
    total = float(arr.sum())
    if abs(total - 1.0) > _STRATEGY_ATOL:
        raise InputError(name, f"must sum to 1, got {total:.9g}")
    return _to_distribution(arr)


def _check_iterations(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(name, f"must be an integer, got {type(value).__name__}")
    if value < 1:
        raise InputError(name, f"must be >= 1, got {value}")
    return int(value)


def _check_tolerance(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise InputError(name, f"must be a number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise InputError(name, f"must be a finite number >= 0, got {value}")
    return v


def _check_index(name: str, value: object, size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(name, f"must be an integer index, got {type(value).__name__}")
    if not 0 <= value < size:
        raise InputError(name, f"must be in [0, {size - 1}], got {value}")
    return int(value)


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _to_distribution(w: FloatArray) -> FloatArray:
    """Clip tiny negatives (and relative noise below 1e-13) to 0 and renormalize."""
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    total = w.sum()
    if not total > 0 or not np.isfinite(total):
        raise ArithmeticError("cannot normalize a zero or non-finite weight vector")
    w = np.where(w < 1e-13 * total, 0.0, w)
    return w / w.sum()


def _pure(index: int, size: int) -> FloatArray:
    e = np.zeros(size)
    e[index] = 1.0
    return e


def _first_argmax(values: FloatArray, atol: float) -> int:
    """Lowest index whose value is within ``atol`` of the maximum."""
    return int(np.flatnonzero(values >= values.max() - atol)[0])


def _scale(a: FloatArray) -> float:
    """Payoff range used to make tolerances relative; never 0."""
    return max(float(a.max() - a.min()), float(np.abs(a).max()) * 1e-12, 1e-300)


# --------------------------------------------------------------------------------------
# Best responses and exploitability
# --------------------------------------------------------------------------------------


def best_response_row(payoff: ArrayLike, q: ArrayLike, *, atol: float = 1e-12) -> int:
    """The defender's pure best response to the attacker's mixed strategy q.

    Returns argmax_i (A q)_i; among rows within ``atol * range(A)`` of the maximum, the
    lowest index (deterministic tie-breaking).

    Shapes: payoff (m, n), q (n,) -> int in [0, m).

    Example:
        >>> best_response_row([[1.0, 0.0], [0.0, 1.0]], [0.5, 0.5])
        0
    """
    a = check_payoff(payoff)
    qv = check_strategy(q, a.shape[1], "q")
    return _first_argmax(a @ qv, atol * _scale(a))


def best_response_col(payoff: ArrayLike, p: ArrayLike, *, atol: float = 1e-12) -> int:
    """The attacker's pure best response to the defender's mixed strategy p.

    Returns argmin_j (p^T A)_j; among columns within ``atol * range(A)`` of the minimum,
    the lowest index.

    Shapes: payoff (m, n), p (m,) -> int in [0, n).

    Example:
        >>> best_response_col([[1.0, 0.0], [0.0, 1.0]], [0.9, 0.1])
        1
    """
    a = check_payoff(payoff)
    pv = check_strategy(p, a.shape[0], "p")
    return _first_argmax(-(pv @ a), atol * _scale(a))


def exploitability(payoff: ArrayLike, p: ArrayLike, q: ArrayLike) -> float:
    """Duality gap of a strategy pair: max_i (A q)_i - min_j (p^T A)_j.

    ``min_j (p^T A)_j`` is the payoff the defender guarantees with p (a lower bound on the
    value v) and ``max_i (A q)_i`` the payoff the attacker concedes at most with q (an
    upper bound), so the gap is >= 0 and is 0 exactly at an equilibrium (up to rounding).

    Shapes: payoff (m, n), p (m,), q (n,) -> float.

    Example:
        >>> exploitability([[1.0, -1.0], [-1.0, 1.0]], [0.5, 0.5], [0.5, 0.5])
        0.0
        >>> exploitability([[1.0, -1.0], [-1.0, 1.0]], [1.0, 0.0], [0.5, 0.5])
        1.0
    """
    a = check_payoff(payoff)
    pv = check_strategy(p, a.shape[0], "p")
    qv = check_strategy(q, a.shape[1], "q")
    return _gap(a, pv, qv)


def _gap(a: FloatArray, p: FloatArray, q: FloatArray) -> float:
    return max(float((a @ q).max() - (p @ a).min()), 0.0)


# --------------------------------------------------------------------------------------
# Exact solution by linear programming
# --------------------------------------------------------------------------------------


class ZeroSumSolution(NamedTuple):
    """An equilibrium of a zero-sum matrix game; unpacks as ``(value, p, q)``.

    Attributes:
        value: the game value v = p^T A q (defender payoff).
        defender_strategy: p, shape (m,), a probability vector (maximin strategy).
        attacker_strategy: q, shape (n,), a probability vector (minimax strategy).
    """

    value: float
    defender_strategy: FloatArray
    attacker_strategy: FloatArray


def solve_zero_sum(
    payoff: ArrayLike,
    *,
    method: Method = "auto",
    tol: float = 1e-9,
    blas_threads: int | None = None,
) -> ZeroSumSolution:
    """Exact mixed Nash equilibrium of a zero-sum matrix game (rows maximize).

    The payoff is mapped affinely to B = 1 + (A - min A) / (max A - min A), whose entries
    lie in [1, 2] (equilibria are invariant under this map), and the standard LP pair is
    solved:

        attacker:  max 1^T y  s.t.  B y <= 1, y >= 0;   q = y / 1^T y
        defender:  min 1^T x  s.t.  B^T x >= 1, x >= 0; p = x / 1^T x

    with value(B) = 1 / 1^T y = 1 / 1^T x. Both strategies come from **one** HiGHS solve:
    y is the primal solution and x the duals (marginals) of ``B y <= 1``.

    Methods:
        ``"highs"``: the LP above with ``scipy.optimize.linprog(method="highs")``.
        ``"interior-point"``: a dense primal-dual interior-point method (Mehrotra
            predictor-corrector, normal equations by Cholesky) on the same LP identifies
            the supports R, C of the equilibrium; the square system
            ``B[R, C] q_C = v 1, 1^T q_C = 1`` (and its transpose for p) is solved exactly
            and the pair is accepted only if it is an equilibrium of the *full* game
            (p, q >= 0 and exploitability <= tol * range(A)). Without a certificate
            (degenerate games: non-square or singular supports), HiGHS solves the game
            restricted to the candidate supports, adding every violated best response
            until none is left (at worst this is the full LP). On 800x800 random games
            about 12x faster than one HiGHS solve and 40x faster than nashpy (see
            benchmarks/BENCHMARKS.md).
        ``"auto"`` (default): ``"interior-point"`` when min(m, n) >= 64, else
            ``"highs"``.

    Threads: the interior-point route makes a few dozen small BLAS calls per iteration,
    which one thread does faster than several (and far faster when other processes keep
    the cores busy, where multi-threaded OpenBLAS spins). So by default
    (``blas_threads=None``) the solver limits numpy's and scipy's BLAS to one thread for
    its own work when min(m, n) <= 2048, whatever the caller's environment
    (``OPENBLAS_NUM_THREADS``, ``threadpoolctl``), and restores the caller's setting on
    return; larger games use the caller's setting. An integer sets the limit for the
    solve instead. HiGHS itself runs on one thread.

    Games with a pure saddle point (max_i min_j A_ij == min_j max_i A_ij) are answered
    directly with the lowest-index saddle point. Results are deterministic; when the
    equilibrium is not unique, the returned one is a basic (vertex) or support-solve
    solution of the LP, the same on every call.

    Args:
        payoff: (m, n) defender payoff; rows = defender, columns = attacker.
        method: ``"auto"``, ``"highs"`` or ``"interior-point"``.
        tol: accepted exploitability, relative to the payoff range, of the interior-point
            certificate (HiGHS answers are vertex solutions found with feasibility
            tolerances 1e-10, then polished on their support).
        blas_threads: BLAS threads during the solve: ``None`` (default) = one thread up to
            min(m, n) = 2048 and the caller's setting above; an integer >= 1 = that many.

    Returns:
        ``ZeroSumSolution(value, defender_strategy (m,), attacker_strategy (n,))``;
        strategies are probability vectors (>= 0, sum 1).

    Example:
        >>> v, p, q = solve_zero_sum([[1.0, -1.0], [-1.0, 1.0]])   # matching pennies
        >>> round(v, 12), p.tolist(), q.tolist()
        (0.0, [0.5, 0.5], [0.5, 0.5])
    """
    a = check_payoff(payoff)
    if method not in ("auto", "highs", "interior-point"):
        raise InputError("method", f"must be 'auto', 'highs' or 'interior-point', got {method!r}")
    tol = _check_tolerance("tol", tol)
    if blas_threads is not None:
        blas_threads = _check_iterations("blas_threads", blas_threads)
    m, n = a.shape
    if blas_threads is None and min(m, n) <= _SINGLE_THREAD_MAX_SIDE:
        blas_threads = 1
    with _blas_limit(blas_threads):
        return _solve_zero_sum(a, method, tol)


def _solve_zero_sum(a: FloatArray, method: Method, tol: float) -> ZeroSumSolution:
    m, n = a.shape
    saddle = _pure_saddle_point(a)
    if saddle is not None:
        i, j = saddle
        return ZeroSumSolution(float(a[i, j]), _pure(i, m), _pure(j, n))

    lo, hi = float(a.min()), float(a.max())
    b = 1.0 + (a - lo) / (hi - lo)  # hi > lo: a constant matrix has a saddle point
    if method == "auto":
        method = "interior-point" if min(m, n) >= _AUTO_MIN_SIDE else "highs"
    if method == "highs":
        p, q = _highs_equilibrium(b)
    else:
        p, q = _interior_point_equilibrium(b, tol)
    return ZeroSumSolution(float(p @ a @ q), p, q)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The BLAS libraries loaded with numpy and scipy (found once: a scan costs ~0.5 ms)."""
    return ThreadpoolController()


@contextlib.contextmanager
def _blas_limit(threads: int | None) -> Iterator[None]:
    """Limit numpy's and scipy's BLAS to ``threads`` inside the block (None = leave)."""
    if threads is None:
        yield
        return
    with _blas_controller().limit(limits=threads, user_api="blas"):
        yield


def _pure_saddle_point(a: FloatArray) -> tuple[int, int] | None:
    """Lowest-index (i, j) with A[i, j] = max_i min_j A = min_j max_i A, if any."""
    row_min = a.min(axis=1)
    col_max = a.max(axis=0)
    lower, upper = row_min.max(), col_max.min()
    if lower < upper:
        return None
    return int(np.argmax(row_min)), int(np.argmin(col_max))


def _highs_equilibrium(b: FloatArray) -> tuple[FloatArray, FloatArray]:
    """One HiGHS solve of max 1^T y s.t. B y <= 1, y >= 0 (B > 0); p from the duals,
    polished on its support."""
    m, n = b.shape
    res = linprog(
        -np.ones(n),
        A_ub=b,
        b_ub=np.ones(m),
        bounds=(0, None),
        method="highs",
        # HiGHS' default tolerances (1e-7) can miss payoff differences of that size.
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"HiGHS failed on the game LP: {res.message}")
    y = np.asarray(res.x, dtype=np.float64)
    x = -np.asarray(res.ineqlin.marginals, dtype=np.float64)
    p, q = _to_distribution(x), _to_distribution(y)
    # Polish: HiGHS meets its feasibility tolerances (1e-7); re-solving the equalizing
    # system on the same (square) supports removes that error when it is an equilibrium.
    polished = _support_equilibrium(b, np.flatnonzero(p), np.flatnonzero(q))
    if polished is not None and _gap(b, *polished) <= _gap(b, p, q):
        return polished
    return p, q


def _interior_point_equilibrium(b: FloatArray, tol: float) -> tuple[FloatArray, FloatArray]:
    """Interior point -> support -> exact square solve, certified; HiGHS fallback."""
    m, n = b.shape
    if m > n:
        # Work on the side with the smaller normal matrix: the attacker's game -A^T, mapped
        # to [1, 2] as 3 - B^T, has the same equilibria with the roles swapped.
        q, p = _interior_point_equilibrium(3.0 - b.T, tol)
        return p, q
    atol = tol  # b has range exactly 1
    ipm = _InteriorPoint(b)
    for gap in ipm.iterate():
        if gap > 1e-6:
            continue
        pair = _certified_support_equilibrium(b, ipm.row_ratio(), ipm.col_ratio(), atol)
        if pair is not None:
            logger.debug("interior point: certified after %d iterations", ipm.iterations)
            return pair
    logger.debug(
        "interior point: no certificate after %d iterations; restricted HiGHS", ipm.iterations
    )
    rows = np.flatnonzero(ipm.row_ratio() >= 1e-3)
    cols = np.flatnonzero(ipm.col_ratio() >= 1e-3)
    return _restricted_highs_equilibrium(b, rows, cols, atol)


def _certified_support_equilibrium(
    b: FloatArray, row_ratio: FloatArray, col_ratio: FloatArray, atol: float
) -> tuple[FloatArray, FloatArray] | None:
    """Guess square supports from complementarity ratios (x_i / s_i for rows, y_j / z_j
    for columns: > 1 in the support, -> 0 outside) and return the support solution if it
    is an equilibrium of the full game within ``atol``."""
    row_order = np.argsort(-row_ratio, kind="stable")
    col_order = np.argsort(-col_ratio, kind="stable")
    sizes = sorted({int((row_ratio > 1).sum()), int((col_ratio > 1).sum())})
    for k in sizes:
        rows = np.sort(row_order[:k])
        cols = np.sort(col_order[:k])
        pair = _support_equilibrium(b, rows, cols)
        if pair is not None and _gap(b, *pair) <= atol:
            return pair
    return None


def _support_equilibrium(
    b: FloatArray, rows: NDArray[np.intp], cols: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray] | None:
    """Solve the equalizing system on a square support; None when it is not an equilibrium
    candidate (non-square, singular, or with negative probabilities).

    With S = B[rows, cols] (k, k): S q_C = v 1, 1^T q_C = 1 and S^T p_R = v 1, 1^T p_R = 1.
    """
    k = rows.size
    if k == 0 or cols.size != k:
        return None
    s = b[np.ix_(rows, cols)]
    rhs = np.zeros(k + 1)
    rhs[k] = 1.0
    out = []
    for mat in (s, s.T):
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = mat
        kkt[:k, k] = -1.0
        kkt[k, :k] = 1.0
        try:
            with warnings.catch_warnings():  # singular supports are rejected below
                warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                sol = scipy.linalg.solve(kkt, rhs, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return None
        w = sol[:k]
        if not np.isfinite(w).all() or w.min() < -1e-9:
            return None
        out.append(w)
    q_c, p_r = out
    p = np.zeros(b.shape[0])
    q = np.zeros(b.shape[1])
    p[rows] = p_r
    q[cols] = q_c
    try:
        return _to_distribution(p), _to_distribution(q)
    except ArithmeticError:
        return None


def _restricted_highs_equilibrium(
    b: FloatArray, rows: NDArray[np.intp], cols: NDArray[np.intp], atol: float
) -> tuple[FloatArray, FloatArray]:
    """HiGHS on the game restricted to candidate rows/columns, adding every violated best
    response (row and column generation) until nothing outside is better by > atol."""
    m, n = b.shape
    rows = rows if rows.size else np.arange(m)
    cols = cols if cols.size else np.arange(n)
    while True:
        sub = b[np.ix_(rows, cols)]
        p_r, q_c = _highs_equilibrium(sub)
        v = float(p_r @ sub @ q_c)
        in_rows = np.zeros(m, dtype=bool)
        in_rows[rows] = True
        in_cols = np.zeros(n, dtype=bool)
        in_cols[cols] = True
        new_rows = np.flatnonzero((b[:, cols] @ q_c > v + atol) & ~in_rows)
        new_cols = np.flatnonzero((p_r @ b[rows, :] < v - atol) & ~in_cols)
        if new_rows.size == 0 and new_cols.size == 0:
            p = np.zeros(m)
            q = np.zeros(n)
            p[rows] = p_r
            q[cols] = q_c
            return _to_distribution(p), _to_distribution(q)
        rows = np.sort(np.concatenate([rows, new_rows]))
        cols = np.sort(np.concatenate([cols, new_cols]))


class _InteriorPoint:
    """Dense primal-dual interior point (Mehrotra predictor-corrector) for

        primal: max 1^T y  s.t.  B y + s = 1,      y, s >= 0    (B: (m, n), m <= n)
        dual:   min 1^T x  s.t.  B^T x - z = 1,    x, z >= 0

    The Newton system is reduced to the (m, m) normal equations
    (B diag(y/z) B^T + diag(s/x)) dx = r, formed by one BLAS syrk and factored by one
    LAPACK potrf per iteration. At the optimum y_j z_j = 0 and s_i x_i = 0; strictly
    complementary limits make x_i / s_i -> inf on the defender's support and -> 0 off it
    (likewise y_j / z_j for the attacker).
    """

    def __init__(self, b: FloatArray, max_iterations: int = 50) -> None:
        self.b = b
        self.max_iterations = max_iterations
        self.iterations = 0
        m, n = b.shape
        mean = float(b.mean())
        # An interior start near the centre of both feasible sets (B >= 1 elementwise).
        self.y = np.full(n, 0.5 / (n * mean))
        self.s = 1.0 - b @ self.y
        self.x = np.full(m, 2.0 / (m * mean))
        self.z = np.maximum(b.T @ self.x - 1.0, 0.5)

    def row_ratio(self) -> FloatArray:
        return self.x / self.s

    def col_ratio(self) -> FloatArray:
        return self.y / self.z

    def iterate(self) -> Iterator[float]:
        """Take Newton steps; yield the relative duality gap after each. Stops at
        max_iterations, at gap < 1e-12, or when the normal matrix loses definiteness."""
        while self.iterations < self.max_iterations:
            if not self._step():
                return
            self.iterations += 1
            primal, dual = float(self.y.sum()), float(self.x.sum())
            gap = abs(dual - primal) / primal
            yield gap
            if gap < 1e-12:
                return

    def _step(self) -> bool:
        b = self.b
        m, n = b.shape
        y, s, x, z = self.y, self.s, self.x, self.z
        rp = 1.0 - b @ y - s  # primal residual, (m,)
        rd = b.T @ x - z - 1.0  # dual residual, (n,)
        mu = (y @ z + s @ x) / (m + n)
        d1 = z / y
        d2 = s / x
        bs = b * np.sqrt(y / z)
        normal = scipy.linalg.blas.dsyrk(1.0, bs.T, trans=1, lower=0)  # B diag(y/z) B^T
        normal[np.diag_indices(m)] += d2
        factor, info = scipy.linalg.lapack.dpotrf(normal, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            return False

        def newton(
            ryz: FloatArray, rsx: FloatArray
        ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
            h = -rd + ryz / y
            g = rp - rsx / x
            rhs = b @ (h / d1) - g
            dx = scipy.linalg.cho_solve((factor, False), rhs, check_finite=False)
            dy = (h - b.T @ dx) / d1
            return dy, (rsx - s * dx) / x, dx, (ryz - z * dy) / y

        dy, ds, dx, dz = newton(-y * z, -s * x)  # affine-scaling predictor
        ap = min(_max_step(y, dy), _max_step(s, ds))
        ad = min(_max_step(x, dx), _max_step(z, dz))
        mu_aff = ((y + ap * dy) @ (z + ad * dz) + (s + ap * ds) @ (x + ad * dx)) / (m + n)
        sigma = (mu_aff / mu) ** 3
        dy, ds, dx, dz = newton(sigma * mu - y * z - dy * dz, sigma * mu - s * x - ds * dx)
        ap = 0.995 * min(_max_step(y, dy), _max_step(s, ds))
        ad = 0.995 * min(_max_step(x, dx), _max_step(z, dz))
        new = (y + ap * dy, s + ap * ds, x + ad * dx, z + ad * dz)
        if not all(np.isfinite(v).all() and v.min() > 0 for v in new):
            return False
        self.y, self.s, self.x, self.z = new
        return True


def _max_step(v: FloatArray, dv: FloatArray) -> float:
    """Largest alpha in (0, 1] keeping v + alpha dv >= 0."""
    neg = dv < 0
    if not neg.any():
        return 1.0
    return min(1.0, float(np.min(-v[neg] / dv[neg])))
