"""``advgame paper1``: the additive "no-box" game (S1, SPEC section 1) end to end.

Trains (or loads) a two-class ReLU network, linearizes it, attacks it with FGM and PGD,
defends it with no defense, Cohen et al.'s Gaussian smoothing and the finite-sample
equilibrium shift (pure and mixed), and writes Table 1, an eps sweep, convergence in n
against the VC and Hoeffding rates, linearity diagnostics, certification, and a summary
over other class pairs / datasets. Every stage is a stored unit: a rerun resumes.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advgame import smoothing
from advgame.attacks import fgm, pgd
from advgame.data import Dataset, to_signed
from advgame.defenses.additive import max_feasible_shift
from advgame.errors import InputError
from advgame.experiments.classifier import (
    ModelConfig,
    base_results,
    finish,
    load_data,
    obtain_model,
    obtain_model_once,
)
from advgame.experiments.common import (
    Progress,
    UnitStore,
    config_digest,
    no_progress,
    seed_generators,
    sharded_units,
)
from advgame.experiments.s1_eval import (
    Defense,
    adaptive_pgd,
    evaluate,
    game_constraints,
    vc_gap_bound,
)
from advgame.linear import linearity_diagnostics, linearize
from advgame.models import accuracy
from advgame.threat import Norm, parse_norm
from advgame.validate import check_nonnegative, check_positive_int


@dataclass(frozen=True, kw_only=True)
class Paper1Config(ModelConfig):
    """Configuration of ``advgame paper1`` (defaults: the full run on MNIST 0 vs 1).

    eps values are in the input scale [0, 1]; ``norm_a`` / ``norm_d`` are the attacker's
    and defender's norms. ``solver``: ``auto`` runs the fast heuristic and the exact MILP
    (time-limited) and keeps the better shift, reporting the MILP's bound and the gap.
    """

    classes: tuple[int, ...] | None = (0, 1)
    epochs: int = 10
    norm_a: str = "inf"
    norm_d: str = "inf"
    eps_a: tuple[float, ...] = (0.1, 0.2)
    eps_d: tuple[float, ...] = (0.1,)
    sweep_eps_a: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    sweep_eps_d: tuple[float, ...] = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2)
    sigma: float = 0.25
    n_noise: int = 1000
    alpha: float = 0.001
    pgd_steps: int = 40
    adaptive_eot: int = 16
    solver: str = "auto"
    exact_time_limit: float = 30.0
    num_maximizers: int = 8
    restarts: int = 8
    refine_checks: int = 50
    lns_rounds: int = 5
    n_test: int | None = None
    convergence_ns: tuple[int, ...] = (10, 25, 50, 100, 200, 400, 800)
    convergence_draws: int = 10
    convergence_t: float = 0.05
    diag_eps: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    diag_samples: int = 32
    certify_n: int = 10_000
    certify_n0: int = 100
    certify_points: int = 200
    pairs: tuple[tuple[int, int], ...] | str = "all"
    fashion_dir: str | None = None
    fashion_pairs: tuple[tuple[int, int], ...] = ((0, 1), (2, 4), (5, 7))
    cifar_dir: str | None = None
    cifar_pairs: tuple[tuple[int, int], ...] = ((0, 1), (3, 5))

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_norm(self.norm_a, "norm_a")
        parse_norm(self.norm_d, "norm_d")
        if self.classes is None or len(self.classes) != 2:
            raise InputError("classes", f"the additive game needs exactly two classes, got "
                             f"{None if self.classes is None else list(self.classes)}")
        for name in ("eps_a", "eps_d", "sweep_eps_a", "sweep_eps_d", "diag_eps"):
            vals = getattr(self, name)
            if not vals:
                raise InputError(name, "give at least one value")
            for v in vals:
                check_nonnegative(name, v)
        if check_nonnegative("sigma", self.sigma) == 0:
            raise InputError("sigma", "must be > 0")
        for name in ("n_noise", "pgd_steps", "adaptive_eot", "num_maximizers", "restarts",
                     "convergence_draws", "diag_samples", "certify_n", "certify_n0",
                     "certify_points"):
            check_positive_int(name, getattr(self, name))
        if self.solver not in ("auto", "exact", "fast"):
            raise InputError("solver", f"must be auto, exact or fast, got {self.solver!r}")
        for n in self.convergence_ns:
            check_positive_int("convergence_ns", n)
        if isinstance(self.pairs, str) and self.pairs not in ("all", "none"):
            raise InputError("pairs", f"must be 'all', 'none' or a list of pairs, got "
                             f"{self.pairs!r}")


QUICK: dict[str, Any] = {
    "epochs": 4, "hidden": (128,), "eps_a": (0.2,), "eps_d": (0.1,),
    "sweep_eps_a": (0.0, 0.1, 0.2, 0.3), "sweep_eps_d": (0.05, 0.1, 0.2),
    "n_noise": 200, "pgd_steps": 20, "adaptive_eot": 8, "exact_time_limit": 10.0,
    "num_maximizers": 4, "restarts": 4, "refine_checks": 10, "n_test": 200,
    "convergence_ns": (10, 50, 200), "convergence_draws": 4,
    "diag_eps": (0.05, 0.1, 0.2, 0.3), "diag_samples": 8,
    "certify_n": 1000, "certify_points": 100, "pairs": ((3, 8),),
}


# ---------------------------------------------------------------------------- helpers


@dataclass
class _Game:
    """The trained classifier and its linearization on train and test data."""

    ds: Dataset
    model: nn.Module
    x_tr: torch.Tensor
    ys_tr: torch.Tensor
    w_tr: torch.Tensor
    b_tr: torch.Tensor
    x_te: torch.Tensor
    y_te: torch.Tensor
    ys_te: torch.Tensor
    w_te: torch.Tensor
    b_te: torch.Tensor


def _prepare(cfg: Paper1Config, ds: Dataset, out: Path, device: torch.device,
             progress: Progress, model_path: str | None = None,
             *, alone: bool = False) -> tuple[_Game, dict[str, Any]]:
    """Model and linearizations. Under torchrun rank 0 trains (or loads) the model and
    the other ranks load it; ``alone``: only this rank needs it (a sharded unit)."""
    if alone:
        model, info = obtain_model(cfg, ds, out, device, model_path, progress, save=True)
    else:
        model, info = obtain_model_once(cfg, ds, out, device, model_path, progress)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    x_te, y_te = ds.x_test.to(device), ds.y_test.to(device)
    if cfg.n_test is not None:
        x_te, y_te = x_te[:cfg.n_test], y_te[:cfg.n_test]
    w_tr, b_tr = _linearize_batched(model, x_tr)
    w_te, b_te = _linearize_batched(model, x_te)
    game = _Game(ds, model, x_tr, to_signed(y_tr), w_tr, b_tr, x_te, y_te, to_signed(y_te),
                 w_te, b_te)
    info = {**info, "clean_accuracy": accuracy(model, x_te, y_te),
            "train_accuracy": accuracy(model, x_tr, y_tr)}
    return game, info


def _linearize_batched(
    model: nn.Module, x: torch.Tensor, bs: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [linearize(model, x[i:i + bs]) for i in range(0, x.shape[0], bs)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _solve_shift(cfg: Paper1Config, g: _Game, eps_a: float, eps_d: float, *,
                 method: str | None = None, seed: int = 0,
                 lns: bool = True) -> dict[str, Any]:
    """v_n on the training points; both solvers under ``auto``; returns a JSON-able dict.

    ``lns=False`` skips the fast solver's large-neighbourhood MILP rounds (used for the
    many solves of the sweeps, where they rarely add a constraint and cost most time).
    """
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    a, c = game_constraints(g.w_tr, g.b_tr, g.x_tr, g.ys_tr, eps_a, na)
    method = method or cfg.solver
    runs = {}
    if method in ("auto", "fast"):
        runs["fast"] = max_feasible_shift(a, c, eps_d, nd, "fast", restarts=cfg.restarts,
                                          refine_checks=cfg.refine_checks,
                                          lns_rounds=cfg.lns_rounds if lns else 0,
                                          num_maximizers=cfg.num_maximizers, seed=seed)
    if method in ("auto", "exact"):
        runs["exact"] = max_feasible_shift(a, c, eps_d, nd, "exact",
                                           time_limit=cfg.exact_time_limit,
                                           num_maximizers=cfg.num_maximizers, seed=seed)
    best_name = max(runs, key=lambda k: (runs[k].count, k == "exact"))
    best = runs[best_name]
    bounds = [r.upper_bound for r in runs.values() if r.upper_bound is not None]
    bound = min(bounds) if bounds else None
    maxi = [m for m in best.maximizers]
    return {
        "v": best.v.tolist(), "maximizers": [m.tolist() for m in maxi],
        "solver": best_name, "count": best.count, "n": best.n,
        "count_at_zero": best.count_at_zero, "upper_bound": bound,
        "gap": None if bound is None else max(0.0, bound - best.count) / best.n,
        "runs": {k: {"count": r.count, "status": r.status, "time_s": r.time_s,
                     "upper_bound": r.upper_bound, "solver": r.solver}
                 for k, r in runs.items()},
    }


def _shift_tensor(vals: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(vals, dtype=like.dtype, device=like.device).reshape(like.shape[1:])


def _defenses(cfg: Paper1Config, g: _Game, shift: dict[str, Any]) -> list[Defense]:
    zero = torch.zeros((1, *g.x_te.shape[1:]), dtype=g.x_te.dtype, device=g.x_te.device)
    v = _shift_tensor(shift["v"], g.x_te)[None]
    mix = torch.stack([_shift_tensor(m, g.x_te) for m in shift["maximizers"]])
    return [
        Defense("none (v = 0)", "shift", zero),
        Defense(f"Gaussian smoothing, sigma={cfg.sigma:g} (vote)", "gaussian_vote",
                sigma=cfg.sigma),
        Defense(f"Gaussian noise, sigma={cfg.sigma:g} (payoff)", "gaussian_payoff",
                sigma=cfg.sigma),
        Defense("equilibrium shift v_n", "shift", v),
        Defense(f"equilibrium mixture ({mix.shape[0]} maximizers)", "mixture", mix),
    ]


# ---------------------------------------------------------------------------- stages


def table1(cfg: Paper1Config, g: _Game, eps_a: float, eps_d: float, shift: dict[str, Any],
           gen: torch.Generator, *, adaptive: bool = True) -> dict[str, Any]:
    """Rows = defenses; columns: clean, FGM/PGD x {true, approx}, gap, adaptive PGD."""
    na = parse_norm(cfg.norm_a)
    y01 = g.y_te
    x_fgm = fgm(g.model, g.x_te, y01, eps_a, na)
    x_pgd = pgd(g.model, g.x_te, y01, eps_a, na, steps=cfg.pgd_steps, generator=gen)
    rows = []
    for d in _defenses(cfg, g, shift):
        ev = {}
        for name, z in (("clean", g.x_te), ("fgm", x_fgm), ("pgd", x_pgd)):
            t, a = evaluate(d, g.model, g.w_te, g.b_te, z, g.ys_te, n_noise=cfg.n_noise,
                            alpha=cfg.alpha, generator=gen)
            ev[name] = (float(t.mean()), float(a.mean()))
        if not adaptive:
            adaptive_acc: float | None = None
        elif d.kind == "shift" and float(d.shifts.abs().max()) == 0:  # type: ignore[union-attr]
            adaptive_acc = ev["pgd"][0]
        else:
            xa = adaptive_pgd(d, g.model, g.x_te, y01, eps_a, na, steps=cfg.pgd_steps,
                              generator=gen, eot=cfg.adaptive_eot)
            adaptive_acc = float(evaluate(d, g.model, g.w_te, g.b_te, xa, g.ys_te,
                                          n_noise=cfg.n_noise, alpha=cfg.alpha,
                                          generator=gen)[0].mean())
        rows.append({
            "defense": d.name, "clean_true": ev["clean"][0], "clean_approx": ev["clean"][1],
            "fgm_true": ev["fgm"][0], "fgm_approx": ev["fgm"][1],
            "pgd_true": ev["pgd"][0], "pgd_approx": ev["pgd"][1],
            "fgm_gap": ev["fgm"][0] - ev["fgm"][1], "pgd_gap": ev["pgd"][0] - ev["pgd"][1],
            "pgd_adaptive_true": adaptive_acc,
        })
    return {"eps_a": eps_a, "eps_d": eps_d, "rows": rows, "shift": {
        k: v for k, v in shift.items() if k not in ("v", "maximizers")},
        "shift_norm": float(np.abs(shift["v"]).max() if parse_norm(cfg.norm_d) == "inf"
                            else np.linalg.norm(shift["v"]))}


def sweep_point(cfg: Paper1Config, g: _Game, eps_a: float, eps_d: float,
                gen: torch.Generator) -> dict[str, Any]:
    """Accuracies of none / Gaussian vote / v_n under FGM and PGD at one (eps_a, eps_d)."""
    na = parse_norm(cfg.norm_a)
    shift = _solve_shift(cfg, g, eps_a, eps_d, method="fast", lns=False)
    x_fgm = fgm(g.model, g.x_te, g.y_te, eps_a, na)
    x_pgd = pgd(g.model, g.x_te, g.y_te, eps_a, na, steps=cfg.pgd_steps, generator=gen)
    res: dict[str, Any] = {"eps_a": eps_a, "eps_d": eps_d, "train_count": shift["count"],
                           "train_count_at_zero": shift["count_at_zero"]}
    defs = [d for d in _defenses(cfg, g, shift) if d.kind in ("shift", "gaussian_vote")]
    for key, d in zip(("none", "gauss", "shift"), defs, strict=True):
        for an, z in (("fgm", x_fgm), ("pgd", x_pgd)):
            t, a = evaluate(d, g.model, g.w_te, g.b_te, z, g.ys_te, n_noise=cfg.n_noise,
                            alpha=cfg.alpha, generator=gen)
            res[f"{key}_{an}_true"] = float(t.mean())
            res[f"{key}_{an}_approx"] = float(a.mean())
    return res


def convergence_draw(cfg: Paper1Config, g: _Game, eps_a: float, eps_d: float, n: int,
                     draw: int, v_star_value: float) -> dict[str, Any]:
    """Phi_test(v*) - Phi_test(v_n) for one random draw of n training points."""
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    a_tr, c_tr = game_constraints(g.w_tr, g.b_tr, g.x_tr, g.ys_tr, eps_a, na)
    a_te, c_te = game_constraints(g.w_te, g.b_te, g.x_te, g.ys_te, eps_a, na)
    rng = np.random.default_rng([cfg.seed, n, draw])
    n_eff = min(n, a_tr.shape[0])
    idx = rng.choice(a_tr.shape[0], size=n_eff, replace=False)
    r = max_feasible_shift(a_tr[idx], c_tr[idx], eps_d, nd, "fast", restarts=cfg.restarts,
                           refine_checks=cfg.refine_checks, lns_rounds=0, seed=rng)
    phi_n = float(np.mean(a_te @ r.v > c_te))
    return {"n": n_eff, "draw": draw, "phi_test": phi_n, "gap": v_star_value - phi_n,
            "phi_train": r.value}


def v_star(cfg: Paper1Config, g: _Game, eps_a: float, eps_d: float) -> dict[str, Any]:
    """The best known shift for the held-out (test) objective: the reference Phi(v*)."""
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    a_te, c_te = game_constraints(g.w_te, g.b_te, g.x_te, g.ys_te, eps_a, na)
    runs = [max_feasible_shift(a_te, c_te, eps_d, nd, "fast", restarts=2 * cfg.restarts,
                               refine_checks=cfg.refine_checks, seed=cfg.seed)]
    if cfg.solver != "fast":
        runs.append(max_feasible_shift(a_te, c_te, eps_d, nd, "exact",
                                       time_limit=cfg.exact_time_limit))
    best = max(runs, key=lambda r: r.count)
    return {"value": best.value, "method": best.method, "status": best.status,
            "upper_bound": None if best.upper_bound is None else best.upper_bound / best.n}


def diagnostics(cfg: Paper1Config, g: _Game, eps: float, gen: torch.Generator) -> dict[str, Any]:
    d = linearity_diagnostics(g.model, g.x_te, g.ys_te, eps, cfg.norm_a,
                              samples=cfg.diag_samples, pgd_steps=cfg.pgd_steps, generator=gen)
    return {"eps": eps, **d.fractions()}


def certification(cfg: Paper1Config, g: _Game, gen: torch.Generator) -> dict[str, Any]:
    k = min(cfg.certify_points, g.x_te.shape[0])
    cls, radius = smoothing.certify(g.model, g.x_te[:k], cfg.sigma, n0=cfg.certify_n0,
                                    n=cfg.certify_n, alpha=cfg.alpha, generator=gen,
                                    num_classes=2)
    correct = (cls == g.y_te[:k])
    return {"radius": radius.tolist(), "correct": correct.tolist(),
            "abstain": float((cls == -1).float().mean()), "n_points": k}


def pair_summary(cfg: Paper1Config, g: _Game, clean: float, eps_a: float, eps_d: float,
                 gen: torch.Generator) -> dict[str, Any]:
    """Compact Table 1 of one class pair / dataset."""
    ds = g.ds
    shift = _solve_shift(cfg, g, eps_a, eps_d, method="fast", lns=False)
    t = table1(replace(cfg, n_noise=min(cfg.n_noise, 200)), g, eps_a, eps_d, shift, gen,
               adaptive=False)
    rows = {r["defense"].split(" ")[0] + ("-" + r["defense"].split()[-1] if "Gaussian" in
            r["defense"] else ""): r for r in t["rows"]}
    diag = diagnostics(replace(cfg, diag_samples=min(cfg.diag_samples, 8)), g, eps_a, gen)
    none, eq, gv = rows["none"], rows["equilibrium"], rows["Gaussian-(vote)"]
    return {
        "dataset": ds.name, "classes": list(ds.classes), "clean": clean,
        "clean_shift_true": eq["clean_true"],
        "fgm_none_true": none["fgm_true"], "fgm_none_approx": none["fgm_approx"],
        "pgd_none_true": none["pgd_true"], "fgm_gauss_true": gv["fgm_true"],
        "fgm_shift_true": eq["fgm_true"], "fgm_shift_approx": eq["fgm_approx"],
        "pgd_shift_true": eq["pgd_true"], "faithful": diag["faithful"],
    }


# ---------------------------------------------------------------------------- runner


def _pairs(cfg: Paper1Config, classes_available: tuple[int, ...]) -> list[tuple[int, int]]:
    if isinstance(cfg.pairs, str):
        return ([] if cfg.pairs == "none"
                else list(itertools.combinations(classes_available, 2)))
    return [tuple(p) for p in cfg.pairs]  # type: ignore[misc]


def run_paper1(cfg: Paper1Config, out: Path, device: torch.device,
               progress: Progress = no_progress) -> dict[str, Any]:
    """Run S1 end to end: every unit below is stored under ``out/units/`` (a rerun
    resumes) and, under torchrun, the units of each phase are split across the ranks
    (each unit seeds its own generator, so the results are those of one process); rank 0
    writes ``results.json``, the figures and the report."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    store = UnitStore(out, config_digest(cfg))
    timings: dict[str, float] = {}
    res = base_results("paper1", cfg, cfg.seed)
    tick = time.perf_counter()
    ds = load_data(cfg)
    g, info = _prepare(cfg, ds, out / "model", device, progress)
    timings["model_s"] = time.perf_counter() - tick

    # 1. Table 1 at each configured (eps_a, eps_d)
    tick = time.perf_counter()
    jobs: list[tuple[str, Any]] = []
    for eps_a, eps_d in itertools.product(cfg.eps_a, cfg.eps_d):
        def compute(eps_a: float = eps_a, eps_d: float = eps_d) -> dict[str, Any]:
            gen_i = torch.Generator(device=device).manual_seed(cfg.seed + 11)
            shift = _solve_shift(cfg, g, eps_a, eps_d, seed=cfg.seed)
            return table1(cfg, g, eps_a, eps_d, shift, gen_i)
        jobs.append((f"table1-{eps_a}-{eps_d}", compute))
    tables = sharded_units(store, jobs, progress, "table 1")
    timings["table1_s"] = time.perf_counter() - tick

    # 2. eps sweep: over eps_A at the first eps_D, and over eps_D at the last eps_A
    tick = time.perf_counter()
    jobs = []
    for eps_a, eps_d in ([(e, cfg.eps_d[0]) for e in cfg.sweep_eps_a]
                         + [(cfg.eps_a[-1], e) for e in cfg.sweep_eps_d]):
        def compute_s(eps_a: float = eps_a, eps_d: float = eps_d) -> dict[str, Any]:
            gen_i = torch.Generator(device=device).manual_seed(cfg.seed + 13)
            return sweep_point(cfg, g, eps_a, eps_d, gen_i)
        jobs.append((f"sweep-{eps_a}-{eps_d}", compute_s))
    sweep = sharded_units(store, jobs, progress, "eps sweep")
    timings["sweep_s"] = time.perf_counter() - tick

    # 3. convergence in n (the reference v* first: every draw compares with it)
    tick = time.perf_counter()
    eps_a, eps_d = cfg.eps_a[-1], cfg.eps_d[0]
    (ref,) = sharded_units(store, [(f"vstar-{eps_a}-{eps_d}",
                                    lambda: v_star(cfg, g, eps_a, eps_d))])
    jobs = []
    for n, k in [(n, k) for n in cfg.convergence_ns for k in range(cfg.convergence_draws)]:
        def compute_c(n: int = n, k: int = k) -> dict[str, Any]:
            return convergence_draw(cfg, g, eps_a, eps_d, n, k, ref["value"])
        jobs.append((f"conv-{eps_a}-{eps_d}-{n}-{k}", compute_c))
    conv = sharded_units(store, jobs, progress, "convergence in n")
    timings["convergence_s"] = time.perf_counter() - tick

    # 4. linearity diagnostics
    tick = time.perf_counter()
    jobs = []
    for e in cfg.diag_eps:
        def compute_d(e: float = e) -> dict[str, Any]:
            return diagnostics(cfg, g, e, torch.Generator(device=device).manual_seed(cfg.seed))
        jobs.append((f"diag-{e}", compute_d))
    diag = sharded_units(store, jobs, progress, "linearity diagnostics")
    timings["diagnostics_s"] = time.perf_counter() - tick

    # 5. certification of the smoothed classifier, and 6. the other pairs and datasets
    tick = time.perf_counter()
    jobs = [("certify", lambda: certification(
        cfg, g, torch.Generator(device=device).manual_seed(cfg.seed + 17)))]
    jobs.append((f"pair-main-{cfg.eps_a[-1]}-{cfg.eps_d[0]}",
                 lambda: pair_summary(cfg, g, info["clean_accuracy"], cfg.eps_a[-1],
                                      cfg.eps_d[0],
                                      torch.Generator(device=device).manual_seed(cfg.seed + 19))))
    cert, *summaries = sharded_units(store, jobs + _other_pairs(cfg, out, device), progress,
                                     "certification and other pairs")
    timings["certify_and_pairs_s"] = time.perf_counter() - tick

    from advgame import distributed

    if not distributed.is_main():
        return {"summary": []}
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    pair = f"{ds.name} {ds.classes[0]} vs {ds.classes[1]}"
    res["data"]["classifier"] = {k: v for k, v in info.items() if k != "loss_curve"}
    res["data"]["n_train"] = int(g.x_tr.shape[0])
    res["data"]["n_test"] = int(g.x_te.shape[0])
    res["data"]["world_size"] = distributed.world_size()
    _table1_outputs(cfg, res, tables, pair, int(g.x_te.shape[0]), na, nd)
    res["data"]["sweep"] = sweep
    _sweep_outputs(cfg, res, sweep, out, na, nd)
    res["data"]["convergence"] = {"reference": ref, "draws": conv, "eps_a": eps_a,
                                  "eps_d": eps_d}
    _convergence_outputs(cfg, res, conv, ref, out, int(g.w_tr.shape[1]))
    res["data"]["diagnostics"] = diag
    _diagnostics_outputs(cfg, res, diag, out, na)
    res["data"]["certification"] = cert
    _certification_outputs(cfg, res, cert, out)
    res["data"]["pairs"] = summaries
    _pairs_outputs(cfg, res, summaries)
    _summary(cfg, res, tables, diag, conv, ref, summaries)
    res["timings"].update(timings)
    finish(out, res, t0)
    return res


