"""The public entry points: :func:`max_feasible_shift` (numpy core) and
:func:`equilibrium_shift` (the game-level contract of SPEC section 4)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import torch
from numpy.typing import ArrayLike

from advgame.defenses.additive.exact import _collinear_direction, _exact, _sweep_1d
from advgame.defenses.additive.fast import _fast, _fast_constrained, _FastConfig
from advgame.defenses.additive.problem import (
    FloatArray,
    ShiftResult,
    _count,
    _CountConstraint,
    _normalize,
    _project,
    _stack,
)
from advgame.errors import InputError
from advgame.linear import worst_linear_margin
from advgame.threat import Norm, check_box, dual_norm, parse_norm
from advgame.validate import (
    check_nonnegative,
    check_positive_int,
    check_signed_labels,
    check_tensor,
)

Method = Literal["exact", "fast"]
_METHODS = ("exact", "fast")



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
    clean_c: ArrayLike | None = None,
    min_clean: int | None = None,
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

    Count constraint (``clean_c``, ``min_clean``): maximize the count subject to
    #{i : a_i . v > clean_c_i} >= min_clean, over the same rows a_i (in the game:
    clean_c_i = -m_i, "keep min_clean points correctly classified without attack").
    Exact: the constraint's rows get binaries too and their sum is bounded below in the
    MILP (and realizability, cuts and the sweep of a linear classifier take both sets);
    status ``"optimal"`` is a proof for the constrained problem. Fast: the unconstrained
    solution when it meets the constraint; else a Lagrangian surrogate (the constraint's
    sigmoids weighted by 0.25 ... 64) whose results are repaired by an exact line search
    towards a point that meets the constraint (v = 0 when it does, else the best point
    found for the constraint's rows alone), then refined greedily without losing the
    constraint rows that hold; no LNS rounds. Every returned v meets the constraint
    (``clean_count``, ``constraint_satisfied``); when no v is found that meets it, an
    InputError names ``min_clean`` (for ``exact``: the MILP proved that none exists, or
    its time limit left none found).

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
        clean_c: (n,) thresholds of the count constraint's rows, or None.
        min_clean: the count the constraint asks for, an int in [0, n], or None.

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
    con, clean_arr = _count_constraint(a_arr, clean_c, min_clean, eps, q)
    count_zero = int(np.count_nonzero(c_arr < 0))
    prob = _normalize(a_arr, c_arr, eps, q)
    m = prob.a_hat.shape[0]
    info: dict[str, float | int | str] = {"active_rows": m, "always_rows": prob.n_always}
    upper: float | None = None
    approx: int | None = None
    cfg = _FastConfig(restarts=restarts, steps=steps, refine_checks=refine_checks,
                      refine_top=refine_top, lns_rounds=lns_rounds, lns_rows=lns_rows,
                      lns_nodes=lns_nodes)
    stacked = prob if con is None else _stack(prob, con)
    direction = None if m == 0 else _collinear_direction(stacked)
    anchor: FloatArray | None = None

    def feasible_start() -> FloatArray:  # a point that meets the constraint, or raise
        assert con is not None
        nonlocal anchor
        if anchor is None:
            anchor = _feasible_start(con, tol_f, cfg, rng, time_limit, max_rounds)
        if anchor is None:
            raise InputError("min_clean", f"no shift with ||v||_{q} <= {eps:g} was found "
                             f"that keeps {con.required} of the {n} rows satisfied")
        return anchor

    if m == 0:
        us: list[FloatArray] = [np.zeros(d) if con is None else feasible_start()]
        solver, status = "trivial", "optimal"
        upper = float(prob.n_always)
    elif direction is not None:  # a linear classifier: exact one-dimensional sweep
        us = _sweep_1d(prob, direction, num_maximizers, con)
        if not us:
            raise InputError("min_clean", f"no shift with ||v||_{q} <= {eps:g} keeps "
                             f"{min_clean} of the {n} rows satisfied (exact sweep)")
        solver, status = "sweep-1d", "optimal"
        upper = float(prob.n_always + np.count_nonzero(prob.a_hat @ us[0] > prob.gamma))
    elif method == "exact":
        us, status, up, approx, extra = _exact(
            prob, tol_f, time_limit=time_limit, num_maximizers=num_maximizers,
            max_rounds=max_rounds, mip_rel_gap=mip_rel_gap, con=con,
        )
        info.update(extra)
        solver = "milp" if q == "inf" else "milp+tangent-cuts"
        upper = None if up is None else float(prob.n_always + up)
        if not us and con is not None:
            if status == "infeasible":
                raise InputError("min_clean", f"no shift with ||v||_{q} <= {eps:g} keeps "
                                 f"{min_clean} of the {n} rows satisfied (the MILP is "
                                 f"infeasible)")
            us = [feasible_start()]  # time limit before a first constrained solution
        if not us:
            us = [np.zeros(d)]
    else:
        us, extra = _fast(prob, tol_f, cfg, rng=rng, time_limit=time_limit,
                          num_maximizers=num_maximizers)
        info.update(extra)
        solver, status = "surrogate+lns", "heuristic"
        if con is not None and not con.holds(us[0]):
            us, extra = _fast_constrained(
                prob, con, tol_f, cfg, rng=rng, time_limit=time_limit,
                num_maximizers=num_maximizers, anchor=feasible_start(), starts=us)
            info.update(extra)
            solver = "surrogate+lagrangian+repair"

    vs = [eps * _project(u, q) for u in us]
    if con is not None:  # the strict test on the raw rows decides
        vs = [v for v in vs if _count(a_arr, clean_arr, v) >= con.required]
        if not vs:
            vs = [eps * _project(feasible_start(), q)]
    counts = [_count(a_arr, c_arr, v) for v in vs]
    zero_ok = con is None or _count(a_arr, clean_arr, np.zeros(d)) >= con.required
    if zero_ok and count_zero > max(counts):  # v = 0 is always available
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
        clean_count=None if con is None else _count(a_arr, clean_arr, maximizers[0]),
        clean_required=None if min_clean is None else int(min_clean),
    )


def _count_constraint(
    a: FloatArray, clean_c: ArrayLike | None, min_clean: int | None, eps: float, q: Norm,
) -> tuple[_CountConstraint | None, FloatArray]:
    """Checked constraint rows: (the constraint, or None when absent or trivial; clean_c)."""
    n = a.shape[0]
    if (clean_c is None) != (min_clean is None):
        raise InputError("min_clean" if min_clean is None else "clean_c",
                         "give clean_c and min_clean together (or neither)")
    if clean_c is None or min_clean is None:
        return None, np.zeros(n)
    arr = np.asarray(clean_c, dtype=np.float64)
    if arr.shape != (n,):
        raise InputError("clean_c", f"must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("clean_c", "contains NaN or inf values")
    if isinstance(min_clean, bool) or not isinstance(min_clean, (int, np.integer)):
        raise InputError("min_clean", f"must be an int, got {min_clean!r}")
    if not 0 <= int(min_clean) <= n:
        raise InputError("min_clean", f"must be in [0, {n}], got {min_clean}")
    rows = _normalize(a, arr, eps, q)
    reachable = rows.n_always + rows.a_hat.shape[0]
    if int(min_clean) > reachable:
        raise InputError("min_clean", f"asks for {min_clean} of {n} rows, but at most "
                         f"{reachable} can hold anywhere in the ball ||v||_{q} <= {eps:g}")
    need = int(min_clean) - rows.n_always
    if need <= 0:
        return None, arr
    return _CountConstraint(rows, need, int(min_clean)), arr


def _feasible_start(
    con: _CountConstraint, tol: float, cfg: _FastConfig, rng: np.random.Generator,
    time_limit: float | None, max_rounds: int,
) -> FloatArray | None:
    """A point of the unit ball that meets the constraint: u = 0 when it does, else the
    best point of the fast method on the constraint's rows alone, else of the (time-
    limited) MILP on them; None when neither finds one."""
    d = con.rows.a_hat.shape[1]
    zero = np.zeros(d)
    if con.holds(zero):
        return zero
    us, _ = _fast(con.rows, tol, cfg, rng=rng, time_limit=time_limit, num_maximizers=1)
    if us and con.holds(us[0]):
        return us[0]
    found, *_ = _exact(con.rows, tol, time_limit=30.0 if time_limit is None else time_limit,
                       num_maximizers=1, max_rounds=max_rounds, mip_rel_gap=None)
    if found and con.holds(found[0]):
        return found[0]
    return None


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
        c: (N,) c_i = minus the margin after the attacker's best response, float64 on the
            CPU: eps_a ||w_i||_{p*} - m_i without a box, the exact minimum over ball ∩ box
            (:func:`advgame.linear.best_response`) with one.
        result: the solver's :class:`ShiftResult` (count, bound, gap, status, timing,
            ``clean_count`` / ``constraint_satisfied`` under a clean constraint).
        box: the image box of the attacker's game, or None (the paper's model).
        min_clean_count: the number of points the clean constraint keeps correct (clean,
            linearized), or None without a constraint.
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
    box: tuple[float, float] | None = (0.0, 1.0)
    min_clean_count: int | None = None

    @property
    def constraint_satisfied(self) -> bool:
        """Whether the clean constraint holds at v (True without one)."""
        return self.result.constraint_satisfied


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
    return_details: Literal[False] = ..., generator: object = ...,
    box: tuple[float, float] | None = ..., min_clean_accuracy: float | None = ...,
    max_clean_drop: float | None = ..., **options: object,
) -> tuple[torch.Tensor, float]: ...


@overload
def equilibrium_shift(
    w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps_a: float,
    eps_d: float, norm_a: object = ..., norm_d: object = ..., method: str = ..., *,
    return_details: Literal[True], generator: object = ...,
    box: tuple[float, float] | None = ..., min_clean_accuracy: float | None = ...,
    max_clean_drop: float | None = ..., **options: object,
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
    box: tuple[float, float] | None = (0.0, 1.0),
    min_clean_accuracy: float | None = None,
    max_clean_drop: float | None = None,
    **options: object,
) -> tuple[torch.Tensor, float] | tuple[torch.Tensor, float, EquilibriumShiftDetails]:
    """The finite-sample equilibrium defense v_n of the linearized additive game.

    With the binary logit linearized at each point, g(z) ~= w_i . z + b_i, margin
    m_i = y_i (w_i . x_i + b_i), and the attacker's best response delta_i (to any defense:
    the linear margin is additive in the shift) lowering it to
    m_i^A = min { y_i (w_i . (x_i + delta) + b_i) : ||delta||_p <= eps_a, x_i + delta in box }:

        v_n = argmax_{||v||_q <= eps_d} #{ i : y_i w_i . v > c_i },   c_i = -m_i^A

    solved by :func:`max_feasible_shift` with a_i = y_i w_i.

    * ``box=(0, 1)`` (default): the game that is played on images, where every attack is
      clipped to the pixel range: m_i^A is the exact minimum over ball ∩ box
      (:func:`advgame.linear.worst_linear_margin`; L-inf: clipped FGSM, L2: the KKT step).
    * ``box=None``: the paper's unbounded model, c_i = eps_a ||w_i||_{p*} - m_i (FGM).

    The shift itself is not clipped (the paper's additive model: the defended input
    x + delta + v may leave the box). The computation runs in float64 numpy on the CPU;
    v comes back on x's device in x's dtype. Accuracy is the linearized ("approximate")
    accuracy under the best response: it equals the count of y_i (w_i . (x_i + delta_i + v)
    + b_i) > 0 with delta_i from :func:`advgame.linear.best_response` (tested).

    Clean-accuracy constraint (beyond the paper): ``min_clean_accuracy`` (a fraction of the
    N points that must stay correct without attack under the shift, linearized:
    y_i (w_i . (x_i + v) + b_i) > 0) or ``max_clean_drop`` (a fraction, e.g. 0.01 = one
    point: at most this far below the undefended linearized clean accuracy); see
    :func:`max_feasible_shift` for how each method enforces it. A constraint that cannot
    be met raises InputError naming the argument.

    Shape:
        w: (N, d) or (N, *input_shape), the gradients of g at x (see
        :func:`advgame.linear.linearize`); b: (N,); x: (N, *input_shape) (inside the box
        when one is given); y: (N,) in {-1, +1}. Returns v: ``x.shape[1:]`` and a float.

    Args:
        eps_a, eps_d: attacker's and defender's budgets (>= 0).
        norm_a, norm_d: p and q, ``"inf"`` or ``"2"``.
        method: ``"exact"`` (MILP, see :func:`max_feasible_shift`) or ``"fast"``.
        return_details: also return an :class:`EquilibriumShiftDetails` (value at v = 0,
            defended clean accuracy, all maximizers, the solver's bound and gap).
        generator: torch.Generator, numpy Generator or int for the fast method's random
            starts (None: seed 0; ``seed=`` is accepted as a synonym).
        box: (lo, hi) of the attacker's inputs, or None for the unbounded model.
        min_clean_accuracy, max_clean_drop: the clean constraint (at most one of them).
        **options: passed to :func:`max_feasible_shift` (``time_limit``, ``restarts``,
            ``steps``, ``num_maximizers``, ``tol``, ...).

    Example:
        >>> w = torch.tensor([[1.0, 0.0]]).repeat(4, 1); b = torch.full((4,), -0.1)
        >>> x = torch.tensor([[0.3, 0.0], [0.15, 0.0], [0.02, 0.0], [0.0, 0.0]])
        >>> y = torch.tensor([1, 1, 1, -1])
        >>> equilibrium_shift(w, b, x, y, 0.1, 0.12, "inf", "inf", "exact", box=None)[1]
        0.5
        >>> v, acc = equilibrium_shift(w, b, x, y, 0.1, 0.12, "inf", "inf", "exact")
        >>> acc, round(float(v[0]), 2)   # in the box x_2 only drops to 0: v saves it
        (0.75, 0.11)
        >>> v, acc, det = equilibrium_shift(w, b, x, y, 0.1, 0.12, "inf", "inf", "exact",
        ...                                 min_clean_accuracy=1.0, return_details=True)
        >>> acc, det.clean_accuracy, det.clean_accuracy_no_defense
        (0.5, 1.0, 0.75)
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

    if min_clean_accuracy is not None and max_clean_drop is not None:
        raise InputError("max_clean_drop", "give min_clean_accuracy or max_clean_drop, not both")
    bx = None if box is None else check_box(box)

    wf = w.detach().reshape(n, d).to("cpu", torch.float64)
    xf = x.detach().reshape(n, d).to("cpu", torch.float64)
    ys = y.detach().to("cpu", torch.float64)
    bf = b.detach().to("cpu", torch.float64)
    margins = ys * ((wf * xf).sum(dim=1) + bf)
    if bx is None:  # the paper's unbounded model: FGM lowers the margin by eps_a ||w||_{p*}
        c = ea * dual_norm(wf, na) - margins
    else:  # the game played on images: the exact best response in ball ∩ box
        c = -worst_linear_margin(wf, bf, xf, ys, ea, na, bx)
    a = ys[:, None] * wf
    clean0 = int(torch.count_nonzero(margins > 0))
    constraint: dict[str, object] = {}
    user_arg = "min_clean_accuracy" if min_clean_accuracy is not None else "max_clean_drop"
    if min_clean_accuracy is not None:
        mca = check_nonnegative("min_clean_accuracy", min_clean_accuracy, upper=1.0)
        constraint = {"clean_c": (-margins).numpy(), "min_clean": math.ceil(mca * n - 1e-9)}
    elif max_clean_drop is not None:
        drop = check_nonnegative("max_clean_drop", max_clean_drop, upper=1.0)
        constraint = {"clean_c": (-margins).numpy(),
                      "min_clean": max(0, clean0 - math.floor(drop * n + 1e-9))}
    try:
        res = max_feasible_shift(
            a.numpy(), c.numpy(), ed, nd, method, seed=seed,
            **constraint, **options,  # type: ignore[arg-type]
        )
    except InputError as e:
        if e.argument != "min_clean" or not constraint:
            raise
        raise InputError(user_arg, f"cannot be met: {e.problem}") from None
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
        box=bx,
        min_clean_count=None if not constraint else int(constraint["min_clean"]),  # type: ignore[call-overload]
    )
    return v, accuracy, details
