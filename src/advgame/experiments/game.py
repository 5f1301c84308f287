"""``advgame game``: the empirical game over real strategies (SPEC section 3), end to end.

1. Train (or load) the clean classifier; build the configured defender strategies (clean,
   adversarially trained models, additive shifts, Gaussian smoothing, the reformer,
   mixtures) and attacker strategies (FGM/FGSM/PGD, AttNets, transfer attacks, ART /
   torchattacks adapters when importable).
2. The payoff matrix: defender accuracy of every (defender, attacker) pair on the test set,
   attacks computed white box against the defended model (EOT for randomized defenses),
   with per-example success flags (worst case over attacks = their OR). Every cell is a
   stored unit: a rerun resumes.
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
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advgame.defenses.base import MixedDefense
from advgame.errors import InputError
from advgame.experiments.classifier import (
    ModelConfig,
    _jsonable_cfg,
    base_results,
    data_summary,
    eval_subset,
    evaluated,
    finish,
    load_data,
    obtain_model,
)
from advgame.experiments.runtime import Progress, UnitStore, no_progress
from advgame.game import (
    exploitability,
    fictitious_play_equilibrium,
    regret_matching_equilibrium,
    solve_zero_sum,
)
from advgame.game.build import BuildContext, build_attackers, build_defenders
from advgame.game.oracle import GameOracles, OracleConfig, run_double_oracle
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
from advgame.validate import check_nonnegative, check_positive_int

#: The default strategy sets (``configs/game-mnist.toml`` has them with a few more
#: attackers: an L2 PGD and ART's APGD).
DEFAULT_DEFENDERS: tuple[dict[str, Any], ...] = (
    {"name": "clean", "kind": "clean"},
    {"name": "adv-FGSM-0.1", "kind": "adversarial", "eps": 0.1},
    {"name": "adv-FGSM-0.2", "kind": "adversarial", "eps": 0.2},
    {"name": "smooth-0.25", "kind": "smoothing", "sigma": 0.25},
    {"name": "reformer", "kind": "reformer"},
)
DEFAULT_ATTACKERS: tuple[dict[str, Any], ...] = (
    {"name": "FGSM-0.1", "kind": "fgsm", "eps": 0.1},
    {"name": "FGSM-0.2", "kind": "fgsm", "eps": 0.2},
    {"name": "PGD-0.1", "kind": "pgd", "eps": 0.1, "steps": 20},
    {"name": "PGD-0.2", "kind": "pgd", "eps": 0.2, "steps": 20},
    {"name": "AttNet-0.2", "kind": "attnet", "eps": 0.2},
    {"name": "transfer-PGD-0.2", "kind": "transfer", "eps": 0.2},
    # evaluation-grade attacks: every table that ranks defenses includes a gradient-free one
    {"name": "APGD-T-0.2", "kind": "apgd", "eps": 0.2, "loss": "dlr", "targeted": True},
    {"name": "Square-0.2", "kind": "square", "eps": 0.2, "queries": 1000},
)

#: Reduced settings of ``--quick``.
QUICK: dict[str, Any] = {
    "epochs": 3, "defense_epochs": 2, "n_test": 300, "attnet_epochs": 1,
    "attnet_train_size": 1000, "fp_iterations": 2000, "rm_iterations": 2000,
    "do_max_iters": 2, "do_attnet_epochs": 1, "do_defender_epochs": 1,
    "do_train_size": 1000,
}


@dataclass(frozen=True, kw_only=True)
class GameConfig(ModelConfig):
    """Configuration of ``advgame game`` (beyond the data and classifier of ModelConfig).

    Attributes:
        defenders, attackers: strategy tables (TOML ``[[defenders]]`` / ``[[attackers]]``
            with ``name``, ``kind`` and the kind's fields; see
            :mod:`advgame.game.specs`).
        n_test: test examples (None = all).
        defense_epochs: epochs of trained defenders and surrogates (None = ``epochs``).
        attnet_epochs, attnet_train_size: override every AttNet strategy's epochs and
            training-set size when set.
        fp_iterations, rm_iterations: iterations of fictitious play / regret matching+.
        mixed_eot: evaluate the equilibrium mixtures against adaptive EOT attacks.
        eval_attackers: attacker tables *outside* the game, run only against the deployed
            equilibrium mixtures (e.g. white-box PGD with EOT when the game's attackers are
            fixed maps); their expected payoff sum_i p_i A_ij is computed as well.
        double_oracle: run the double oracle from the configured game.
        do_attacker: attacker oracle, ``attnet`` or ``pgd``; do_eps, do_norm: its budget.
        do_tol, do_max_iters: stopping rule (bounds within tol, or iterations).
        do_attnet_epochs, do_attnet_hidden: the AttNet oracle. do_pgd_steps: PGD oracle.
        do_defender_epochs: adversarial-training epochs of the defender oracle.
        do_train_size: training examples the oracles use (None = all).
    """

    defenders: tuple[dict[str, Any], ...] = DEFAULT_DEFENDERS
    attackers: tuple[dict[str, Any], ...] = DEFAULT_ATTACKERS
    n_test: int | None = None
    defense_epochs: int | None = None
    attnet_epochs: int | None = None
    attnet_train_size: int | None = None
    fp_iterations: int = 10_000
    rm_iterations: int = 10_000
    mixed_eot: bool = True
    eval_attackers: tuple[dict[str, Any], ...] = ()
    double_oracle: bool = True
    do_attacker: str = "attnet"
    do_eps: float = 0.2
    do_norm: str = "inf"
    do_tol: float = 0.01
    do_max_iters: int = 3
    do_attnet_epochs: int = 3
    do_attnet_hidden: tuple[int, ...] = (300, 300, 300)
    do_pgd_steps: int = 10
    do_defender_epochs: int = 3
    do_train_size: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_strategies(self.defenders, self.attackers)
        if self.eval_attackers:
            try:
                _, extra = parse_strategies(self.defenders, self.eval_attackers)
            except InputError as e:
                raise InputError("eval_" + e.argument, e.problem) from None
            clash = sorted({a.name for a in extra}
                           & {str(dict(t).get("name")) for t in self.attackers})
            if clash:
                raise InputError("eval_attackers", f"names {clash} are game attackers too")
        for name in ("n_test", "defense_epochs", "attnet_epochs", "attnet_train_size",
                     "do_train_size"):
            v = getattr(self, name)
            if v is not None:
                check_positive_int(name, v, minimum=0 if "epochs" in name else 1)
        for name in ("fp_iterations", "rm_iterations", "do_max_iters"):
            check_positive_int(name, getattr(self, name))
        check_nonnegative("do_tol", self.do_tol)
        self.oracle_config()  # validates the do_* fields

    def oracle_config(self) -> OracleConfig:
        """The double oracle's settings (errors name the ``do_*`` field)."""
        try:
            return OracleConfig(
                attacker=self.do_attacker, eps=self.do_eps, norm=self.do_norm,
                attnet_hidden=tuple(self.do_attnet_hidden),
                attnet_epochs=self.do_attnet_epochs, pgd_steps=self.do_pgd_steps,
                defender_epochs=self.do_defender_epochs, train_size=self.do_train_size,
                attnet_batch_size=self.batch_size)
        except InputError as e:
            name = {"eps": "do_eps", "norm": "do_norm", "attacker": "do_attacker",
                    "attnet_epochs": "do_attnet_epochs", "pgd_steps": "do_pgd_steps",
                    "defender_epochs": "do_defender_epochs",
                    "train_size": "do_train_size"}.get(e.argument, e.argument)
            raise InputError(name, e.problem) from None

    def model_config(self) -> ModelConfig:
        """The fields that define the clean classifier (``OUT/model.pt``)."""
        return ModelConfig(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(ModelConfig)})


