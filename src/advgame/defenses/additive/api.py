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
from advgame.defenses.additive.fast import _fast, _FastConfig
from advgame.defenses.additive.problem import (
    FloatArray,
    ShiftResult,
    _count,
    _normalize,
    _project,
)
from advgame.errors import InputError
from advgame.threat import dual_norm, parse_norm
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
