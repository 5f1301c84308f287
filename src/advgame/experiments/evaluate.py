"""``advgame evaluate``: robustness of a saved model to the field's standard (SPEC 3b).

For each eps the AutoAttack-style cascade (:func:`advgame.evaluation.evaluate`) runs on a
seeded stratified sample of the test set; results.json holds the per-stage cascade, the
worst case per point and the gradient-masking flags; the report shows the cascade tables,
the flags and robust accuracy against eps. Each eps is a stored unit (a rerun resumes) and
the eps values are shared out across torchrun processes.

``defense`` puts one of the library's defenses in front of the model, so that the checks
meet the defenses they exist for: ``median:K`` (K x K median filter) and ``bit-depth:B``
(B-bit quantization) are input-dependent preprocessing (``bpda``: the attacks
differentiate the transform as the identity, Athalye et al. 2018; the forward pass, hence
every decision, is unchanged), ``smoothing:SIGMA`` the randomized Gaussian-noise classifier
(its scores average ``eot`` noise draws per call; ``--attacks rand`` adds EOT to APGD).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgame import distributed
from advgame.attacks.cascade import check_attacks
from advgame.defenses import Defense, SmoothingDefense, TransformDefense
from advgame.defenses.preprocessing import preprocessing
from advgame.errors import InputError
from advgame.evaluation import Evaluation, accuracy_curve, evaluate
from advgame.experiments.classifier import ModelConfig, evaluation_setup, finish
from advgame.experiments.runtime import Progress, no_progress, sharded_units
from advgame.rng import unit_generator
from advgame.threat import parse_norm
from advgame.validate import check_nonnegative, check_positive_int


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(ModelConfig):
    """What to evaluate: the model (a checkpoint, or one trained first), the threat model
    and the cascade (``attacks``: standard, plus, rand, or comma-separated attack names)."""

    model: str | None = None
    norm: str = "inf"
    eps: tuple[float, ...] = (0.1,)
    attacks: str = "standard"
    n_test: int | None = 500
    checks: bool = True
    defense: str = "none"
    bpda: bool = False
    eot: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_norm(self.norm, "norm")
        if not self.eps:
            raise InputError("eps", "give at least one value")
        for e in self.eps:
            check_nonnegative("eps", e)
        check_attacks(self.attacks, self.norm)
        if self.n_test is not None:
            check_positive_int("n_test", self.n_test)
        kind, _ = parse_defense(self.defense)
        if self.bpda and kind not in ("median", "bit-depth"):
            raise InputError("bpda", f"needs a preprocessing defense (median:K or bit-depth:B), "
                             f"got defense {self.defense!r}")
        check_positive_int("eot", self.eot)


#: ``--defense`` kinds and what their parameter is.
DEFENSES = {"none": "", "median": "odd window size K >= 3", "bit-depth": "bits B in 1..8",
            "smoothing": "noise level SIGMA > 0"}


def parse_defense(spec: str) -> tuple[str, float | None]:
    """``"none"``, ``"median:K"``, ``"bit-depth:B"`` or ``"smoothing:SIGMA"`` -> (kind, value).

    Example:
        >>> parse_defense("bit-depth:3"), parse_defense("none")
        (('bit-depth', 3.0), ('none', None))
    """
    kind, sep, arg = str(spec).strip().partition(":")
    if kind not in DEFENSES:
        raise InputError("defense", f"unknown defense {spec!r}; choose none, median:K, "
                         f"bit-depth:B or smoothing:SIGMA")
    if kind == "none":
        if sep:
            raise InputError("defense", f"'none' takes no value, got {spec!r}")
        return kind, None
    try:
        value = float(arg)
    except ValueError:
        raise InputError("defense", f"{kind} needs {DEFENSES[kind]} after ':', got "
                         f"{spec!r}") from None
    ok = {"median": value >= 3 and value.is_integer() and int(value) % 2 == 1,
          "bit-depth": value.is_integer() and 1 <= value <= 8,
          "smoothing": math.isfinite(value) and value > 0}[kind]
    if not ok:
        raise InputError("defense", f"{kind} needs {DEFENSES[kind]}, got {spec!r}")
    return kind, value


def deploy(cfg: EvaluateConfig, model: nn.Module) -> tuple[nn.Module, str]:
    """The module the cascade attacks and judges (the model behind ``cfg.defense``; with
    ``cfg.bpda`` the transform's backward pass is the identity's) and its description."""
    kind, value = parse_defense(cfg.defense)
    if kind == "none":
        return model, "the model as it is (no defense)"
    assert value is not None
    if kind == "smoothing":
        return SmoothingDefense(f"smoothing {value:g}", model, value, eot=cfg.eot), (
            f"Gaussian smoothing, sigma {value:g}, in front of the model (randomized: scores "
            f"average {cfg.eot} noise draws per call)")
    k = int(value)
    what = f"a {k}x{k} median filter" if kind == "median" else f"{k}-bit depth reduction"
    d = TransformDefense(cfg.defense, preprocessing(kind, k), model, bpda=cfg.bpda)
    how = ("attacked with BPDA (the transform's backward pass replaced by the identity's)"
           if cfg.bpda else "attacked through it as it is")
    # the attack model's forward pass is the defense's: it also makes every decision
    return d.attack_model(), f"{what} in front of the model, {how}"


QUICK: dict[str, Any] = {"epochs": 2, "n_test": 100, "eps": (0.05, 0.1)}


def _as_json(ev: Evaluation) -> dict[str, Any]:
    return {
        "eps": ev.eps, "norm": ev.norm, "n": ev.n, "clean_accuracy": ev.clean_accuracy,
        "robust_accuracy": ev.robust_accuracy, "per_attack": ev.per_attack,
        "stages": [{"name": s.name, "attacked": s.attacked, "fooled": s.fooled,
                    "robust_accuracy": s.robust_accuracy, "time_s": s.time_s}
                   for s in ev.stages],
        "flags": [{"name": f.name, "message": f.message} for f in ev.flags],
        "checks": ev.checks, "robust": [bool(v) for v in ev.robust.tolist()],
    }


def run_evaluate(cfg: EvaluateConfig, out: Path, device: torch.device,
                 progress: Progress = no_progress) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = evaluation_setup(cfg, out, device, progress)
    x, y = run.x, run.y
    model, defended = deploy(cfg, run.model)
    jobs: list[tuple[str, Callable[[], Any]]] = []
    for k, e in enumerate(cfg.eps):
        def compute(k: int = k, e: float = e) -> dict[str, Any]:
            gen = unit_generator(cfg.seed, k, device)
            if isinstance(model, Defense):  # a randomized defense's own noise, per unit
                model.set_generator(unit_generator(cfg.seed, f"defense-{k}", device))
            return _as_json(evaluate(model, x, y, e, cfg.norm, cfg.attacks, gen,
                                     checks=cfg.checks))
        jobs.append((f"evaluate-{cfg.norm}-{e}", compute))
    tick = time.perf_counter()
    results = sharded_units(run.store, jobs, progress, "evaluate")
    elapsed = time.perf_counter() - tick
    if not distributed.is_main():
        return {"summary": []}
    res = run.results("evaluate", cfg, evaluations=results, defense=defended)
    res["timings"]["evaluate_s"] = elapsed
    _outputs(cfg, res, results, out, f"{run.evaluated}; evaluated: {defended}")
    if cfg.defense != "none":
        res["summary"].insert(0, f"Evaluated {defended}.")
    finish(out, res, t0)
    return res


def _outputs(cfg: EvaluateConfig, res: dict[str, Any], results: list[dict[str, Any]],
             out: Path, what: str) -> None:
    p = parse_norm(cfg.norm)
    for r in results:
        res["tables"].append({
            "name": f"cascade_eps_{r['eps']:g}",
            "title": f"Attack cascade at eps={r['eps']:g} (L{p})",
            "caption": f"{what}. Each attack runs only on the points still robust after the "
                       f"ones above it (AutoAttack's protocol); robust accuracy is cumulative; "
                       f"'fgm (single step)' is folded in last. Clean accuracy "
                       f"{r['clean_accuracy']:.4f}.",
            "columns": ["attack", "points attacked", "fooled", "robust accuracy", "time (s)"],
            "rows": [[s["name"], s["attacked"], s["fooled"], s["robust_accuracy"], s["time_s"]]
                     for s in r["stages"]]
                    + [["fgm (single step)", None, int(r["checks"].get(
                        "fgm_fooled_after_cascade", 0)), r["robust_accuracy"], None]],
        })
    rows = []
    for r in results:
        for f in r["flags"]:
            rows.append([r["eps"], f["name"], f["message"]])
    curve = accuracy_curve([_shallow(r) for r in results])
    rows += [[None, f.name, f.message] for f in curve]
    res["tables"].append({
        "name": "flags", "title": "Did the evaluation itself fail? (gradient-masking checks)",
        "caption": "Warnings raised by advgame.evaluation: zero input gradients, a gradient-free "
                   "attack beating the gradient attacks, a single step beating the iterative "
                   "attacks, accuracy not falling as eps grows, an unbounded attack not "
                   "reaching ~0%, random outputs without EOT, softmax outputs. None: no check "
                   "fired.",
        "columns": ["eps", "flag", "message"], "rows": rows or [[None, "none", "no check fired"]],
    })
    res["tables"].append({
        "name": "robust_vs_eps", "title": "Robust accuracy against eps",
        "caption": f"{what}; worst case over the cascade '{cfg.attacks}' and FGM.",
        "columns": ["eps", "clean", "robust", *[s["name"] for s in results[0]["stages"]]],
        "rows": [[r["eps"], r["clean_accuracy"], r["robust_accuracy"],
                  *[s["robust_accuracy"] for s in r["stages"]]] for r in results],
    })
    from advgame import plots

    eps = [r["eps"] for r in results]
    curves = {f"after {s['name']}": [r["stages"][i]["robust_accuracy"] for r in results]
              for i, s in enumerate(results[0]["stages"])}
    curves["worst case (with FGM)"] = [r["robust_accuracy"] for r in results]
    plots.accuracy_vs_eps(out / "robust_vs_eps.png", eps, curves,
                          title=f"Robust accuracy against eps (L{p}), cascade '{cfg.attacks}'",
                          xlabel=f"eps (L{p}, pixel scale [0, 1])", ylabel="robust accuracy")
    res["figures"].append({"name": "robust_vs_eps", "file": "robust_vs_eps.png",
                           "caption": f"Cumulative robust accuracy after each stage of the "
                                      f"cascade, against eps ({what})."
                                      + _coinciding(curves)})
    flagged = sum(len(r["flags"]) for r in results) + len(curve)
    for r in results:
        s = res["summary"]
        worst = min(r["per_attack"], key=lambda k: r["per_attack"][k])
        last = ("no attack lowered it" if r["per_attack"][worst] >= r["clean_accuracy"]
                else f"last decrease by {worst}")
        s.append(f"At eps={r['eps']:g} (L{p}): clean accuracy {r['clean_accuracy']:.3f}, robust "
                 f"accuracy {r['robust_accuracy']:.3f} after {', '.join(r['per_attack'])} "
                 f"({last}).")
    res["summary"].append("No gradient-masking check fired." if flagged == 0 else
                          f"{flagged} gradient-masking warning(s): see the flags table; the "
                          f"robust accuracy is then an overestimate.")


def _coinciding(curves: dict[str, list[float]]) -> str:
    """A caption sentence naming the curves hidden under later ones with the same values."""
    names = list(curves)
    hidden = [a for i, a in enumerate(names) if any(curves[a] == curves[b]
                                                    for b in names[i + 1:])]
    if not hidden:
        return ""
    return (f" Hidden under a later curve with the same values: {', '.join(hidden)} (no "
            "stage after them lowered the accuracy at any eps).")


def _shallow(r: dict[str, Any]) -> Evaluation:
    return Evaluation(r["eps"], r["norm"], r["n"], r["clean_accuracy"], r["robust_accuracy"],
                      r["per_attack"], torch.tensor(r["robust"]), torch.zeros(0), (), ())
