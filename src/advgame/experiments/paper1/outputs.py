"""Tables, figures and summary lines of ``advgame paper1`` from its stored units.

Every function appends to ``res["tables"]`` / ``res["figures"]`` / ``res["summary"]`` of a
results.json dict (schema: docs/results-schema.md); nothing here computes an attack.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from advgame.experiments.paper1.config import Paper1Config
from advgame.experiments.s1_eval import vc_gap_bound
from advgame.game import solve_zero_sum
from advgame.threat import Norm, parse_norm


def _plots() -> Any:
    from advgame import plots

    return plots


def _col(t: dict[str, Any], key: str) -> int | None:
    keys = [k for k, _ in t["attacks"]]
    return keys.index(key) if key in keys else None


def _legend(cfg: Paper1Config) -> str:
    tag = "box" if cfg.objective == "box" else "paper"
    return (f"Rows: none = no defense (v = 0); Gauss vote = Cohen et al.'s smoothed classifier "
            f"(sigma={cfg.sigma:g}, {cfg.n_noise} draws, abstention = error); Gauss payoff = "
            f"the game's expected accuracy under the same noise; v_n box = the finite-sample "
            f"equilibrium shift of the game played on images (attacks clipped to [0, 1]); "
            f"v_n paper = the same for the paper's unbounded model; mix(k) = uniform over k "
            f"maximizers; clean≤{100 * cfg.max_clean_drop:g}pt = v_n {tag} under the "
            f"constraint that linearized clean accuracy on the training points drops at most "
            f"{100 * cfg.max_clean_drop:g} point(s); clipped / unclipped = v_n {tag} with the "
            f"defended input clip(x + delta + v, 0, 1) / x + delta + v; median 3x3 / bit depth 3 = "
            f"input-dependent preprocessing (median filter; 3-bit quantization) in front of "
            f"the network, not strategies of the additive game.")


def table1_outputs(cfg: Paper1Config, res: dict[str, Any], tables: list[dict[str, Any]],
                   pair: str, n_test: int, counts: dict[str, int], na: Norm, nd: Norm) -> None:
    """Table 1 per (eps_A, eps_D): defenses x {clean, FGM, PGD, adaptive PGD} x {true,
    approx}, the paper's unbounded-FGM approx column and the out-of-box fraction."""
    what = ", ".join(f"{v} of class {k}" for k, v in counts.items())
    for t in tables:
        f, p, fc = _col(t, "fgm"), _col(t, "pgd"), _col(t, "fgm_clip")
        s, sc, so = t["shifts"]["main"], t["shifts"]["clean"], t["shifts"]["other"]
        columns = ["defense", "clean", "clean approx", "FGM true", "FGM approx",
                   "FGM approx no box"]
        if fc is not None:
            columns.append("FGM clip true")
        columns += ["PGD true", "PGD approx", "PGD adaptive"]
        has_aa = any(r.get("aa_true") is not None for r in t["rows"])
        has_bpda = any(r.get("bpda_true") is not None for r in t["rows"])
        columns += (["AA adaptive"] if has_aa else []) + (["BPDA-PGD"] if has_bpda else [])
        columns += ["worst case", "outside box"]
        rows = []
        for r in t["rows"]:
            ad = _col(t, r["adaptive"]) if r["adaptive"] else None
            row = [r["defense"], r["clean_true"], r["clean_approx"], r["true"][f],
                   r["approx"][f], r["fgm_free_approx"]]
            if fc is not None:
                row.append(r["true"][fc])
            row += [r["true"][p], r["approx"][p], None if ad is None else r["true"][ad]]
            row += ([r.get("aa_true")] if has_aa else []) + (
                [r.get("bpda_true")] if has_bpda else [])
            rows.append([*row, r.get("worst_true"), r["outside_box"]])
        masked = [f"{r['defense']}: {', '.join(r['aa_flags'])}" for r in t["rows"]
                  if r.get("aa_flags")]

        def solved(x: dict[str, Any]) -> str:
            bound = "n/a" if x["upper_bound"] is None else f"{x['upper_bound']:g}"
            gap = "n/a" if x["gap"] is None else f"{x['gap']:.4f}"
            return (f"{x['count']}/{x['n']} training constraints by the {x['solver']} solver "
                    f"(v = 0: {x['count_at_zero']}; proven bound {bound}, gap {gap})")

        res["tables"].append({
            "name": f"table1_eps_a_{t['eps_a']:g}_eps_d_{t['eps_d']:g}",
            "title": f"Table 1 — {pair}: eps_A={t['eps_a']:g} (L{na}), eps_D={t['eps_d']:g} "
                     f"(L{nd})",
            "caption": (
                f"Accuracy on {n_test} test images ({what}). true = the network on the "
                f"perturbed input; approx = its linearization at the clean point on the same "
                f"input; approx no box = the linearization under the paper's unbounded FGM "
                f"(x - eps y dual-direction, outside [0, 1]). FGM = the exact best response "
                f"of the linearized game in ball ∩ box"
                + (" (box-aware L2 step)" if na == "2" else " (clipped FGSM)")
                + (", FGM clip = the clipped normalized-gradient FGM" if fc is not None else "")
                + f"; PGD ({cfg.pgd_steps} steps) attacks the undefended network; PGD adaptive "
                f"attacks the defended classifier (EOT over {cfg.adaptive_eot} draws for "
                f"random defenses). "
                + (f"AA adaptive = APGD-CE -> APGD-T -> FAB-T -> Square ({cfg.aa_queries} "
                   f"queries) against the defended classifier, the worst case per point; "
                   f"gradient-masking flags it raised: "
                   f"{'; '.join(masked) if masked else 'none'}. " if has_aa else "")
                + ("BPDA-PGD = PGD through the transform's straight-through (identity) "
                   "gradient (Athalye et al. 2018). " if has_bpda else "")
                + "outside box = fraction of defended pixels outside "
                "[0, 1] under FGM. " + _legend(cfg) + f" v_n: {solved(s)}; paper's model: "
                f"{solved(so)}; clean-constrained: {solved(sc)}, keeping "
                f"{sc['clean_count']}/{sc['n']} clean (required {sc['clean_required']})."),
            "columns": columns, "rows": rows,
        })
    res["data"]["table1"] = tables


