"""``advgame paper2``: S2 end to end — cat-and-mouse, Sens-FGSM, minimax / maximin against
attack networks, and the cross-evaluation of every defense against every attack.

Stages (each finished model or evaluated cell is stored under ``OUT`` and reused by a
rerun with the same config, so an interrupted run resumes):

1. u_0: the clean classifier (``OUT/model.pt``, shared with ``advgame train``).
2. Cat-and-mouse u_1..u_K: u_k retrained on FGSM examples against u_(k-1)
   (:func:`advgame.defenses.training.cat_and_mouse_round`), the error matrix E[k][j] on
   FGSM-j test examples, clean error, FGSM-curr, and a data-driven oscillation test.
3. Defenses fine-tuned from u_0: online adversarial training (FGSM, detached),
   Sens-FGSM (surrogate through u, double backprop), its first-order form
   l(x) + eta ||grad_x l||_1, minimax (defender leads, attacker best-responds with k
   ascent steps per descent step), maximin (attacker leads), minimax with the
   sensitivity-penalized defender step (rho > 0), and the MagNet-style reformer
   (autoencoder trained on clean data in front of u_0).
4. Every defense against every attack, as test error: clean, FGSM-curr (FGSM against the
   defense itself), PGD, fresh MLP AttNets trained from scratch against the frozen defense
   (several restarts, worst case per example), fresh convolutional AttNets (another
   architecture: the transfer question), the minimax game's own attacker v transferred to
   every defense, and the worst case over all of them.

Files under ``OUT/work-<config hash>/``: ``models/*.pt`` (weights-only checkpoints) and
``units/*.json`` (curves, evaluated cells with per-example error flags).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgame import distributed
from advgame.attacks.apgd import apgd
from advgame.attacks.gradient import fgm, pgd
from advgame.attacks.learned import (
    OBJECTIVES,
    attnet_examples,
    attnet_saturation,
    build_attnet,
    mode_fraction,
    train_attnet,
)
from advgame.attacks.score import square
from advgame.data import Dataset, class_counts
from advgame.defenses.training import (
    adversarial_training,
    cat_and_mouse_errors,
    cat_and_mouse_round,
    detect_oscillation,
    error_rate,
    fgsm_examples,
    learned_minimax,
    sens_fgsm_train,
)
from advgame.defenses.transforms import ReformedClassifier, build_autoencoder, train_autoencoder
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
    obtain_model_once,
    train_subset,
)
from advgame.experiments.runtime import Progress, UnitStore, no_progress, sharded_units
from advgame.models import (
    TrainConfig,
    build_model,
    load_checkpoint,
    predict,
    save_checkpoint,
    train,
)
from advgame.models.checkpoint import atomic_torch_save
from advgame.rng import seeded_init, unit_generator
from advgame.storage import digest
from advgame.validate import check_nonnegative, check_positive_int

#: Defenses a run can evaluate (``clean`` = u_0, ``cat-mouse`` = u_1..u_K).
DEFENSES = ("clean", "cat-mouse", "adv-online", "sens-fgsm", "sens-first-order", "minimax",
            "maximin", "minimax-sens", "reformer")

#: Defenses of the eta table (the paper's Minimax = ``minimax-sens``, the sensitivity-
#: penalized solver; Alt = ``minimax``, plain alternating descent/ascent with the same k).
SWEEP_DEFENSES = ("clean", "adv-online", "sens-fgsm", "minimax", "minimax-sens")

#: Reduced settings of ``--quick`` (about 5 minutes on one CPU core for mnist-5k).
QUICK: dict[str, Any] = {
    "epochs": 3, "rounds": 20, "round_epochs": 1, "adv_epochs": 2, "sens_epochs": 2,
    "minimax_iterations": 120, "minimax_k": 3, "attnet_epochs": 2, "attnet_restarts": 1,
    "cnn_attnet_restarts": 1, "attnet_train_size": 2000, "pgd_steps": 10,
    "reformer_epochs": 2, "n_test": 300, "apgd_steps": 20, "square_queries": 300,
    "etas": (0.3, 0.5), "compare_archs": (), "table_rounds": 2,
}


@dataclass(frozen=True, kw_only=True)
class Paper2Config(ModelConfig):
    """``advgame paper2``: the learning-based minimax defense paper (S2), end to end.

    Attributes (beyond the data and u_0 fields of :class:`ModelConfig`):
        arch: the classifier; ``cnn`` by default, as in the paper's MNIST experiments (a
            convolutional network; the paper's attack network is a 3-layer fully connected
            net with 300 units per layer, ``attnet_hidden``).
        eta: L-inf budget of every attack in the cat-and-mouse and the defense x attack
            table (MNIST scale, inputs in [0, 1]), in (0, 1].
        rounds: cat-and-mouse rounds K (the paper ran 80). round_epochs: epochs to train
            each u_k. heatmap_rounds: the E[k][j] matrix covers u_0..u_heatmap_rounds.
            table_rounds: the u_k of the defense x attack table (u_1..u_table_rounds and
            u_K; every round is in ``cat_and_mouse_rounds``).
        etas: budgets of the eta table (``eta_sweep``): the defenses ``sweep_defenses``
            trained at each eta against FGSM-curr, the game's own attacker, fresh AttNets,
            PGD and Square at that eta. compare_archs: other classifiers the eta table is
            also run with (e.g. ``("mlp",)``).
        warm_start: u_k starts from u_(k-1) (else from scratch). with_clean: u_k also sees
            the clean training data.
        adv_epochs: epochs of online adversarial training (from u_0).
        adv_with_clean: online adversarial training sees each clean batch beside its
            FGSM batch (Goodfellow et al.'s alpha = 0.5), else the FGSM batch only.
        sens_epochs: epochs of Sens-FGSM (both forms, from u_0). sens_surrogate: "tanh"
            or "normalized". sens_tau: tanh temperature relative to the gradient scale
            ``sens_scale`` ("example": each example's mean |grad|; "batch": the batch's),
            held constant in u when ``sens_detach_scale``. sens_clean_weight: w in
            L = (1 - w) Sens-FGSM + w clean loss; 0.5 by default, because w = 0 trains a
            classifier that reads the label the attack leaks into z and misclassifies
            most clean inputs (clean error 0.83 on the CNN, benchmarks/BENCHMARKS.md);
            the first-order form l + eta ||grad||_1 holds the clean loss already and
            ignores it.
        minimax_iterations: outer iterations of the alternating solver. minimax_k:
            follower steps per leader step (ascent steps for minimax, descent steps for
            maximin). minimax_lr: defender (Adam) step. minimax_rho: weight of the
            sensitivity penalty of ``minimax-sens``.
        attnet_hidden: MLP AttNet widths. attnet_lr: AttNet (Adam) step, in the game and
            for fresh AttNets. attnet_epochs: epochs to train a fresh AttNet.
        attnet_restarts: fresh MLP AttNets per defense (worst case per example).
        cnn_attnet_restarts: fresh convolutional AttNets per defense (0 disables).
        attnet_train_size: training examples for fresh AttNets (None = all).
        attnet_objective: what a fresh AttNet maximizes (:func:`advgame.attacks.learned.
            attacker_objective`): ``cw`` (default: the margin min(max_(j!=y) z_j - z_y,
            attnet_kappa), bounded, so fooled examples stop pulling and the AttNet does not
            collapse to "everything -> one class"), ``ce`` (unbounded cross-entropy, the
            paper's; collapses at eta 0.3), ``clamped-ce`` or ``dlr``. The minimax games'
            own attackers always maximize the game's payoff, cross-entropy.
        pgd_steps: PGD steps (step 2.5 eta / steps, one random start).
        apgd_steps: APGD-CE iterations (Croce & Hein 2020); square_queries: queries of the
            gradient-free Square Attack per example (0 disables either column).
        reformer_epochs, reformer_noise: autoencoder training epochs and noise std.
        n_test: test examples evaluated (None = all).
        defenses: which defenses to build and evaluate (see ``DEFENSES``).
    """

    arch: str = "cnn"
    eta: float = 0.3
    rounds: int = 80
    round_epochs: int = 3
    heatmap_rounds: int = 10
    table_rounds: int = 3
    etas: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6)
    sweep_defenses: tuple[str, ...] = SWEEP_DEFENSES
    compare_archs: tuple[str, ...] = ("mlp",)
    warm_start: bool = True
    with_clean: bool = False
    adv_epochs: int = 10
    adv_with_clean: bool = True
    sens_epochs: int = 10
    sens_surrogate: str = "tanh"
    sens_tau: float = 0.1
    sens_scale: str = "example"
    sens_detach_scale: bool = False
    sens_clean_weight: float = 0.5
    minimax_iterations: int = 1000
    minimax_k: int = 5
    minimax_lr: float = 1e-3
    minimax_rho: float = 1.0
    attnet_hidden: tuple[int, ...] = (300, 300, 300)
    attnet_lr: float = 1e-3
    attnet_epochs: int = 5
    attnet_restarts: int = 3
    cnn_attnet_restarts: int = 2
    attnet_train_size: int | None = None
    attnet_objective: str = "cw"
    attnet_kappa: float = 0.0
    pgd_steps: int = 20
    apgd_steps: int = 100
    square_queries: int = 1000
    reformer_epochs: int = 10
    reformer_noise: float = 0.1
    n_test: int | None = None
    defenses: tuple[str, ...] = DEFENSES

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value in [("eta", self.eta), *(("etas", e) for e in self.etas)]:
            if not 0.0 < check_nonnegative(name, value, upper=1.0):
                raise InputError(name, f"must be in (0, 1], got {value!r}")
        if not self.etas:
            raise InputError("etas", "give at least one budget")
        if len(set(self.etas)) != len(self.etas):
            raise InputError("etas", f"must be distinct, got {list(self.etas)}")
        check_positive_int("rounds", self.rounds)
        for name in ("heatmap_rounds", "table_rounds"):
            check_positive_int(name, getattr(self, name), minimum=0)
        bad_s = [d for d in self.sweep_defenses if d not in SWEEP_DEFENSES]
        if bad_s or len(set(self.sweep_defenses)) != len(self.sweep_defenses):
            raise InputError("sweep_defenses", f"unknown or repeated defense(s) {bad_s}; "
                             f"choose from {list(SWEEP_DEFENSES)}")
        from advgame.models import ARCHITECTURES

        bad_a = [a for a in self.compare_archs if a not in ARCHITECTURES or a == self.arch]
        if bad_a:
            raise InputError("compare_archs", f"{bad_a}: give architectures from "
                             f"{list(ARCHITECTURES)} other than arch={self.arch!r}")
        for name in ("round_epochs", "adv_epochs", "sens_epochs",
                     "minimax_iterations", "attnet_epochs", "cnn_attnet_restarts",
                     "reformer_epochs", "apgd_steps", "square_queries"):
            check_positive_int(name, getattr(self, name), minimum=0)
        for name in ("minimax_k", "attnet_restarts", "pgd_steps"):
            check_positive_int(name, getattr(self, name))
        for name in ("n_test", "attnet_train_size"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        for name in ("minimax_lr", "attnet_lr", "sens_tau"):
            if check_nonnegative(name, getattr(self, name)) == 0:
                raise InputError(name, "must be > 0")
        check_nonnegative("minimax_rho", self.minimax_rho)
        if self.attnet_objective not in OBJECTIVES:
            raise InputError("attnet_objective", f"unknown attacker objective "
                             f"{self.attnet_objective!r}; choose from {', '.join(OBJECTIVES)}")
        check_nonnegative("attnet_kappa", self.attnet_kappa)
        check_nonnegative("reformer_noise", self.reformer_noise)
        if self.sens_surrogate not in ("tanh", "normalized"):
            raise InputError("sens_surrogate", "must be 'tanh' or 'normalized', got "
                             f"{self.sens_surrogate!r}")
        if self.sens_scale not in ("example", "batch"):
            raise InputError("sens_scale", "must be 'example' or 'batch', got "
                             f"{self.sens_scale!r}")
        if not 0.0 <= check_nonnegative("sens_clean_weight", self.sens_clean_weight) <= 1.0:
            raise InputError("sens_clean_weight",
                             f"must be in [0, 1], got {self.sens_clean_weight!r}")
        bad = [d for d in self.defenses if d not in DEFENSES]
        if bad or not self.defenses:
            raise InputError("defenses", f"unknown defense(s) {bad}; choose from "
                             f"{list(DEFENSES)}")
        if not self.attnet_hidden:
            raise InputError("attnet_hidden", "give at least one hidden width")


# --------------------------------------------------------------------------- storage


def _config_hash(cfg: Paper2Config) -> str:
    return digest(_jsonable_cfg(cfg))


def _save_state(path: Path, module: nn.Module, meta: dict[str, Any]) -> None:
    payload = {"format": "advgame-state-v1", "meta": meta,
               "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}
    atomic_torch_save(path, payload)


def _load_state(path: Path, module: nn.Module, device: torch.device) -> bool:
    """Load weights saved by :func:`_save_state` (``weights_only=True``); False if absent."""
    if not path.is_file():
        return False
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
        module.load_state_dict(ck["state_dict"])
    except Exception:  # noqa: BLE001 - a corrupt or foreign file: recompute the unit
        return False
    module.to(device).eval()
    return True


class _Work:
    """Models and units of one run configuration under ``OUT/work-<hash>/``."""

    def __init__(self, cfg: Paper2Config, out: Path, ds: Dataset, device: torch.device) -> None:
        self.cfg, self.ds, self.device = cfg, ds, device
        self.dir = out / f"work-{_config_hash(cfg)}"
        self.models = self.dir / "models"
        self.store = UnitStore(self.dir)
        self.timings: dict[str, float] = {}
        self.trained: list[str] = []

    def record(self, key: str, seconds: float) -> None:
        """Time of a unit computed in this run, stored so that a resumed run reports it."""
        self.timings[key] = seconds
        self.trained.append(key)
        self.store.put(f"timing-{key}", {"seconds": seconds})

    def recall(self, key: str) -> None:
        """The stored time of a unit computed by an earlier (interrupted) run."""
        got = self.store.get(f"timing-{key}")
        if got is not None:
            self.timings[key] = float(got["seconds"])

    def new_classifier(self, key: str, arch: str | None = None) -> nn.Module:
        a = arch or self.cfg.arch
        with seeded_init(self.cfg.seed, key):
            return build_model(a, self.ds.input_shape, self.ds.num_classes,
                               **self.cfg.arch_kwargs(a)).to(self.device)

    def classifier(self, key: str, make: Callable[[], nn.Module],
                   arch: str | None = None) -> nn.Module:
        """Load ``models/<key>.pt`` or build it with ``make()`` and save it (timed)."""
        path = self.models / f"{key}.pt"
        if path.is_file():
            model, _ = load_checkpoint(path, map_location=self.device)
            self.recall(f"train_{key}_s")
            return model
        t0 = time.perf_counter()
        model = make()
        self.record(f"train_{key}_s", time.perf_counter() - t0)
        a = arch or self.cfg.arch
        save_checkpoint(path, model, arch=a, input_shape=self.ds.input_shape,
                        num_classes=self.ds.num_classes, kwargs=self.cfg.arch_kwargs(a),
                        meta={"key": key})
        return model

    def module(self, key: str, module: nn.Module, fit: Callable[[nn.Module], None]) -> bool:
        """Load the weights of ``module`` from ``models/<key>.state.pt`` or ``fit`` it and save.

        Returns True when it was fitted in this run.
        """
        path = self.models / f"{key}.state.pt"
        if _load_state(path, module, self.device):
            self.recall(f"train_{key}_s")
            return False
        t0 = time.perf_counter()
        fit(module)
        self.record(f"train_{key}_s", time.perf_counter() - t0)
        _save_state(path, module, {"key": key})
        return True


def _flags_to_str(flags: torch.Tensor) -> str:
    return "".join("1" if bool(f) else "0" for f in flags.detach().cpu().tolist())


def _str_to_flags(s: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in s], dtype=torch.bool)


# --------------------------------------------------------------------------- the run


def run_paper2(
    cfg: Paper2Config, out: Path, device: torch.device, progress: Progress = no_progress
) -> dict[str, Any]:
    """Run S2 end to end and write ``out/results.json``, figures and ``out/report.html``.

    Returns:
        the results dictionary (see ``docs/results-schema.md``).

    Example (command line):
        advgame paper2 --quick --out runs/paper2-quick
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_data(cfg)
    work = _Work(cfg, out, ds, device)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    x_te, y_te = eval_subset(ds, device, cfg.n_test, cfg.seed)
    x_att, y_att = train_subset(x_tr, y_tr, cfg.attnet_train_size,
                                unit_generator(cfg.seed, "attnet-train-subset"))

    u0, info = obtain_model_once(cfg, ds, out, device, progress=progress)
    u0.eval()
    work.timings["train_u0_s"] = float(info.get("train_s") or 0.0)

    # Under torchrun the training is split first (_train_share: rank 0 runs the sequential
    # cat-and-mouse rounds, every rank fine-tunes its share of the other defenses and of the
    # eta table's cells, each saving what it trained); then rank 0 collects the defenses
    # (loading them) while the other ranks wait, then they load them too. The evaluation
    # cells are split across ranks.
    if distributed.world_size() > 1:
        _train_share(cfg, work, u0, x_tr, y_tr, progress)
        distributed.barrier()
    if distributed.is_main():
        defenses, game_attnets, cm_models = _train_defenses(cfg, work, u0, x_tr, y_tr,
                                                            progress)
    distributed.barrier()
    if not distributed.is_main():
        defenses, game_attnets, cm_models = _train_defenses(cfg, work, u0, x_tr, y_tr,
                                                            no_progress)

    # ---- evaluation (the table's rounds: u_1..u_table_rounds and u_K)
    curves: dict[str, Any] = {}
    te = time.perf_counter()
    shown = {d: m for d, m in defenses.items() if not _is_round(d) or d == "u0"
             or int(d[1:]) <= cfg.table_rounds or int(d[1:]) == len(cm_models) - 1}
    cells = _evaluate(cfg, work, shown, game_attnets, x_att, y_att, x_te, y_te, progress)
    sweep = _eta_sweep(cfg, work, u0, cells, x_tr, y_tr, x_att, y_att, x_te, y_te, progress)
    if not distributed.is_main():
        return {"summary": []}
    work.timings["evaluate_wall_s"] = time.perf_counter() - te
    work.timings["evaluate_s"] = sum(c["seconds"] for row in cells.values()
                                     for c in row.values())
    work.timings["eta_sweep_evaluate_s"] = sum(
        c["seconds"] for per_eta in sweep.values() for rows in per_eta.values()
        for row in rows.values() for c in row.values())
    work.timings["compute_s"] = sum(v for k, v in work.timings.items()
                                    if k.startswith("train_") or k.endswith("evaluate_s"))
    rounds = _rounds_series(cm_models, x_te, y_te, cfg.eta) if len(cm_models) > 1 else None
    heat = cm_models[:cfg.heatmap_rounds + 1]
    cm = cat_and_mouse_errors(heat, x_te, y_te, cfg.eta) if len(heat) > 1 else None
    fgsm_j = [fgsm_examples(m, x_te, y_te, cfg.eta) for m in heat[:-1]] \
        if len(heat) > 1 else []
    cm_others = {d: [error_rate(m, xa, y_te) for xa in fgsm_j]
                 for d, m in defenses.items() if not _is_round(d)}
    agreement = _sign_agreement(x_te, fgsm_j + ([fgsm_examples(heat[-1], x_te, y_te,
                                                              cfg.eta)] if cm else []))
    for name in ("adv-online", "sens-fgsm", "sens-first-order", "minimax", "maximin",
                 "minimax-sens", "reformer"):
        got = work.store.get(f"curve-{name}")
        if got is not None:
            curves[name] = got

    res = base_results("paper2", cfg, cfg.seed)
    res["timings"].update(work.timings)
    _tables(cfg, res, cells, cm, cm_others, evaluated(ds, y_te))
    _data(cfg, res, cells, cm, cm_others, agreement, curves, info, x_te.shape[0], work)
    res["data"].update(data_summary(ds, y_te))
    res["data"]["attnet_train_class_counts"] = class_counts(y_att, ds.classes)
    res["data"]["world_size"] = distributed.world_size()
    res["summary"] = _summary(cfg, res, cells, cm, agreement, x_te.shape[0])
    rounds_outputs(cfg, res, rounds, out, evaluated(ds, y_te))
    sweep_outputs(cfg, res, sweep, out, evaluated(ds, y_te))
    _figures(cfg, out, res, cells, cm, curves)
    finish(out, res, t0)
    return res


def _train_defenses(
    cfg: Paper2Config, work: _Work, u0: nn.Module, x_tr: torch.Tensor, y_tr: torch.Tensor,
    progress: Progress,
) -> tuple[dict[str, nn.Module], dict[str, nn.Module], list[nn.Module]]:
    """Train (or load from ``work``'s models) every configured defense.

    Returns (defenses by name, the learned attackers of the minimax games, the
    cat-and-mouse models u_0..u_K).
    """
    defenses: dict[str, nn.Module] = {}
    if "clean" in cfg.defenses or "cat-mouse" in cfg.defenses:
        defenses["u0"] = u0

    # ---- cat-and-mouse
    stages = _stages(cfg)
    bar = iter(progress(range(len(stages)), "paper2 training", len(stages)))
    cm_models = _train_rounds(cfg, work, u0, x_tr, y_tr, lambda: next(bar, None))
    defenses.update({f"u{k}": m for k, m in enumerate(cm_models) if k > 0})

    # ---- other trained defenses, fine-tuned from u_0
    tuned, game_attnets = _fine_tuned(cfg, work, u0, x_tr, y_tr, cfg.eta, cfg.defenses, "",
                                      cfg.arch, lambda: next(bar, None))
    defenses.update(tuned)
    for _ in bar:
        pass
    for m in defenses.values():
        for p in m.parameters():
            p.requires_grad_(False)

    return defenses, game_attnets, cm_models


def _trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters require gradients (the defenses are
    frozen once trained, and fine-tuning starts from a copy of a frozen u_0)."""
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(True)
    return m


def _fine_tuned(
    cfg: Paper2Config, work: _Work, u0: nn.Module, x_tr: torch.Tensor, y_tr: torch.Tensor,
    eta: float, names: tuple[str, ...], tag: str, arch: str, tick: Callable[[], object],
) -> tuple[dict[str, nn.Module], dict[str, nn.Module]]:
    """Train (or load) the defenses among ``names`` that start from ``u0``, at budget
    ``eta``; their model, curve and seed keys end in ``tag`` ("" for the main table, e.g.
    ``"@cnn-eta0.4"`` for a cell of the eta table). ``tick()`` after each one.

    Returns (defenses by name, the learned attackers of the minimax games).
    """
    ds, device = work.ds, work.device
    tuned: dict[str, nn.Module] = {}
    tc = TrainConfig(epochs=cfg.adv_epochs, batch_size=cfg.batch_size, lr=cfg.lr)
    if "adv-online" in names:
        def make_adv() -> nn.Module:
            m = _trainable_copy(u0)
            h = adversarial_training(m, x_tr, y_tr, eta, tc, with_clean=cfg.adv_with_clean,
                                     generator=unit_generator(cfg.seed, "adv-online" + tag))
            work.store.put("curve-adv-online" + tag, {"loss": h.loss})
            return m
        tuned["adv-online"] = work.classifier("adv-online" + tag, make_adv, arch)
        tick()
    for name, form in (("sens-fgsm", "fgsm"), ("sens-first-order", "first-order")):
        if name not in names:
            continue

        def make_sens(name: str = name, form: str = form) -> nn.Module:
            m = _trainable_copy(u0)
            h = sens_fgsm_train(
                m, x_tr, y_tr, eta,
                TrainConfig(epochs=cfg.sens_epochs, batch_size=cfg.batch_size, lr=cfg.lr),
                form=form, surrogate=cfg.sens_surrogate, tau=cfg.sens_tau,  # type: ignore
                scale=cfg.sens_scale, detach_scale=cfg.sens_detach_scale,  # type: ignore
                # the first-order form already holds the clean loss: l + eta ||g||_1
                clean_weight=cfg.sens_clean_weight if form == "fgsm" else 0.0,
                generator=unit_generator(cfg.seed, name + tag),
            )
            work.store.put(f"curve-{name}{tag}", {"loss": h.loss})
            return m
        tuned[name] = work.classifier(name + tag, make_sens, arch)
        tick()

    game_attnets: dict[str, nn.Module] = {}
    for name, leader, rho in (("minimax", "min", 0.0), ("maximin", "max", 0.0),
                              ("minimax-sens", "min", cfg.minimax_rho)):
        if name not in names:
            continue
        model_path = work.models / f"{name}{tag}.pt"
        with seeded_init(cfg.seed, f"{name}{tag}-attnet"):
            attnet = build_attnet("mlp", ds.input_shape, hidden=cfg.attnet_hidden).to(device)
        if model_path.is_file() and _load_state(work.models / f"{name}{tag}-attnet.state.pt",
                                                attnet, device):
            model, _ = load_checkpoint(model_path, map_location=device)
            work.recall(f"train_{name}{tag}_s")
        else:
            model = _trainable_copy(u0)
            ts = time.perf_counter()
            hist = learned_minimax(
                model, attnet, x_tr, y_tr, eta, leader=leader,  # type: ignore[arg-type]
                iterations=cfg.minimax_iterations,
                k_min=1 if leader == "min" else cfg.minimax_k,
                k_max=cfg.minimax_k if leader == "min" else 1,
                lr_min=cfg.minimax_lr, lr_max=cfg.attnet_lr, batch_size=cfg.batch_size,
                rho=rho, generator=unit_generator(cfg.seed, name + tag),
            )
            work.record(f"train_{name}{tag}_s", time.perf_counter() - ts)
            work.store.put(f"curve-{name}{tag}", {
                "min_objective": hist.min_objective, "max_objective": hist.max_objective,
                "value": hist.value,
            })
            _save_state(work.models / f"{name}{tag}-attnet.state.pt", attnet,
                        {"key": name + tag})
            save_checkpoint(model_path, model, arch=arch, input_shape=ds.input_shape,
                            num_classes=ds.num_classes, kwargs=cfg.arch_kwargs(arch),
                            meta={"key": name + tag})
        tuned[name] = model
        game_attnets[name] = attnet
        tick()

    if "reformer" in names:
        with seeded_init(cfg.seed, "reformer" + tag):
            ae = build_autoencoder("cnn", ds.input_shape).to(device) \
                if len(ds.input_shape) == 3 and ds.input_shape[1] % 2 == 0 \
                and ds.input_shape[2] % 2 == 0 \
                else build_autoencoder("mlp", ds.input_shape).to(device)

        def fit_ae(m: nn.Module) -> None:
            c = train_autoencoder(m, x_tr, epochs=cfg.reformer_epochs,
                                  batch_size=cfg.batch_size, lr=cfg.lr,
                                  noise_std=cfg.reformer_noise,
                                  generator=unit_generator(cfg.seed, "reformer" + tag))
            work.store.put("curve-reformer" + tag, {"mse": c})
        work.module("reformer-autoencoder" + tag, ae, fit_ae)
        tuned["reformer"] = ReformedClassifier(ae, u0).eval()
        tick()
    return tuned, game_attnets


def _train_rounds(cfg: Paper2Config, work: _Work, u0: nn.Module, x_tr: torch.Tensor,
                  y_tr: torch.Tensor, tick: Callable[[], None]) -> list[nn.Module]:
    """The cat-and-mouse models u_0..u_K (trained, or loaded from ``work``'s models); u_k
    is trained against FGSM on u_(k-1), so the rounds run in order. ``tick()`` after each."""
    cm_models = [u0]
    if "cat-mouse" not in cfg.defenses:
        return cm_models
    for k in range(1, cfg.rounds + 1):
        prev = cm_models[-1]

        def make_round(k: int = k, prev: nn.Module = prev) -> nn.Module:
            return cat_and_mouse_round(
                prev, x_tr, y_tr, eta=cfg.eta,
                config=TrainConfig(epochs=cfg.round_epochs, batch_size=cfg.batch_size,
                                   lr=cfg.lr),
                warm_start=cfg.warm_start, with_clean=cfg.with_clean,
                make_model=lambda: work.new_classifier(f"u{k}"),
                generator=unit_generator(cfg.seed, f"u{k}"),
            )

        cm_models.append(work.classifier(f"u{k}", make_round))
        tick()
    return cm_models


def _compare_base(cfg: Paper2Config, work: _Work, arch: str, x_tr: torch.Tensor,
                  y_tr: torch.Tensor) -> nn.Module:
    """u_0 of a classifier of ``compare_archs``: rank 0 trains (or loads) it, then the
    other ranks load it."""
    def make_u0() -> nn.Module:
        m = work.new_classifier(f"u0-{arch}", arch)
        train(m, x_tr, y_tr, TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size,
                                         lr=cfg.lr),
              generator=unit_generator(cfg.seed, f"u0-{arch}"))
        return m
    if distributed.is_main():
        base = work.classifier(f"u0-{arch}", make_u0, arch)
    distributed.barrier()
    if not distributed.is_main():
        base = work.classifier(f"u0-{arch}", make_u0, arch)
    return base


def _sweep_cells(cfg: Paper2Config) -> list[tuple[str, float, str]]:
    """(classifier, eta, unit-key tag) of the eta table's cells that train their own
    defenses: all but (cfg.arch, cfg.eta), which are the main table's."""
    return [(arch, eta, f"@{arch}-eta{eta:g}") for arch in (cfg.arch, *cfg.compare_archs)
            for eta in cfg.etas if not (arch == cfg.arch and eta == cfg.eta)]


def _train_share(cfg: Paper2Config, work: _Work, u0: nn.Module, x_tr: torch.Tensor,
                 y_tr: torch.Tensor, progress: Progress) -> None:
    """Under torchrun: this rank's share of the training, saved to ``work``'s models.

    Rank 0 trains the cat-and-mouse rounds; the fine-tuned defenses of the main table and
    of every eta-table cell, one job per (cell, defense), go round-robin to ranks 1, 2, ...,
    0, 1, ... Every unit draws from its own generator, so the models are those of a
    one-process run.
    """
    rank, world = distributed.rank(), distributed.world_size()
    bases = {arch: _compare_base(cfg, work, arch, x_tr, y_tr) for arch in cfg.compare_archs}
    bases[cfg.arch] = u0
    jobs = [(cfg.arch, cfg.eta, "", d) for d in DEFENSES[2:] if d in cfg.defenses]
    tuned_names = [d for d in cfg.sweep_defenses if d != "clean"]
    jobs += [(arch, eta, tag, d) for arch, eta, tag in _sweep_cells(cfg) for d in tuned_names]
    if rank == 0 and "cat-mouse" in cfg.defenses:
        bar = iter(progress(range(cfg.rounds), "paper2 rounds (rank 0)", cfg.rounds))
        _train_rounds(cfg, work, u0, x_tr, y_tr, lambda: next(bar, None))
    mine = [job for i, job in enumerate(jobs) if (i + 1) % world == rank]
    for arch, eta, tag, d in progress(mine, f"paper2 training (rank {rank})", len(mine)):
        _fine_tuned(cfg, work, bases[arch], x_tr, y_tr, eta, (d,), tag, arch, lambda: None)


def _stages(cfg: Paper2Config) -> list[str]:
    names = [f"u{k}" for k in range(1, cfg.rounds + 1)] if "cat-mouse" in cfg.defenses else []
    return names + [d for d in DEFENSES[2:] if d in cfg.defenses]


def _is_round(name: str) -> bool:
    return name[0] == "u" and name[1:].isdigit()


# --------------------------------------------------------------------------- evaluation

ATTACK_COLUMNS = ("clean", "FGSM-curr", "PGD", "APGD", "Square", "AttNet-MLP", "AttNet-CNN",
                  "AttNet-minimax", "worst case")


def _evaluate(
    cfg: Paper2Config, work: _Work, defenses: dict[str, nn.Module],
    game_attnets: dict[str, nn.Module], x_att: torch.Tensor, y_att: torch.Tensor,
    x_te: torch.Tensor, y_te: torch.Tensor, progress: Progress, *,
    eta: float | None = None, tag: str = "", sweep: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per defense and attack: error rate and per-example error flags (worst cases ORed).

    ``eta`` (default ``cfg.eta``) is every attack's budget; unit keys end in ``tag``.
    ``sweep``: the eta table's attacks only (clean, FGSM-curr, PGD, Square, fresh AttNets
    and the game's own attacker; no APGD, no transferred minimax attacker).

    Returns ``{defense: {attack: {"error": float, "flags": str, ...}}}``.
    """
    budget = cfg.eta if eta is None else eta
    jobs: list[tuple[str, str, int]] = []
    for d in defenses:
        jobs += [(d, "clean", 0), (d, "FGSM-curr", 0), (d, "PGD", 0)]
        jobs += [(d, "APGD", 0)] if cfg.apgd_steps and not sweep else []
        jobs += [(d, "Square", 0)] if cfg.square_queries else []
        jobs += [(d, "AttNet-MLP", r) for r in range(cfg.attnet_restarts)]
        jobs += [(d, "AttNet-CNN", r) for r in range(cfg.cnn_attnet_restarts)]
        if "minimax" in game_attnets and not sweep:
            jobs.append((d, "AttNet-minimax", 0))
        if d in game_attnets:
            jobs.append((d, "own", 0))
    unit_jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    for d, attack, r in jobs:
        key = f"eval-{d}-{attack}-{r}{tag}"
        model = defenses[d]

        def compute(d: str = d, attack: str = attack, r: int = r,
                    model: nn.Module = model) -> dict[str, Any]:
            ts = time.perf_counter()
            extra: dict[str, Any] = {}
            if attack == "clean":
                x_adv = x_te
            elif attack == "FGSM-curr":
                x_adv = _batched(lambda xb, yb: fgm(model, xb, yb, budget, "inf"), x_te, y_te)
            elif attack == "PGD":
                g = unit_generator(cfg.seed, f"pgd-{d}{tag}", x_te.device)
                x_adv = _batched(
                    lambda xb, yb: pgd(model, xb, yb, budget, "inf", steps=cfg.pgd_steps,
                                       generator=g), x_te, y_te)
            elif attack == "APGD":
                g = unit_generator(cfg.seed, f"apgd-{d}{tag}", x_te.device)
                x_adv = _batched(
                    lambda xb, yb: apgd(model, xb, yb, budget, "inf", steps=cfg.apgd_steps,
                                        generator=g), x_te, y_te)
            elif attack == "Square":
                g = unit_generator(cfg.seed, f"square-{d}{tag}", x_te.device)
                x_adv = _batched(
                    lambda xb, yb: square(model, xb, yb, budget, "inf",
                                          queries=cfg.square_queries, generator=g), x_te, y_te)
            elif attack == "AttNet-minimax":
                x_adv = attnet_examples(game_attnets["minimax"], x_te, budget)
            elif attack == "own":
                x_adv = attnet_examples(game_attnets[d], x_te, budget)
                with torch.no_grad():
                    extra = {"saturation": attnet_saturation(game_attnets[d], x_te),
                             "payoff": float(_batched(
                                 lambda zb, yb: nn.functional.cross_entropy(
                                     model(zb), yb, reduction="none"), x_adv, y_te).mean())}
            else:
                kind = "mlp" if attack == "AttNet-MLP" else "cnn"
                with seeded_init(cfg.seed, f"{attack}-{d}-{r}{tag}"):
                    net = build_attnet(kind, x_te.shape[1:], **(
                        {"hidden": cfg.attnet_hidden} if kind == "mlp" else {}))
                net = net.to(x_te.device)
                h = train_attnet(net, model, x_att, y_att, budget, epochs=cfg.attnet_epochs,
                                 batch_size=cfg.batch_size, lr=cfg.attnet_lr,
                                 objective=cfg.attnet_objective,
                                 kappa=cfg.attnet_kappa,
                                 generator=unit_generator(cfg.seed, f"{attack}-{d}-{r}{tag}"))
                x_adv = attnet_examples(net, x_te, budget)
                extra = {"train_objective": h.loss, "train_error": h.error,
                         "saturation": attnet_saturation(net, x_te)}
            preds = predict(model, x_adv).cpu()
            flags = preds != y_te.cpu()
            return {"error": float(flags.float().mean()), "flags": _flags_to_str(flags),
                    "mode_fraction": mode_fraction(preds),
                    "seconds": time.perf_counter() - ts, **extra}

        unit_jobs.append((key, compute))
    done = sharded_units(work.store, unit_jobs, progress,
                         "paper2 evaluation" + (f" {tag}" if tag else ""))
    raw: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (d, attack, _), unit in zip(jobs, done, strict=True):
        raw.setdefault((d, attack), []).append(unit)

    cells: dict[str, dict[str, Any]] = {}
    for (d, attack), units in raw.items():
        flags = torch.stack([_str_to_flags(u["flags"]) for u in units]).any(dim=0)
        cells.setdefault(d, {})[attack] = {
            "error": float(flags.float().mean()), "flags": flags,
            "restarts": [u["error"] for u in units],
            "seconds": sum(float(u.get("seconds", 0.0)) for u in units),
            **({"payoff": units[0]["payoff"]} if "payoff" in units[0] else {}),
            "saturation": [u["saturation"] for u in units if "saturation" in u],
            "mode_fraction": [u["mode_fraction"] for u in units if "mode_fraction" in u],
        }
    for row in cells.values():
        worst = torch.stack([c["flags"] for a, c in row.items() if a != "clean"]).any(dim=0)
        row["worst case"] = {"error": float(worst.float().mean()), "flags": worst,
                             "restarts": [], "seconds": 0.0}
    return cells


def _batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
             y: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size], y[i:i + batch_size])
                      for i in range(0, x.shape[0], batch_size)])


def _sign_agreement(x: torch.Tensor, attacks: list[torch.Tensor]) -> dict[str, float | None]:
    """Mean fraction of pixels where the FGSM-j and FGSM-(j+lag) perturbations agree in sign.

    Only pixels that both perturbations move are counted (clipping at the box leaves some
    at 0). Lag 2 close to 1 with lag 1 low is the period-2 alternation of the attacker.
    """
    out: dict[str, float | None] = {}
    for lag in (1, 2):
        vals = []
        for j in range(len(attacks) - lag):
            a = torch.sign(attacks[j] - x)
            b = torch.sign(attacks[j + lag] - x)
            both = (a != 0) & (b != 0)
            if bool(both.any()):
                vals.append(float(((a == b) & both).sum() / both.sum()))
        out[f"lag{lag}"] = sum(vals) / len(vals) if vals else None
    return out


# --------------------------------------------------------------------------- long runs


def _rounds_series(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                   eta: float) -> dict[str, list[float | None]]:
    """Per round k of the cat-and-mouse (u_0..u_K), on the test set: the error of u_k on its
    own training attack FGSM-k (FGSM against u_(k-1); None for u_0), on FGSM-curr (FGSM
    against u_k), and clean. One FGSM per model: O(K), unlike the (K+1)^2 matrix E."""
    own: list[float | None] = [None]
    curr: list[float | None] = []
    clean: list[float | None] = []
    prev_attack: torch.Tensor | None = None
    for k, m in enumerate(models):
        attack = fgsm_examples(m, x, y, eta)
        if k > 0:
            assert prev_attack is not None
            own.append(error_rate(m, prev_attack, y))
        curr.append(error_rate(m, attack, y))
        clean.append(error_rate(m, x, y))
        prev_attack = attack
    return {"own": own, "fgsm_curr": curr, "clean": clean}


def _eta_sweep(
    cfg: Paper2Config, work: _Work, u0: nn.Module, cells: dict[str, dict[str, Any]],
    x_tr: torch.Tensor, y_tr: torch.Tensor, x_att: torch.Tensor,
    y_att: torch.Tensor, x_te: torch.Tensor, y_te: torch.Tensor, progress: Progress,
) -> dict[str, dict[float, dict[str, dict[str, Any]]]]:
    """The eta table: ``cfg.sweep_defenses`` trained at each eta of ``cfg.etas`` (for the
    classifier ``cfg.arch`` and each of ``cfg.compare_archs``) and evaluated at that eta.

    The cells of (cfg.arch, cfg.eta) are those of the defense x attack table (same models,
    same units). Under torchrun rank 0 trains, the evaluation cells are split.

    Returns ``{arch: {eta: {defense: {attack: cell}}}}``.
    """
    out: dict[str, dict[float, dict[str, dict[str, Any]]]] = {}
    tuned_names = tuple(d for d in cfg.sweep_defenses if d != "clean")
    for arch in (cfg.arch, *cfg.compare_archs):
        out[arch] = {}
        base = u0 if arch == cfg.arch else _compare_base(cfg, work, arch, x_tr, y_tr)
        for eta in cfg.etas:
            if arch == cfg.arch and eta == cfg.eta:
                key = {"clean": "u0"}
                out[arch][eta] = {d: cells[key.get(d, d)] for d in cfg.sweep_defenses
                                  if key.get(d, d) in cells}
                continue
            tag = f"@{arch}-eta{eta:g}"
            if distributed.is_main():
                tuned, attnets = _fine_tuned(cfg, work, base, x_tr, y_tr, eta, tuned_names,
                                             tag, arch, lambda: None)
            distributed.barrier()
            if not distributed.is_main():
                tuned, attnets = _fine_tuned(cfg, work, base, x_tr, y_tr, eta, tuned_names,
                                             tag, arch, lambda: None)
            models = ({"u0": base} if "clean" in cfg.sweep_defenses else {}) | tuned
            for m in models.values():
                for p in m.parameters():
                    p.requires_grad_(False)
            got = _evaluate(cfg, work, models, attnets, x_att, y_att, x_te, y_te, progress,
                            eta=eta, tag=tag, sweep=True)
            out[arch][eta] = {("clean" if d == "u0" else d): row for d, row in got.items()}
    return out


#: Columns of the eta table and the cells behind them.
SWEEP_COLUMNS = (("clean", "clean"), ("FGSM-curr", "FGSM-curr"), ("AttNet-curr", "own"),
                 ("fresh AttNet", "fresh"), ("PGD", "PGD"), ("Square", "Square"),
                 ("worst case", "worst case"))


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
    for arch, per_eta in sweep.items():
        rows: list[list[Any]] = []
        data[arch] = {}
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
    res["data"]["eta_sweep"] = data
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
                   f"to it); AttNet-MLP: "
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


# --------------------------------------------------------------------------- CLI


def register_cli(extra: dict[str, Any], runners: dict[str, Any], run_config_command: Any,
                 common_args: Any) -> None:
    """Add ``advgame paper2`` to the command line (called by ``advgame.cli``)."""

    def add(sub: Any, name: str) -> None:
        from argparse import BooleanOptionalAction

        from advgame.cli import _data_args, _floats, _model_args

        p = sub.add_parser(name, help="S2: cat-and-mouse, Sens-FGSM, minimax/maximin, "
                           "cross-evaluation of defenses and attacks")
        common_args(p, "runs/paper2")
        _data_args(p)
        _model_args(p)
        p.add_argument("--eta", type=_floats, default=None,
                       help="L-inf budget of the cat-and-mouse and the main table")
        p.add_argument("--rounds", type=int, default=None,
                       help="cat-and-mouse rounds K")
        p.add_argument("--etas", nargs="+", type=_floats, default=None,
                       help="budgets of the eta table")
        p.add_argument("--compare-archs", dest="compare_archs", nargs="*", default=None,
                       help="other classifiers the eta table also runs with (give the "
                            "flag alone for none)")
        p.add_argument("--heatmap-rounds", dest="heatmap_rounds", type=int, default=None,
                       help="rounds in the E[k][j] matrix")
        p.add_argument("--table-rounds", dest="table_rounds", type=int, default=None,
                       help="u_1..u_N (and u_K) in the defense x attack table")
        p.add_argument("--round-epochs", dest="round_epochs", type=int, default=None)
        p.add_argument("--warm-start", dest="warm_start", action=BooleanOptionalAction,
                       default=None, help="u_k starts from u_(k-1) (default) or from scratch")
        p.add_argument("--with-clean", dest="with_clean", action=BooleanOptionalAction,
                       default=None, help="u_k also trains on clean data")
        p.add_argument("--sens-epochs", dest="sens_epochs", type=int, default=None)
        p.add_argument("--sens-surrogate", dest="sens_surrogate", default=None,
                       help="tanh (default) or normalized")
        p.add_argument("--sens-scale", dest="sens_scale", default=None,
                       help="gradient scale of the tanh surrogate: example (default) or batch")
        p.add_argument("--sens-detach-scale", dest="sens_detach_scale",
                       action=BooleanOptionalAction, default=None,
                       help="hold the surrogate's gradient scale constant in u")
        p.add_argument("--sens-clean-weight", dest="sens_clean_weight", type=_floats,
                       default=None, help="weight w of the clean loss beside Sens-FGSM's "
                       "(default 0.5; 0 = the bare objective, which leaks the label)")
        p.add_argument("--adv-with-clean", dest="adv_with_clean",
                       action=BooleanOptionalAction, default=None,
                       help="online adversarial training also sees the clean batch (default)")
        p.add_argument("--minimax-iterations", dest="minimax_iterations", type=int,
                       default=None)
        p.add_argument("--minimax-k", dest="minimax_k", type=int, default=None,
                       help="follower steps per leader step")
        p.add_argument("--minimax-rho", dest="minimax_rho", type=_floats, default=None)
        p.add_argument("--attnet-epochs", dest="attnet_epochs", type=int, default=None)
        p.add_argument("--attnet-restarts", dest="attnet_restarts", type=int, default=None)
        p.add_argument("--attnet-objective", dest="attnet_objective", default=None,
                       help="what fresh AttNets maximize: cw, ce, clamped-ce or dlr")
        p.add_argument("--cnn-attnet-restarts", dest="cnn_attnet_restarts", type=int,
                       default=None)
        p.add_argument("--pgd-steps", dest="pgd_steps", type=int, default=None)
        p.add_argument("--n-test", dest="n_test", type=int, default=None)
        p.add_argument("--defenses", nargs="+", default=None,
                       help="subset of: " + ", ".join(DEFENSES))

    def run(args: Any) -> Any:
        return run_config_command(args, Paper2Config, run_paper2, QUICK)

    extra["paper2"] = add
    runners["paper2"] = run