def _table1_outputs(cfg: Paper1Config, res: dict[str, Any], tables: list[dict[str, Any]],
                    pair: str, n_test: int, na: str, nd: str) -> None:
    for t in tables:
        s = t["shift"]
        res["tables"].append({
            "name": f"table1_eps_a_{t['eps_a']:g}_eps_d_{t['eps_d']:g}",
            "title": f"Table 1 — {pair}: eps_A={t['eps_a']:g} (L{na}), eps_D={t['eps_d']:g} "
                     f"(L{nd})",
            "caption": (
                f"Accuracy (fraction of {n_test} test images). 'true' = the network "
                f"on the perturbed input, 'approx' = its linearization at the clean point "
                f"on the same input; gap = true - approx. FGM and PGD ({cfg.pgd_steps} steps) "
                f"attack the undefended network (the game's simultaneous attacker); "
                f"'PGD adaptive' attacks the defended classifier (EOT over "
                f"{cfg.adaptive_eot} draws for random defenses). Gaussian (vote) is Cohen et "
                f"al.'s smoothed classifier with {cfg.n_noise} samples, abstention counted as "
                f"error; Gaussian (payoff) is the game's expected accuracy under the same "
                f"noise. v_n solved on {s['n']} training points by the {s['solver']} solver: "
                f"{s['count']}/{s['n']} constraints satisfied (v = 0: {s['count_at_zero']}), "
                f"proven bound {s['upper_bound'] if s['upper_bound'] is not None else 'n/a'}, "
                f"optimality gap "
                f"{'n/a' if s['gap'] is None else format(s['gap'], '.4f')} (fraction)."),
            "columns": ["defense", "clean", "clean approx", "FGM true", "FGM approx",
                        "FGM gap", "PGD true", "PGD approx", "PGD gap", "PGD adaptive true"],
            "rows": [[r["defense"], r["clean_true"], r["clean_approx"], r["fgm_true"],
                      r["fgm_approx"], r["fgm_gap"], r["pgd_true"], r["pgd_approx"],
                      r["pgd_gap"], r["pgd_adaptive_true"]] for r in t["rows"]],
        })
    res["data"]["table1"] = tables


