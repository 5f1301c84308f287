"""The normalized maximum-feasible-subsystem problem, its result type and the exact
feasibility oracles (is a set of rows jointly satisfiable in the ball?).

Rows a_i . v > c_i over ||v||_q <= eps_d become a_hat_i . u > gamma_i over the unit q-ball
(see :func:`advgame.defenses.additive.max_feasible_shift`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linprog, nnls

from advgame.threat import Norm

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ShiftResult:
    """Outcome of :func:`max_feasible_shift`.

    Attributes:
        v: (d,) the shift found, ``||v||_q <= eps_d``.
        count: ``#{i : a_i . v > c_i}`` at ``v`` (exact strict test, float64).
        n: number of constraints (data points).
        count_at_zero: the count at ``v = 0`` ("no defense"): ``#{i : c_i < 0}``.
        method: ``"exact"`` or ``"fast"``.
        solver: what ran: ``"trivial"`` (nothing to optimize), ``"sweep-1d"`` (all rows
            collinear, as for a linear classifier: exact), ``"milp"`` (q = inf),
            ``"milp+tangent-cuts"`` (q = 2) or ``"surrogate+lns"`` (fast).
        status: ``"optimal"`` (proven, for the margin-``tol`` problem), ``"time_limit"``,
            ``"round_limit"`` (q = 2 cutting planes stopped early; v is the incumbent
            projected onto the ball), or ``"heuristic"`` (fast method; no proof).
        upper_bound: a proven upper bound on the maximal count (margin-``tol`` problem):
            the MILP dual bound plus the always-satisfied rows; None for ``fast``.
        gap: ``max(0, upper_bound - count) / max(upper_bound, 1)``; None without a bound.
        time_s: wall-clock seconds.
        maximizers: distinct shifts found with the best count (each (d,)), ``v`` first.
            The uniform distribution over them is a mixed equilibrium strategy.
        approximation_error: q = 2 exact only: the count of the last MILP incumbent on the
            polyhedral outer set minus the count realized in the true ball (0 when the
            method certified its answer); None otherwise.
        tol: the normalized margin used for the strict inequalities.
        info: extra figures (active rows, MILP rounds, surrogate counts, ...).
        clean_count: with a count constraint (``clean_c``, ``min_clean``):
            ``#{i : a_i . v > clean_c_i}`` at ``v``; None without one.
        clean_required: the constraint's ``min_clean``; None without one.

    Example:
        >>> from advgame.defenses.additive import max_feasible_shift
        >>> r = max_feasible_shift(np.array([[1.0], [-1.0]]), np.array([0.5, 0.5]), 1.0,
        ...                        "inf", "exact")
        >>> r.count, r.count_at_zero, r.status
        (1, 0, 'optimal')
    """

    v: FloatArray
    count: int
    n: int
    count_at_zero: int
    method: str
    solver: str
    status: str
    upper_bound: float | None
    gap: float | None
    time_s: float
    maximizers: tuple[FloatArray, ...]
    approximation_error: int | None = None
    tol: float = 1e-6
    info: dict[str, float | int | str] = field(default_factory=dict)
    clean_count: int | None = None
    clean_required: int | None = None

    @property
    def constraint_satisfied(self) -> bool:
        """Whether the count constraint holds at v (True without a constraint)."""
        return self.clean_required is None or (self.clean_count or 0) >= self.clean_required

    @property
    def value(self) -> float:
        """Fraction of satisfied constraints at v (the defended accuracy)."""
        return self.count / self.n

    @property
    def value_at_zero(self) -> float:
        """Fraction satisfied at v = 0 (no defense)."""
        return self.count_at_zero / self.n


# --------------------------------------------------------------------------------------
# the normalized problem
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Active rows in normalized units: a_hat_i . u > gamma_i over the unit q-ball.

    a_hat_i = a_i / ||a_i||_{q*} (so max over the unit ball of a_hat_i . u is 1),
    gamma_i = c_i / (eps_d ||a_i||_{q*}), u = v / eps_d. Rows with gamma_i < -1 hold
    everywhere in the ball (``n_always``), rows with gamma_i >= 1 nowhere; only
    -1 <= gamma_i < 1 remain.
    """

    a_hat: FloatArray  # (m, d)
    gamma: FloatArray  # (m,)
    n_always: int
    norm: Norm


def _dual_norm_rows(a: FloatArray, norm: Norm) -> FloatArray:
    if norm == "inf":
        return np.abs(a).sum(axis=1)
    return np.linalg.norm(a, axis=1)


def _normalize(a: FloatArray, c: FloatArray, eps_d: float, norm: Norm) -> _Problem:
    dn = _dual_norm_rows(a, norm)
    reach = eps_d * dn  # max over the ball of a_i . v
    always = c < -reach
    never = c >= reach
    active = ~(always | never)
    a_hat = a[active] / dn[active, None]
    gamma = c[active] / reach[active]
    return _Problem(np.ascontiguousarray(a_hat), gamma, int(always.sum()), norm)


