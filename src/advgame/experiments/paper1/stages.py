"""The units of work of ``advgame paper1``: each returns a JSON-able dict that the unit
store keeps, so a rerun resumes.

The game (SPEC section 1): the attacker adds delta, ||delta||_p <= eps_A, x + delta in
[0, 1] (the box of the game played on images; the paper's model has none); the defender
adds v, ||v||_q <= eps_D. Every table evaluates each defense against each attack twice:
"true" (the network) and "approx" (the linearization at the clean point on the same
input, the paper's approximate accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advgame import smoothing
from advgame.attacks import GradientAttack, StrongAttack
from advgame.data import Dataset, class_counts, stratified_indices, to_signed
from advgame.defenses.additive import max_feasible_shift
from advgame.defenses.base import TransformDefense
from advgame.defenses.preprocessing import BitDepthReduction, MedianFilter
from advgame.evaluation import evaluate as evaluate_robustness
from advgame.experiments.classifier import eval_subset, obtain_model, obtain_model_once
from advgame.experiments.paper1.config import Paper1Config
from advgame.experiments.runtime import Progress
from advgame.experiments.s1_eval import (
    Defense,
    adaptive_model,
    clean_thresholds,
    evaluate,
    game_constraints,
    outside_box,
)
from advgame.linear import best_response, linearity_diagnostics, linearize
from advgame.models import accuracy
from advgame.threat import parse_norm

BOX = (0.0, 1.0)


@dataclass
class S1Game:
    """The trained classifier and its linearization on train and (evaluated) test data."""

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


def prepare(cfg: Paper1Config, ds: Dataset, out: Path, device: torch.device,
            progress: Progress, model_path: str | None = None,
            *, alone: bool = False) -> tuple[S1Game, dict[str, Any]]:
    """Model and linearizations. Under torchrun rank 0 trains (or loads) the model and
    the other ranks load it; ``alone``: only this rank needs it (a sharded unit). The test
    points are a stratified sample of ``n_test`` (all when None)."""
    if alone:
        model, info = obtain_model(cfg, ds, out, device, model_path, progress, save=True)
    else:
        model, info = obtain_model_once(cfg, ds, out, device, model_path, progress)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    x_te, y_te = eval_subset(ds, device, cfg.n_test, cfg.seed)
    w_tr, b_tr = linearize_batched(model, x_tr)
    w_te, b_te = linearize_batched(model, x_te)
    g = S1Game(ds, model, x_tr, to_signed(y_tr), w_tr, b_tr, x_te, y_te, to_signed(y_te),
               w_te, b_te)
    info = {**info, "clean_accuracy": accuracy(model, x_te, y_te),
            "train_accuracy": accuracy(model, x_tr, y_tr),
            "class_counts": class_counts(y_te, ds.classes),
            "train_class_counts": class_counts(y_tr, ds.classes)}
    return g, info


def linearize_batched(
    model: nn.Module, x: torch.Tensor, bs: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [linearize(model, x[i:i + bs]) for i in range(0, x.shape[0], bs)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _box_of(objective: str) -> tuple[float, float] | None:
    return BOX if objective == "box" else None


def min_clean_count(g: S1Game, max_clean_drop: float) -> tuple[np.ndarray, int]:
    """(clean thresholds -m_i, the count to keep) of the clean constraint on the training
    points: at most ``max_clean_drop`` (a fraction) below the count at v = 0."""
    clean_c = clean_thresholds(g.w_tr, g.b_tr, g.x_tr, g.ys_tr)
    n = clean_c.shape[0]
    return clean_c, max(0, int(np.count_nonzero(clean_c < 0))
                        - math.floor(max_clean_drop * n + 1e-9))


def solve_shift(cfg: Paper1Config, g: S1Game, eps_a: float, eps_d: float, *,
                objective: str | None = None, max_clean_drop: float | None = None,
                method: str | None = None, seed: int = 0, lns: bool = True) -> dict[str, Any]:
    """v_n on the training points for ``objective`` ("box" or "free"; default the
    config's), optionally under the clean constraint; both solvers under ``auto`` (the
    better count wins, the MILP gives the bound). Returns a JSON-able dict.

    ``lns=False`` skips the fast solver's large-neighbourhood MILP rounds (used for the
    many solves of the sweeps, where they rarely add a constraint and cost most time).
    """
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    obj = objective or cfg.objective
    a, c = game_constraints(g.w_tr, g.b_tr, g.x_tr, g.ys_tr, eps_a, na, box=_box_of(obj))
    con: dict[str, Any] = {}
    if max_clean_drop is not None:
        clean_c, k = min_clean_count(g, max_clean_drop)
        con = {"clean_c": clean_c, "min_clean": k}
    method = method or cfg.solver
    runs = {}
    if method in ("auto", "fast"):
        runs["fast"] = max_feasible_shift(a, c, eps_d, nd, "fast", restarts=cfg.restarts,
                                          refine_checks=cfg.refine_checks,
                                          lns_rounds=cfg.lns_rounds if lns else 0,
                                          num_maximizers=cfg.num_maximizers, seed=seed, **con)
    if method in ("auto", "exact"):
        runs["exact"] = max_feasible_shift(a, c, eps_d, nd, "exact",
                                           time_limit=cfg.exact_time_limit,
                                           num_maximizers=cfg.num_maximizers, seed=seed, **con)
    best_name = max(runs, key=lambda k: (runs[k].count, k == "exact"))
    best = runs[best_name]
    bounds = [r.upper_bound for r in runs.values() if r.upper_bound is not None]
    bound = min(bounds) if bounds else None
    return {
        "v": best.v.tolist(), "maximizers": [m.tolist() for m in best.maximizers],
        "objective": obj, "solver": best_name, "count": best.count, "n": best.n,
        "count_at_zero": best.count_at_zero, "upper_bound": bound,
        "gap": None if bound is None else max(0.0, bound - best.count) / best.n,
        "max_clean_drop": max_clean_drop, "clean_required": best.clean_required,
        "clean_count": best.clean_count, "constraint_satisfied": best.constraint_satisfied,
        "runs": {k: {"count": r.count, "status": r.status, "time_s": r.time_s,
                     "upper_bound": r.upper_bound, "solver": r.solver}
                 for k, r in runs.items()},
    }


def _shift_tensor(vals: list[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(vals, dtype=like.dtype, device=like.device).reshape(like.shape[1:])


def defenses(cfg: Paper1Config, g: S1Game, shifts: dict[str, dict[str, Any]],
             *, full: bool = True) -> list[tuple[str, Defense, bool]]:
    """(key, defense, in the payoff game) of Table 1; ``full=False``: the pair summary's
    none / Gaussian vote / v_n / constrained v_n.

    ``shifts``: "main" (v_n of the configured objective, with its maximizers), "clean"
    (the clean-constrained v_n) and, when ``full``, "other" (v_n of the other objective).
    Labels are short (a table must fit a page); the captions spell them out.
    """
    like = g.x_te
    clip = cfg.clip_defense
    tag = "box" if cfg.objective == "box" else "paper"
    other = "paper" if cfg.objective == "box" else "box"
    zero = torch.zeros((1, *like.shape[1:]), dtype=like.dtype, device=like.device)
    v = _shift_tensor(shifts["main"]["v"], like)[None]
    v_clean = _shift_tensor(shifts["clean"]["v"], like)[None]
    out = [
        ("none", Defense("none", "shift", zero), True),
        ("gauss_vote", Defense("Gauss vote", "gaussian_vote", sigma=cfg.sigma), False),
    ]
    if full:
        out.append(("gauss", Defense("Gauss payoff", "gaussian_payoff", sigma=cfg.sigma), True))
    out.append(("vn", Defense(f"v_n {tag}", "shift", v, clip=clip), True))
    if full:
        mix = torch.stack([_shift_tensor(m, like) for m in shifts["main"]["maximizers"]])
        out.append(("mix", Defense(f"v_n {tag} mix({mix.shape[0]})", "mixture", mix,
                                   clip=clip), True))
    pts = round(100 * cfg.max_clean_drop, 2)
    out.append(("vn_clean", Defense(f"v_n {tag} clean≤{pts:g}pt", "shift", v_clean, clip=clip),
                True))
    if full:
        v_other = _shift_tensor(shifts["other"]["v"], like)[None]
        out.append(("vn_other", Defense(f"v_n {other}", "shift", v_other, clip=clip), True))
        out.append(("vn_variant", Defense(f"v_n {tag} {'unclipped' if clip else 'clipped'}",
                                          "shift", v, clip=not clip), False))
    if full and cfg.preprocessing:
        out.append(("median", Defense("median 3x3", "transform",
                                      transform=MedianFilter(3)), False))
        out.append(("bitdepth", Defense("bit depth 3", "transform",
                                        transform=BitDepthReduction(3)), False))
    return out


def s1_attacks(cfg: Paper1Config, eps_a: float) -> dict[str, GradientAttack]:
    """The S1 attacker's gradient strategies at eps_A, by key: ``fgm`` (box-aware FGM, the
    linearized game's exact best response in ball ∩ box), ``fgm_clip`` (L2 only: the
    clipped normalized-gradient FGM) and ``pgd`` (``cfg.pgd_steps`` steps, random start);
    each crafts on the whole test set at once."""
    na = parse_norm(cfg.norm_a)
    out = {"fgm": GradientAttack("FGM", "fgm", eps_a, na, box_aware=True, batch_size=None)}
    if na == "2":
        out["fgm_clip"] = GradientAttack("FGM clip", "fgm", eps_a, na, batch_size=None)
    out["pgd"] = GradientAttack("PGD", "pgd", eps_a, na, steps=cfg.pgd_steps, batch_size=None)
    return out


def attack_inputs(cfg: Paper1Config, g: S1Game, eps_a: float,
                  defs: list[tuple[str, Defense, bool]], gen: torch.Generator,
                  *, adaptive: bool = True) -> list[tuple[str, str, torch.Tensor]]:
    """(key, label, attacked test inputs) of the S1 attacker's strategies.

    FGM is the linearized game's exact best response in ball ∩ box (box-aware for L2;
    clipped FGSM for L-inf); for L2 the plain clipped normalized-gradient FGM is a column
    too. PGD attacks the undefended network (the game's simultaneous attacker);
    "PGD→d" attacks defense d itself (white box; EOT for random defenses): one column
    per defense, each a fixed map x -> x_adv that every defense is evaluated against.
    """
    x, y = g.x_te, g.y_te
    atk = s1_attacks(cfg, eps_a)
    out = [(key, a.name, a.craft(g.model, x, y, generator=gen)) for key, a in atk.items()]
    if not adaptive:
        return out
    done: set[str] = set()
    for key, d, _ in defs:
        if key == "none":
            continue
        kind = "gauss" if d.kind.startswith("gaussian") else key
        if kind in done:
            continue
        done.add(kind)
        target = adaptive_model(d, g.model, eot=cfg.adaptive_eot, generator=gen)
        z = atk["pgd"].craft(target, x, y, generator=gen)
        out.append((f"pgd_{kind}", f"PGD→{d.name if kind != 'gauss' else 'Gauss'}", z))
    return out


def evaluate_table(cfg: Paper1Config, g: S1Game, eps_a: float, eps_d: float,
                   shifts: dict[str, dict[str, Any]], gen: torch.Generator,
                   *, full: bool = True) -> dict[str, Any]:
    """Every defense against every attack: the payoff matrices ``true`` and ``approx``
    (rows = defenses, columns = attacks; entries = accuracy on the test points), the clean
    accuracies, the fraction of defended pixels outside [0, 1] under FGM, and the
    linearized accuracy under the paper's unbounded FGM ("approx, no box").

    The Gaussian vote is a majority vote over ``n_noise`` draws (costly): it is evaluated
    on clean, FGM, PGD and its own adaptive attack only (None elsewhere).
    """
    na = parse_norm(cfg.norm_a)
    defs = defenses(cfg, g, shifts, full=full)
    atks = attack_inputs(cfg, g, eps_a, defs, gen, adaptive=full)
    delta_free = best_response(g.w_te, g.b_te, g.x_te, g.ys_te, eps_a, na, box=None)
    z_free = g.x_te + delta_free
    kw: dict[str, Any] = {"n_noise": cfg.n_noise, "alpha": cfg.alpha, "generator": gen}
    rows = []
    aa_cache: dict[str, Any] = {}  # the Gaussian vote and payoff share one attacked target
    for key, d, in_game in defs:
        clean_t, clean_a = evaluate(d, g.model, g.w_te, g.b_te, g.x_te, g.ys_te, **kw)
        true: list[float | None] = []
        approx: list[float | None] = []
        worst = clean_t.clone()  # per point: the least expected correctness over attacks
        for akey, _, z in atks:
            if d.kind == "gaussian_vote" and akey not in ("fgm", "fgm_clip", "pgd",
                                                          "pgd_gauss"):
                true.append(None)
                approx.append(None)
                continue
            t, a = evaluate(d, g.model, g.w_te, g.b_te, z, g.ys_te, **kw)
            true.append(float(t.mean()))
            approx.append(float(a.mean()))
            worst = torch.minimum(worst, t)
        _, free_a = evaluate(d, g.model, g.w_te, g.b_te, z_free, g.ys_te, **kw)
        adaptive_key = ("pgd" if key == "none" else
                        "pgd_gauss" if d.kind.startswith("gaussian") else f"pgd_{key}")
        strong = _strong_columns(cfg, g, d, eps_a, gen, aa_cache) if full else {}
        for point in strong.pop("per_point", []):
            worst = torch.minimum(worst, point)
        rows.append({
            "key": key, "defense": d.name, "in_game": in_game,
            "clean_true": float(clean_t.mean()), "clean_approx": float(clean_a.mean()),
            "true": true, "approx": approx, "fgm_free_approx": float(free_a.mean()),
            "outside_box": outside_box(d, atks[0][2]),
            "adaptive": adaptive_key if any(k == adaptive_key for k, _, _ in atks) else None,
            "worst_true": float(worst.mean()),
            **strong,
        })
    return {"eps_a": eps_a, "eps_d": eps_d, "attacks": [[k, lab] for k, lab, _ in atks],
            "rows": rows,
            "shifts": {k: {f: s[f] for f in s if f not in ("v", "maximizers")}
                       | {"norm": _norm(s["v"], cfg.norm_d)} for k, s in shifts.items()}}


def _strong_columns(cfg: Paper1Config, g: S1Game, d: Defense, eps_a: float,
                    gen: torch.Generator, cache: dict[str, Any]) -> dict[str, Any]:
    """AutoAttack against the defended classifier (``aa_true``, its cascade, the masking
    flags it raised) and, for a transform, BPDA-PGD (``bpda_true``); ``per_point`` holds
    their per-point expected correctness (N,) for the worst case."""
    na = parse_norm(cfg.norm_a)
    out: dict[str, Any] = {"aa_true": None, "aa_stages": [], "aa_flags": [], "bpda_true": None,
                           "per_point": []}
    target = adaptive_model(d, g.model, eot=cfg.adaptive_eot, generator=gen)
    kw: dict[str, Any] = {"n_noise": cfg.n_noise, "alpha": cfg.alpha, "generator": gen}
    if cfg.autoattack:
        q = cfg.aa_queries

        sq = StrongAttack(f"square ({q} queries)", eps_a, na, method="square", queries=q,
                          batch_size=None)
        shared = "gauss" if d.kind.startswith("gaussian") else d.name
        if shared not in cache:
            cache[shared] = evaluate_robustness(
                target, g.x_te, g.y_te, eps_a, na,
                ["apgd-ce", "apgd-t", "fab-t", sq], gen,
                checks=False)
        ev = cache[shared]
        point = evaluate(d, g.model, g.w_te, g.b_te, ev.x_adv, g.ys_te, **kw)[0]
        out["aa_true"] = float(point.mean())
        out["per_point"].append(point)
        out["aa_stages"] = [[s.name, s.robust_accuracy] for s in ev.stages]
        out["aa_flags"] = [f.name for f in ev.flags]
    if d.kind == "transform":
        assert d.transform is not None
        through = TransformDefense(d.name, d.transform, g.model).with_bpda()
        xb = s1_attacks(cfg, eps_a)["pgd"].craft(through, g.x_te, g.y_te, generator=gen)
        point = evaluate(d, g.model, g.w_te, g.b_te, xb, g.ys_te, **kw)[0]
        out["bpda_true"] = float(point.mean())
        out["per_point"].append(point)
    return out


def _norm(v: list[float], norm: str) -> float:
    arr = np.asarray(v)
    return float(np.abs(arr).max() if parse_norm(norm) == "inf" else np.linalg.norm(arr))


def table1(cfg: Paper1Config, g: S1Game, eps_a: float, eps_d: float,
           gen: torch.Generator) -> dict[str, Any]:
    """Table 1 at one (eps_A, eps_D): v_n for both objectives and the clean-constrained
    v_n, then :func:`evaluate_table` with every defense and attack."""
    other = "free" if cfg.objective == "box" else "box"
    shifts = {
        "main": solve_shift(cfg, g, eps_a, eps_d, seed=cfg.seed),
        "clean": solve_shift(cfg, g, eps_a, eps_d, seed=cfg.seed,
                             max_clean_drop=cfg.max_clean_drop),
        "other": solve_shift(cfg, g, eps_a, eps_d, seed=cfg.seed, objective=other),
    }
    return evaluate_table(cfg, g, eps_a, eps_d, shifts, gen)


def sweep_point(cfg: Paper1Config, g: S1Game, eps_a: float, eps_d: float,
                gen: torch.Generator) -> dict[str, Any]:
    """Accuracies of none / Gaussian vote / v_n / constrained v_n under FGM and PGD at one
    (eps_a, eps_d), v_n of the configured objective (fast solver, no LNS rounds)."""
    shifts = {"main": solve_shift(cfg, g, eps_a, eps_d, method="fast", lns=False),
              "clean": solve_shift(cfg, g, eps_a, eps_d, method="fast", lns=False,
                                   max_clean_drop=cfg.max_clean_drop)}
    t = evaluate_table(cfg, g, eps_a, eps_d, shifts, gen, full=False)
    res: dict[str, Any] = {"eps_a": eps_a, "eps_d": eps_d,
                           "train_count": shifts["main"]["count"],
                           "train_count_at_zero": shifts["main"]["count_at_zero"]}
    cols = [k for k, _ in t["attacks"]]
    for row in t["rows"]:
        key = {"gauss_vote": "gauss", "vn": "shift"}.get(row["key"], row["key"])
        for an in ("fgm", "pgd"):
            j = cols.index(an)
            res[f"{key}_{an}_true"] = row["true"][j]
            res[f"{key}_{an}_approx"] = row["approx"][j]
        res[f"{key}_clean_true"] = row["clean_true"]
        res[f"{key}_outside_box"] = row["outside_box"]
    return res


def convergence_draw(cfg: Paper1Config, g: S1Game, eps_a: float, eps_d: float, n: int,
                     draw: int, v_star_value: float) -> dict[str, Any]:
    """Phi_test(v*) - Phi_test(v_n) for one random draw of n training points."""
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    a_tr, c_tr = game_constraints(g.w_tr, g.b_tr, g.x_tr, g.ys_tr, eps_a, na, box=cfg.box)
    a_te, c_te = game_constraints(g.w_te, g.b_te, g.x_te, g.ys_te, eps_a, na, box=cfg.box)
    rng = np.random.default_rng([cfg.seed, n, draw])
    n_eff = min(n, a_tr.shape[0])
    idx = rng.choice(a_tr.shape[0], size=n_eff, replace=False)
    r = max_feasible_shift(a_tr[idx], c_tr[idx], eps_d, nd, "fast", restarts=cfg.restarts,
                           refine_checks=cfg.refine_checks, lns_rounds=0, seed=rng)
    phi_n = float(np.mean(a_te @ r.v > c_te))
    return {"n": n_eff, "draw": draw, "phi_test": phi_n, "gap": v_star_value - phi_n,
            "phi_train": r.value}


def v_star(cfg: Paper1Config, g: S1Game, eps_a: float, eps_d: float) -> dict[str, Any]:
    """The best known shift for the held-out (test) objective: the reference Phi(v*)."""
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    a_te, c_te = game_constraints(g.w_te, g.b_te, g.x_te, g.ys_te, eps_a, na, box=cfg.box)
    runs = [max_feasible_shift(a_te, c_te, eps_d, nd, "fast", restarts=2 * cfg.restarts,
                               refine_checks=cfg.refine_checks, seed=cfg.seed)]
    if cfg.solver != "fast":
        runs.append(max_feasible_shift(a_te, c_te, eps_d, nd, "exact",
                                       time_limit=cfg.exact_time_limit))
    best = max(runs, key=lambda r: r.count)
    return {"value": best.value, "method": best.method, "status": best.status,
            "value_at_zero": best.value_at_zero,
            "upper_bound": None if best.upper_bound is None else best.upper_bound / best.n}


def diagnostics(cfg: Paper1Config, g: S1Game, eps: float,
                gen: torch.Generator) -> dict[str, Any]:
    d = linearity_diagnostics(g.model, g.x_te, g.ys_te, eps, cfg.norm_a,
                              samples=cfg.diag_samples, pgd_steps=cfg.pgd_steps, generator=gen)
    return {"eps": eps, **d.fractions()}


def certification(cfg: Paper1Config, g: S1Game, gen: torch.Generator) -> dict[str, Any]:
    """Cohen et al.'s certificate on a stratified sample of ``certify_points`` test points."""
    k = min(cfg.certify_points, g.x_te.shape[0])
    idx = stratified_indices(g.y_te, k, generator=torch.Generator().manual_seed(cfg.seed))
    x, y = g.x_te[idx], g.y_te[idx]
    cls, radius = smoothing.certify(g.model, x, cfg.sigma, n0=cfg.certify_n0,
                                    n=cfg.certify_n, alpha=cfg.alpha, generator=gen,
                                    num_classes=2)
    correct = (cls == y)
    return {"radius": radius.tolist(), "correct": correct.tolist(),
            "abstain": float((cls == -1).float().mean()), "n_points": k,
            "class_counts": class_counts(y, g.ds.classes)}


def pair_summary(cfg: Paper1Config, g: S1Game, clean: float, eps_a: float, eps_d: float,
                 gen: torch.Generator) -> dict[str, Any]:
    """Compact Table 1 of one class pair / dataset, with and without the clean constraint."""
    sub = replace(cfg, n_noise=min(cfg.n_noise, 200))
    shifts = {"main": solve_shift(cfg, g, eps_a, eps_d, method="fast", lns=False),
              "clean": solve_shift(cfg, g, eps_a, eps_d, method="fast", lns=False,
                                   max_clean_drop=cfg.max_clean_drop)}
    t = evaluate_table(sub, g, eps_a, eps_d, shifts, gen, full=False)
    cols = [k for k, _ in t["attacks"]]
    rows = {r["key"]: r for r in t["rows"]}
    diag = diagnostics(replace(cfg, diag_samples=min(cfg.diag_samples, 8)), g, eps_a, gen)
    f, p = cols.index("fgm"), cols.index("pgd")
    none, eq, gv, con = rows["none"], rows["vn"], rows["gauss_vote"], rows["vn_clean"]
    return {
        "dataset": g.ds.name, "classes": list(g.ds.classes), "clean": clean,
        "n_test": int(g.x_te.shape[0]), "class_counts": class_counts(g.y_te, g.ds.classes),
        "clean_shift_true": eq["clean_true"], "clean_con_true": con["clean_true"],
        "fgm_none_true": none["true"][f], "fgm_none_approx": none["approx"][f],
        "pgd_none_true": none["true"][p], "fgm_gauss_true": gv["true"][f],
        "fgm_shift_true": eq["true"][f], "fgm_shift_approx": eq["approx"][f],
        "pgd_shift_true": eq["true"][p],
        "fgm_con_true": con["true"][f], "fgm_con_approx": con["approx"][f],
        "pgd_con_true": con["true"][p], "outside_box": eq["outside_box"],
        "outside_box_con": con["outside_box"],
        "train_count_at_zero": shifts["main"]["count_at_zero"],
        "train_n": shifts["main"]["n"],
        "faithful": diag["faithful"],
    }