def _other_pairs(cfg: Paper1Config, out: Path,
                 device: torch.device) -> list[tuple[str, Any]]:
    """Jobs (unit key, compute) for the other class pairs: each trains its own model on
    the rank that computes it."""
    from advgame.data import load_dataset, select_classes

    pairs: list[tuple[str, str | None, tuple[int, int]]] = []
    if cfg.dataset in ("mnist-5k", "digits-8x8", "mnist"):
        base = load_dataset(cfg.dataset, data_dir=cfg.data_dir, test_fraction=cfg.test_fraction,
                            seed=cfg.seed)
        main = tuple(cfg.classes or ())
        pairs += [(cfg.dataset, cfg.data_dir, p) for p in _pairs(cfg, base.classes)
                  if tuple(p) != main]
    if cfg.fashion_dir:
        pairs += [("fashion-mnist", cfg.fashion_dir, tuple(p)) for p in cfg.fashion_pairs]  # type: ignore[misc]
    if cfg.cifar_dir:
        pairs += [("cifar10", cfg.cifar_dir, tuple(p)) for p in cfg.cifar_pairs]  # type: ignore[misc]
    eps_a, eps_d = cfg.eps_a[-1], cfg.eps_d[0]
    cache: dict[tuple[str, str | None], Dataset] = {}
    jobs: list[tuple[str, Any]] = []
    for name, ddir, p in pairs:
        def compute(name: str = name, ddir: str | None = ddir,
                    p: tuple[int, int] = p) -> dict[str, Any]:
            if (name, ddir) not in cache:
                cache[(name, ddir)] = load_dataset(name, data_dir=ddir,
                                                   test_fraction=cfg.test_fraction,
                                                   seed=cfg.seed)
            ds = select_classes(cache[(name, ddir)], p)
            sub = replace(cfg, dataset=name, data_dir=ddir, classes=p,
                          epochs=min(cfg.epochs, 5), refine_checks=min(cfg.refine_checks, 10),
                          arch=("cnn" if name == "cifar10" and cfg.arch == "mlp" else cfg.arch),
                          n_test=cfg.n_test)
            g, info = _prepare(sub, ds, out / "pairs" / f"{name}-{p[0]}-{p[1]}", device,
                               no_progress, alone=True)
            _, gen = seed_generators(cfg.seed, device)
            return pair_summary(sub, g, info["clean_accuracy"], eps_a, eps_d, gen)
        jobs.append((f"pair-{name}-{p[0]}-{p[1]}-{eps_a}-{eps_d}", compute))
    return jobs