def _count(a: FloatArray, c: FloatArray, v: FloatArray) -> int:
    return int(np.count_nonzero(a @ v > c))


def _project(u: FloatArray, norm: Norm) -> FloatArray:
    """Projection onto the unit q-ball, column-wise for a (d, R) matrix."""
    if norm == "inf":
        return np.clip(u, -1.0, 1.0)
    nrm = np.linalg.norm(u, axis=0)
    return u / np.maximum(nrm, 1.0)


def _steepest(g: FloatArray, norm: Norm) -> FloatArray:
    """argmax over the unit q-ball of g . u, column-wise: sign(g) or g / ||g||_2."""
    if norm == "inf":
        return np.sign(g)
    nrm = np.linalg.norm(g, axis=0)
    return g / np.maximum(nrm, np.finfo(g.dtype).tiny)


def _pattern_key(mask: NDArray[np.bool_]) -> bytes:
    return np.packbits(mask).tobytes()


@dataclass(frozen=True)
class _CountConstraint:
    """At least ``need`` of the active rows of ``rows`` hold: #{j : a0_j . u > g0_j} >= need.

    ``rows`` is the normalized problem of the constraint's rows (the clean margins of the
    game: a_i . v > -m_i); its always-satisfied rows are already subtracted from the
    user's ``required`` count, so 1 <= need <= rows.a_hat.shape[0].
    """

    rows: _Problem
    need: int
    required: int

    def count(self, u: FloatArray) -> NDArray[np.int64]:
        """Active rows satisfied at u (d,) or at each column of u (d, R)."""
        return np.asarray(np.count_nonzero(
            (self.rows.a_hat @ u).T > self.rows.gamma, axis=-1), dtype=np.int64)

    def holds(self, u: FloatArray) -> bool:
        return bool(self.count(u) >= self.need)


def _stack(prob: _Problem, con: _CountConstraint) -> _Problem:
    """The objective rows followed by the constraint's rows, as one problem (for the
    feasibility oracles, which then keep both satisfied sets)."""
    return _Problem(np.vstack([prob.a_hat, con.rows.a_hat]),
                    np.r_[prob.gamma, con.rows.gamma], prob.n_always, prob.norm)


def _threshold_counts(alpha: FloatArray, beta: FloatArray, t: FloatArray) -> NDArray[np.int64]:
    """#{i : alpha_i + t beta_i > 0} at each t (sorted thresholds, no (m, len(t)) matrix)."""
    pos, neg, flat = beta > 0, beta < 0, beta == 0
    up = np.sort(-alpha[pos] / beta[pos])  # holds for t > up
    down = np.sort(-alpha[neg] / beta[neg])  # holds for t < down
    return np.asarray(np.searchsorted(up, t, side="left")
                      + (down.size - np.searchsorted(down, t, side="right"))
                      + int(np.count_nonzero(alpha[flat] > 0)), dtype=np.int64)


def _segment_search(
    prob: _Problem, con: _CountConstraint, start: FloatArray, end: FloatArray
) -> tuple[FloatArray, int]:
    """The best point of the segment start + t (end - start), t in [0, 1], that meets the
    constraint (``start`` must meet it): exact, since every row is affine in t.

    Counts are constant between consecutive row thresholds and every row is strict, so the
    end points and the midpoints of the intervals between thresholds are all the
    candidates. Returns (point, objective count over the active rows); ties go to the
    largest t (furthest towards ``end``).
    """
    step = end - start
    a_o, b_o = prob.a_hat @ start - prob.gamma, prob.a_hat @ step
    a_c, b_c = con.rows.a_hat @ start - con.rows.gamma, con.rows.a_hat @ step
    with np.errstate(divide="ignore", invalid="ignore"):
        cuts = np.r_[-a_o[b_o != 0] / b_o[b_o != 0], -a_c[b_c != 0] / b_c[b_c != 0]]
    cuts = np.unique(cuts[(cuts > 0) & (cuts < 1)])
    pts = np.r_[0.0, cuts, 1.0]
    cand = np.unique(np.r_[pts, 0.5 * (pts[:-1] + pts[1:])])
    obj = _threshold_counts(a_o, b_o, cand)
    ok = _threshold_counts(a_c, b_c, cand) >= con.need
    ok[0] = True  # start meets the constraint by assumption
    score = np.where(ok, obj, -1)
    k = int(np.flatnonzero(score == score.max())[-1])
    return start + cand[k] * step, int(obj[k])


# --------------------------------------------------------------------------------------
# feasibility oracles: is a set of rows jointly satisfiable (margin tol) in the ball?
# --------------------------------------------------------------------------------------


