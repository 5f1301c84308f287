"""``advgame game``: the empirical game over real strategies (SPEC section 3), end to end.

1. Train (or load) the clean classifier; build the configured defender strategies (clean,
   adversarially trained models, additive shifts, Gaussian smoothing, the reformer,
   median / bit-depth preprocessing, mixtures) and attacker strategies (FGM/FGSM/PGD,
   APGD, Square, FAB, CW, AutoAttack, AttNets, transfer attacks, ART / torchattacks
   adapters when importable).
2. The payoff matrix: defender accuracy of every (defender, attacker) pair on the test set,
   attacks computed white box against the defended model (EOT for randomized defenses,
   BPDA through preprocessing defenders), with per-example success flags (worst case over
   attacks = their OR). Every cell is a stored unit: a rerun resumes.
3. The zero-sum equilibrium by LP (value, both strategies, exploitability), the best pure
   defense and what the equilibrium gains over it, fictitious play and regret matching+
   convergence curves.
4. The equilibrium mixture deployed as a randomized classifier (one component per query):
   its accuracy against every attack next to the expected payoff, and against an adaptive
   attacker who attacks the mixture's expectation (EOT).
5. Double oracle with training oracles (a new AttNet against the defender's mixture, a
   new adversarially trained model against the attacker's mixture) from the configured
   game, with its bounds per iteration, and the final mixture deployed likewise.

Files under ``OUT``: ``model.pt`` (the clean classifier), ``work-<hash>/models`` (trained
strategies, weights only) and ``work-<hash>/units`` (cells and other finished units), where
the hash covers the data, the classifier and the seed — so adding strategies to the config
reuses everything already computed.

The package: ``config`` (:class:`GameConfig`, default strategies, ``--quick``),
``outputs`` (tables, figures, findings); this module runs the stages.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgame.defenses.base import MixedDefense
from advgame.errors import InputError
from advgame.experiments import classifier as clf
from advgame.experiments.game.config import DEFAULT_ATTACKERS, DEFAULT_DEFENDERS, QUICK, GameConfig
from advgame.experiments.game.outputs import (
    _data,
    _figures,
    _masking_text,
    _summary,
    _tables,
    masking_flags,
    mixture_masking,
)
from advgame.experiments.runtime import Progress, UnitStore, no_progress
from advgame.game import (
    exploitability,
    fictitious_play_equilibrium,
    regret_matching_equilibrium,
    solve_zero_sum,
)
from advgame.game.build import BuildContext, build_attackers, build_defenders
from advgame.game.oracle import GameOracles, run_double_oracle
from advgame.game.payoff import (
    CellEvaluator,
    MixedDefenseEvaluation,
    PayoffMatrix,
    compute_payoff,
    evaluate_mixed_defense,
)
from advgame.game.specs import AttNetSpec, parse_strategies
from advgame.models import TrainConfig, load_checkpoint
from advgame.models.checkpoint import atomic_torch_save
from advgame.storage import digest

# --------------------------------------------------------------------------- storage


def _work_hash(cfg: GameConfig) -> str:
    return digest({**clf.jsonable_config(cfg.model_config()), "n_test": cfg.n_test})


def _file_fit(models: Path, device: torch.device, timings: dict[str, float]
              ) -> Callable[[str, nn.Module, Callable[[nn.Module], None]], nn.Module]:
    """``fit(key, module, train_fn)`` caching weights in ``models/<key>.pt`` (weights only)."""

    def fit(key: str, module: nn.Module, train_fn: Callable[[nn.Module], None]) -> nn.Module:
        path = models / f"{key}.pt"
        if path.is_file():
            try:
                state = torch.load(path, map_location=device, weights_only=True)
                module.load_state_dict(state["state_dict"])
                return module.to(device).eval()
            except Exception:  # noqa: BLE001 - corrupt or foreign file: train again
                pass
        t0 = time.perf_counter()
        train_fn(module)
        timings[f"fit_{key.rsplit('-', 1)[0]}_s"] = time.perf_counter() - t0
        atomic_torch_save(path, {"format": "advgame-state-v1", "key": key,
                                 "state_dict": {k: v.detach().cpu()
                                                for k, v in module.state_dict().items()}})
        return module.eval()
    return fit


# --------------------------------------------------------------------------- the run


def run_game(
    cfg: GameConfig, out: Path, device: torch.device, progress: Progress = no_progress
) -> dict[str, Any]:
    """Run the stages of the module notes on ``device`` and write ``out/results.json``
    (the payoff table with per-cell seconds, the equilibrium, the deployed mixture, double
    oracle), its figures and ``out/report.html`` (schema: ``docs/results-schema.md``).

    Under torchrun the payoff cells are split across the ranks; only rank 0 writes, and the
    other ranks return ``{"summary": []}``. ``progress`` wraps each stage's iterable.

    Example (command line):
        advgame game --config configs/game-mnist.toml --out runs/game-mnist --quick
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ds = clf.load_data(cfg)
    timings["load_data_s"] = time.perf_counter() - t
    dspecs, aspecs = parse_strategies(cfg.defenders, cfg.attackers)
    aspecs = [dataclasses.replace(
        s, epochs=cfg.attnet_epochs if cfg.attnet_epochs is not None else s.epochs,
        train_size=cfg.attnet_train_size or s.train_size)
        if isinstance(s, AttNetSpec) else s for s in aspecs]

    t = time.perf_counter()
    base, info = clf.obtain_model(cfg.model_config(), ds, out, device, progress=progress)
    timings["train_clean_s"] = time.perf_counter() - t
    work = out / f"work-{_work_hash(cfg)}"
    store = UnitStore(work)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    x_te, y_te = clf.eval_subset(ds, device, cfg.n_test, cfg.seed)
    n = int(x_te.shape[0])

    def load_classifier(path: str) -> nn.Module:
        model, ck = load_checkpoint(path, map_location=device)
        if tuple(ck["input_shape"]) != ds.input_shape or ck["num_classes"] != ds.num_classes:
            raise InputError("path", f"checkpoint {path} expects {tuple(ck['input_shape'])} "
                             f"with {ck['num_classes']} classes, data has {ds.input_shape} "
                             f"with {ds.num_classes}")
        return model

    def load_state(path: str, module: nn.Module) -> nn.Module:
        if not Path(path).is_file():
            raise InputError("path", f"{path} not found")
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            module.load_state_dict(state.get("state_dict", state))
        except Exception as e:  # noqa: BLE001 - any failure means unusable weights
            raise InputError("path", f"{path} does not hold weights of this attack network "
                             f"({type(e).__name__}: {str(e)[:120]})") from None
        return module.to(device).eval()

    fits: dict[str, float] = {}
    ctx = BuildContext(
        x_tr, y_tr, ds.num_classes, base, arch=cfg.arch, arch_kwargs=cfg.arch_kwargs(),
        train_config=TrainConfig(epochs=cfg.defense_epochs if cfg.defense_epochs is not None
                                 else cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr),
        seed=cfg.seed, fit=_file_fit(work / "models", device, fits),
        load_classifier=load_classifier, load_state=load_state)
    t = time.perf_counter()
    defenses = build_defenders(dspecs, ctx)
    attacks, skipped = build_attackers(aspecs, ctx, defenses)
    timings["build_strategies_s"] = time.perf_counter() - t
    if not attacks:
        raise InputError("attackers", "no attacker strategy is available: "
                         + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    clean: dict[str, float] = {}
    for d, defense in defenses.items():
        got = store.get(f"clean-n{n}-{defense.key}")
        if got is None:
            got = store.put(f"clean-n{n}-{defense.key}",
                            _accuracy_unit(defense, x_te, y_te, cfg.seed))
        clean[d] = float(got)

    # ---- payoff matrix and equilibrium
    evaluator = CellEvaluator(x_te, y_te, store=store, seed=cfg.seed, tag=f"n{n}")
    t = time.perf_counter()
    matrix = compute_payoff(defenses, attacks, x_te, y_te, evaluator=evaluator,
                            progress=progress)
    timings["payoff_s"] = time.perf_counter() - t
    a = matrix.accuracy
    t = time.perf_counter()
    value, p, q = solve_zero_sum(a)
    expl = exploitability(a, p, q)
    fp = fictitious_play_equilibrium(a, cfg.fp_iterations,
                                     stride=max(1, cfg.fp_iterations // 200))
    rm = regret_matching_equilibrium(a, cfg.rm_iterations,
                                     stride=max(1, cfg.rm_iterations // 200))
    timings["solve_s"] = time.perf_counter() - t
    worst = matrix.worst_case_accuracy()

    # ---- the equilibrium mixture, deployed
    support = {matrix.defenders[i]: float(p[i]) for i in range(len(p)) if p[i] > 1e-9}
    mixed = MixedDefense("equilibrium", [defenses[d] for d in support],
                         list(support.values()))
    t = time.perf_counter()
    outside: dict[str, Any] = {}
    if cfg.eval_attackers:
        _, extra_specs = parse_strategies(cfg.defenders, cfg.eval_attackers)
        outside, extra_skipped = build_attackers(extra_specs, ctx, defenses)
        skipped.update(extra_skipped)
    mixed_eval = _deploy(cfg, mixed, matrix, attacks, outside, evaluator, progress)
    timings["mixed_defense_s"] = time.perf_counter() - t

    # ---- double oracle
    do: dict[str, Any] | None = None
    if cfg.double_oracle:
        t = time.perf_counter()
        do = _double_oracle(cfg, defenses, attacks, outside, evaluator, ctx, progress)
        timings["double_oracle_s"] = time.perf_counter() - t
    timings.update(fits)

    res = clf.base_results("game", cfg, cfg.seed)
    res["timings"].update(timings)
    game = {
        "defenders": list(matrix.defenders), "attackers": list(matrix.attackers),
        "payoff": a, "seconds": matrix.seconds, "clean": [clean[d] for d in matrix.defenders],
        "worst_case": worst, "value": value, "defender_strategy": p, "attacker_strategy": q,
        "exploitability": expl, "n_test": n, "skipped": skipped,
        "fictitious_play": {"iterations": fp.iterations, "exploitability": fp.exploitability,
                            "value": fp.value, "defender_strategy": fp.defender_strategy,
                            "attacker_strategy": fp.attacker_strategy},
        "regret_matching": {"iterations": rm.iterations, "exploitability": rm.exploitability,
                            "value": rm.value, "defender_strategy": rm.defender_strategy,
                            "attacker_strategy": rm.attacker_strategy},
    }
    what = clf.evaluated(ds, y_te)
    _tables(res, cfg, what, matrix, game, mixed_eval, do)
    _data(res, cfg, matrix, game, mixed_eval, do, info, work, attacks, defenses)
    res["data"].update(clf.data_summary(ds, y_te))
    res["summary"] = _summary(cfg, what, matrix, game, mixed_eval, do)
    masking = masking_flags(cfg.attackers, matrix)
    mixture = mixture_masking(cfg.eval_attackers, mixed_eval.get("outside", []))
    res["data"]["masking"] = masking
    res["data"]["mixture_masking"] = mixture
    res["summary"].append(_masking_text(masking, cfg.attackers, mixture))
    _figures(out, res, matrix, game, do)
    clf.finish(out, res, t0)
    return res


def _accuracy_unit(defense: Any, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    from advgame.rng import unit_generator

    g = unit_generator(seed, f"clean-{defense.key}", x.device)
    defense.set_generator(g)
    return float((defense.predict(x, g) == y).float().mean())




def _deploy(cfg: GameConfig, mixed: MixedDefense, matrix: PayoffMatrix,
            attacks: dict[str, Any], outside: dict[str, Any], evaluator: CellEvaluator,
            progress: Progress) -> dict[str, list[MixedDefenseEvaluation]]:
    """The deployed mixture against the game's attacks and the attacks outside the game."""
    out = {"game": evaluate_mixed_defense(mixed, matrix, attacks, evaluator,
                                          adaptive_attacks=cfg.mixed_eot, progress=progress),
           "outside": []}
    if outside:
        comps = {c.name: c for c in mixed.components}
        sub = compute_payoff(comps, outside, evaluator.x, evaluator.y, evaluator=evaluator)
        out["outside"] = evaluate_mixed_defense(mixed, sub, outside, evaluator,
                                                adaptive_attacks=True, progress=progress)
    return out


def _double_oracle(cfg: GameConfig, defenses: dict[str, Any], attacks: dict[str, Any],
                   outside: dict[str, Any], evaluator: CellEvaluator, ctx: BuildContext,
                   progress: Progress) -> dict[str, Any]:
    oracles = GameOracles(defenses, attacks, evaluator, ctx, cfg.oracle_config())
    bar = iter(progress(range(cfg.do_max_iters), "double oracle", cfg.do_max_iters))
    iters: list[dict[str, Any]] = []

    def tick(it: Any) -> None:
        next(bar, None)
        iters.append({"iteration": it.iteration, "rows": it.num_rows, "cols": it.num_cols,
                      "value": it.value, "lower": it.lower, "upper": it.upper,
                      "new_defender": it.new_row, "new_attacker": it.new_col})

    res = run_double_oracle(oracles, tol=cfg.do_tol, max_iters=cfg.do_max_iters, callback=tick)
    for _ in bar:
        pass
    rows, cols = list(res.rows), list(res.cols)
    final = compute_payoff({r: oracles.defenses[r] for r in rows},
                           {c: oracles.attacks[c] for c in cols},
                           evaluator.x, evaluator.y, evaluator=evaluator)
    pmix = res.defender_mixture()
    mixed = oracles.mixed_defense(pmix, "double-oracle")
    mixed_eval = _deploy(cfg, mixed, final, oracles.attacks, outside, evaluator, progress)
    return {"result": res, "iterations": iters, "calls": oracles.calls, "matrix": final,
            "mixed": mixed_eval, "added_defenders": [r for r in rows if r not in defenses],
            "added_attackers": [c for c in cols if c not in attacks]}


__all__ = ["DEFAULT_ATTACKERS", "DEFAULT_DEFENDERS", "GameConfig", "QUICK",
           "run_game"]