# ---------------------------------------------------------------------------- outputs


def _plots() -> Any:
    from advgame import plots

    return plots


def _sweep_outputs(cfg: Paper1Config, res: dict[str, Any], sweep: list[dict[str, Any]],
                   out: Path, na: Norm, nd: Norm) -> None:
    plots = _plots()
    k = len(cfg.sweep_eps_a)
    sa, sd = sweep[:k], sweep[k:]
    curves = {}
    for key, label in (("none", "none"), ("gauss", "Gaussian vote"), ("shift", "v_n")):
        for an in ("fgm", "pgd"):
            curves[f"{label} {an.upper()} true"] = [s[f"{key}_{an}_true"] for s in sa]
            if key != "gauss":
                curves[f"{label} {an.upper()} approx"] = [s[f"{key}_{an}_approx"] for s in sa]
    plots.accuracy_vs_eps(out / "sweep_eps_a.png", [s["eps_a"] for s in sa], curves,
                          title=f"Accuracy vs attack budget (eps_D={cfg.eps_d[0]:g})",
                          xlabel=f"eps_A (L{na})", ylabel="test accuracy")
    curves_d = {}
    for an in ("fgm", "pgd"):
        curves_d[f"v_n {an.upper()} true"] = [s[f"shift_{an}_true"] for s in sd]
        curves_d[f"v_n {an.upper()} approx"] = [s[f"shift_{an}_approx"] for s in sd]
    plots.accuracy_vs_eps(out / "sweep_eps_d.png", [s["eps_d"] for s in sd], curves_d,
                          title=f"Equilibrium shift vs defense budget (eps_A={cfg.eps_a[-1]:g})",
                          xlabel=f"eps_D (L{nd})", ylabel="test accuracy")
    res["figures"] += [
        {"name": "sweep_eps_a", "file": "sweep_eps_a.png",
         "caption": "Test accuracy against the attacker's budget eps_A for no defense, "
                    "Gaussian smoothing (vote) and the equilibrium shift v_n (solved per eps_A "
                    "by the fast solver without LNS rounds); solid = true network, dashed = "
                    "linearized model."},
        {"name": "sweep_eps_d", "file": "sweep_eps_d.png",
         "caption": "Accuracy of the equilibrium shift as the defender's budget eps_D grows "
                    "(eps_D = 0 is no defense)."},
    ]
    res["tables"].append({
        "name": "sweep", "title": "eps sweep",
        "caption": "Accuracy (fraction of test images) per (eps_A, eps_D); v_n from the fast "
                   "solver on the training points; approx = linearized model.",
        "columns": ["eps_A", "eps_D", "none FGM", "none FGM approx", "none PGD",
                    "Gauss vote FGM", "Gauss vote PGD", "v_n FGM", "v_n FGM approx", "v_n PGD",
                    "v_n PGD approx"],
        "rows": [[s["eps_a"], s["eps_d"], s["none_fgm_true"], s["none_fgm_approx"],
                  s["none_pgd_true"], s["gauss_fgm_true"], s["gauss_pgd_true"],
                  s["shift_fgm_true"], s["shift_fgm_approx"], s["shift_pgd_true"],
                  s["shift_pgd_approx"]] for s in sweep],
    })