def _game_columns(t: dict[str, Any]) -> list[int]:
    """The attacks of the S1 game: FGM, PGD and PGD against each of the game's defenses."""
    keep = {"fgm", "fgm_clip", "pgd", "pgd_gauss"} | {
        f"pgd_{r['key']}" for r in t["rows"] if r["in_game"]}
    return [j for j, (k, _) in enumerate(t["attacks"]) if k in keep]


def _game(t: dict[str, Any], which: str) -> tuple[np.ndarray, list[str], list[str]]:
    rows = [r for r in t["rows"] if r["in_game"]]
    cols = _game_columns(t)
    return (np.array([[r[which][j] for j in cols] for r in rows], dtype=float),
            [r["defense"] for r in rows], [t["attacks"][j][1] for j in cols])


def payoff_analysis(t: dict[str, Any], which: str) -> dict[str, Any]:
    """The empirical S1 game of one Table 1 (rows = the game's defenses, columns = the
    attacks), its Nash equilibrium (HiGHS LP) and the exploitability of the paper's
    claimed equilibrium (FGM, v_n): how much the attacker gains by leaving FGM against
    v_n, and the defender by leaving v_n against FGM."""
    a, rl, cl = _game(t, which)
    sol = solve_zero_sum(a)
    keys = [r["key"] for r in t["rows"] if r["in_game"]]
    i, j = keys.index("vn"), 0  # FGM is the first column
    u = float(a[i, j])
    att = int(np.argmin(a[i]))
    dfn = int(np.argmax(a[:, j]))
    return {
        "which": which, "matrix": a.tolist(), "rows": rl, "columns": cl,
        "value": float(sol.value), "defender": np.asarray(sol.defender_strategy).tolist(),
        "attacker": np.asarray(sol.attacker_strategy).tolist(),
        "claimed_payoff": u,
        "attacker_gain": u - float(a[i, att]), "attacker_best": cl[att],
        "defender_gain": float(a[dfn, j]) - u, "defender_best": rl[dfn],
    }


