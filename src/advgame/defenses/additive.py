"""The finite-sample equilibrium defense of the additive game (SPEC section 1).

In the locally linearized additive game every data point i contributes a half-space
constraint on the defender's shift v (one vector added to every input):

    a_i . v > c_i,    a_i = y_i w_i,    c_i = eps_a ||w_i||_{p*} - m_i,
    m_i = y_i (w_i . x_i + b_i)

(``m_i`` is the margin, FGM with budget ``eps_a`` in norm p lowers it by
``eps_a ||w_i||_{p*}``, and the shift raises it by ``y_i w_i . v``). The finite-sample
equilibrium defense is

    v_n = argmax_{||v||_q <= eps_d}  #{ i : a_i . v > c_i }

a maximum feasible subsystem problem (NP-hard in general). This module solves it

* ``method="exact"``: a mixed-integer program solved by HiGHS (``scipy.optimize.milp``).
  For q = inf it is the big-M program of the spec; for q = 2 the ball is replaced by a
  polyhedral outer approximation refined by tangent cuts until the integer solution is
  realizable in the true ball (an exact outer-approximation method; if the round or time
  limit stops it first, the error of the approximation is reported).
* ``method="fast"``: an annealed sigmoid surrogate maximized by projected ascent from
  several starts, then a greedy refinement that adds violated constraints one at a time
  while an exact feasibility oracle (an LP for q = inf, least-distance programming for
  q = 2) says the enlarged set is still jointly satisfiable in the ball, then a
  large-neighborhood search that re-optimizes the constraints nearest to flipping with a
  small MILP.
* Either method first detects the case of a linear classifier (all rows collinear),
  which is one-dimensional and solved exactly by a sweep.

Both return every distinct maximizer they found on request: the uniform distribution over
them is a mixed (randomized-smoothing) equilibrium strategy of the linearized game, since
the defender's payoff is linear in the mixture.

Strictness. The count uses the strict test ``a_i . v > c_i`` (a point on the decision
boundary is not classified correctly). An optimization solver cannot represent a strict
inequality, so the solvers require a margin ``tol`` in normalized units (see
:func:`max_feasible_shift`): the exact solvers are exact for the problem
``max #{a_i . v >= c_i + tol * eps_d ||a_i||_{q*}}`` and their bounds refer to it; the
reported ``count`` is always re-evaluated with the exact strict test at the returned v.

The closed form :func:`gaussian_equilibrium` gives the population equilibrium of a
*linear* classifier on two Gaussian classes; tests use it as an oracle.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import Bounds, LinearConstraint, linprog, milp, nnls
from scipy.special import expit
from scipy.stats import norm as normal_dist

from advgame.errors import InputError
from advgame.native_io import native_stdout_to_log
from advgame.threat import Norm, dual_norm, parse_norm
from advgame.validate import (
    check_nonnegative,
    check_positive_int,
    check_signed_labels,
    check_tensor,
)

__all__ = [
    "EquilibriumShiftDetails",
    "GaussianEquilibrium",
    "ShiftResult",
    "equilibrium_shift",
    "gaussian_accuracy",
    "gaussian_equilibrium",
    "max_feasible_shift",
]

log = logging.getLogger(__name__)

Method = Literal["exact", "fast"]
FloatArray = NDArray[np.float64]
_METHODS = ("exact", "fast")


# --------------------------------------------------------------------------------------
# result type
# --------------------------------------------------------------------------------------


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

    Example:
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


# --------------------------------------------------------------------------------------
# exact: MILP (q = inf) and MILP with tangent cuts (q = 2)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MilpOutcome:
    status: str
    u: FloatArray | None
    z: NDArray[np.bool_] | None
    objective: int | None
    bound: int | None
    message: str


def _solve_milp(
    prob: _Problem,
    tol: float,
    *,
    cuts: list[FloatArray],
    exclusions: list[NDArray[np.bool_]],
    min_total: int | None,
    time_limit: float | None,
    mip_rel_gap: float | None,
) -> _MilpOutcome:
    """max sum z_i s.t. a_hat_i.u - gamma_i >= tol - M_i (1 - z_i), u in the outer set.

    M_i = 1 + gamma_i + tol is the smallest valid big-M: a_hat_i . u >= -1 holds on the
    box for q = inf (||a_hat_i||_1 = 1) and is imposed as the slab |a_hat_i . u| <= 1 (a
    pair of tangent half-spaces of the L2 ball) for q = 2. In original units it is
    eps_d ||a_i||_{q*} + c_i + tol', never above the spec's eps_d ||a_i||_{q*} + |c_i|.
    """
    a, gam = prob.a_hat, prob.gamma
    m, d = a.shape
    big_m = 1.0 + gam + tol
    a_sp = sp.csr_matrix(a)
    blocks = [LinearConstraint(sp.hstack([a_sp, -sp.diags(big_m)]).tocsr(), gam + tol - big_m,
                               np.inf)]
    zeros_md = sp.csr_matrix((m, m))
    if prob.norm == "2":
        blocks.append(LinearConstraint(sp.hstack([a_sp, zeros_md]).tocsr(), -1.0, 1.0))
        if cuts:
            h = np.vstack(cuts)
            blocks.append(
                LinearConstraint(np.hstack([h, np.zeros((h.shape[0], m))]), -np.inf, 1.0)
            )
    for s in exclusions:
        row = np.r_[np.zeros(d), np.where(s, 1.0, -1.0)]
        blocks.append(LinearConstraint(row[None, :], -np.inf, float(s.sum()) - 1.0))
    if min_total is not None:
        blocks.append(LinearConstraint(np.r_[np.zeros(d), np.ones(m)][None, :], min_total,
                                       np.inf))
    cost = np.r_[np.zeros(d), -np.ones(m)]
    integrality = np.r_[np.zeros(d), np.ones(m)]
    bounds = Bounds(np.r_[-np.ones(d), np.zeros(m)], np.ones(d + m))
    options: dict[str, float | bool] = {"disp": False}
    if time_limit is not None:
        options["time_limit"] = max(float(time_limit), 1e-3)
    # the objective is integral: a relative gap below 1/(2 (m + 1)) proves optimality
    options["mip_rel_gap"] = 0.5 / (m + 1) if mip_rel_gap is None else mip_rel_gap
    with native_stdout_to_log():  # HiGHS prints debug lines to fd 1 on some solves
        res = milp(cost, integrality=integrality, bounds=bounds, constraints=blocks,
                   options=options)
    dual = getattr(res, "mip_dual_bound", None)
    bound = None
    if dual is not None and np.isfinite(dual):
        bound = min(m, int(math.floor(-float(dual) + 1e-6)))
    if res.status == 2:
        return _MilpOutcome("infeasible", None, None, None, bound, str(res.message))
    status = {0: "optimal", 1: "time_limit"}.get(int(res.status), f"error({res.status})")
    if res.x is None:
        return _MilpOutcome(status, None, None, None, bound, str(res.message))
    u = np.asarray(res.x[:d], dtype=np.float64)
    z = np.asarray(res.x[d:]) > 0.5
    if status == "optimal":
        bound = int(z.sum()) if bound is None else max(bound, int(z.sum()))
    return _MilpOutcome(status, u, z, int(z.sum()), bound, str(res.message))


def _exact(
    prob: _Problem,
    tol: float,
    *,
    time_limit: float | None,
    num_maximizers: int,
    max_rounds: int,
    mip_rel_gap: float | None,
) -> tuple[list[FloatArray], str, int | None, int | None, dict[str, float | int | str]]:
    """Exact maximizers of the normalized problem (see :func:`max_feasible_shift`).

    Returns (maximizers u, status, upper bound on the active count, approximation error,
    info). q = 2: outer approximation (box and slabs) refined by a tangent cut whenever
    the MILP's satisfied set S is not realizable in the ball; the cut at the normalized
    minimum-norm point x_S of {a_hat_i . u >= gamma_i + tol, i in S} removes every
    superset of S (the polyhedron lies in {x_S . u >= ||x_S||^2}), so the loop is finite.
    """
    start = time.perf_counter()
    cuts: list[FloatArray] = []
    exclusions: list[NDArray[np.bool_]] = []
    found: list[FloatArray] = []
    best: int | None = None  # proven (or incumbent) optimum of the active count
    upper: int | None = None
    approx_error: int | None = None
    status = "optimal"
    rounds = 0
    fallback: tuple[int, FloatArray] | None = None  # best point realized in the ball so far
    while True:
        remaining = None
        if time_limit is not None:
            remaining = time_limit - (time.perf_counter() - start)
            if remaining <= 0:
                if best is None:
                    status = "time_limit"
                break
        out = _solve_milp(prob, tol, cuts=cuts, exclusions=exclusions, min_total=best,
                          time_limit=remaining, mip_rel_gap=mip_rel_gap)
        rounds += 1
        if best is None and out.bound is not None:  # every round's bound is valid
            upper = out.bound if upper is None else min(upper, out.bound)
        if out.status == "infeasible" or out.u is None or out.z is None:
            if best is None:  # no incumbent at all (time limit before a first solution)
                status = out.status
            break
        s_idx = np.flatnonzero(out.z)
        u0 = np.clip(out.u, -1.0, 1.0) if prob.norm == "inf" else _project(out.u, "2")
        point = _feasible_point(prob, s_idx, u0, tol)
        if point is None and prob.norm == "inf":  # pragma: no cover - numerical corner
            point = u0
        if point is None:  # q = 2: the satisfied set is not realizable in the ball
            if best is not None:  # looking for further maximizers: cut and go on
                if out.status != "optimal" or rounds >= max_rounds:
                    break
            else:
                realized = int(np.count_nonzero(prob.a_hat @ u0 > prob.gamma))
                if fallback is None or realized > fallback[0]:
                    fallback = (realized, u0)
                approx_error = int(out.objective or 0) - realized
                if out.status != "optimal":  # cannot refine further within the limit
                    status = out.status
                    break
                if rounds >= max_rounds:
                    status = "round_limit"
                    break
            x_s = _min_norm_point(prob, s_idx, tol)
            added = False
            if x_s is not None and np.linalg.norm(x_s) > 1.0:
                cuts.append(x_s / np.linalg.norm(x_s))
                added = True
            nrm = float(np.linalg.norm(out.u))
            if nrm > 1.0:
                cuts.append(out.u / nrm)
                added = True
            if not added:  # pragma: no cover - numerical corner: cannot separate
                if best is None:
                    status = "error(cut)"
                break
            continue
        found.append(point)
        if best is None:
            best = int(out.objective or 0)
            approx_error = 0 if prob.norm == "2" else None
            if out.status != "optimal":
                status = out.status
                break
            upper = best
        if len(found) >= num_maximizers:
            break
        exclusions.append(out.z.copy())
    if not found and fallback is not None:
        found.append(fallback[1])
    info: dict[str, float | int | str] = {"milp_solves": rounds, "tangent_cuts": len(cuts)}
    return found, status, upper, approx_error, info


def _collinear_direction(prob: _Problem) -> FloatArray | None:
    """The common direction a_hat_0 when every active row is +-a_hat_0, else None.

    This is the case of a *linear* classifier (w_i = w for all i), where the problem is
    one-dimensional in t = a_hat_0 . u.
    """
    a = prob.a_hat
    s = np.where(a @ a[0] >= 0, 1.0, -1.0)
    if np.max(np.abs(a - s[:, None] * a[0])) > 1e-9:
        return None
    return np.asarray(a[0], dtype=np.float64)


def _sweep_1d(
    prob: _Problem, direction: FloatArray, num_maximizers: int
) -> list[FloatArray]:
    """Exact solution when all rows are collinear: sign_i t > gamma_i, t in [-1, 1].

    The count is constant between consecutive thresholds and the constraints are open, so
    a threshold or an end point +-1 is never better than the open interval beside it: the
    midpoints of the intervals that the thresholds cut [-1, 1] into are all the
    candidates; counts come from sorted thresholds. Maximizers: the best intervals
    (distinct satisfied sets). u = t times the steepest
    q-direction of the row (whose q-ball maximum of direction . u is exactly 1).
    """
    sign = np.where(prob.a_hat @ direction >= 0, 1.0, -1.0)
    lower = np.sort(prob.gamma[sign > 0])  # t > lower
    upper = np.sort(-prob.gamma[sign < 0])  # t < upper
    cuts = np.unique(np.clip(np.r_[lower, upper], -1.0, 1.0))
    pts = np.unique(np.r_[-1.0, 1.0, cuts])
    cand = 0.5 * (pts[:-1] + pts[1:])  # one point per interval: distinct satisfied sets
    counts = np.asarray(
        np.searchsorted(lower, cand, side="left")
        + (upper.size - np.searchsorted(upper, cand, side="right")),
        dtype=np.int64,
    )
    best = np.flatnonzero(counts == counts.max())[:num_maximizers]
    steep = _steepest(direction, prob.norm)
    return [float(cand[k]) * steep for k in best]


# --------------------------------------------------------------------------------------
# fast: annealed surrogate + greedy refinement
# --------------------------------------------------------------------------------------


def _starts(prob: _Problem, restarts: int, rng: np.random.Generator) -> FloatArray:
    """Starting points (d, R): 0, data-driven directions, random rows, random points."""
    a, gam, q = prob.a_hat, prob.gamma, prob.norm
    m, d = a.shape
    cols: list[FloatArray] = [np.zeros(d)]
    rescue = gam >= 0  # violated at u = 0 but satisfiable somewhere in the ball
    for weights in (rescue.astype(float), np.ones(m), 1.0 - np.abs(gam)):
        s = a.T @ weights
        if np.any(s):
            cols.append(_steepest(s, q))
            cols.append(0.5 * _steepest(s, q))
    pool = np.flatnonzero(rescue) if rescue.any() else np.arange(m)
    while len(cols) < restarts and len(cols) < restarts // 2 + 4:
        j = int(rng.choice(pool))
        cols.append(float(rng.uniform(0.3, 1.0)) * _steepest(a[j], q))
    while len(cols) < restarts:
        if q == "inf":
            cols.append(np.asarray(rng.uniform(-1.0, 1.0, size=d), dtype=np.float64))
        else:
            g = rng.standard_normal(d)
            cols.append(g / np.linalg.norm(g) * float(rng.uniform()) ** (1.0 / d))
    return np.column_stack(cols[:restarts])


def _surrogate_ascent(
    prob: _Problem,
    u0: FloatArray,
    *,
    steps: int,
    t_start: float,
    t_end: float,
    step_scale: float,
    momentum: float,
) -> tuple[FloatArray, NDArray[np.int64]]:
    """Projected ascent on sum_i sigmoid((a_hat_i . u - gamma_i) / T), T annealed.

    All starts (columns of ``u0``) run together (matrix products, in float32: the step is
    bound by reading the (m, d) matrix, so this halves its cost). Each step moves by
    ``step_scale * T`` along the steepest q-ball direction of a momentum average of the
    normalized gradients, then projects onto the ball. The best iterate of each start by
    the count is kept. Returns (best u per start (d, R), their float64 counts (R,)).
    """
    q = prob.norm
    a = prob.a_hat.astype(np.float32)
    gam = prob.gamma.astype(np.float32)[:, None]
    u = _project(u0.astype(np.float32), q)
    best_u = u.copy()
    best_c = np.count_nonzero(a @ u > gam, axis=0).astype(np.int64)
    buf = np.zeros_like(u)
    for k in range(steps):
        temp = np.float32(t_start * (t_end / t_start) ** (k / max(steps - 1, 1)))
        z = a @ u - gam
        cnt = np.count_nonzero(z > 0, axis=0)
        better = cnt > best_c
        if better.any():
            best_c[better] = cnt[better]
            best_u[:, better] = u[:, better]
        s = expit(z / temp)
        grad = a.T @ (s * (1.0 - s))
        scale = np.abs(grad).sum(axis=0) if q == "inf" else np.linalg.norm(grad, axis=0)
        buf = np.float32(momentum) * buf + grad / np.maximum(scale, np.float32(1e-30))
        u = _project(u + np.float32(step_scale) * temp * _steepest(buf, q), q)
    cnt = np.count_nonzero(a @ u > gam, axis=0)
    better = cnt > best_c
    best_u[:, better] = u[:, better]
    out = _project(best_u.astype(np.float64), q)
    counts = np.count_nonzero(prob.a_hat @ out > prob.gamma[:, None], axis=0)
    return out, counts.astype(np.int64)


def _greedy_refine(
    prob: _Problem, u: FloatArray, tol: float, *, max_checks: int, deadline: float
) -> tuple[FloatArray, int]:
    """Add violated rows one at a time (closest first) while jointly satisfiable.

    The satisfied set S (margin >= tol) only grows, so a row found incompatible with S
    stays incompatible and is never re-tested. Returns (u, number of oracle calls).
    """
    a, gam = prob.a_hat, prob.gamma
    failed = np.zeros(a.shape[0], dtype=bool)
    checks = 0
    while checks < max_checks and time.perf_counter() < deadline:
        marg = a @ u - gam
        sat = marg >= tol
        cand = np.flatnonzero(~sat & ~failed)
        if cand.size == 0:
            break
        cand = cand[np.argsort(-marg[cand])]
        improved = False
        for j in cand:
            if checks >= max_checks or time.perf_counter() >= deadline:
                break
            checks += 1
            req = np.flatnonzero(sat)
            req = np.append(req, j)
            p = _feasible_point(prob, req, u, tol)
            if p is None:
                failed[j] = True
                continue
            u = p
            improved = True
            break
        if not improved:
            break
    return u, checks


def _band_milp(
    a_band: FloatArray,
    marg_band: FloatArray,
    rho: float,
    lo: FloatArray,
    hi: FloatArray,
    tol: float,
    cuts: list[tuple[FloatArray, float]],
    *,
    node_limit: int,
    time_limit: float,
) -> FloatArray | None:
    """The neighborhood MILP of :func:`_lns`: max #band rows with margin >= tol after a step.

    Step delta in [lo, hi]; band row i (margin marg_i, |marg_i| <= rho) holds iff
    marg_i + a_i . delta >= tol, big-M M_i = rho - marg_i + tol, valid because the box
    keeps a_i . delta >= -rho; each (h, r) in ``cuts`` adds h . delta <= r. Returns the
    step, or None without a solution.
    """
    k, d = a_band.shape
    big_m = rho - marg_band + tol
    blocks = [
        LinearConstraint(np.hstack([a_band, -np.diag(big_m)]), tol - big_m - marg_band, np.inf),
    ]
    if cuts:
        h = np.vstack([np.r_[hc, np.zeros(k)] for hc, _ in cuts])
        blocks.append(LinearConstraint(h, -np.inf, np.array([r for _, r in cuts])))
    with native_stdout_to_log():  # HiGHS prints debug lines to fd 1 on some solves
        res = milp(
            np.r_[np.zeros(d), -np.ones(k)], integrality=np.r_[np.zeros(d), np.ones(k)],
            bounds=Bounds(np.r_[lo, np.zeros(k)], np.r_[hi, np.ones(k)]), constraints=blocks,
            options={"disp": False, "node_limit": node_limit,
                     "time_limit": max(time_limit, 1e-3), "mip_rel_gap": 0.5 / (k + 1)},
        )
    if res.x is None:
        return None
    return np.asarray(res.x[:d], dtype=np.float64)


def _lns(
    prob: _Problem,
    u: FloatArray,
    tol: float,
    *,
    rows: int,
    rounds: int,
    node_limit: int,
    deadline: float,
) -> tuple[FloatArray, int]:
    """Large-neighborhood search: re-optimize exactly the ``rows`` rows nearest to flipping.

    With rho the ``rows``-th smallest |margin| at u, the rows with |margin| <= rho become
    the binaries of a small MILP (:func:`_band_milp`) over a step delta in a box chosen so
    that |a_hat_i . delta| <= rho for *every* row (so no other row changes sign):
    q = inf: |delta_j| <= rho, inside [-1, 1]^d; q = 2: |delta_j| <= rho / sqrt(d)
    (||a_hat_i||_1 <= sqrt(d)) and the half-space u . delta <= (1 - ||u||^2 - rho^2) / 2,
    which with the box implies ||u + delta||_2 <= 1 (an inner approximation of the ball).
    The MILP's answer is the best point of that neighborhood (up to its node limit);
    repeats while the count improves. Returns (u, number of MILP solves).
    """
    a, gam, q = prob.a_hat, prob.gamma, prob.norm
    m, d = a.shape
    cur = int(np.count_nonzero(a @ u > gam))
    solves = 0
    for _ in range(rounds):
        if time.perf_counter() >= deadline:
            break
        marg = a @ u - gam
        absm = np.abs(marg)
        k = min(rows, m)
        rho = max(float(np.partition(absm, k - 1)[k - 1]), 10.0 * tol)
        band = absm <= rho
        cuts: list[tuple[FloatArray, float]] = []
        if q == "inf":
            lo, hi = np.maximum(-rho, -1.0 - u), np.minimum(rho, 1.0 - u)
        else:
            r = rho / math.sqrt(d)
            lo, hi = np.full(d, -r), np.full(d, r)
            cuts.append((u, 0.5 * (1.0 - float(u @ u) - rho * rho)))
        solves += 1
        step = _band_milp(
            a[band], marg[band], rho, lo, hi, tol, cuts,
            node_limit=node_limit, time_limit=deadline - time.perf_counter(),
        )
        if step is None:
            break
        cand = _project(u + step, q)
        new = int(np.count_nonzero(a @ cand > gam))
        if new <= cur:
            break
        u, cur = cand, new
    return u, solves


@dataclass(frozen=True, kw_only=True)
class _FastConfig:
    restarts: int
    steps: int
    refine_checks: int
    refine_top: int
    lns_rounds: int
    lns_rows: int
    lns_nodes: int
    t_start: float = 0.2
    t_end: float = 2e-3
    step_scale: float = 0.5
    momentum: float = 0.8


def _fast(
    prob: _Problem,
    tol: float,
    cfg: _FastConfig,
    *,
    rng: np.random.Generator,
    time_limit: float | None,
    num_maximizers: int,
) -> tuple[list[FloatArray], dict[str, float | int | str]]:
    start = time.perf_counter()
    u0 = _starts(prob, cfg.restarts, rng)
    best_u, best_c = _surrogate_ascent(
        prob, u0, steps=cfg.steps, t_start=cfg.t_start, t_end=cfg.t_end,
        step_scale=cfg.step_scale, momentum=cfg.momentum,
    )
    info: dict[str, float | int | str] = {
        "surrogate_count": int(best_c.max()) + prob.n_always,
        "surrogate_time_s": time.perf_counter() - start,
    }
    # distinct candidates by satisfied pattern, best first
    order = np.argsort(-best_c, kind="stable")
    seen: set[bytes] = set()
    cands: list[FloatArray] = []
    for r in order:
        key = _pattern_key(prob.a_hat @ best_u[:, r] > prob.gamma)
        if key not in seen:
            seen.add(key)
            cands.append(best_u[:, r])
    deadline = math.inf if time_limit is None else start + time_limit
    n_refine = max(cfg.refine_top, num_maximizers)
    refined: list[FloatArray] = []
    checks = solves = 0
    greedy_best = int(best_c.max())
    for i, u in enumerate(cands):
        if i < n_refine:
            if cfg.refine_checks > 0:
                u, k = _greedy_refine(prob, u, tol, max_checks=cfg.refine_checks,
                                      deadline=deadline)
                checks += k
                greedy_best = max(greedy_best, int(np.count_nonzero(prob.a_hat @ u >
                                                                    prob.gamma)))
            if cfg.lns_rounds > 0:
                u, k = _lns(prob, u, tol, rows=cfg.lns_rows, rounds=cfg.lns_rounds,
                            node_limit=cfg.lns_nodes, deadline=deadline)
                solves += k
        refined.append(u)
    counts = [int(np.count_nonzero(prob.a_hat @ u > prob.gamma)) for u in refined]
    top = max(counts)
    out: list[FloatArray] = []
    keys: set[bytes] = set()
    for u, cnt in sorted(zip(refined, counts, strict=True), key=lambda t: -t[1]):
        key = _pattern_key(prob.a_hat @ u > prob.gamma)
        if cnt == top and key not in keys:
            keys.add(key)
            out.append(u)
    info["greedy_count"] = greedy_best + prob.n_always
    info["refine_checks"] = checks
    info["lns_solves"] = solves
    return out[: max(num_maximizers, 1)], info


# --------------------------------------------------------------------------------------
# public numpy core
# --------------------------------------------------------------------------------------


def _as_rng(seed: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng(0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError("seed", f"must be an int or numpy Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def max_feasible_shift(
    a: ArrayLike,
    c: ArrayLike,
    eps_d: float,
    norm_d: object = "inf",
    method: str = "fast",
    *,
    tol: float = 1e-6,
    time_limit: float | None = None,
    num_maximizers: int = 1,
    restarts: int = 16,
    steps: int = 300,
    refine_checks: int = 20,
    refine_top: int = 2,
    lns_rounds: int = 5,
    lns_rows: int = 60,
    lns_nodes: int = 1000,
    max_rounds: int = 200,
    mip_rel_gap: float | None = None,
    seed: np.random.Generator | int | None = None,
) -> ShiftResult:
    """The shift v, ``||v||_q <= eps_d``, satisfying the most constraints a_i . v > c_i.

    This is the finite-sample equilibrium defense of SPEC section 1 in raw form (see
    :func:`equilibrium_shift` for the game-level wrapper).

    Rows are first normalized: a_hat_i = a_i / ||a_i||_{q*}, gamma_i = c_i / (eps_d
    ||a_i||_{q*}), v = eps_d u with ||u||_q <= 1; rows with gamma_i < -1 hold for every v,
    rows with gamma_i >= 1 for none, and only the others enter the optimization.

    Both methods first check whether all active rows are collinear (a linear classifier:
    w_i = w); then the problem is one-dimensional in t = w . v and an exact sweep over the
    sorted thresholds solves it (solver ``"sweep-1d"``).

    Methods:
        ``"exact"``, q = inf: MILP with one binary z_i per active row,
        a_hat_i . u - gamma_i >= tol - M_i (1 - z_i), M_i = 1 + gamma_i + tol,
        maximize sum z_i (HiGHS through ``scipy.optimize.milp``). If ``time_limit``
        stops it, the incumbent is returned with status ``"time_limit"`` and the proven
        ``upper_bound``/``gap``.
        ``"exact"``, q = 2: the same MILP over a polyhedral outer set of the L2 ball (box,
        slabs |a_hat_i . u| <= 1, tangent cuts). When the MILP's satisfied set is not
        realizable in the ball (checked exactly by least-distance programming), a tangent
        cut at its minimum-norm point removes that set and the MILP is solved again.
        The answer is exact when it stops by itself (any d; practical for small d and n);
        ``max_rounds``/``time_limit`` stop it early with status ``"round_limit"`` or
        ``"time_limit"``, v = the incumbent projected onto the ball, ``upper_bound`` the
        MILP bound on the outer set (an upper bound for the ball), and
        ``approximation_error`` = MILP count - count at the projected point.
        ``"fast"``: annealed sigmoid surrogate sum_i sigmoid((a_hat_i . u - gamma_i)/T)
        maximized by projected momentum ascent from ``restarts`` starts together (v = 0,
        data-driven directions, random rows' steepest directions, random points),
        T from 0.2 to 0.002 over ``steps`` steps; then the ``refine_top`` best distinct
        results are refined greedily, adding violated rows (smallest deficit first) while
        an exact oracle (LP for q = inf, least-distance programming for q = 2, both with
        constraint generation) finds a point satisfying them all (at most
        ``refine_checks`` oracle calls each), then improved by large-neighborhood search:
        the ``lns_rows`` rows with the smallest |margin| become the binaries of a small
        MILP over a step small enough that no other row changes sign (``lns_nodes``
        branch-and-bound nodes; repeated up to ``lns_rounds`` times while it improves).
        Cost per surrogate step: two (m, d) x (d, restarts) float32 products; on 10,000
        x 784 rows the refinement (LPs and MILPs in 784 variables) costs about as much
        as the ascent (see benchmarks/BENCHMARKS.md).

    Args:
        a: (n, d) constraint rows a_i = y_i w_i.
        c: (n,) right-hand sides c_i.
        eps_d: radius of the defender's ball (>= 0).
        norm_d: q, ``"inf"`` or ``"2"`` (any form :func:`advgame.threat.parse_norm` takes).
        method: ``"exact"`` or ``"fast"``.
        tol: margin (normalized units, a fraction of the ball's reach eps_d
            ||a_i||_{q*}) that stands for the strict inequality inside the solvers. The
            reported count always uses the strict test a_i . v > c_i.
        time_limit: seconds for the whole solve (exact: MILP limit; fast: refinement
            deadline), or None.
        num_maximizers: return up to this many distinct maximizers (distinct satisfied
            sets). Exact: re-solves with a no-good cut on each found set and the count
            fixed to the optimum, so every one is a proven maximizer. Fast: the distinct
            best results across restarts.
        restarts, steps, refine_checks, refine_top, lns_rounds, lns_rows, lns_nodes:
            ``fast`` effort (see above).
        max_rounds: q = 2 exact: most MILP solves.
        mip_rel_gap: HiGHS relative gap; default 1/(2(m+1)), which proves optimality of
            the integral objective.
        seed: numpy Generator or int for the ``fast`` method's random starts (None: 0).

    Returns:
        :class:`ShiftResult`.

    Example:
        >>> a = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
        >>> r = max_feasible_shift(a, np.array([0.1, 0.1, 0.1]), 0.5, "inf", "exact")
        >>> r.count, r.count_at_zero
        (2, 0)
    """
    t0 = time.perf_counter()
    a_arr = np.asarray(a, dtype=np.float64)
    c_arr = np.asarray(c, dtype=np.float64)
    if a_arr.ndim != 2 or a_arr.shape[0] == 0 or a_arr.shape[1] == 0:
        raise InputError("a", f"must be a non-empty (n, d) array, got shape {a_arr.shape}")
    if c_arr.shape != (a_arr.shape[0],):
        raise InputError("c", f"must have shape ({a_arr.shape[0]},), got {c_arr.shape}")
    if not np.all(np.isfinite(a_arr)):
        raise InputError("a", "contains NaN or inf values")
    if not np.all(np.isfinite(c_arr)):
        raise InputError("c", "contains NaN or inf values")
    eps = check_nonnegative("eps_d", eps_d)
    q = parse_norm(norm_d, "norm_d")
    if method not in _METHODS:
        raise InputError("method", f"must be one of {_METHODS}, got {method!r}")
    tol_f = check_nonnegative("tol", tol)
    if not 0 < tol_f < 0.5:
        raise InputError("tol", f"must be in (0, 0.5), got {tol}")
    if time_limit is not None:
        check_nonnegative("time_limit", time_limit)
    check_positive_int("num_maximizers", num_maximizers)
    check_positive_int("restarts", restarts)
    check_positive_int("steps", steps)
    check_positive_int("refine_checks", refine_checks, minimum=0)
    check_positive_int("refine_top", refine_top, minimum=0)
    check_positive_int("max_rounds", max_rounds)
    check_positive_int("lns_rounds", lns_rounds, minimum=0)
    check_positive_int("lns_rows", lns_rows)
    check_positive_int("lns_nodes", lns_nodes)
    rng = _as_rng(seed)

    n, d = a_arr.shape
    count_zero = int(np.count_nonzero(c_arr < 0))
    prob = _normalize(a_arr, c_arr, eps, q)
    m = prob.a_hat.shape[0]
    info: dict[str, float | int | str] = {"active_rows": m, "always_rows": prob.n_always}
    upper: float | None = None
    approx: int | None = None
    direction = None if m == 0 else _collinear_direction(prob)
    if m == 0:
        us: list[FloatArray] = [np.zeros(d)]
        solver, status = "trivial", "optimal"
        upper = float(prob.n_always)
    elif direction is not None:  # a linear classifier: exact one-dimensional sweep
        us = _sweep_1d(prob, direction, num_maximizers)
        solver, status = "sweep-1d", "optimal"
        upper = float(prob.n_always + np.count_nonzero(prob.a_hat @ us[0] > prob.gamma))
    elif method == "exact":
        us, status, up, approx, extra = _exact(
            prob, tol_f, time_limit=time_limit, num_maximizers=num_maximizers,
            max_rounds=max_rounds, mip_rel_gap=mip_rel_gap,
        )
        info.update(extra)
        solver = "milp" if q == "inf" else "milp+tangent-cuts"
        upper = None if up is None else float(prob.n_always + up)
        if not us:
            us = [np.zeros(d)]
    else:
        cfg = _FastConfig(restarts=restarts, steps=steps, refine_checks=refine_checks,
                          refine_top=refine_top, lns_rounds=lns_rounds, lns_rows=lns_rows,
                          lns_nodes=lns_nodes)
        us, extra = _fast(prob, tol_f, cfg, rng=rng, time_limit=time_limit,
                          num_maximizers=num_maximizers)
        info.update(extra)
        solver, status = "surrogate+lns", "heuristic"

    vs = [eps * _project(u, q) for u in us]
    counts = [_count(a_arr, c_arr, v) for v in vs]
    if count_zero > max(counts):  # v = 0 is always available
        vs, counts = [np.zeros(d)], [count_zero]
    best = max(counts)
    maximizers = tuple(v for v, k in zip(vs, counts, strict=True) if k == best)
    gap = None
    if upper is not None:
        gap = max(0.0, upper - best) / max(upper, 1.0)
    return ShiftResult(
        v=maximizers[0], count=best, n=n, count_at_zero=count_zero, method=method,
        solver=solver, status=status, upper_bound=upper, gap=gap,
        time_s=time.perf_counter() - t0, maximizers=maximizers, approximation_error=approx,
        tol=tol_f, info=info,
    )


# --------------------------------------------------------------------------------------
# the game-level contract (SPEC section 4)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EquilibriumShiftDetails:
    """Everything :func:`equilibrium_shift` knows about its answer.

    Accuracies are fractions of the N points under the *linearized* classifier
    sign(w_i . z + b_i) (the "approximate" accuracy of SPEC section 1).

    Attributes:
        v: the shift, shaped like one input (``x.shape[1:]``), on x's device.
        accuracy: defended accuracy under FGM, #{a_i . v > c_i} / N.
        accuracy_no_defense: the same at v = 0.
        clean_accuracy: defended accuracy without attack, #{y_i (w_i . (x_i + v) + b_i)
            > 0} / N (does defending cost clean accuracy?).
        clean_accuracy_no_defense: the same at v = 0 (the linearized clean accuracy).
        mixed_strategy: the distinct maximizers found (v first); the uniform distribution
            over them is a mixed equilibrium defense with the same value.
        margins: (N,) m_i = y_i (w_i . x_i + b_i), float64 on the CPU.
        c: (N,) c_i = eps_a ||w_i||_{p*} - m_i, float64 on the CPU.
        result: the solver's :class:`ShiftResult` (count, bound, gap, status, timing).
    """

    v: torch.Tensor
    accuracy: float
    accuracy_no_defense: float
    clean_accuracy: float
    clean_accuracy_no_defense: float
    mixed_strategy: tuple[torch.Tensor, ...]
    margins: torch.Tensor
    c: torch.Tensor
    result: ShiftResult


def _float_tensor(name: str, value: object, **kw: object) -> torch.Tensor:
    t = check_tensor(name, value, **kw)  # type: ignore[arg-type]
    if not t.is_floating_point():
        raise InputError(name, f"must be a floating tensor, got dtype {t.dtype}")
    return t


def _numpy_seed(generator: object) -> np.random.Generator | int | None:
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=generator).item())
    if generator is None or isinstance(generator, (np.random.Generator, int)):
        return generator
    raise InputError(
        "generator", f"must be a torch.Generator, numpy Generator or int, got "
        f"{type(generator).__name__}"
    )


@overload
def equilibrium_shift(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps_a: float,
    eps_d: float, norm_a: object = ..., norm_d: object = ..., method: str = ..., *,
    return_details: Literal[False] = ..., generator: object = ..., **options: object,
) -> tuple[torch.Tensor, float]: ...


@overload
def equilibrium_shift(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps_a: float,
    eps_d: float, norm_a: object = ..., norm_d: object = ..., method: str = ..., *,
    return_details: Literal[True], generator: object = ..., **options: object,
) -> tuple[torch.Tensor, float, EquilibriumShiftDetails]: ...


def equilibrium_shift(
    w: torch.Tensor,
    b: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_a: float,
    eps_d: float,
    norm_a: object = "inf",
    norm_d: object = "inf",
    method: str = "fast",
    *,
    return_details: bool = False,
    generator: object = None,
    **options: object,
) -> tuple[torch.Tensor, float] | tuple[torch.Tensor, float, EquilibriumShiftDetails]:
    """The finite-sample equilibrium defense v_n of the linearized additive game.

    With the binary logit linearized at each point, g(z) ~= w_i . z + b_i, margin
    m_i = y_i (w_i . x_i + b_i), and FGM of budget eps_a in norm p (the attacker's best
    response to any defense, lowering the margin by eps_a ||w_i||_{p*}):

        v_n = argmax_{||v||_q <= eps_d} #{ i : y_i w_i . v > eps_a ||w_i||_{p*} - m_i }

    solved by :func:`max_feasible_shift` with a_i = y_i w_i, c_i = eps_a ||w_i||_{p*} - m_i.
    The computation runs in float64 numpy on the CPU; v comes back on x's device in
    x's dtype. Accuracy is the linearized ("approximate") accuracy under FGM; evaluate the
    true network separately.

    Shape:
        w: (N, d) or (N, *input_shape), the gradients of g at x (see
        :func:`advgame.linear.linearize`); b: (N,); x: (N, *input_shape); y: (N,) in
        {-1, +1}. Returns v: ``x.shape[1:]`` and a float.

    Args:
        eps_a, eps_d: attacker's and defender's budgets (>= 0).
        norm_a, norm_d: p and q, ``"inf"`` or ``"2"``.
        method: ``"exact"`` (MILP, see :func:`max_feasible_shift`) or ``"fast"``.
        return_details: also return an :class:`EquilibriumShiftDetails` (value at v = 0,
            defended clean accuracy, all maximizers, the solver's bound and gap).
        generator: torch.Generator, numpy Generator or int for the fast method's random
            starts (None: seed 0; ``seed=`` is accepted as a synonym).
        **options: passed to :func:`max_feasible_shift` (``time_limit``, ``restarts``,
            ``steps``, ``num_maximizers``, ``tol``, ...).

    Example:
        >>> w = torch.tensor([[1.0, 0.0]]).repeat(4, 1); b = torch.zeros(4)
        >>> x = torch.tensor([[0.3, 0.0], [0.05, 0.0], [-0.5, 0.0], [0.05, 0.0]])
        >>> y = torch.tensor([1, 1, -1, -1])
        >>> v, acc = equilibrium_shift(w, b, x, y, 0.1, 0.2, "inf", "inf", "exact")
        >>> acc
        0.75
    """
    x = _float_tensor("x", x, min_ndim=2)
    n = x.shape[0]
    d = int(math.prod(x.shape[1:]))
    w = _float_tensor("w", w, min_ndim=2)
    if w.shape[0] != n:
        raise InputError("w", f"must have {n} rows (one per input), got {w.shape[0]}")
    if int(math.prod(w.shape[1:])) != d:
        raise InputError(
            "w", f"each row must have {d} entries like one input {tuple(x.shape[1:])}, got "
            f"shape {tuple(w.shape)}"
        )
    b = _float_tensor("b", b, ndim=1)
    if b.shape[0] != n:
        raise InputError("b", f"must have {n} entries (one per input), got {b.shape[0]}")
    y = check_signed_labels("y", y, n)
    ea = check_nonnegative("eps_a", eps_a)
    ed = check_nonnegative("eps_d", eps_d)
    na = parse_norm(norm_a, "norm_a")
    nd = parse_norm(norm_d, "norm_d")
    if method not in _METHODS:
        raise InputError("method", f"must be one of {_METHODS}, got {method!r}")
    if generator is None and "seed" in options:  # max_feasible_shift's name for it
        generator = options.pop("seed")
    seed = _numpy_seed(generator)

    wf = w.detach().reshape(n, d).to("cpu", torch.float64)
    xf = x.detach().reshape(n, d).to("cpu", torch.float64)
    ys = y.detach().to("cpu", torch.float64)
    bf = b.detach().to("cpu", torch.float64)
    margins = ys * ((wf * xf).sum(dim=1) + bf)
    c = ea * dual_norm(wf, na) - margins
    a = ys[:, None] * wf
    res = max_feasible_shift(
        a.numpy(), c.numpy(), ed, nd, method, seed=seed, **options  # type: ignore[arg-type]
    )
    accuracy = res.count / n
    dtype = x.dtype

    def as_input(vec: FloatArray) -> torch.Tensor:
        return torch.as_tensor(vec, dtype=dtype).reshape(x.shape[1:]).to(x.device)

    v = as_input(res.v)
    if not return_details:
        return v, accuracy
    a_np, m_np = a.numpy(), margins.numpy()
    details = EquilibriumShiftDetails(
        v=v,
        accuracy=accuracy,
        accuracy_no_defense=res.value_at_zero,
        clean_accuracy=float(np.count_nonzero(a_np @ res.v + m_np > 0)) / n,
        clean_accuracy_no_defense=float(np.count_nonzero(m_np > 0)) / n,
        mixed_strategy=tuple(as_input(u) for u in res.maximizers),
        margins=margins,
        c=c,
        result=res,
    )
    return v, accuracy, details


# --------------------------------------------------------------------------------------
# closed form: a linear classifier on two Gaussian classes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianEquilibrium:
    """Population equilibrium of the additive game for a linear classifier (closed form).

    Attributes:
        t: optimal w . v* in [-t_max, t_max].
        t_max: eps_d ||w||_{q*}, the largest w . v over the defender's ball.
        v: (d,) a shift achieving t with ||v||_q <= eps_d (t / ||w||_{q*} times the
            steepest q-direction of w).
        value: accuracy under FGM at v* (the game's value).
        value_no_defense: accuracy under FGM at v = 0.
        clean_accuracy: accuracy at v* without attack.
        clean_accuracy_no_defense: accuracy at v = 0 without attack.
    """

    t: float
    t_max: float
    v: FloatArray
    value: float
    value_no_defense: float
    clean_accuracy: float
    clean_accuracy_no_defense: float


def _gaussian_terms(
    w: FloatArray, b: float, mu_pos: FloatArray, mu_neg: FloatArray, sigma: float,
    eps_a: float, norm_a: Norm,
) -> tuple[float, float, float]:
    """(A, B, s): the class +1 / -1 margins after FGM in units of s = sigma ||w||_2."""
    s = sigma * float(np.linalg.norm(w))
    e = eps_a * float(_dual_norm_rows(w[None, :], norm_a)[0])
    return (float(w @ mu_pos) + b - e) / s, (-(float(w @ mu_neg) + b) - e) / s, s


def gaussian_accuracy(
    w: ArrayLike, b: float, mu_pos: ArrayLike, mu_neg: ArrayLike, sigma: float,
    eps_a: float, norm_a: object, t: float, prior_pos: float = 0.5,
) -> float:
    """Population accuracy of sign(w . z + b) under FGM when the defense adds w . v = t.

    Classes y = +1 / -1 with probabilities prior_pos / 1 - prior_pos and
    x | y ~ N(mu_y, sigma^2 I). The margin y (w . x + b) is Gaussian with sd
    s = sigma ||w||_2; FGM lowers it by e = eps_a ||w||_{p*}; the shift adds y t:

        acc(t) = P_+ Phi((w . mu_+ + b - e + t) / s) + P_- Phi((-(w . mu_- + b) - e - t) / s)

    Example:
        >>> round(gaussian_accuracy([1.0], 0.0, [1.0], [-1.0], 1.0, 0.0, "inf", 0.0), 4)
        0.8413
    """
    wv, mp, mn = (np.asarray(z, dtype=np.float64).ravel() for z in (w, mu_pos, mu_neg))
    big_a, big_b, s = _gaussian_terms(wv, float(b), mp, mn, float(sigma), float(eps_a),
                                      parse_norm(norm_a, "norm_a"))
    tau = float(t) / s
    return float(prior_pos * normal_dist.cdf(big_a + tau)
                 + (1.0 - prior_pos) * normal_dist.cdf(big_b - tau))


def gaussian_equilibrium(
    w: ArrayLike,
    b: float,
    mu_pos: ArrayLike,
    mu_neg: ArrayLike,
    sigma: float,
    eps_a: float,
    eps_d: float,
    norm_a: object = "inf",
    norm_d: object = "inf",
    prior_pos: float = 0.5,
) -> GaussianEquilibrium:
    """Exact population equilibrium for a linear classifier on two Gaussian classes.

    For one w shared by all points, a_i . v = y_i t with t = w . v, and t ranges over
    [-t_max, t_max], t_max = eps_d ||w||_{q*}. With tau = t / s and A, B the classes'
    attacked margins in units of s = sigma ||w||_2 (see :func:`gaussian_accuracy`), the
    payoff f(tau) = P_+ Phi(A + tau) + P_- Phi(B - tau) has f'(tau) = 0 iff
    P_+ phi(A + tau) = P_- phi(B - tau), i.e. (for A + B != 0) the single point

        tau* = (B^2 - A^2 - 2 log(P_- / P_+)) / (2 (A + B))

    (for A + B = 0, f is monotone). The maximum over the interval is therefore at an end
    point or at tau* when it lies inside: evaluated exactly, ties going to the smallest
    |t|. Attacker: FGM (its best response to any defense in the linear model).

    Args:
        w: (d,) weights; b: bias. mu_pos, mu_neg: (d,) class means; sigma > 0: the
        per-coordinate standard deviation; prior_pos in (0, 1): P(y = +1).

    Example:
        >>> g = gaussian_equilibrium([1.0, 0.0], 0.5, [1.0, 0.0], [-1.0, 0.0], 1.0,
        ...                          0.2, 1.0, "inf", "inf")
        >>> round(g.t, 4), g.value > g.value_no_defense
        (-0.5, True)
    """
    wv, mp, mn = (np.asarray(z, dtype=np.float64).ravel() for z in (w, mu_pos, mu_neg))
    if wv.size == 0 or not np.all(np.isfinite(wv)) or not np.any(wv):
        raise InputError("w", "must be a non-zero finite vector")
    if mp.shape != wv.shape:
        raise InputError("mu_pos", f"must have shape {wv.shape}, got {mp.shape}")
    if mn.shape != wv.shape:
        raise InputError("mu_neg", f"must have shape {wv.shape}, got {mn.shape}")
    sig = check_nonnegative("sigma", sigma)
    if sig == 0:
        raise InputError("sigma", "must be > 0")
    ea = check_nonnegative("eps_a", eps_a)
    ed = check_nonnegative("eps_d", eps_d)
    na = parse_norm(norm_a, "norm_a")
    nd = parse_norm(norm_d, "norm_d")
    pp = check_nonnegative("prior_pos", prior_pos, upper=1.0)
    if not 0 < pp < 1:
        raise InputError("prior_pos", f"must be strictly between 0 and 1, got {prior_pos}")

    big_a, big_b, s = _gaussian_terms(wv, float(b), mp, mn, sig, ea, na)
    t_max = ed * float(_dual_norm_rows(wv[None, :], nd)[0])

    def payoff(tau: float) -> float:
        return float(pp * normal_dist.cdf(big_a + tau) + (1 - pp) * normal_dist.cdf(big_b - tau))

    taus = [0.0, -t_max / s, t_max / s]
    if big_a + big_b != 0:
        crit = (big_b**2 - big_a**2 - 2.0 * math.log((1 - pp) / pp)) / (2.0 * (big_a + big_b))
        if abs(crit) <= t_max / s:
            taus.append(crit)
    vals = [payoff(tau) for tau in taus]
    best = max(vals)
    tau_best = min((tau for tau, val in zip(taus, vals, strict=True) if val >= best - 1e-15),
                   key=abs)
    t = tau_best * s
    direction = np.sign(wv) if nd == "inf" else wv / np.linalg.norm(wv)
    v = (t / float(_dual_norm_rows(wv[None, :], nd)[0])) * direction

    def clean(tt: float) -> float:
        return gaussian_accuracy(wv, b, mp, mn, sig, 0.0, na, tt, pp)

    return GaussianEquilibrium(
        t=t, t_max=t_max, v=v, value=payoff(tau_best), value_no_defense=payoff(0.0),
        clean_accuracy=clean(t), clean_accuracy_no_defense=clean(0.0),
    )