def _convergence_outputs(cfg: Paper1Config, res: dict[str, Any], conv: list[dict[str, Any]],
                         ref: dict[str, Any], out: Path, d: int) -> None:
    plots = _plots()
    ns = sorted({c["n"] for c in conv})
    gaps = {n: np.array([c["gap"] for c in conv if c["n"] == n]) for n in ns}
    mean = [float(gaps[n].mean()) for n in ns]
    q90 = [float(np.quantile(gaps[n], 0.9)) for n in ns]
    tail = [float((gaps[n] > cfg.convergence_t).mean()) for n in ns]
    vc = vc_gap_bound(np.array(ns), d + 1).tolist()
    hoeff = [math.exp(-2 * n * cfg.convergence_t ** 2) for n in ns]
    plots.convergence(out / "convergence_gap.png", ns,
                      {"mean gap Phi(v*) - Phi(v_n)": mean, "90% quantile of the gap": q90},
                      title="Convergence of the finite-sample defense",
                      xlabel="n (training points used)", ylabel="gap (accuracy)",
                      logx=True, logy=False,
                      reference_lines={f"VC bound, D = d+1 = {d + 1} (delta=0.05)": vc})
    plots.convergence(out / "convergence_tail.png", ns,
                      {f"P[gap > {cfg.convergence_t:g}] (measured)": tail},
                      title="Tail of the gap vs the disputed Hoeffding rate",
                      xlabel="n (training points used)", ylabel="probability",
                      logx=True, logy=False,
                      reference_lines={f"exp(-2 n t^2), t={cfg.convergence_t:g}": hoeff})
    res["figures"] += [
        {"name": "convergence_gap", "file": "convergence_gap.png",
         "caption": f"Phi(v*) - Phi(v_n) on held-out points (Phi(v*) = {ref['value']:.4f}, "
                    f"best known shift for the held-out objective, {ref['method']}) against n, "
                    f"over {cfg.convergence_draws} random draws per n; the uniform-convergence "
                    f"bound for half-spaces (VC dimension d+1) is drawn beside it."},
        {"name": "convergence_tail", "file": "convergence_tail.png",
         "caption": "Measured probability that the gap exceeds t, beside the Hoeffding rate "
                    "exp(-2 n t^2) that a review disputes as a bound on this gap."},
    ]
    res["tables"].append({
        "name": "convergence", "title": "Convergence in n",
        "caption": f"Gap Phi(v*) - Phi(v_n) (accuracy) over {cfg.convergence_draws} draws; "
                   f"VC bound with D = {d + 1}, delta = 0.05; Hoeffding exp(-2nt^2) at "
                   f"t = {cfg.convergence_t:g}.",
        "columns": ["n", "mean gap", "90% quantile", f"P[gap > {cfg.convergence_t:g}]",
                    "VC bound", "Hoeffding rate"],
        "rows": [[n, m, q, t, v, h] for n, m, q, t, v, h in
                 zip(ns, mean, q90, tail, vc, hoeff, strict=True)],
    })