def payoff_outputs(cfg: Paper1Config, res: dict[str, Any], tables: list[dict[str, Any]],
                   out: Path) -> list[dict[str, Any]]:
    """The payoff matrices (linearized and true) of every Table 1, solved."""
    plots = _plots()
    games = []
    for t in tables:
        tag = f"eps_a_{t['eps_a']:g}_eps_d_{t['eps_d']:g}"
        for which, label in (("approx", "linearized game"), ("true", "network")):
            g = payoff_analysis(t, which)
            g["eps_a"], g["eps_d"] = t["eps_a"], t["eps_d"]
            games.append(g)
            name = f"payoff_{which}_{tag}"
            plots.payoff_heatmap(out / f"{name}.png", g["matrix"], g["rows"], g["columns"],
                                 g["defender"], g["attacker"], value=g["value"],
                                 title=f"S1 payoff, {label}: eps_A={t['eps_a']:g}, "
                                       f"eps_D={t['eps_d']:g}")
            res["figures"].append({
                "name": name, "file": f"{name}.png",
                "caption": f"Defender accuracy ({label}) of each S1 defense (rows) against "
                           f"each attack (columns: FGM = the linearized best response, PGD "
                           f"on the undefended network, PGD→d = PGD against defense d) with "
                           f"the Nash equilibrium (value {g['value']:.3f}) beside it."})
            res["tables"].append({
                "name": name, "title": f"Payoff matrix, {label} (eps_A={t['eps_a']:g}, "
                                       f"eps_D={t['eps_d']:g})",
                "caption": f"Accuracy of each defense (row) under each attack (column), "
                           f"{label}. Nash equilibrium value {g['value']:.4f}. The paper's "
                           f"claimed equilibrium (FGM, v_n) pays {g['claimed_payoff']:.4f}: "
                           f"the attacker gains {g['attacker_gain']:.4f} by switching to "
                           f"{g['attacker_best']}, the defender "
                           f"{g['defender_gain']:.4f} by switching to {g['defender_best']}. "
                           + _legend(cfg),
                "columns": ["defense", *g["columns"], "p*"],
                "rows": [[r, *vals, pr] for r, vals, pr in
                         zip(g["rows"], g["matrix"], g["defender"], strict=True)]
                        + [["q*", *g["attacker"], None]],
            })
    res["data"]["payoff_games"] = games
    return games


def _binds(points: list[dict[str, Any]]) -> bool:
    """Whether the constrained v_n differs from v_n anywhere in these sweep points."""
    keys = ("fgm_true", "pgd_true", "fgm_approx", "clean_true")
    return any(s[f"vn_clean_{k}"] != s[f"shift_{k}"] for s in points for k in keys)


