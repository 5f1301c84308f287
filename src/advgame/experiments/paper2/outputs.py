"""paper2's outputs: the tables, figures, data and findings of results.json."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from advgame.defenses.training import detect_oscillation
from advgame.experiments.paper2.config import Paper2Config
from advgame.experiments.paper2.evaluation import ATTACK_COLUMNS
from advgame.experiments.paper2.stages import _is_round
from advgame.experiments.paper2.work import _Work

#: Columns of the eta table and the cells behind them.
SWEEP_COLUMNS = (("clean", "clean"), ("FGSM-curr", "FGSM-curr"), ("AttNet-curr", "own"),
                 ("fresh AttNet", "fresh"), ("PGD", "PGD"), ("Square", "Square"),
                 ("worst case", "worst case"))


#: The gradient attacks the gradient-free Square is compared with.
GRADIENT_COLUMNS = ("FGSM-curr", "PGD", "APGD")


def masking_flags(cells: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Defenses on which the gradient-free Square fools test points that no gradient attack
    (FGSM-curr, PGD, APGD) fools: at least :data:`advgame.evaluation.MIN_POINTS` of them and
    :data:`advgame.evaluation.MIN_FRACTION` of the test set, the criterion of ``advgame
    evaluate``'s ``gradient_free_beats_gradient``. The gradient attacks' error is then not
    an upper bound worth reporting (the gradients are masked).

    ``cells``: ``{defense: {attack: {"error", "flags" (N,) bool, ...}}}``. Returns one
    ``{"defense", "square_only", "n", "square_error", "best_gradient_error",
    "gradient_attacks"}`` per flagged defense.

    Example:
        >>> t, f = torch.tensor([True, True, True]), torch.tensor([False, False, True])
        >>> cells = {"d": {"Square": {"error": 1.0, "flags": t},
        ...                "PGD": {"error": 1 / 3, "flags": f}}}
        >>> [(m["defense"], m["square_only"]) for m in masking_flags(cells)]
        [('d', 2)]
    """
    from advgame.evaluation import enough

    out = []
    for d, row in cells.items():
        grads = [a for a in GRADIENT_COLUMNS if a in row]
        if "Square" not in row or not grads:
            continue
        missed = ~torch.stack([row[a]["flags"] for a in grads]).any(dim=0)
        only = int((row["Square"]["flags"] & missed).sum())
        n = int(missed.numel())
        if enough(only, n):
            out.append({"defense": d, "square_only": only, "n": n,
                        "square_error": row["Square"]["error"],
                        "best_gradient_error": max(row[a]["error"] for a in grads),
                        "gradient_attacks": grads})
    return out


def _masking_line(flags: list[dict[str, Any]], where: str) -> str:
    if not flags:
        return (f"Gradient-masking check ({where}): on no defense does the gradient-free "
                "Square Attack fool a test point that all of the table's gradient attacks "
                "(FGSM-curr, PGD, and APGD where it ran) miss.")
    return (f"Gradient-masking check ({where}): the gradient-free Square Attack fools points "
            "that every gradient attack misses on "
            + "; ".join(f"{_label(m['defense'])} ({m['square_only']} of {m['n']}: Square "
                        f"{m['square_error']:.3f} vs best gradient attack "
                        f"{m['best_gradient_error']:.3f})" for m in flags)
            + ": their gradient-attack errors understate the attack (masked gradients).")


def _sweep_cell(row: dict[str, Any], cell: str) -> float | None:
    if cell == "fresh":  # the worst case per example over every fresh AttNet
        parts = [row[a]["flags"] for a in ("AttNet-MLP", "AttNet-CNN") if a in row]
        return float(torch.stack(parts).any(dim=0).float().mean()) if parts else None
    return row[cell]["error"] if cell in row else None