def _diagnostics_outputs(cfg: Paper1Config, res: dict[str, Any], diag: list[dict[str, Any]],
                         out: Path, na: Norm) -> None:
    plots = _plots()
    eps = [d["eps"] for d in diag]
    keys = [("faithful", "faithful (all checks)"), ("labels_agree", "labels agree at FGM point"),
            ("same_region", "FGM point in same activation region"),
            ("sampled_disagree", "ball meets another boundary piece (sampled)"),
            ("pgd_disagrees", "linear model and PGD disagree")]
    curves = {lab: [d[k] for d in diag] for k, lab in keys}
    plots.accuracy_vs_eps(out / "linearity.png", eps, curves,
                          title="Is the locally linear model faithful?",
                          xlabel=f"eps (L{na})", ylabel="fraction of test points")
    res["figures"].append({
        "name": "linearity", "file": "linearity.png",
        "caption": "Fraction of test points where the locally linear model is faithful, "
                   "against eps, and the individual checks behind it."})
    res["tables"].append({
        "name": "linearity", "title": "Linearity diagnostics",
        "caption": "Fractions of test points. same region: FGM point in the activation region "
                   "of x; labels agree: linearized and true labels at the FGM point; linear "
                   "robust: the linear model says no point of the ball is misclassified; "
                   "PGD robust: the network survives PGD (and FGM); sampled disagree: some "
                   f"sampled point ({cfg.diag_samples} uniform, FGM segment, PGD path) is "
                   "labelled differently by the two; faithful: agree, no disagreement.",
        "columns": ["eps", "faithful", "same region", "labels agree", "linear robust",
                    "PGD robust", "PGD disagrees", "sampled disagree"],
        "rows": [[d["eps"], d["faithful"], d["same_region"], d["labels_agree"],
                  d["linear_robust"], d["pgd_robust"], d["pgd_disagrees"],
                  d["sampled_disagree"]] for d in diag],
    })


