"""The fast heuristic: annealed sigmoid surrogate with projected momentum ascent from
several starts, greedy refinement under an exact feasibility oracle, and a
large-neighborhood search by small MILPs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.special import expit

from advgame.defenses.additive.problem import (
    FloatArray,
    _CountConstraint,
    _feasible_point,
    _pattern_key,
    _Problem,
    _project,
    _segment_search,
    _stack,
    _steepest,
)
from advgame.native_io import native_stdout_to_log


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
    con: _CountConstraint | None = None,
    weight: float = 0.0,
) -> tuple[FloatArray, NDArray[np.int64]]:
    """Projected ascent on sum_i sigmoid((a_hat_i . u - gamma_i) / T), T annealed.

    All starts (columns of ``u0``) run together (matrix products, in float32: the step is
    bound by reading the (m, d) matrix, so this halves its cost). Each step moves by
    ``step_scale * T`` along the steepest q-ball direction of a momentum average of the
    normalized gradients, then projects onto the ball. The best iterate of each start by
    the count is kept. Returns (best u per start (d, R), their float64 counts (R,)).

    With a count constraint ``con`` the surrogate is the Lagrangian
    sum_i sigmoid(.) + ``weight`` sum_j sigmoid((a0_j . u - g0_j) / T) over the stacked
    rows, and the kept iterate is the best one that meets the constraint (the iterate
    nearest to meeting it while none does; count -1 in the output).
    """
    q = prob.norm
    rows = prob if con is None else _stack(prob, con)
    m = prob.a_hat.shape[0]
    a = rows.a_hat.astype(np.float32)
    gam = rows.gamma.astype(np.float32)[:, None]
    wts = None
    if con is not None:
        wts = np.r_[np.ones(m), np.full(rows.a_hat.shape[0] - m, weight)].astype(np.float32)

    def score(z: NDArray[np.floating]) -> NDArray[np.int64]:
        obj = np.count_nonzero(z[:m] > 0, axis=0).astype(np.int64)
        if con is None:
            return obj
        short = con.need - np.count_nonzero(z[m:] > 0, axis=0)
        return np.where(short <= 0, obj, -1 - short)

    u = _project(u0.astype(np.float32), q)
    best_u = u.copy()
    best_c = score(a @ u - gam)
    buf = np.zeros_like(u)
    for k in range(steps):
        temp = np.float32(t_start * (t_end / t_start) ** (k / max(steps - 1, 1)))
        z = a @ u - gam
        cnt = score(z)
        better = cnt > best_c
        if better.any():
            best_c[better] = cnt[better]
            best_u[:, better] = u[:, better]
        s = expit(z / temp)
        ds = s * (1.0 - s)
        grad = a.T @ (ds if wts is None else ds * wts[:, None])
        scale = np.abs(grad).sum(axis=0) if q == "inf" else np.linalg.norm(grad, axis=0)
        buf = np.float32(momentum) * buf + grad / np.maximum(scale, np.float32(1e-30))
        u = _project(u + np.float32(step_scale) * temp * _steepest(buf, q), q)
    cnt = score(a @ u - gam)
    better = cnt > best_c
    best_u[:, better] = u[:, better]
    out = _project(best_u.astype(np.float64), q)
    counts = np.count_nonzero(prob.a_hat @ out > prob.gamma[:, None], axis=0)
    if con is not None:
        counts = np.where(con.count(out) >= con.need, counts, -1)
    return out, counts.astype(np.int64)


def _greedy_refine(
    prob: _Problem, u: FloatArray, tol: float, *, max_checks: int, deadline: float,
    n_obj: int | None = None,
) -> tuple[FloatArray, int]:
    """Add violated rows one at a time (closest first) while jointly satisfiable.

    The satisfied set S (margin >= tol) only grows, so a row found incompatible with S
    stays incompatible and is never re-tested. Returns (u, number of oracle calls).
    ``n_obj``: only the first ``n_obj`` rows are candidates (the others, a count
    constraint's stacked rows, are kept when satisfied but never added).
    """
    a, gam = prob.a_hat, prob.gamma
    failed = np.zeros(a.shape[0], dtype=bool)
    if n_obj is not None:
        failed[n_obj:] = True
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


def _fast_constrained(
    prob: _Problem,
    con: _CountConstraint,
    tol: float,
    cfg: _FastConfig,
    *,
    rng: np.random.Generator,
    time_limit: float | None,
    num_maximizers: int,
    anchor: FloatArray,
    starts: list[FloatArray],
    weights: tuple[float, ...] = (0.25, 1.0, 4.0, 16.0, 64.0),
) -> tuple[list[FloatArray], dict[str, float | int | str]]:
    """The fast method under a count constraint: Lagrangian surrogate + exact repair.

    For each multiplier in ``weights`` the surrogate ascent maximizes
    sum_i sigmoid(obj_i / T) + weight sum_j sigmoid(con_j / T) from ``starts`` (the
    unconstrained solutions), ``anchor`` and the usual starting points; every result is
    then *repaired*: the exact line search :func:`_segment_search` from ``anchor`` (a
    point that meets the constraint) picks the best point of the segment that meets it.
    The best repaired points are refined greedily, keeping the constraint rows that hold
    (so the constraint still holds). Every returned point meets the constraint.
    """
    start = time.perf_counter()
    deadline = math.inf if time_limit is None else start + time_limit
    base = _starts(prob, cfg.restarts, rng)
    u0 = np.column_stack([anchor, *starts, base])
    cands: list[tuple[int, FloatArray]] = [(_segment_search(prob, con, anchor, anchor)[1],
                                            anchor)]
    for w in weights:
        out, _ = _surrogate_ascent(prob, u0, steps=cfg.steps, t_start=cfg.t_start,
                                   t_end=cfg.t_end, step_scale=cfg.step_scale,
                                   momentum=cfg.momentum, con=con, weight=w)
        for r in range(out.shape[1]):
            point, cnt = _segment_search(prob, con, anchor, out[:, r])
            cands.append((cnt, point))
        if time.perf_counter() >= deadline:
            break
    cands.sort(key=lambda t: -t[0])
    both = _stack(prob, con)
    m = prob.a_hat.shape[0]
    refined: list[FloatArray] = []
    seen: set[bytes] = set()
    checks = 0
    for _, u in cands:
        key = _pattern_key(prob.a_hat @ u > prob.gamma)
        if key in seen:
            continue
        seen.add(key)
        if len(refined) < max(cfg.refine_top, num_maximizers) and cfg.refine_checks > 0:
            kept = np.count_nonzero(con.rows.a_hat @ u - con.rows.gamma >= tol)
            if kept >= con.need:  # the rows the oracle will keep already meet it
                u, k = _greedy_refine(both, u, tol, max_checks=cfg.refine_checks,
                                      deadline=deadline, n_obj=m)
                checks += k
        refined.append(u)
        if len(refined) >= 4 * max(cfg.refine_top, num_maximizers):
            break
    ok = [u for u in refined if con.holds(u)]
    counts = [int(np.count_nonzero(prob.a_hat @ u > prob.gamma)) for u in ok]
    top = max(counts)
    result: list[FloatArray] = []
    keys: set[bytes] = set()
    for u, cnt in zip(ok, counts, strict=True):
        key = _pattern_key(prob.a_hat @ u > prob.gamma)
        if cnt == top and key not in keys:
            keys.add(key)
            result.append(u)
    info: dict[str, float | int | str] = {
        "lagrangian_weights": len(weights), "refine_checks": checks,
        "constrained_time_s": time.perf_counter() - start,
    }
    return result[: max(num_maximizers, 1)], info