def rounds_outputs(cfg: Paper2Config, res: dict[str, Any],
                   rounds: dict[str, list[float | None]] | None, out: Path, what: str) -> None:
    """The ``cat_and_mouse_rounds`` table, its figure, data and findings."""
    if rounds is None:
        return
    k = len(rounds["fgsm_curr"]) - 1
    rows = [[i, rounds["own"][i], rounds["fgsm_curr"][i], rounds["clean"][i]]
            for i in range(k + 1)]
    res["tables"].append({
        "name": "cat_and_mouse_rounds",
        "title": f"Cat-and-mouse over {k} rounds (test error)",
        "caption": f"{what}, L-inf eta={cfg.eta:g}. Round k: u_k "
                   f"{'warm-started from' if cfg.warm_start else 'retrained from scratch'} "
                   f"u_(k-1), {cfg.round_epochs} epoch(s) on FGSM-k (FGSM against u_(k-1) on "
                   "the training set). own attack = error of u_k on FGSM-k made on the test "
                   "images; FGSM-curr = error on FGSM against u_k itself (the paper's "
                   "FGSM-curr); clean = clean error.",
        "columns": ["round k", "own attack (FGSM-k)", "FGSM-curr", "clean"], "rows": rows,
    })
    res["data"]["cat_and_mouse_rounds"] = rounds
    curr = [float(v) for v in rounds["fgsm_curr"][1:] if v is not None]
    n = int(res["data"].get("n_test") or 1)
    w = max(1, min(10, len(curr) // 4))
    first, last = sum(curr[:w]) / w, sum(curr[-w:]) / w
    trend = _compare(last, first, n)
    half = curr[len(curr) // 2:]
    osc = detect_oscillation(half, _diff_tol(half, n)) if len(half) >= 3 else None
    res["data"]["cat_and_mouse_rounds_summary"] = {
        "window": w, "fgsm_curr_first": first, "fgsm_curr_last": last,
        "oscillation_second_half": None if osc is None else osc.__dict__}
    res["summary"].append(
        f"Over {k} cat-and-mouse rounds, FGSM-curr error averages {first:.3f} in rounds "
        f"1-{w} and {last:.3f} in rounds {k - w + 1}-{k}: it "
        + {"beats": "falls", "matches": "does not fall significantly",
           "is worse than": "rises"}[trend]
        + " over the rounds"
        + ("" if osc is None else
           (f"; in the second half it still oscillates ({osc.sign_changes} direction "
            f"changes, amplitude {osc.amplitude:.3f}"
            + (f", period about {osc.period:.1f} rounds" if osc.period else "") + ")"
            if osc.oscillates else
            f"; in the second half the oscillation has died down ({osc.sign_changes} "
            "direction changes, none beyond noise)"))
        + ". u_k's error on its own training attack averages "
        + f"{sum(v for v in rounds['own'][1:] if v is not None) / max(1, k):.3f}, "
        + f"clean error ends at {rounds['clean'][-1]:.3f}.")
    from advgame import plots

    plots.convergence(
        out / "cat_and_mouse_rounds.png", list(range(1, k + 1)),
        {"error on its own training attack FGSM-k": [float(v) for v in rounds["own"][1:]
                                                     if v is not None],
         "FGSM-curr error (FGSM against u_k)": curr,
         "clean error": [float(v) for v in rounds["clean"][1:] if v is not None]},
        title=f"Cat-and-mouse over {k} rounds (eta={cfg.eta:g})", xlabel="round k (model u_k)",
        ylabel="test error", logx=False, logy=False,
        styles={"error on its own training attack FGSM-k": {"marker": "None"},
                "FGSM-curr error (FGSM against u_k)": {"marker": "None"},
                "clean error": {"marker": "None", "linestyle": ":"}})
    res["figures"].append({
        "name": "cat_and_mouse_rounds", "file": "cat_and_mouse_rounds.png",
        "caption": f"The paper's two series over {k} rounds: the error of each retrained "
                   "model u_k on the attack it was trained against (FGSM-k, made on the test "
                   "images), and on the new FGSM attack made against it (FGSM-curr); clean "
                   "error dotted."})


def sweep_outputs(cfg: Paper2Config, res: dict[str, Any],
                  sweep: dict[str, dict[float, dict[str, dict[str, Any]]]], out: Path,
                  what: str) -> None:
    """The ``eta_sweep`` tables (one per classifier), their figure, data and findings."""
    labels = {"clean": "clean model", "adv-online": "online adv. training",
              "sens-fgsm": "Sens-FGSM", "minimax": "Alt (plain alternating)",
              "minimax-sens": "Minimax (sensitivity-penalized)"}
    data: dict[str, Any] = {}
    masking: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for arch, per_eta in sweep.items():
        rows: list[list[Any]] = []
        data[arch] = {}
        masking[arch] = {f"{eta:g}": masking_flags(cells) for eta, cells in per_eta.items()}
        for d in cfg.sweep_defenses:
            for eta, cells in per_eta.items():
                if d not in cells:
                    continue
                vals = [_sweep_cell(cells[d], c) for _, c in SWEEP_COLUMNS]
                rows.append([labels[d], eta, *vals])
                data[arch].setdefault(d, {})[f"{eta:g}"] = dict(
                    zip([c for c, _ in SWEEP_COLUMNS], vals, strict=True))
        name = "eta_sweep" if arch == cfg.arch else f"eta_sweep_{arch}"
        res["tables"].append({
            "name": name,
            "title": f"The eta table ({arch} classifier): test error by defense and budget",
            "caption": f"{what}. Each defense trained at each eta (from the clean {arch} "
                       f"classifier) and attacked at that eta: FGSM-curr = FGSM against the "
                       f"defense; AttNet-curr = the minimax game's own final attacker (game "
                       f"defenses only); fresh AttNet = worst case per example over "
                       f"{cfg.attnet_restarts} MLP and {cfg.cnn_attnet_restarts} "
                       f"convolutional AttNets trained from scratch against the frozen "
                       f"defense (objective {cfg.attnet_objective}); PGD-{cfg.pgd_steps}; "
                       f"Square = the gradient-free Square "
                       f"Attack ({cfg.square_queries} queries); worst case = any attack "
                       f"succeeds. Minimax = the sensitivity-penalized solver "
                       f"(rho={cfg.minimax_rho:g}, k={cfg.minimax_k}); Alt = the same "
                       f"alternating solver without the penalty.",
            "columns": ["defense", "eta", *[c for c, _ in SWEEP_COLUMNS]], "rows": rows,
        })
        if arch == cfg.arch:
            _sweep_findings(cfg, res, data[arch], labels, arch)
        res["summary"].append(_masking_line(
            [m for flags in masking[arch].values() for m in flags],
            f"eta table, {arch} classifier, every eta"))
    res["data"]["eta_sweep"] = data
    res["data"]["eta_sweep_masking"] = masking
    from advgame import plots

    arch = cfg.arch
    etas = list(cfg.etas)
    panels = ("FGSM-curr", "fresh AttNet", "worst case")
    for panel in panels:
        series = {labels[d]: [data[arch][d].get(f"{e:g}", {}).get(panel) for e in etas]
                  for d in cfg.sweep_defenses if d in data[arch]}
        series = {k: [float("nan") if v is None else v for v in vals]
                  for k, vals in series.items()}
        slug = panel.replace(" ", "_").lower()
        plots.accuracy_vs_eps(out / f"eta_sweep_{slug}.png", etas, series,
                              title=f"{panel} error against eta ({arch} classifier)",
                              xlabel="eta (L-inf budget, training and attack)",
                              ylabel="test error")
        res["figures"].append({
            "name": f"eta_sweep_{slug}", "file": f"eta_sweep_{slug}.png",
            "caption": f"Test error under {panel} of each defense trained and attacked at "
                       f"eta ({arch} classifier; the eta table)."})


def _sweep_findings(cfg: Paper2Config, res: dict[str, Any], data: dict[str, Any],
                    labels: dict[str, str], arch: str) -> None:
    n = int(res["data"].get("n_test") or 1)
    for e in cfg.etas:
        key = f"{e:g}"
        have = [d for d in cfg.sweep_defenses if d in data and key in data[d]]
        if not have:
            continue
        best = min(have, key=lambda d: data[d][key]["worst case"])
        parts = [f"{labels[d]} {data[d][key]['FGSM-curr']:.3f} / "
                 f"{data[d][key]['fresh AttNet']:.3f} / {data[d][key]['worst case']:.3f}"
                 for d in have]
        low = data[best][key]["worst case"]
        tied = [labels[d] for d in have if data[d][key]["worst case"] <= low + 1e-9]
        verdict = ("every defense is broken on every test image by some attack (worst case "
                   f"{low:.3f})" if low >= 0.999 else
                   f"lowest worst case: {', '.join(tied)} ({low:.3f})")
        line = (f"eta={e:g} ({arch}), FGSM-curr / fresh AttNet / worst-case error: "
                + "; ".join(parts) + f"; {verdict}.")
        if "minimax" in have and "minimax-sens" in have:
            a, b = data["minimax-sens"][key]["fresh AttNet"], data["minimax"][key]["fresh AttNet"]
            line += f" Minimax {_compare(a, b, n)} Alt against fresh AttNets ({a:.3f} vs {b:.3f})."
        res["summary"].append(line)


# --------------------------------------------------------------------------- results


def _label(d: str) -> str:
    return {"u0": "u0 (clean)", "adv-online": "online adv. training (FGSM)",
            "sens-fgsm": "Sens-FGSM", "sens-first-order": "Sens-FGSM first-order",
            "minimax": "minimax", "maximin": "maximin",
            "minimax-sens": "minimax + sensitivity penalty",
            "reformer": "reformer (autoencoder + u0)"}.get(d, d)


def _diff_tol(rates: list[float], n: int) -> float:
    """Two standard errors of the difference of two error rates near their mean, each
    measured on n examples: differences below this are treated as noise."""
    p = sum(rates) / len(rates) if rates else 0.5
    return 2.0 * math.sqrt(2.0 * max(p * (1 - p), 1.0 / n) / n)


def _compare(a: float, b: float, n: int) -> str:
    """'beats' / 'matches' / 'is worse than': error a against error b, noise-aware."""
    tol = _diff_tol([a, b], n)
    return "beats" if a < b - tol else ("is worse than" if a > b + tol else "matches")


def _oscillation(cm: Any, n: int) -> dict[str, Any]:
    """Oscillation of the cat-and-mouse, decided from E: rows over the attacks FGSM-1..(k+1)
    and the FGSM-curr series over rounds."""
    rows = []
    for k, row in enumerate(cm.error):
        series = row[:k + 1]
        if len(series) >= 3:
            o = detect_oscillation(series, _diff_tol(series, n))
            rows.append({"model": f"u{k}", "series": series, "oscillates": o.oscillates,
                         "sign_changes": o.sign_changes, "period": o.period,
                         "amplitude": o.amplitude})
    same: list[float] = []
    other: list[float] = []
    for k in range(1, len(cm.error)):
        for j in range(1, k + 1):  # earlier attacks FGSM-1..FGSM-k (u_k trained on FGSM-k)
            (same if (k - j) % 2 == 0 else other).append(cm.error[k][j - 1])
    parity = {"same": sum(same) / len(same) if same else None,
              "other": sum(other) / len(other) if other else None,
              "n_same": len(same), "n_other": len(other)}
    curr = detect_oscillation(cm.fgsm_curr, _diff_tol(cm.fgsm_curr, n))
    clean = detect_oscillation(cm.clean, _diff_tol(cm.clean, n))
    return {"rows": rows, "fgsm_curr": curr, "clean": clean, "parity": parity,
            "rows_oscillating": sum(r["oscillates"] for r in rows), "rows_tested": len(rows)}


def _tables(cfg: Paper2Config, res: dict[str, Any],
            cells: dict[str, dict[str, Any]], cm: Any, cm_others: dict[str, list[float]],
            what: str) -> None:
    where = f"{what}, L-inf eta={cfg.eta:g}"
    if cm is not None:
        k_max = len(cm.error) - 1
        cols = ["model", "clean"] + [f"FGSM-{j}" for j in range(1, k_max + 1)] + ["FGSM-curr"]
        rows: list[list[Any]] = []
        for k in range(k_max + 1):
            rows.append([f"u{k}", cm.clean[k], *cm.error[k][:k_max], cm.fgsm_curr[k]])
        for d, errs in cm_others.items():
            if d in cells and d != "u0":
                rows.append([_label(d), cells[d]["clean"]["error"], *errs,
                             cells[d]["FGSM-curr"]["error"]])
        res["tables"].append({
            "name": "cat_and_mouse",
            "title": "Cat-and-mouse: test error of u_k on FGSM-j examples",
            "caption": f"E[k][j] = test error of u_k on FGSM-j (FGSM against u_(j-1)); "
                       f"FGSM-curr = FGSM against the evaluated model; {where}. u_k "
                       f"{'warm-started from' if cfg.warm_start else 'retrained from scratch'}"
                       f" u_(k-1), {cfg.round_epochs} epochs on FGSM-k "
                       f"{'plus clean data' if cfg.with_clean else 'only'}. Rows below u_K: "
                       "the other defenses against the same fixed FGSM-j examples.",
            "columns": cols, "rows": rows,
        })
    attacks = [a for a in ATTACK_COLUMNS if any(a in row for row in cells.values())]
    res["tables"].append({
        "name": "defense_attack",
        "title": "Every defense against every attack (test error)",
        "caption": f"Error rate under attack, {where}. FGSM-curr: FGSM against the defense "
                   f"itself; PGD: {cfg.pgd_steps} steps, random start; APGD: APGD-CE, "
                   f"{cfg.apgd_steps} iterations; Square: the gradient-free Square Attack, "
                   f"{cfg.square_queries} queries (a defense that only masks gradients falls "
                   f"to it; data.masking lists the defenses where it fools points FGSM-curr, "
                   f"PGD and APGD all miss); AttNet-MLP: "
                   f"{cfg.attnet_restarts} fresh MLP AttNet(s) {list(cfg.attnet_hidden)} "
                   f"trained {cfg.attnet_epochs} epochs against the frozen defense (objective "
                   f"{cfg.attnet_objective}), worst case per example; AttNet-CNN: "
                   f"{cfg.cnn_attnet_restarts} fresh convolutional "
                   "AttNet(s) (other architecture); AttNet-minimax: the minimax game's own "
                   "attacker, transferred; worst case: any attack succeeds.",
        "columns": ["defense"] + attacks,
        "rows": [[_label(d)] + [row[a]["error"] if a in row else None for a in attacks]
                 for d, row in cells.items()],
    })
    games = [d for d in ("minimax", "maximin", "minimax-sens") if d in cells]
    if games:
        res["tables"].append({
            "name": "minimax_maximin",
            "title": "Minimax vs maximin: payoff and worst-case errors",
            "caption": f"{where}. Payoff = mean cross-entropy f(u, v) on the test set against "
                       "the game's own attacker v; errors against that v, against fresh "
                       "AttNets trained from scratch on the final defense (the attacker's "
                       "best response, worst case over restarts), and over all attacks.",
            "columns": ["solution", "payoff f(u,v)", "error vs own v", "fresh AttNet-MLP",
                        "fresh AttNet-CNN", "PGD", "worst case", "clean"],
            "rows": [[_label(d), cells[d]["own"]["payoff"], cells[d]["own"]["error"],
                      cells[d]["AttNet-MLP"]["error"],
                      cells[d].get("AttNet-CNN", {}).get("error"), cells[d]["PGD"]["error"],
                      cells[d]["worst case"]["error"], cells[d]["clean"]["error"]]
                     for d in games],
        })


def _data(cfg: Paper2Config, res: dict[str, Any], cells: dict[str, dict[str, Any]], cm: Any,
          cm_others: dict[str, list[float]], agreement: dict[str, float | None],
          curves: dict[str, Any], info: dict[str, Any], n: int, work: _Work) -> None:
    data: dict[str, Any] = {
        "n_test": n, "u0": {k: v for k, v in info.items() if k != "loss_curve"},
        "defense_attack": {d: {a: {k: v for k, v in c.items() if k != "flags"}
                               for a, c in row.items()} for d, row in cells.items()},
        "fgsm_sign_agreement": agreement, "curves": curves,
        "masking": masking_flags(cells),
        "work_dir": str(work.dir), "trained_this_run": work.trained,
    }
    if cm is not None:
        osc = _oscillation(cm, n)
        data["cat_and_mouse"] = {
            "error": cm.error, "clean": cm.clean, "fgsm_curr": cm.fgsm_curr,
            "others_on_fgsm_j": cm_others,
            "oscillation": {**osc, "fgsm_curr": osc["fgsm_curr"].__dict__,
                            "clean": osc["clean"].__dict__},
        }
    res["data"] = data


def _summary(cfg: Paper2Config, res: dict[str, Any], cells: dict[str, dict[str, Any]],
             cm: Any, agreement: dict[str, float | None], n: int) -> list[str]:
    out: list[str] = []
    err = {d: {a: c["error"] for a, c in row.items()} for d, row in cells.items()}
    rounds = [d for d in cells if _is_round(d) and d != "u0"]
    if cm is not None:
        osc = res["data"]["cat_and_mouse"]["oscillation"]
        last = cm.error[-1]
        k = len(cm.error) - 1
        pattern = ", ".join(f"{v:.2f}" for v in last)
        if osc["rows_oscillating"]:
            periods = [r["period"] for r in osc["rows"] if r["period"] is not None]
            per = f" with period about {sum(periods) / len(periods):.1f} rounds" if periods \
                else ""
            out.append(
                f"Cat-and-mouse oscillates: in {osc['rows_oscillating']} of "
                f"{osc['rows_tested']} models u_k the error over the successive attacks "
                f"FGSM-1..FGSM-(k+1) goes up and down{per} (u{k}: {pattern}).")
        else:
            out.append(f"Cat-and-mouse shows no significant oscillation of the errors over "
                       f"the successive attacks (u{k} on FGSM-1..FGSM-{k + 1}: {pattern}).")
        par = osc["parity"]
        if par["same"] is not None and par["other"] is not None:
            alternates = par["other"] > par["same"] + _diff_tol([par["same"], par["other"]], n)
            out.append(
                f"Each u_k has mean error {par['same']:.3f} on the earlier attacks of its own "
                f"parity (FGSM-j, j <= k, j = k mod 2) and {par['other']:.3f} on those of "
                "the other parity: "
                + ("the attacker alternates between two attack patterns (period 2) and "
                   "retraining forgets the previous one." if alternates else
                   "no period-2 alternation of the attacks."))
        if agreement.get("lag1") is not None and agreement.get("lag2") is not None:
            out.append(
                f"Successive FGSM attacks FGSM-j and FGSM-(j+1) agree on "
                f"{agreement['lag1']:.0%} of the perturbed pixels' signs, FGSM-j and "
                f"FGSM-(j+2) on {agreement['lag2']:.0%}.")
        fc = osc["fgsm_curr"]
        out.append(
            f"FGSM-curr error over rounds u0..u{k}: "
            + ", ".join(f"{v:.2f}" for v in cm.fgsm_curr)
            + (" (oscillating)." if fc["oscillates"] else
               f" (no significant oscillation: {fc['sign_changes']} direction changes).")
            + f" Clean error rises from {cm.clean[0]:.3f} (u0) to "
              f"{max(cm.clean[1:]):.3f} at worst among u1..u{k}.")
    if rounds:
        best_curr = min(rounds, key=lambda d: err[d]["FGSM-curr"])
        best_att = min(rounds, key=lambda d: err[d]["AttNet-MLP"])
        for d in ("sens-fgsm", "sens-first-order", "minimax", "minimax-sens", "adv-online"):
            if d not in err:
                continue
            cmp_c = _compare(err[d]["FGSM-curr"], err[best_curr]["FGSM-curr"], n)
            cmp_a = _compare(err[d]["AttNet-MLP"], err[best_att]["AttNet-MLP"], n)
            out.append(
                f"{_label(d)}: FGSM-curr error {err[d]['FGSM-curr']:.3f} ({cmp_c} the best "
                f"u_k, {best_curr} {err[best_curr]['FGSM-curr']:.3f}); fresh-AttNet error "
                f"{err[d]['AttNet-MLP']:.3f} ({cmp_a} the best u_k, {best_att} "
                f"{err[best_att]['AttNet-MLP']:.3f}); clean error {err[d]['clean']:.3f}.")
    if "minimax" in err and "maximin" in err:
        a, b = err["minimax"]["AttNet-MLP"], err["maximin"]["AttNet-MLP"]
        own_a, own_b = cells["minimax"]["own"], cells["maximin"]["own"]
        out.append(
            f"Against fresh AttNets the minimax defense errs {a:.3f} and the maximin defense "
            f"{b:.3f} (minimax {_compare(a, b, n)} maximin); against their own game "
            f"attacker {own_a['error']:.3f} vs {own_b['error']:.3f}, test payoff f(u, v) "
            f"{own_a['payoff']:.3f} vs {own_b['payoff']:.3f}; "
            + ("the game's attacker is far from a best response (fresh AttNets reach "
               f"{a:.3f} against the minimax defense), "
               if a > own_a["error"] + _diff_tol([a, own_a["error"]], n) else "")
            + f"{own_a['saturation'][0]:.0%} of the minimax attacker's tanh outputs are "
              "saturated (|tanh| > 0.99).")
    trans = [d for d in ("minimax", "maximin", "minimax-sens", "sens-fgsm", "adv-online")
             if d in err and "AttNet-CNN" in err[d]]
    if trans:
        parts = [f"{_label(d)} {err[d]['AttNet-MLP']:.3f} -> {err[d]['AttNet-CNN']:.3f}"
                 for d in trans]
        verdict = [_compare(err[d]["AttNet-CNN"], err[d]["AttNet-MLP"], n) for d in trans]
        out.append(
            "Transfer to another attack-network architecture (fresh MLP AttNet error -> fresh "
            "convolutional AttNet error): " + "; ".join(parts)
            + f". The convolutional AttNets are weaker (lower error) on "
              f"{verdict.count('beats')}, as strong on {verdict.count('matches')} and "
              f"stronger on {verdict.count('is worse than')} of {len(trans)} defenses.")
    if "minimax" in cells and "AttNet-minimax" in next(iter(cells.values())):
        others = [d for d in err if d != "minimax"]
        fooled = [d for d in others if err[d].get("AttNet-minimax", 0) > 0.5]
        out.append(
            "The minimax game's own attacker, transferred to the other defenses, exceeds 50% "
            f"error on {len(fooled)} of {len(others)} of them, but errs only "
            f"{err['minimax']['AttNet-minimax']:.3f} on the minimax defense it was trained "
            "with.")
    modes = [(m, sat) for row in cells.values() for a in ("AttNet-MLP", "AttNet-CNN")
             if a in row for m, sat in zip(row[a]["mode_fraction"], row[a]["saturation"],
                                           strict=False)]
    if modes:
        collapsed = sum(m >= 0.9 for m, _ in modes)
        sats = sorted(sat for _, sat in modes)
        out.append(
            f"{collapsed} of {len(modes)} fresh AttNets send at least 90% of the attacked test "
            "images to one single class (an input-independent 'everything -> class c' "
            "perturbation, which caps the error near 1 - the share of class c); the median "
            f"AttNet has {sats[len(sats) // 2]:.0%} of its tanh outputs saturated.")
    if err:
        pgd_min = min(err.values(), key=lambda r: r["PGD"])
        best = min(err, key=lambda d: err[d]["worst case"])
        worst_best = err[best]["worst case"]
        out.append(
            f"PGD-{cfg.pgd_steps} at eta={cfg.eta:g} leaves every defense at >= "
            f"{pgd_min['PGD']:.3f} error; "
            + (f"the best worst-case error over all attacks is {worst_best:.3f} "
               f"({_label(best)})." if worst_best < 1.0 else
               "every defense is broken on every test image by at least one attack "
               "(worst-case error 1.000 for all)."))
    if "reformer" in err:
        r = err["reformer"]
        out.append(
            f"The reformer (autoencoder + u0) has clean error {r['clean']:.3f}, white-box "
            f"FGSM error {r['FGSM-curr']:.3f} and PGD error {r['PGD']:.3f}.")
    if err:
        out.append(_masking_line(res["data"].get("masking", []),
                                 f"every defense against every attack, eta={cfg.eta:g}"))
    return out


def _figures(cfg: Paper2Config, out: Path, res: dict[str, Any],
             cells: dict[str, dict[str, Any]], cm: Any, curves: dict[str, Any]) -> None:
    try:
        from advgame import plots
    except ImportError:
        return
    if cm is not None:
        k = len(cm.error) - 1
        cols = [f"FGSM-{j}" for j in range(1, k + 2)]
        plots.heatmap(out / "cat_and_mouse.png", cm.error, [f"u{i}" for i in range(k + 1)],
                      cols, title="Cat-and-mouse test error E[k][j]",
                      xlabel="attack (FGSM-j: against u_(j-1))", ylabel="model",
                      vmin=0.0, vmax=1.0, colorbar_label="test error")
        res["figures"].append({"name": "cat_and_mouse", "file": "cat_and_mouse.png",
                               "caption": "Test error of u_k (rows) on FGSM-j examples "
                                          "(columns); the diagonal+1 column is FGSM-curr."})
    games = {d: curves[d] for d in ("minimax", "maximin", "minimax-sens") if d in curves}
    if games:
        iters = len(next(iter(games.values()))["value"])
        series: dict[str, list[float]] = {}
        w = max(1, iters // 50)
        for d, c in games.items():
            series[f"{d}: defender objective"] = _smooth(c["min_objective"], w)
            series[f"{d}: attacker objective"] = _smooth(c["max_objective"], w)
        plots.convergence(out / "minimax_curves.png", list(range(1, iters + 1)), series,
                          title="Minimax / maximin objective curves",
                          xlabel="outer iteration", ylabel="cross-entropy f(u, v) "
                          f"(moving mean over {w})", logx=False, logy=True,
                          styles={k: {"marker": "None", "linewidth": 1.5} for k in series})
        res["figures"].append({"name": "minimax_curves", "file": "minimax_curves.png",
                               "caption": "Both players' mini-batch objectives per outer "
                                          "iteration (defender: descent steps, with the "
                                          "penalty for minimax-sens; attacker: ascent "
                                          "steps)."})
    attacks = [a for a in ATTACK_COLUMNS if all(a in row for row in cells.values())]
    if cells and attacks:
        plots.heatmap(out / "defense_attack.png",
                      [[cells[d][a]["error"] for a in attacks] for d in cells],
                      [_label(d) for d in cells], attacks,
                      title="Test error: defense x attack", xlabel="attack",
                      ylabel="defense", vmin=0.0, vmax=1.0, colorbar_label="test error",
                      cmap="magma")
        res["figures"].append({"name": "defense_attack", "file": "defense_attack.png",
                               "caption": "Error rate of every defense (rows) under every "
                                          "attack (columns)."})


def _smooth(v: list[float], w: int) -> list[float]:
    out, acc = [], 0.0
    for i, x in enumerate(v):
        acc += x
        if i >= w:
            acc -= v[i - w]
        out.append(acc / min(i + 1, w))
    return out