def sweep_outputs(cfg: Paper1Config, res: dict[str, Any], sweep: list[dict[str, Any]],
                  out: Path, na: Norm, nd: Norm) -> None:
    plots = _plots()
    k = len(cfg.sweep_eps_a)
    sa, sd = sweep[:k], sweep[k:]
    con = f"v_n clean≤{100 * cfg.max_clean_drop:g}pt"
    same = (f" The clean constraint does not bind here ({con} = v_n at every point), so its "
            f"curves are not drawn.")
    curves = {}
    keys = [("none", "none"), ("gauss", "Gaussian vote"), ("shift", "v_n")]
    if _binds(sa):
        keys.append(("vn_clean", con))
    for key, label in keys:
        for an in ("fgm", "pgd"):
            curves[f"{label} {an.upper()} true"] = [s[f"{key}_{an}_true"] for s in sa]
            if key in ("none", "shift"):
                curves[f"{label} {an.upper()} approx"] = [s[f"{key}_{an}_approx"] for s in sa]
    plots.accuracy_vs_eps(out / "sweep_eps_a.png", [s["eps_a"] for s in sa], curves,
                          title=f"Accuracy vs attack budget (eps_D={cfg.eps_d[0]:g})",
                          xlabel=f"eps_A (L{na})", ylabel="test accuracy")
    curves_d = {}
    keys_d = [("shift", "v_n")] + ([("vn_clean", con)] if _binds(sd) else [])
    for key, label in keys_d:
        for an in ("fgm", "pgd"):
            curves_d[f"{label} {an.upper()} true"] = [s[f"{key}_{an}_true"] for s in sd]
        curves_d[f"{label} FGM approx"] = [s[f"{key}_fgm_approx"] for s in sd]
        curves_d[f"{label} clean true"] = [s[f"{key}_clean_true"] for s in sd]
    plots.accuracy_vs_eps(out / "sweep_eps_d.png", [s["eps_d"] for s in sd], curves_d,
                          title=f"Equilibrium shift vs defense budget (eps_A={cfg.eps_a[-1]:g})",
                          xlabel=f"eps_D (L{nd})", ylabel="test accuracy")
    game = "the game played on images" if cfg.objective == "box" else "the paper's model"
    zero = (" The point eps_D = 0 is no defense." if 0.0 in cfg.sweep_eps_d else "")
    res["figures"] += [
        {"name": "sweep_eps_a", "file": "sweep_eps_a.png",
         "caption": "Test accuracy against the attacker's budget eps_A for no defense, "
                    f"Gaussian smoothing (vote), the equilibrium shift v_n of {game} and v_n "
                    f"under the clean constraint (each solved per eps_A by the fast solver "
                    "without LNS rounds); solid = true network, dashed = linearized model."
                    + ("" if _binds(sa) else same)},
        {"name": "sweep_eps_d", "file": "sweep_eps_d.png",
         "caption": "Accuracy of the equilibrium shift (plain and clean-constrained) under "
                    "FGM and PGD, and its clean accuracy, as the defender's budget eps_D "
                    f"grows.{zero}" + ("" if _binds(sd) else same)},
    ]
    res["tables"].append({
        "name": "sweep", "title": "eps sweep",
        "caption": f"Accuracy (fraction of test images) per (eps_A, eps_D); v_n ({game}) and "
                   f"{con} from the fast solver on the training points; approx = linearized "
                   "model; G vote = Gaussian smoothing (vote); outside box = fraction of v_n's "
                   "defended pixels outside [0, 1] under FGM.",
        "columns": ["eps_A", "eps_D", "none FGM", "none FGM approx", "none PGD",
                    "G vote FGM", "G vote PGD", "v_n FGM", "v_n FGM approx", "v_n PGD",
                    "v_n clean", f"{con} FGM", f"{con} clean", "v_n outside box"],
        "rows": [[s["eps_a"], s["eps_d"], s["none_fgm_true"], s["none_fgm_approx"],
                  s["none_pgd_true"], s["gauss_fgm_true"], s["gauss_pgd_true"],
                  s["shift_fgm_true"], s["shift_fgm_approx"], s["shift_pgd_true"],
                  s["shift_clean_true"], s["vn_clean_fgm_true"], s["vn_clean_clean_true"],
                  s["shift_outside_box"]] for s in sweep],
    })