def _certification_outputs(cfg: Paper1Config, res: dict[str, Any], cert: dict[str, Any],
                           out: Path) -> None:
    plots = _plots()
    radius = np.array(cert["radius"])
    correct = np.array(cert["correct"], dtype=bool)
    plots.certified_accuracy_vs_radius(
        out / "certified.png", radius, correct,
        title=f"Certified accuracy of Gaussian smoothing (sigma={cfg.sigma:g})")
    grid = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    res["figures"].append({
        "name": "certified", "file": "certified.png",
        "caption": f"Fraction of {cert['n_points']} test points certified correct at L2 radius "
                   f">= r (Cohen et al., n0={cfg.certify_n0}, n={cfg.certify_n}, "
                   f"alpha={cfg.alpha:g}); abstention rate {cert['abstain']:.4f}."})
    res["tables"].append({
        "name": "certification", "title": "Certified accuracy (L2) of the smoothed classifier",
        "caption": f"sigma={cfg.sigma:g}; fraction of {cert['n_points']} test points whose "
                   f"certified class is correct with radius >= r.",
        "columns": ["radius r", "certified accuracy"],
        "rows": [[r, float(np.mean(correct & (radius >= r)))] for r in grid],
    })


def _pairs_outputs(cfg: Paper1Config, res: dict[str, Any], summaries: list[dict[str, Any]]) -> None:
    res["tables"].append({
        "name": "pairs", "title": "Other class pairs and datasets",
        "caption": f"Accuracy at eps_A={cfg.eps_a[-1]:g} (L{parse_norm(cfg.norm_a)}), "
                   f"eps_D={cfg.eps_d[0]:g} (L{parse_norm(cfg.norm_d)}); v_n by the fast "
                   f"solver (no LNS rounds); faithful = fraction of test points where the "
                   f"linear model is faithful at eps_A.",
        "columns": ["dataset", "pair", "clean", "v_n clean", "none FGM", "none FGM approx",
                    "none PGD", "Gauss vote FGM", "v_n FGM", "v_n FGM approx", "v_n PGD",
                    "faithful"],
        "rows": [[s["dataset"], f"{s['classes'][0]} vs {s['classes'][1]}", s["clean"],
                  s["clean_shift_true"],
                  s["fgm_none_true"], s["fgm_none_approx"], s["pgd_none_true"],
                  s["fgm_gauss_true"], s["fgm_shift_true"], s["fgm_shift_approx"],
                  s["pgd_shift_true"], s["faithful"]] for s in summaries],
    })


