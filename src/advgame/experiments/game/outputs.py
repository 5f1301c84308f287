"""``advgame game``'s outputs: the tables, data, gradient-masking flags, findings and
figures of results.json."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advgame.experiments.game.config import GameConfig
from advgame.game.payoff import MixedDefenseEvaluation, PayoffMatrix

# --------------------------------------------------------------------------- results

def _best_pure(a: np.ndarray) -> tuple[int, float, int]:
    """(row, its worst-case payoff, the column achieving it): max_i min_j A_ij."""
    mins = a.min(axis=1)
    i = int(np.argmax(mins))
    return i, float(mins[i]), int(np.argmin(a[i]))



def _mixture_text(names: tuple[str, ...] | list[str], probs: np.ndarray) -> str:
    order = np.argsort(-probs)
    return ", ".join(f"{names[i]} {probs[i]:.3f}" for i in order if probs[i] > 1e-9)


Deployed = dict[str, list[MixedDefenseEvaluation]]


def _mixed_rows(ev: Deployed) -> list[list[Any]]:
    return [[e.attacker + (" (outside the game)" if part == "outside" else ""), e.expected,
             e.sampled, e.sampled_se, e.eot, e.naive]
            for part in ("game", "outside") for e in ev[part]]


def _tables(res: dict[str, Any], cfg: GameConfig, where: str, matrix: PayoffMatrix,
            game: dict[str, Any], mixed_eval: Deployed, do: dict[str, Any] | None) -> None:
    """The tables; ``where``: what was evaluated (:func:`~.classifier.evaluated`)."""
    a, p, q = matrix.accuracy, game["defender_strategy"], game["attacker_strategy"]
    res["tables"].append({
        "name": "payoff",
        "title": "Payoff matrix: defender accuracy of every defender against every attack",
        "caption": f"Rows: defender strategies; columns: attacker strategies; entry: "
                   f"accuracy on {where}, the attack computed against the defended model "
                   "(white box; EOT for randomized defenses; BPDA through preprocessing "
                   "defenders unless their bpda = false; transfer attacks and trained "
                   "AttNets are fixed maps). 'any attack': accuracy when every attack is "
                   "run and any success counts (OR of per-example flags). 'clean': no "
                   "attack (not part of the game). P: the equilibrium defense.",
        "columns": ["defender", *matrix.attackers, "any attack", "clean", "P"],
        "rows": [[d, *a[i].tolist(), float(game["worst_case"][i]), game["clean"][i],
                  float(p[i])] for i, d in enumerate(matrix.defenders)]
               + [["Q (equilibrium attack)", *[float(v) for v in q], None, None, None]],
    })
    ap, aq = a @ q, p @ a
    res["tables"].append({
        "name": "equilibrium",
        "title": f"Equilibrium of the game (value {game['value']:.4f})",
        "caption": "Mixed Nash equilibrium by linear programming (HiGHS). Payoff against "
                   "the opponent's equilibrium mixture: (A q)_i for a defender, (p^T A)_j "
                   "for an attacker; strategies in the support achieve the value.",
        "columns": ["player", "strategy", "probability", "payoff vs opponent's mixture"],
        "rows": [["defender", d, float(p[i]), float(ap[i])]
                 for i, d in enumerate(matrix.defenders)]
               + [["attacker", c, float(q[j]), float(aq[j])]
                  for j, c in enumerate(matrix.attackers)],
    })
    bi, bval, bj = _best_pure(a)
    ai = int(np.argmin(a.max(axis=0)))
    fp, rm = game["fictitious_play"], game["regret_matching"]
    res["tables"].append({
        "name": "game_summary",
        "title": "Equilibrium versus the best pure defense",
        "caption": f"On {where}. The best pure defense maximizes its worst-case accuracy "
                   "over the attacker's pure strategies, max_i min_j A_ij; the gain is the "
                   "game value minus that. 'Any attack' rows: the attacker runs every "
                   "attack (per-example OR); for the mixture the attacker sees the drawn "
                   "component. Exploitability: max_i (Aq)_i - min_j (p^T A)_j.",
        "columns": ["quantity", "value"],
        "rows": [
            ["game value (equilibrium defender accuracy)", game["value"]],
            ["LP exploitability", game["exploitability"]],
            [f"best pure defense: {matrix.defenders[bi]} (worst attack "
             f"{matrix.attackers[bj]})", bval],
            ["gain of the equilibrium over the best pure defense", game["value"] - bval],
            ["attacker's best pure strategy: " + matrix.attackers[ai]
             + " (min_j max_i A_ij)", float(a[:, ai].max())],
            [f"any attack: best pure defense {matrix.defenders[bi]}",
             float(game["worst_case"][bi])],
            ["any attack: equilibrium mixture", float(p @ game["worst_case"])],
            ["any attack: best defense against every attack "
             f"({matrix.defenders[int(np.argmax(game['worst_case']))]})",
             float(np.max(game["worst_case"]))],
            [f"fictitious play exploitability after {int(fp['iterations'][-1])} iterations",
             float(fp["exploitability"][-1])],
            [f"regret matching+ exploitability after {int(rm['iterations'][-1])} iterations",
             float(rm["exploitability"][-1])],
        ],
    })
    cap_mixed = ("The mixture deployed as a randomized classifier: each query is answered "
                 "by one component drawn from p. expected = sum_i p_i A_ij; deployed = "
                 "measured accuracy of the deployed module (for adaptive attacks the attack "
                 "computed against the drawn component, i.e. the attacker sees the draw; "
                 "s.e. = binomial standard error); EOT = the attack computed against the "
                 "mixture's expectation log sum_i p_i softmax(f_i) by an attacker who does "
                 "not see the draw, then answered by the deployed module; naive = gradient "
                 "attack through the deployed module (one random component per forward "
                 f"pass). {where}.")
    cols = ["attacker", "expected p·A", "deployed", "s.e.", "EOT attack", "naive attack"]
    res["tables"].append({
        "name": "mixed_defense",
        "title": "The equilibrium defense deployed: " + _mixture_text(matrix.defenders, p),
        "caption": cap_mixed, "columns": cols, "rows": _mixed_rows(mixed_eval)})
    if do is None:
        return
    r = do["result"]
    res["tables"].append({
        "name": "double_oracle",
        "title": "Double oracle with training oracles: bounds per iteration",
        "caption": f"Each iteration solves the restricted game, trains a defender "
                   f"(adversarial training against the attacker's mixture, "
                   f"{cfg.do_defender_epochs} epochs) and an attacker "
                   f"({'AttNet' if cfg.do_attacker == 'attnet' else 'PGD'} at eps="
                   f"{cfg.do_eps:g} against the defender's mixture) and keeps each if it "
                   "beats the known strategies. lower = p^T A[:, new attacker], upper = "
                   f"A[new defender, :] q. Stops at gap <= {cfg.do_tol:g} or after "
                   f"{cfg.do_max_iters} iterations. {where}.",
        "columns": ["iteration", "defenders", "attackers", "restricted value", "lower",
                    "upper", "gap", "new defender", "new attacker"],
        "rows": [[it["iteration"], it["rows"], it["cols"], it["value"], it["lower"],
                  it["upper"], it["upper"] - it["lower"], it["new_defender"],
                  it["new_attacker"]] for it in do["iterations"]],
    })
    res["tables"].append({
        "name": "oracle_calls",
        "title": "Oracle calls: trained candidates against the best known strategies",
        "caption": "Payoff (defender accuracy) of each trained candidate against the "
                   "opponent's restricted equilibrium mixture, next to the best strategy "
                   "already known; the oracle returns the better one.",
        "columns": ["iteration", "player", "candidate", "candidate payoff", "best known",
                    "best known payoff", "chosen", "seconds"],
        "rows": [[c.iteration, c.player, c.candidate, c.candidate_payoff, c.best_known,
                  c.best_known_payoff, c.chosen, c.seconds] for c in do["calls"]],
    })
    fm = do["matrix"]
    res["tables"].append({
        "name": "double_oracle_equilibrium",
        "title": f"Double oracle: final restricted equilibrium (value {r.value:.4f})",
        "caption": "The restricted game's strategies with their equilibrium probabilities "
                   "and payoff against the opponent's mixture.",
        "columns": ["player", "strategy", "probability", "payoff vs opponent's mixture"],
        "rows": [["defender", d, float(r.defender_strategy[i]),
                  float((fm.accuracy @ r.attacker_strategy)[i])]
                 for i, d in enumerate(r.rows)]
               + [["attacker", c, float(r.attacker_strategy[j]),
                   float((r.defender_strategy @ fm.accuracy)[j])]
                  for j, c in enumerate(r.cols)],
    })
    res["tables"].append({
        "name": "double_oracle_mixed_defense",
        "title": "The double oracle's defense deployed: "
                 + _mixture_text(list(r.rows), r.defender_strategy),
        "caption": cap_mixed, "columns": cols, "rows": _mixed_rows(do["mixed"])})


def _data(res: dict[str, Any], cfg: GameConfig, matrix: PayoffMatrix, game: dict[str, Any],
          mixed_eval: Deployed, do: dict[str, Any] | None,
          info: dict[str, Any], work: Path, attacks: dict[str, Any],
          defenses: dict[str, Any]) -> None:
    bi, bval, bj = _best_pure(matrix.accuracy)
    data: dict[str, Any] = {
        **game,
        "keys": {"defenders": {d: defenses[d].key for d in matrix.defenders},
                 "attackers": {c: attacks[c].key for c in matrix.attackers}},
        "adaptive": {c: attacks[c].adaptive for c in matrix.attackers},
        "equilibrium": {
            "value": game["value"], "exploitability": game["exploitability"],
            "defender": {d: float(game["defender_strategy"][i])
                         for i, d in enumerate(matrix.defenders)
                         if game["defender_strategy"][i] > 1e-9},
            "attacker": {c: float(game["attacker_strategy"][j])
                         for j, c in enumerate(matrix.attackers)
                         if game["attacker_strategy"][j] > 1e-9},
        },
        "best_pure_defense": {"name": matrix.defenders[bi], "worst_case_value": bval,
                              "worst_attack": matrix.attackers[bj]},
        "gain_over_best_pure": game["value"] - bval,
        "mixed_defense": {k: [dataclasses.asdict(e) for e in v] for k, v in mixed_eval.items()},
        "classifier": {k: v for k, v in info.items() if k != "loss_curve"},
        "work_dir": str(work),
    }
    if do is not None:
        r = do["result"]
        data["double_oracle"] = {
            "iterations": do["iterations"], "converged": r.converged, "value": r.value,
            "lower": r.lower_bounds, "upper": r.upper_bounds, "values": r.values,
            "defenders": list(r.rows), "attackers": list(r.cols), "payoff": r.payoff,
            "defender_strategy": r.defender_strategy, "attacker_strategy": r.attacker_strategy,
            "evaluations": r.evaluations, "tol": cfg.do_tol,
            "calls": [dataclasses.asdict(c) for c in do["calls"]],
            "added_defenders": do["added_defenders"], "added_attackers": do["added_attackers"],
            "mixed_defense": {k: [dataclasses.asdict(e) for e in v]
                              for k, v in do["mixed"].items()},
        }
    res["data"] = data


#: Attacker kinds that follow the model's input gradient (kinds not listed and not
#: gradient-free, such as AttNets and transfer attacks, are compared with neither).
GRADIENT_KINDS = frozenset({"fgsm", "fgm", "pgd", "apgd", "fab", "cw", "autoattack"})
GRADIENT_FREE_KINDS = frozenset({"square"})


def masking_flags(attackers: Sequence[dict[str, Any]],
                  matrix: PayoffMatrix) -> list[dict[str, Any]]:
    """Defenders on which a gradient-free attacker beats every gradient attacker of the same
    budget (eps and norm) by more than two standard errors -- the signature of gradient
    masking (Athalye et al. 2018; Croce & Hein 2020): the gradient attacks' accuracy is then
    not an upper bound worth reporting.

    Returns one ``{"defender", "attacker", "accuracy", "gradient_attackers",
    "best_gradient_accuracy"}`` per flag.
    """
    n = int(matrix.success.shape[-1]) if matrix.success.ndim == 3 else 1
    spec = {str(a["name"]): a for a in attackers}

    def budget(a: dict[str, Any]) -> tuple[float, str]:
        return float(a.get("eps", 0.0)), str(a.get("norm", "inf"))

    flags = []
    for j, name in enumerate(matrix.attackers):
        a = spec.get(name)
        if a is None or a.get("kind") not in GRADIENT_FREE_KINDS:
            continue
        grads = [k for k, other in enumerate(matrix.attackers)
                 if other in spec and spec[other].get("kind") in GRADIENT_KINDS
                 and budget(spec[other]) == budget(a)]
        if not grads:
            continue
        for i, d in enumerate(matrix.defenders):
            free = float(matrix.accuracy[i, j])
            best = min(float(matrix.accuracy[i, k]) for k in grads)
            p = (free + best) / 2
            if free < best - 2.0 * math.sqrt(max(2 * p * (1 - p), 1.0 / n) / n):
                flags.append({"defender": d, "attacker": name, "accuracy": free,
                              "gradient_attackers": [matrix.attackers[k] for k in grads],
                              "best_gradient_accuracy": best})
    return flags


def mixture_masking(eval_attackers: Sequence[dict[str, Any]],
                    outside: Sequence[MixedDefenseEvaluation]) -> list[dict[str, Any]]:
    """The masking check on the deployed mixture, for attacks outside the game
    (``eval_attackers``): each gradient-free attack against the best gradient attack of its
    budget (eps and norm), both as deployed (the attacker sees the draw). ``masking`` is
    True when the gradient-free one is lower by more than two standard errors of the
    difference.

    Returns one ``{"attacker", "accuracy", "best_gradient", "best_gradient_accuracy",
    "masking"}`` per gradient-free attack that has a gradient attack of its budget.
    """
    spec = {str(a["name"]): a for a in eval_attackers}

    def budget(name: str) -> tuple[float, str]:
        return float(spec[name].get("eps", 0.0)), str(spec[name].get("norm", "inf"))

    out = []
    for e in outside:
        if spec.get(e.attacker, {}).get("kind") not in GRADIENT_FREE_KINDS:
            continue
        grads = [g for g in outside if spec.get(g.attacker, {}).get("kind") in GRADIENT_KINDS
                 and budget(g.attacker) == budget(e.attacker)]
        if not grads:
            continue
        best = min(grads, key=lambda g: g.sampled)
        se = math.sqrt(e.sampled_se ** 2 + best.sampled_se ** 2)
        out.append({"attacker": e.attacker, "accuracy": e.sampled,
                    "best_gradient": best.attacker, "best_gradient_accuracy": best.sampled,
                    "masking": e.sampled < best.sampled - 2.0 * se})
    return out


def _mixture_masking_text(checks: list[dict[str, Any]]) -> str:
    parts = [f"{c['attacker']} {c['accuracy']:.4f} vs {c['best_gradient']} "
             f"{c['best_gradient_accuracy']:.4f}" for c in checks]
    if any(c["masking"] for c in checks):
        return ("Against the deployed mixture a gradient-free attack beats the gradient "
                "attacks of its budget (gradient masking): " + "; ".join(parts) + ".")
    return ("Against the deployed mixture the gradient-free attacks do not beat the gradient "
            "attacks of their budget (beyond 2 standard errors): " + "; ".join(parts) + ".")


def _masking_text(flags: list[dict[str, Any]], attackers: Sequence[dict[str, Any]],
                  mixture: list[dict[str, Any]] | None = None) -> str:
    free = [str(a["name"]) for a in attackers if a.get("kind") in GRADIENT_FREE_KINDS]
    if not free and mixture:
        return ("No gradient-free attacker is in the game (its attackers are fixed maps), "
                "so the defenders are not checked one by one. " + _mixture_masking_text(mixture))
    if not free:
        return ("No gradient-free attacker is in the game, so gradient masking cannot be "
                "checked: add a Square attacker (kind = \"square\") before ranking defenses.")
    if mixture:
        return _masking_text(flags, attackers) + " " + _mixture_masking_text(mixture)
    if not flags:
        return (f"Gradient masking check: the gradient-free {', '.join(free)} beats the "
                "gradient attacks of its budget on no defender (beyond 2 standard errors).")
    return ("Gradient masking flagged (a gradient-free attack beats every gradient attack of "
            "the same budget): " + "; ".join(
                f"{f['defender']} ({f['attacker']} {f['accuracy']:.4f} vs "
                f"{f['best_gradient_accuracy']:.4f})" for f in flags)
            + ". Rank these defenses by the gradient-free attack, not by PGD.")


def _summary(cfg: GameConfig, where: str, matrix: PayoffMatrix, game: dict[str, Any],
             mixed_eval: Deployed, do: dict[str, Any] | None) -> list[str]:
    a, p, q = matrix.accuracy, game["defender_strategy"], game["attacker_strategy"]
    m, k = a.shape
    v = game["value"]
    bi, bval, bj = _best_pure(a)
    out = [
        f"The empirical game has {m} defender and {k} attacker strategies, evaluated on "
        f"{where}; its value (equilibrium defender "
        f"accuracy) is {v:.4f}, LP exploitability {game['exploitability']:.1e}.",
        f"Equilibrium defense: {_mixture_text(matrix.defenders, p)}; equilibrium attack: "
        f"{_mixture_text(matrix.attackers, q)}.",
        f"The best pure defense, {matrix.defenders[bi]}, guarantees {bval:.4f} (its worst "
        f"attack is {matrix.attackers[bj]}); the equilibrium mixture gains "
        f"{v - bval:+.4f} over it.",
    ]
    wc = game["worst_case"]
    out.append(
        f"Against an attacker who runs every attack and keeps any success, "
        f"{matrix.defenders[bi]} keeps {wc[bi]:.4f} accuracy and the equilibrium mixture "
        f"{float(p @ wc):.4f} (the best single defense then is "
        f"{matrix.defenders[int(np.argmax(wc))]} with {float(np.max(wc)):.4f}).")
    in_game = mixed_eval["game"]
    z = [abs(e.sampled - e.expected) / max(e.sampled_se, 1e-12) for e in in_game]
    eot = [e for e in in_game + mixed_eval["outside"] if e.eot is not None]
    if len(p[p > 1e-9]) > 1:
        out.append(
            "Deployed as a randomized classifier (one component per query), the mixture's "
            f"measured accuracy is within {max(z):.1f} standard errors of its expected "
            "payoff against every attack (largest gap "
            f"{max(abs(e.sampled - e.expected) for e in in_game):.4f}).")
        if eot:
            worst = min(eot, key=lambda e: e.eot if e.eot is not None else 1.0)
            higher = sum(1 for e in eot if e.eot is not None
                         and e.eot > e.expected + 2 * e.sampled_se)
            lower = sum(1 for e in eot if e.eot is not None
                        and e.eot < e.expected - 2 * e.sampled_se)
            out.append(
                "An adaptive attacker who does not see the draw and attacks the mixture's "
                f"expectation (EOT) leaves {worst.eot:.4f} accuracy at worst "
                f"({worst.attacker}; expected payoff {worst.expected:.4f} when the attacker "
                f"sees the draw); the EOT attack is weaker than that on {higher} and "
                f"stronger on {lower} of {len(eot)} adaptive attacks (beyond 2 standard "
                "errors).")
    else:
        out.append("The equilibrium defense is a pure strategy (a saddle point of the "
                   "payoff matrix): randomizing over these defenders cannot raise the "
                   "guaranteed accuracy.")
    fp, rm = game["fictitious_play"], game["regret_matching"]
    out.append(
        f"Fictitious play reaches exploitability {float(fp['exploitability'][-1]):.2e} after "
        f"{int(fp['iterations'][-1])} iterations, regret matching+ "
        f"{float(rm['exploitability'][-1]):.2e} after {int(rm['iterations'][-1])}.")
    if do is not None:
        r = do["result"]
        out.append(
            f"Double oracle: {r.iterations} iteration(s), {len(do['added_defenders'])} "
            f"trained defender(s) and {len(do['added_attackers'])} trained attacker(s) added; "
            f"last bounds [{r.lower:.4f}, {r.upper:.4f}] (gap {r.gap:.4f}, "
            + ("converged" if r.converged else "not converged") + f" at tol {cfg.do_tol:g}); "
            f"restricted value {float(r.values[0]):.4f} -> {r.value:.4f}; final defense "
            f"{_mixture_text(list(r.rows), r.defender_strategy)}.")
        de = [e for e in do["mixed"]["game"] + do["mixed"]["outside"] if e.eot is not None]
        if de and len(r.defender_mixture()) > 1:
            w = min(de, key=lambda e: e.eot if e.eot is not None else 1.0)
            out.append(f"The double oracle's mixture under EOT attacks keeps at worst "
                       f"{w.eot:.4f} ({w.attacker}; expected {w.expected:.4f}).")
    if game["skipped"]:
        out.append("Skipped attacker strategies: " + "; ".join(
            f"{k} ({v})" for k, v in game["skipped"].items()) + ".")
    return out


def _figures(out: Path, res: dict[str, Any], matrix: PayoffMatrix, game: dict[str, Any],
             do: dict[str, Any] | None) -> None:
    try:
        from advgame import plots
    except ImportError:  # pragma: no cover
        return
    plots.payoff_heatmap(out / "payoff.png", matrix.accuracy, list(matrix.defenders),
                         list(matrix.attackers), game["defender_strategy"],
                         game["attacker_strategy"], value=game["value"])
    res["figures"].append({"name": "payoff", "file": "payoff.png",
                           "caption": "Payoff matrix (defender accuracy) with the "
                                      "equilibrium strategies (bars) and the cells of the "
                                      "equilibrium support outlined."})
    fp, rm = game["fictitious_play"], game["regret_matching"]
    fp_x, rm_x = np.asarray(fp["iterations"]), np.asarray(rm["iterations"])
    xs = fp_x if np.array_equal(fp_x, rm_x) else None
    if xs is not None:
        series = {"fictitious play": np.maximum(fp["exploitability"], 1e-16),
                  "regret matching+": np.maximum(rm["exploitability"], 1e-16)}
        plots.convergence(out / "solver_convergence.png", xs, series,
                          title="Iterative solvers on the payoff matrix",
                          xlabel="iteration", ylabel="exploitability (upper - lower bound)")
    else:
        plots.convergence(out / "solver_convergence.png", fp_x,
                          {"fictitious play": np.maximum(fp["exploitability"], 1e-16)},
                          title="Fictitious play on the payoff matrix", xlabel="iteration",
                          ylabel="exploitability (upper - lower bound)")
    res["figures"].append({"name": "solver_convergence", "file": "solver_convergence.png",
                           "caption": "Exploitability of the average strategies of "
                                      "fictitious play and regret matching+ per iteration "
                                      "(log-log); the LP solution has exploitability "
                                      f"{game['exploitability']:.1e}."})
    if do is None:
        return
    r = do["result"]
    its = np.arange(1, r.iterations + 1)
    plots.convergence(out / "double_oracle.png", its,
                      {"upper bound": r.upper_bounds, "restricted value": r.values,
                       "lower bound": r.lower_bounds},
                      title="Double oracle with training oracles", xlabel="iteration",
                      ylabel="defender accuracy", logx=False, logy=False,
                      reference_lines={"value of the configured game": game["value"]})
    res["figures"].append({"name": "double_oracle", "file": "double_oracle.png",
                           "caption": "Upper bound (trained defender against the attacker "
                                      "mixture), restricted game value and lower bound "
                                      "(restricted defender mixture against the trained "
                                      "attacker) per iteration."})
    fm = do["matrix"]
    plots.payoff_heatmap(out / "double_oracle_payoff.png", fm.accuracy, list(r.rows),
                         list(r.cols), r.defender_strategy, r.attacker_strategy,
                         value=r.value, title="Double oracle: final restricted game")
    res["figures"].append({"name": "double_oracle_payoff", "file": "double_oracle_payoff.png",
                           "caption": "The final restricted game of the double oracle with "
                                      "its equilibrium."})