# --------------------------------------------------------------------------- storage


def _work_hash(cfg: GameConfig) -> str:
    return digest({**_jsonable_cfg(cfg.model_config()), "n_test": cfg.n_test})


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
    """Run the empirical game and write ``out/results.json``, figures and ``report.html``.

    Returns:
        the results dictionary (see ``docs/results-schema.md``).

    Example (command line):
        advgame game --config configs/game-mnist.toml --out runs/game-mnist --quick
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    ds = load_data(cfg)
    timings["load_data_s"] = time.perf_counter() - t
    dspecs, aspecs = parse_strategies(cfg.defenders, cfg.attackers)
    aspecs = [dataclasses.replace(
        s, epochs=cfg.attnet_epochs if cfg.attnet_epochs is not None else s.epochs,
        train_size=cfg.attnet_train_size or s.train_size)
        if isinstance(s, AttNetSpec) else s for s in aspecs]

    t = time.perf_counter()
    base, info = obtain_model(cfg.model_config(), ds, out, device, progress=progress)
    timings["train_clean_s"] = time.perf_counter() - t
    work = out / f"work-{_work_hash(cfg)}"
    store = UnitStore(work)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    x_te, y_te = eval_subset(ds, device, cfg.n_test, cfg.seed)
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

    res = base_results("game", cfg, cfg.seed)
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
    what = evaluated(ds, y_te)
    _tables(res, cfg, what, matrix, game, mixed_eval, do)
    _data(res, cfg, matrix, game, mixed_eval, do, info, work, attacks, defenses)
    res["data"].update(data_summary(ds, y_te))
    res["summary"] = _summary(cfg, what, matrix, game, mixed_eval, do)
    masking = masking_flags(cfg.attackers, matrix)
    res["data"]["masking"] = masking
    res["summary"].append(_masking_text(masking, cfg.attackers))
    _figures(out, res, matrix, game, do)
    finish(out, res, t0)
    return res


def _accuracy_unit(defense: Any, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    from advgame.rng import unit_generator

    g = unit_generator(seed, f"clean-{defense.key}", x.device)
    defense.set_generator(g)
    return float((defense.predict(x, g) == y).float().mean())


def _best_pure(a: np.ndarray) -> tuple[int, float, int]:
    """(row, its worst-case payoff, the column achieving it): max_i min_j A_ij."""
    mins = a.min(axis=1)
    i = int(np.argmax(mins))
    return i, float(mins[i]), int(np.argmin(a[i]))


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


# --------------------------------------------------------------------------- results


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
                   "(white box; EOT for randomized defenses; transfer attacks and trained "
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


def _masking_text(flags: list[dict[str, Any]], attackers: Sequence[dict[str, Any]]) -> str:
    free = [str(a["name"]) for a in attackers if a.get("kind") in GRADIENT_FREE_KINDS]
    if not free:
        return ("No gradient-free attacker is in the game, so gradient masking cannot be "
                "checked: add a Square attacker (kind = \"square\") before ranking defenses.")
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


__all__ = ["DEFAULT_ATTACKERS", "DEFAULT_DEFENDERS", "GameConfig", "QUICK",
           "run_game"]