def _summary(cfg: Paper1Config, res: dict[str, Any], tables: list[dict[str, Any]],
             diag: list[dict[str, Any]], conv: list[dict[str, Any]], ref: dict[str, Any],
             pairs: list[dict[str, Any]]) -> None:
    s = res["summary"]
    for t in tables:
        rows = {r["defense"]: r for r in t["rows"]}
        none = next(r for k, r in rows.items() if k.startswith("none"))
        eq = next(r for k, r in rows.items() if k.startswith("equilibrium shift"))
        gv = next(r for k, r in rows.items() if "vote" in k)
        tag = f"At eps_A={t['eps_a']:g}, eps_D={t['eps_d']:g}"
        s.append(f"{tag}: PGD {'beats' if none['pgd_true'] < none['fgm_true'] else 'does not beat'}"
                 f" FGM on true accuracy without defense ({none['pgd_true']:.3f} vs "
                 f"{none['fgm_true']:.3f}); the true-minus-approximate gap is "
                 f"{none['fgm_gap']:+.3f} (FGM) and {none['pgd_gap']:+.3f} (PGD).")
        s.append(f"{tag}: the equilibrium shift gives {eq['fgm_true']:.3f} true / "
                 f"{eq['fgm_approx']:.3f} approx under FGM and {eq['pgd_true']:.3f} under PGD "
                 f"({eq['pgd_adaptive_true']:.3f} adaptive), vs {none['fgm_true']:.3f} / "
                 f"{none['pgd_true']:.3f} without defense and {gv['fgm_true']:.3f} / "
                 f"{gv['pgd_true']:.3f} with Gaussian smoothing; defended clean accuracy "
                 f"{eq['clean_true']:.3f} (undefended {none['clean_true']:.3f}).")
    faithful = ", ".join(f"{d['faithful']:.2f} at eps={d['eps']:g}" for d in diag)
    s.append(f"The locally linear model is faithful on a fraction {faithful} of test points.")
    big = max(c["n"] for c in conv)
    gaps = [c["gap"] for c in conv if c["n"] == big]
    s.append(f"Convergence: with n={big} training points the held-out gap Phi(v*)-Phi(v_n) "
             f"averages {np.mean(gaps):.4f} (Phi(v*) = {ref['value']:.4f}).")
    if len(pairs) > 1:
        wins = sum(p["fgm_shift_true"] > p["fgm_none_true"] for p in pairs)
        costly = sum(p["clean_shift_true"] < p["clean"] - 0.02 for p in pairs)
        s.append(f"Over {len(pairs)} class pairs, the equilibrium shift raises true FGM "
                 f"accuracy over no defense on {wins} and costs more than 2 points of clean "
                 f"accuracy on {costly}; mean faithful fraction "
                 f"{np.mean([p['faithful'] for p in pairs]):.3f}.")


# ---------------------------------------------------------------------------- CLI


def register_cli(extra: dict[str, Any], runners: dict[str, Any], run_config_command: Any,
                 common_args: Any) -> None:
    """Add ``advgame paper1`` to the command line (called by ``advgame.cli``)."""

    def add(sub: Any, name: str) -> None:
        from advgame.cli import _data_args, _floats, _model_args

        p = sub.add_parser(name, help="S1: the additive game paper, end to end")
        common_args(p, "runs/paper1")
        _data_args(p)
        _model_args(p)
        p.add_argument("--model", default=None, help="two-class checkpoint to load")
        p.add_argument("--eps-a", dest="eps_a", type=_floats, nargs="+", default=None)
        p.add_argument("--eps-d", dest="eps_d", type=_floats, nargs="+", default=None)
        p.add_argument("--norm", default=None, help="sets both --norm-a and --norm-d")
        p.add_argument("--norm-a", dest="norm_a", default=None)
        p.add_argument("--norm-d", dest="norm_d", default=None)
        p.add_argument("--sigma", type=float, default=None)
        p.add_argument("--solver", default=None, help="auto, exact or fast")
        p.add_argument("--n-test", dest="n_test", type=int, default=None)
        p.add_argument("--fashion-dir", dest="fashion_dir", default=None)
        p.add_argument("--cifar-dir", dest="cifar_dir", default=None)
        p.add_argument("--no-pairs", dest="pairs", action="store_const", const="none",
                       default=None, help="skip the summary over other pairs")

    def run(args: Any) -> Any:
        if args.norm is not None:
            args.norm_a = args.norm_a or args.norm
            args.norm_d = args.norm_d or args.norm
        model = args.model

        def runner(cfg: Paper1Config, out: Path, device: torch.device,
                   progress: Progress) -> dict[str, Any]:
            if model is not None:
                return run_paper1_with_model(cfg, out, device, model, progress)
            return run_paper1(cfg, out, device, progress)
        return run_config_command(args, Paper1Config, runner, QUICK)

    extra["paper1"] = add
    runners["paper1"] = run


def run_paper1_with_model(cfg: Paper1Config, out: Path, device: torch.device, model: str,
                          progress: Progress = no_progress) -> dict[str, Any]:
    """As :func:`run_paper1`, on a saved two-class checkpoint instead of a trained one."""
    from advgame.models import load_checkpoint, save_checkpoint

    m, ck = load_checkpoint(model, map_location=device)
    dest = out / "model" / "model.pt"
    save_checkpoint(dest, m, arch=ck["arch"], input_shape=tuple(ck["input_shape"]),
                    num_classes=ck["num_classes"], kwargs=ck["kwargs"],
                    meta={**ck.get("meta", {}), "config": _cfg_json(cfg)})
    return run_paper1(cfg, out, device, progress)


def _cfg_json(cfg: Any) -> dict[str, Any]:
    from advgame.experiments.classifier import _jsonable_cfg

    return _jsonable_cfg(cfg)