def convergence_outputs(cfg: Paper1Config, res: dict[str, Any], conv: list[dict[str, Any]],
                        ref: dict[str, Any], out: Path, d: int) -> None:
    plots = _plots()
    ns = sorted({c["n"] for c in conv})
    gaps = {n: np.array([c["gap"] for c in conv if c["n"] == n]) for n in ns}
    mean = [float(gaps[n].mean()) for n in ns]
    q90 = [float(np.quantile(gaps[n], 0.9)) for n in ns]
    tail = [float((gaps[n] > cfg.convergence_t).mean()) for n in ns]
    vc = vc_gap_bound(np.array(ns), d + 1).tolist()
    hoeff = [math.exp(-2 * n * cfg.convergence_t ** 2) for n in ns]
    # a log axis: the VC bound (tens) and the measured gap (hundredths) both readable
    plots.convergence(out / "convergence_gap.png", ns,
                      {"mean gap Phi(v*) - Phi(v_n)": mean, "90% quantile of the gap": q90},
                      title="Convergence of the finite-sample defense",
                      xlabel="n (training points used)", ylabel="gap (accuracy), log scale",
                      logx=True, logy=True,
                      reference_lines={f"VC bound, D = d+1 = {d + 1} (delta=0.05)": vc})
    plots.convergence(out / "convergence_tail.png", ns,
                      {f"P[gap > {cfg.convergence_t:g}] (measured)": tail},
                      title="Tail of the gap vs the disputed Hoeffding rate",
                      xlabel="n (training points used)", ylabel="probability",
                      logx=True, logy=False,
                      reference_lines={f"exp(-2 n t^2), t={cfg.convergence_t:g}": hoeff})
    game = "the game played on images" if cfg.objective == "box" else "the paper's model"
    res["figures"] += [
        {"name": "convergence_gap", "file": "convergence_gap.png",
         "caption": f"Phi(v*) - Phi(v_n) on held-out points in {game} (Phi(v*) = "
                    f"{ref['value']:.4f}, best known shift for the held-out objective, "
                    f"{ref['method']}) against n, over {cfg.convergence_draws} random draws "
                    f"per n, beside the uniform-convergence bound for half-spaces (VC "
                    f"dimension d+1); log axes (a gap of exactly 0 is not drawn)."},
        {"name": "convergence_tail", "file": "convergence_tail.png",
         "caption": "Measured probability that the gap exceeds t, beside the Hoeffding rate "
                    "exp(-2 n t^2) that a review disputes as a bound on this gap."},
    ]
    res["tables"].append({
        "name": "convergence", "title": "Convergence in n",
        "caption": f"Gap Phi(v*) - Phi(v_n) (accuracy, {game}) over {cfg.convergence_draws} "
                   f"draws; VC bound with D = {d + 1}, delta = 0.05; Hoeffding exp(-2nt^2) at "
                   f"t = {cfg.convergence_t:g}.",
        "columns": ["n", "mean gap", "90% quantile", f"P[gap > {cfg.convergence_t:g}]",
                    "VC bound", "Hoeffding rate"],
        "rows": [[n, m, q, t, v, h] for n, m, q, t, v, h in
                 zip(ns, mean, q90, tail, vc, hoeff, strict=True)],
    })


def diagnostics_outputs(cfg: Paper1Config, res: dict[str, Any], diag: list[dict[str, Any]],
                        out: Path, na: Norm) -> None:
    plots = _plots()
    eps = [d["eps"] for d in diag]
    keys = [("faithful", "faithful = labels agree, no sampled or PGD disagreement"),
            ("labels_agree", "labels agree at FGM point"),
            ("same_region", "FGM point in same activation region (stricter, not required)"),
            ("sampled_disagree", "ball meets another boundary piece (sampled)"),
            ("pgd_disagrees", "linear model and PGD disagree")]
    curves = {lab: [d[k] for d in diag] for k, lab in keys}
    plots.accuracy_vs_eps(out / "linearity.png", eps, curves,
                          title="Is the locally linear model faithful?",
                          xlabel=f"eps (L{na})", ylabel="fraction of test points")
    res["figures"].append({
        "name": "linearity", "file": "linearity.png",
        "caption": "Fraction of test points where the locally linear model is faithful, "
                   "against eps: the linearized and true labels agree at the FGM point, no "
                   "sampled point of the ball (uniform samples, the FGM segment, the PGD path) "
                   "has disagreeing labels, and the linear model and PGD agree on whether the "
                   "ball holds an adversarial point. 'ball meets another boundary piece' and "
                   "'linear model and PGD disagree' count failures (lower is better); 'same "
                   "activation region' is a stricter check that faithfulness "
                   "does not need (a linear piece can end and the labels still agree)."})
    res["tables"].append({
        "name": "linearity", "title": "Linearity diagnostics",
        "caption": "Fractions of test points. same region: FGM point in the activation region "
                   "of x; labels agree: linearized and true labels at the FGM point; linear "
                   "robust: the linear margin at the exact worst point of ball ∩ box is > 0; "
                   "PGD robust: the network survives PGD (and FGM); sampled disagree: some "
                   f"sampled point ({cfg.diag_samples} uniform, FGM segment, PGD path) is "
                   "labelled differently by the two; faithful: agree, no disagreement.",
        "columns": ["eps", "faithful", "same region", "labels agree", "linear robust",
                    "PGD robust", "PGD disagrees", "sampled disagree"],
        "rows": [[d["eps"], d["faithful"], d["same_region"], d["labels_agree"],
                  d["linear_robust"], d["pgd_robust"], d["pgd_disagrees"],
                  d["sampled_disagree"]] for d in diag],
    })