def _ldp(g_rows: FloatArray, h: FloatArray) -> FloatArray | None:
    """Least-distance programming: argmin ||x||_2 s.t. g_rows x >= h (Lawson-Hanson, ch. 23).

    Solved through NNLS: with E = [g_rows^T; h^T] and f = e_(d+1), the NNLS residual
    r = E lam - f gives x = -r[:d] / r[d]; r = 0 means the system is inconsistent
    (returns None, as does a numerical failure).
    """
    k, d = g_rows.shape
    if k == 0 or bool(np.all(h <= 0)):
        return np.zeros(d)
    e = np.vstack([g_rows.T, h[None, :]])
    f = np.zeros(d + 1)
    f[d] = 1.0
    try:
        lam, _ = nnls(e, f, maxiter=max(50 * k, 1000))
    except (RuntimeError, ValueError):  # pragma: no cover - numerical failure
        return None
    r = e @ lam - f
    if abs(r[d]) < 1e-12:
        return None
    return np.asarray(-r[:d] / r[d], dtype=np.float64)


def _lp_proximal(
    a_rows: FloatArray, gamma: FloatArray, u0: FloatArray, tol: float
) -> FloatArray | None:
    """argmin ||u - u0||_1 s.t. a_rows u >= gamma + tol, ||u||_inf <= 1 (HiGHS LP).

    Variables u = u0 + p - q with p in [0, 1 - u0], q in [0, 1 + u0] (which keeps u in the
    box). Returns None when the LP is infeasible.
    """
    d = u0.shape[0]
    slack = a_rows @ u0 - gamma - tol  # need a.(p - q) >= -slack
    a_ub = np.hstack([-a_rows, a_rows])
    bounds = np.column_stack([np.r_[np.zeros(d), np.zeros(d)], np.r_[1.0 - u0, 1.0 + u0]])
    res = linprog(
        np.ones(2 * d), A_ub=a_ub, b_ub=slack, bounds=bounds, method="highs"
    )
    if res.status != 0 or res.x is None:
        return None
    return np.clip(u0 + res.x[:d] - res.x[d:], -1.0, 1.0)


def _feasible_point(
    prob: _Problem,
    required: NDArray[np.intp],
    u0: FloatArray,
    tol: float,
    *,
    initial_rows: int = 100,
    max_rounds: int = 50,
) -> FloatArray | None:
    """A point u of the unit ball with a_hat_i . u >= gamma_i + tol for every required i.

    Exact up to solver tolerances: returns None only when the rows are not jointly
    satisfiable with margin tol in the ball. Uses constraint generation: it solves on a
    working set of the rows that are tight or violated at ``u0`` and adds rows violated by
    the answer until none is. q = inf: an LP (closest point to u0 in L1). q = 2:
    least-distance programming, first from u0 (closest point), then, if that point
    leaves the ball, from the origin (the minimum-norm point decides feasibility).
    """
    a, gam = prob.a_hat[required], prob.gamma[required]
    if required.size == 0:
        return u0.copy()
    accept = 0.5 * tol

    def solve(center: FloatArray) -> FloatArray | None:
        marg = a @ center - gam
        order = np.argsort(marg)
        work = np.zeros(required.size, dtype=bool)
        work[order[: min(required.size, initial_rows)]] = True
        work |= marg < tol
        for _ in range(max_rounds):
            idx = np.flatnonzero(work)
            if prob.norm == "inf":
                u = _lp_proximal(a[idx], gam[idx], center, tol)
            else:
                delta = _ldp(a[idx], gam[idx] + tol - a[idx] @ center)
                u = None if delta is None else center + delta
            if u is None:
                return None
            bad = np.flatnonzero((a @ u - gam < accept) & ~work)
            if bad.size == 0:
                return u
            worst = bad[np.argsort(a[bad] @ u - gam[bad])][: max(initial_rows, 1)]
            work[worst] = True
        return None  # pragma: no cover - constraint generation did not converge

    if prob.norm == "inf":
        return solve(u0)
    u = solve(u0)
    if u is not None and np.linalg.norm(u) <= 1.0 + 1e-12:
        return u / max(1.0, float(np.linalg.norm(u)))
    u = solve(np.zeros_like(u0))  # minimum-norm point: feasible iff it lies in the ball
    if u is None or np.linalg.norm(u) > 1.0 + 1e-12:
        return None
    return u / max(1.0, float(np.linalg.norm(u)))


def _min_norm_point(prob: _Problem, required: NDArray[np.intp], tol: float) -> FloatArray | None:
    """argmin ||u||_2 over {a_hat_i . u >= gamma_i + tol, i required} (no ball), or None."""
    return _ldp(prob.a_hat[required], prob.gamma[required] + tol)
