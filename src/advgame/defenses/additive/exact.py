"""Exact solvers of the normalized problem: the big-M MILP (q = inf), the MILP with tangent
cuts (q = 2), both on HiGHS through ``scipy.optimize.milp``, and the exact sweep for
collinear rows (a linear classifier)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp

from advgame.defenses.additive.problem import (
    FloatArray,
    _CountConstraint,
    _feasible_point,
    _min_norm_point,
    _Problem,
    _project,
    _stack,
    _steepest,
    _threshold_counts,
)
from advgame.native_io import native_stdout_to_log


@dataclass(frozen=True)
class _MilpOutcome:
    status: str
    u: FloatArray | None
    z: NDArray[np.bool_] | None
    objective: int | None
    bound: int | None
    message: str
    z0: NDArray[np.bool_] | None = None  # the count constraint's binaries


def _solve_milp(
    prob: _Problem,
    tol: float,
    *,
    cuts: list[FloatArray],
    exclusions: list[NDArray[np.bool_]],
    min_total: int | None,
    time_limit: float | None,
    mip_rel_gap: float | None,
    con: _CountConstraint | None = None,
) -> _MilpOutcome:
    """max sum z_i s.t. a_hat_i.u - gamma_i >= tol - M_i (1 - z_i), u in the outer set.

    M_i = 1 + gamma_i + tol is the smallest valid big-M: a_hat_i . u >= -1 holds on the
    box for q = inf (||a_hat_i||_1 = 1) and is imposed as the slab |a_hat_i . u| <= 1 (a
    pair of tangent half-spaces of the L2 ball) for q = 2. In original units it is
    eps_d ||a_i||_{q*} + c_i + tol', never above the spec's eps_d ||a_i||_{q*} + |c_i|.

    With a count constraint ``con``, its rows get binaries z0_j with the same big-M
    indicator constraints (and slabs for q = 2) and sum_j z0_j >= con.need. Variables:
    [u (d), z (m), z0 (m0)]; the outcome's z is the objective's part.
    """
    a, gam = prob.a_hat, prob.gamma
    m, d = a.shape
    a0 = np.zeros((0, d)) if con is None else con.rows.a_hat
    g0 = np.zeros(0) if con is None else con.rows.gamma
    m0 = a0.shape[0]
    nv = d + m + m0

    def indicator(rows: FloatArray, g: FloatArray, col0: int) -> LinearConstraint:
        k = rows.shape[0]
        big = 1.0 + g + tol
        mat = sp.hstack([sp.csr_matrix(rows), sp.csr_matrix((k, col0 - d)), -sp.diags(big),
                         sp.csr_matrix((k, nv - col0 - k))]).tocsr()
        return LinearConstraint(mat, g + tol - big, np.inf)

    def on_u(rows: FloatArray) -> sp.csr_matrix:
        return sp.hstack([sp.csr_matrix(rows), sp.csr_matrix((rows.shape[0], m + m0))]).tocsr()

    blocks = [indicator(a, gam, d)]
    if m0:
        blocks.append(indicator(a0, g0, d + m))
        assert con is not None
        blocks.append(LinearConstraint(np.r_[np.zeros(d + m), np.ones(m0)][None, :],
                                       con.need, np.inf))
    if prob.norm == "2":
        blocks.append(LinearConstraint(on_u(a), -1.0, 1.0))
        if m0:
            blocks.append(LinearConstraint(on_u(a0), -1.0, 1.0))
        if cuts:
            blocks.append(LinearConstraint(on_u(np.vstack(cuts)), -np.inf, 1.0))
    for s in exclusions:
        row = np.r_[np.zeros(d), np.where(s, 1.0, -1.0), np.zeros(m0)]
        blocks.append(LinearConstraint(row[None, :], -np.inf, float(s.sum()) - 1.0))
    if min_total is not None:
        blocks.append(LinearConstraint(np.r_[np.zeros(d), np.ones(m), np.zeros(m0)][None, :],
                                       min_total, np.inf))
    cost = np.r_[np.zeros(d), -np.ones(m), np.zeros(m0)]
    integrality = np.r_[np.zeros(d), np.ones(m + m0)]
    bounds = Bounds(np.r_[-np.ones(d), np.zeros(m + m0)], np.ones(nv))
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
    z = np.asarray(res.x[d:d + m]) > 0.5
    z0 = np.asarray(res.x[d + m:]) > 0.5
    if status == "optimal":
        bound = int(z.sum()) if bound is None else max(bound, int(z.sum()))
    return _MilpOutcome(status, u, z, int(z.sum()), bound, str(res.message), z0)


def _exact(
    prob: _Problem,
    tol: float,
    *,
    time_limit: float | None,
    num_maximizers: int,
    max_rounds: int,
    mip_rel_gap: float | None,
    con: _CountConstraint | None = None,
) -> tuple[list[FloatArray], str, int | None, int | None, dict[str, float | int | str]]:
    """Exact maximizers of the normalized problem (see :func:`max_feasible_shift`).

    Returns (maximizers u, status, upper bound on the active count, approximation error,
    info). q = 2: outer approximation (box and slabs) refined by a tangent cut whenever
    the MILP's satisfied set S is not realizable in the ball; the cut at the normalized
    minimum-norm point x_S of {a_hat_i . u >= gamma_i + tol, i in S} removes every
    superset of S (the polyhedron lies in {x_S . u >= ||x_S||^2}), so the loop is finite.

    With a count constraint the satisfied sets are pairs (S, S0) of objective and
    constraint rows; realizability, cuts and points are those of the stacked rows, so every
    returned point meets the constraint. Status ``"infeasible"`` with no point: no u of the
    ball meets it.
    """
    start = time.perf_counter()
    both = prob if con is None else _stack(prob, con)
    m = prob.a_hat.shape[0]
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
                          time_limit=remaining, mip_rel_gap=mip_rel_gap, con=con)
        rounds += 1
        if best is None and out.bound is not None:  # every round's bound is valid
            upper = out.bound if upper is None else min(upper, out.bound)
        if out.status == "infeasible" or out.u is None or out.z is None:
            if best is None:  # no incumbent at all (time limit before a first solution)
                status = out.status
            break
        s_idx = np.flatnonzero(out.z)
        if con is not None and out.z0 is not None:
            s_idx = np.r_[s_idx, m + np.flatnonzero(out.z0)]
        u0 = np.clip(out.u, -1.0, 1.0) if prob.norm == "inf" else _project(out.u, "2")
        point = _feasible_point(both, s_idx, u0, tol)
        if point is None and prob.norm == "inf":  # pragma: no cover - numerical corner
            point = u0
        if point is None:  # q = 2: the satisfied set is not realizable in the ball
            if best is not None:  # looking for further maximizers: cut and go on
                if out.status != "optimal" or rounds >= max_rounds:
                    break
            else:
                realized = int(np.count_nonzero(prob.a_hat @ u0 > prob.gamma))
                allowed = con is None or con.holds(u0)  # the constraint must hold at u0
                if allowed and (fallback is None or realized > fallback[0]):
                    fallback = (realized, u0)
                approx_error = int(out.objective or 0) - realized
                if out.status != "optimal":  # cannot refine further within the limit
                    status = out.status
                    break
                if rounds >= max_rounds:
                    status = "round_limit"
                    break
            x_s = _min_norm_point(both, s_idx, tol)
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
    prob: _Problem, direction: FloatArray, num_maximizers: int,
    con: _CountConstraint | None = None,
) -> list[FloatArray]:
    """Exact solution when all rows are collinear: sign_i t > gamma_i, t in [-1, 1].

    The count is constant between consecutive thresholds and the constraints are open, so
    a threshold or an end point +-1 is never better than the open interval beside it: the
    midpoints of the intervals that the thresholds cut [-1, 1] into are all the
    candidates; counts come from sorted thresholds. Maximizers: the best intervals
    (distinct satisfied sets). u = t times the steepest
    q-direction of the row (whose q-ball maximum of direction . u is exactly 1).
    With a count constraint (rows collinear too) its thresholds cut the interval as well
    and only candidates that meet it count; none: returns [] (infeasible).
    """
    def rows(p: _Problem) -> tuple[FloatArray, FloatArray]:  # alpha + t beta > 0
        return -p.gamma, np.where(p.a_hat @ direction >= 0, 1.0, -1.0)

    alpha, beta = rows(prob)
    thresholds = [alpha * -beta]  # t = gamma_i / sign_i
    if con is not None:
        alpha0, beta0 = rows(con.rows)
        thresholds.append(alpha0 * -beta0)
    cuts = np.unique(np.clip(np.concatenate(thresholds), -1.0, 1.0))
    pts = np.unique(np.r_[-1.0, 1.0, cuts])
    cand = 0.5 * (pts[:-1] + pts[1:])  # one point per interval: distinct satisfied sets
    counts = _threshold_counts(alpha, beta, cand)
    if con is not None:
        counts = np.where(_threshold_counts(alpha0, beta0, cand) >= con.need, counts, -1)
        if counts.max() < 0:
            return []
    best = np.flatnonzero(counts == counts.max())[:num_maximizers]
    steep = _steepest(direction, prob.norm)
    return [float(cand[k]) * steep for k in best]