def certification_outputs(cfg: Paper1Config, res: dict[str, Any], cert: dict[str, Any],
                          out: Path) -> None:
    from advgame.experiments.certify import certification_report

    what = ", ".join(f"{v} of class {k}" for k, v in cert.get("class_counts", {}).items())
    certification_report(
        res, out, np.array(cert["radius"]), np.array(cert["correct"], dtype=bool),
        sigma=cfg.sigma, n0=cfg.certify_n0, n=cfg.certify_n, alpha=cfg.alpha,
        radii=[0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0], what=f"{cert['n_points']} test points "
        f"({what})", table="certification", title="Certified accuracy (L2) of the smoothed "
        "classifier", note=f"; abstention rate {cert['abstain']:.4f}")


def pairs_outputs(cfg: Paper1Config, res: dict[str, Any], summaries: list[dict[str, Any]]) -> None:
    con = f"clean≤{100 * cfg.max_clean_drop:g}pt"
    game = "the game played on images" if cfg.objective == "box" else "the paper's model"
    res["tables"].append({
        "name": "pairs", "title": "Other class pairs and datasets",
        "caption": f"Accuracy at eps_A={cfg.eps_a[-1]:g} (L{parse_norm(cfg.norm_a)}), "
                   f"eps_D={cfg.eps_d[0]:g} (L{parse_norm(cfg.norm_d)}); v_n of {game} by the "
                   f"fast solver (no LNS rounds), without and with the clean constraint "
                   f"({con}: linearized clean accuracy on the training points at most "
                   f"{100 * cfg.max_clean_drop:g} point(s) below v = 0); G vote = Gaussian "
                   f"smoothing (vote); faithful = fraction of test points where the linear "
                   f"model is faithful at eps_A; v_n outside box = fraction of its defended "
                   f"pixels outside [0, 1] under FGM. Test points per pair: a stratified sample "
                   f"(n_test = {cfg.n_test or 'all'}).",
        "columns": ["dataset", "pair", "clean", "v_n clean", f"{con} clean", "none FGM",
                    "none FGM approx", "none PGD", "G vote FGM", "v_n FGM", "v_n FGM approx",
                    "v_n PGD", f"{con} FGM", f"{con} PGD", "v_n outside box", "faithful"],
        "rows": [[s["dataset"], f"{s['classes'][0]} vs {s['classes'][1]}", s["clean"],
                  s["clean_shift_true"], s["clean_con_true"],
                  s["fgm_none_true"], s["fgm_none_approx"], s["pgd_none_true"],
                  s["fgm_gauss_true"], s["fgm_shift_true"], s["fgm_shift_approx"],
                  s["pgd_shift_true"], s["fgm_con_true"], s["pgd_con_true"], s["outside_box"],
                  s["faithful"]] for s in summaries],
    })


def summary(cfg: Paper1Config, res: dict[str, Any], tables: list[dict[str, Any]],
            games: list[dict[str, Any]], diag: list[dict[str, Any]],
            conv: list[dict[str, Any]], ref: dict[str, Any],
            pairs: list[dict[str, Any]]) -> None:
    s = res["summary"]
    for t in tables:
        rows = {r["key"]: r for r in t["rows"]}
        f, p = _col(t, "fgm"), _col(t, "pgd")
        none, eq, gv = rows["none"], rows["vn"], rows["gauss_vote"]
        con, other = rows["vn_clean"], rows["vn_other"]
        ad = _col(t, eq["adaptive"])
        tag = f"At eps_A={t['eps_a']:g}, eps_D={t['eps_d']:g}"
        sh = t["shifts"]["main"]
        s.append(f"{tag}: PGD {'beats' if none['true'][p] < none['true'][f] else 'does not beat'}"
                 f" FGM on true accuracy without defense ({none['true'][p]:.3f} vs "
                 f"{none['true'][f]:.3f}); the linearized accuracy under FGM is "
                 f"{none['approx'][f]:.3f} in the game played on images and "
                 f"{none['fgm_free_approx']:.3f} in the paper's unbounded model (training "
                 f"constraints met at v = 0: {sh['count_at_zero']}/{sh['n']} = "
                 f"{sh['count_at_zero'] / sh['n']:.3f} in the {sh['objective']} objective).")
        s.append(f"{tag}: v_n ({eq['defense']}) gives {eq['true'][f]:.3f} true / "
                 f"{eq['approx'][f]:.3f} approx under FGM and {eq['true'][p]:.3f} under PGD "
                 f"({'n/a' if ad is None else format(eq['true'][ad], '.3f')} adaptive), vs "
                 f"{none['true'][f]:.3f} / {none['true'][p]:.3f} without defense, "
                 f"{gv['true'][f]:.3f} / {gv['true'][p]:.3f} with Gaussian smoothing and "
                 f"{other['true'][f]:.3f} / {other['true'][p]:.3f} for {other['defense']}; "
                 f"defended clean accuracy {eq['clean_true']:.3f} (undefended "
                 f"{none['clean_true']:.3f}; clean-constrained v_n {con['clean_true']:.3f} "
                 f"with {con['true'][f]:.3f} under FGM).")
        ranked = sorted(t["rows"], key=lambda r: -(r.get("worst_true") or 0.0))
        s.append(f"{tag}: ranked by the worst case per point over every attack (FGM, PGD, "
                 f"adaptive PGD, AutoAttack, BPDA-PGD where they apply): "
                 + ", ".join(f"{r['defense']} {r['worst_true']:.3f}" for r in ranked[:5])
                 + "; masking flags: "
                 + (", ".join(f"{r['defense']} ({', '.join(r['aa_flags'])})"
                              for r in t["rows"] if r.get("aa_flags")) or "none") + ".")
    for g in games:
        label = "linearized game" if g["which"] == "approx" else "network"
        s.append(f"Is (FGM, v_n) an equilibrium at eps_A={g['eps_a']:g} ({label})? The "
                 f"attacker gains {g['attacker_gain']:.3f} by deviating ({g['attacker_best']}), "
                 f"the defender {g['defender_gain']:.3f} ({g['defender_best']}); the game's "
                 f"value is {g['value']:.3f} against {g['claimed_payoff']:.3f} at (FGM, v_n).")
    faithful = ", ".join(f"{d['faithful']:.2f} at eps={d['eps']:g}" for d in diag)
    s.append(f"The locally linear model is faithful on a fraction {faithful} of test points.")
    big = max(c["n"] for c in conv)
    gaps = [c["gap"] for c in conv if c["n"] == big]
    s.append(f"Convergence: with n={big} training points the held-out gap Phi(v*)-Phi(v_n) "
             f"averages {np.mean(gaps):.4f} (Phi(v*) = {ref['value']:.4f}).")
    if len(pairs) > 1:
        wins = sum(p["fgm_shift_true"] > p["fgm_none_true"] for p in pairs)
        costly = sum(p["clean_shift_true"] < p["clean"] - 0.02 for p in pairs)
        costly_c = sum(p["clean_con_true"] < p["clean"] - 0.02 for p in pairs)
        wins_c = sum(p["fgm_con_true"] > p["fgm_none_true"] for p in pairs)
        s.append(f"Over {len(pairs)} class pairs, v_n raises true FGM accuracy over no defense "
                 f"on {wins} (mean {np.mean([p['fgm_none_true'] for p in pairs]):.3f} -> "
                 f"{np.mean([p['fgm_shift_true'] for p in pairs]):.3f}) and costs more than 2 "
                 f"points of clean accuracy on {costly} (mean clean "
                 f"{np.mean([p['clean'] for p in pairs]):.3f} -> "
                 f"{np.mean([p['clean_shift_true'] for p in pairs]):.3f}); under the clean "
                 f"constraint it raises FGM accuracy on {wins_c} (mean "
                 f"{np.mean([p['fgm_con_true'] for p in pairs]):.3f}) and costs more than 2 "
                 f"points on {costly_c} (mean clean "
                 f"{np.mean([p['clean_con_true'] for p in pairs]):.3f}); mean faithful "
                 f"fraction {np.mean([p['faithful'] for p in pairs]):.3f}.")
