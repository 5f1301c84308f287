"""``advgame train`` and ``advgame attack``: train a classifier; clean and robust accuracy.

Configs are frozen keyword-only dataclasses; TOML files and CLI flags map onto their
fields (``common.load_config``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advgame import distributed
from advgame.attacks import evaluate_attack, fgm, pgd
from advgame.data import DATASETS, Dataset, class_counts, load_dataset, stratified_indices
from advgame.errors import InputError
from advgame.experiments.runtime import (
    Progress,
    UnitStore,
    config_digest,
    no_progress,
    now_iso,
    seed_generators,
    versions,
)
from advgame.models import (
    ARCHITECTURES,
    TrainConfig,
    accuracy,
    build_model,
    load_checkpoint,
    save_checkpoint,
    train,
)
from advgame.rng import unit_generator
from advgame.storage import atomic_write_json
from advgame.threat import parse_norm
from advgame.validate import check_nonnegative, check_positive_int


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Which data: a named dataset, an optional class subset, a directory for file formats."""

    dataset: str = "mnist-5k"
    classes: tuple[int, ...] | None = None
    data_dir: str | None = None
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise InputError("dataset", f"unknown dataset {self.dataset!r}; choose from "
                             f"{', '.join(DATASETS)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError("seed", f"must be an integer >= 0, got {self.seed!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise InputError("test_fraction", f"must be in (0, 1), got {self.test_fraction}")
        if self.classes is not None:
            for c in self.classes:
                check_positive_int("classes", c, minimum=0)
            if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
                raise InputError("classes", "need at least two distinct classes, got "
                                 f"{list(self.classes)}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig(DataConfig):
    """Which classifier, and how to train it when none is given."""

    arch: str = "mlp"
    hidden: tuple[int, ...] = (256, 256)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.arch not in ARCHITECTURES:
            raise InputError("arch", f"unknown architecture {self.arch!r}; choose from "
                             f"{', '.join(ARCHITECTURES)}")
        if not self.hidden:
            raise InputError("hidden", "give at least one hidden width")
        for h in self.hidden:
            check_positive_int("hidden", h)
        check_positive_int("epochs", self.epochs, minimum=0)
        check_positive_int("batch_size", self.batch_size)
        if check_nonnegative("lr", self.lr) == 0:
            raise InputError("lr", "must be > 0")

    def arch_kwargs(self, arch: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`advgame.models.build_model` for ``arch`` (default:
        the configured one)."""
        return {"hidden": self.hidden} if (arch or self.arch) == "mlp" else {}


def load_data(cfg: DataConfig) -> Dataset:
    """The dataset of a config (classes selected, seeded split)."""
    return load_dataset(
        cfg.dataset, data_dir=cfg.data_dir, classes=cfg.classes,
        test_fraction=cfg.test_fraction, seed=cfg.seed,
    )


def train_model(
    cfg: ModelConfig, ds: Dataset, device: torch.device, progress: Progress = no_progress,
    data_parallel: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the configured architecture on ``ds``; returns the model and a summary."""
    gen, _ = seed_generators(cfg.seed, device)
    torch.manual_seed(cfg.seed)  # parameter init of torch.nn layers uses the global RNG
    model = build_model(cfg.arch, ds.input_shape, ds.num_classes, **cfg.arch_kwargs()).to(device)
    bar = progress(range(cfg.epochs), "train", cfg.epochs)
    it = iter(bar)

    def tick(_epoch: int, _loss: float) -> None:
        next(it, None)

    t0 = time.perf_counter()
    hist = train(
        model, ds.x_train.to(device), ds.y_train.to(device),
        TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr),
        generator=gen, progress=tick, data_parallel=data_parallel,
    )
    for _ in it:
        pass
    summary = {
        "train_accuracy": accuracy(model, ds.x_train.to(device), ds.y_train.to(device)),
        "test_accuracy": accuracy(model, ds.x_test.to(device), ds.y_test.to(device)),
        "loss_curve": hist.loss, "train_s": time.perf_counter() - t0,
    }
    return model, summary


def check_checkpoint_fits(ck: dict[str, Any], ds: Dataset) -> None:
    """Raise InputError("model") unless the checkpoint ``ck`` takes the inputs of ``ds``
    and has its number of classes."""
    if tuple(ck["input_shape"]) != ds.input_shape or ck["num_classes"] != ds.num_classes:
        raise InputError(
            "model", f"checkpoint expects inputs {tuple(ck['input_shape'])} with "
            f"{ck['num_classes']} classes, data has {ds.input_shape} with {ds.num_classes}"
        )


def obtain_model(
    cfg: ModelConfig, ds: Dataset, out: Path, device: torch.device,
    model_path: str | None = None, progress: Progress = no_progress,
    data_parallel: bool = False, save: bool | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load ``model_path``, or the run's own ``out/model.pt``, or train and save it there.
    A ``model.pt`` of another config in ``out`` is never overwritten (InputError).

    ``save`` (default: on rank 0 only, as every rank trains the same model) says whether
    this process writes the checkpoint; a unit computed by one rank alone passes True.

    With ``data_parallel`` every torchrun rank trains (DDP) and rank 0 saves.
    """
    if model_path is not None:
        model, ck = load_checkpoint(model_path, map_location=device)
        check_checkpoint_fits(ck, ds)
        return model, {"source": str(model_path), **ck.get("meta", {}),
                       "checkpoint": checkpoint_classifier(ck)}
    own = out / "model.pt"
    if own.is_file():
        model, ck = load_checkpoint(own, map_location=device)
        if ck.get("meta", {}).get("config") == jsonable_config(cfg):
            return model, {"source": "resumed", **ck["meta"]}
        raise InputError("out", f"{own} is the model of a run with another config; give "
                         "another --out (the same settings resume that run)")
    model, summary = train_model(cfg, ds, device, progress, data_parallel)
    meta = {"config": jsonable_config(cfg), **{k: v for k, v in summary.items()
                                            if k != "loss_curve"}}
    if distributed.is_main() if save is None else save:
        save_checkpoint(own, model, arch=cfg.arch, input_shape=ds.input_shape,
                        num_classes=ds.num_classes, kwargs=cfg.arch_kwargs(), meta=meta)
    return model, {"source": "trained", **summary}


#: The config fields that describe how the classifier was built and trained.
CLASSIFIER_FIELDS = ("arch", "hidden", "epochs", "batch_size", "lr")


def checkpoint_classifier(ck: dict[str, Any]) -> dict[str, Any]:
    """How a loaded checkpoint's classifier was built and trained: ``arch`` and ``hidden``
    from the checkpoint itself, ``epochs``, ``batch_size``, ``lr`` (None when unknown, as
    for a checkpoint written by other code) from the training config stored in its meta."""
    trained = ck.get("meta", {}).get("config", {}) or {}
    hidden = ck.get("kwargs", {}).get("hidden")
    return {"arch": ck.get("arch"), "hidden": list(hidden) if hidden is not None else None,
            **{k: trained.get(k) for k in ("epochs", "batch_size", "lr")}}


def record_classifier(res: dict[str, Any], info: dict[str, Any]) -> None:
    """Record in ``res`` the classifier a run used: ``data.model`` is its source (a path,
    "trained" or "resumed"), and for a loaded checkpoint ``config``'s classifier fields
    (arch, hidden, epochs, batch_size, lr) become the checkpoint's -- the values of the
    run's own config were not used -- with ``data.classifier`` saying where they came from.
    """
    res["data"]["model"] = info.get("source")
    ck = info.get("checkpoint")
    if ck is None:
        res["data"]["classifier"] = {"from": "this run's config",
                                     **{k: res["config"].get(k) for k in CLASSIFIER_FIELDS}}
        return
    res["config"].update({k: ck[k] for k in CLASSIFIER_FIELDS if k in ck})
    res["data"]["classifier"] = {"from": f"checkpoint {info.get('source')}", **ck}


def obtain_model_once(
    cfg: ModelConfig, ds: Dataset, out: Path, device: torch.device,
    model_path: str | None = None, progress: Progress = no_progress,
) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`obtain_model` for sharded evaluation: under torchrun rank 0 trains or loads
    (and saves ``out/model.pt``) while the others wait, then load what it saved."""
    if distributed.is_main():
        result = obtain_model(cfg, ds, out, device, model_path, progress)
    distributed.barrier()
    if not distributed.is_main():
        result = obtain_model(cfg, ds, out, device, model_path, no_progress)
    return result


def eval_subset(
    ds: Dataset, device: torch.device, n_test: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluated test points, on ``device``: all of them when ``n_test`` is None, else a
    stratified sample of ``n_test`` (:func:`advgame.data.stratified_indices`, generator
    seeded by the run's ``seed``), in the dataset's order.

    Record ``class_counts(y, ds.classes)`` of the result as ``data.class_counts``.

    Example:
        >>> from advgame.data import class_counts
        >>> ds = load_dataset("digits-8x8")
        >>> x, y = eval_subset(ds, torch.device("cpu"), 50, seed=0)
        >>> x.shape[0], set(class_counts(y, ds.classes).values())
        (50, {5})
    """
    x, y = ds.x_test.to(device), ds.y_test.to(device)
    if n_test is None:
        return x, y
    idx = stratified_indices(ds.y_test, n_test, generator=torch.Generator().manual_seed(seed))
    return x[idx.to(device)], y[idx.to(device)]


def train_subset(
    x: torch.Tensor, y: torch.Tensor, n: int | None, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` itself when ``n`` is None, else a stratified sample of ``n`` points
    (:func:`advgame.data.stratified_indices`) -- the training sets of AttNets and oracles."""
    if n is None:
        return x, y
    idx = stratified_indices(y.cpu(), n, generator=generator).to(x.device)
    return x[idx], y[idx]


def data_summary(ds: Dataset, y_eval: torch.Tensor) -> dict[str, Any]:
    """The ``data`` fields every results.json shares: what was evaluated.

    ``n_test`` (points evaluated) and ``class_counts`` ({original class id: count} of the
    evaluated test subset), plus the dataset name and its classes.
    """
    return {"dataset": ds.name, "classes": list(ds.classes), "n_test": int(y_eval.shape[0]),
            "class_counts": class_counts(y_eval, ds.classes)}


def evaluated(ds: Dataset, y_eval: torch.Tensor) -> str:
    """A phrase for captions: how many test points of which classes were evaluated, e.g.
    ``"200 test images of mnist-5k (20 of each of classes 0-9)"``."""
    counts = class_counts(y_eval, ds.classes)
    values = set(counts.values())
    cls = list(ds.classes)
    span = (f"{cls[0]}-{cls[-1]}" if cls == list(range(cls[0], cls[-1] + 1)) and len(cls) > 2
            else ", ".join(map(str, cls)))
    if len(values) == 1:
        per = f"{values.pop()} of each of classes {span}"
    elif max(values) - min(values) <= 2:
        per = f"{min(values)}-{max(values)} of each of classes {span}"
    else:
        per = "per class " + ", ".join(f"{c}: {k}" for c, k in counts.items())
    return f"{int(y_eval.shape[0])} test images of {ds.name} ({per})"


def jsonable_config(cfg: Any) -> dict[str, Any]:
    """The config dataclass ``cfg`` as the JSON dict results.json and checkpoints record
    (tuples become lists, so a stored config compares equal to a reloaded one)."""
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def base_results(command: str, cfg: Any, seed: int) -> dict[str, Any]:
    """The common head of every results.json (see docs/results-schema.md)."""
    import advgame

    return {
        "command": command, "advgame_version": advgame.__version__, "created": now_iso(),
        "seed": seed, "config": jsonable_config(cfg), "config_digest": config_digest(cfg),
        "versions": versions(), "timings": {},
        "summary": [], "tables": [], "figures": [], "data": {},
    }


def finish(out: Path, results: dict[str, Any], t0: float) -> Path:
    """Write results.json atomically and render the HTML report next to it."""
    results["timings"]["total_s"] = time.perf_counter() - t0
    path = atomic_write_json(out / "results.json", results)
    from advgame.report import render_html

    render_html(out)
    return path


# --------------------------------------------------------------------------- train


@dataclass(frozen=True, kw_only=True)
class TrainRunConfig(ModelConfig):
    """``advgame train``: train a classifier and save ``OUT/model.pt``."""


def run_train(
    cfg: TrainRunConfig, out: Path, device: torch.device, progress: Progress = no_progress
) -> dict[str, Any]:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ds = load_data(cfg)
    model, summary = obtain_model(cfg, ds, out, device, progress=progress, data_parallel=True)
    if not distributed.is_main():
        return {"summary": []}
    res = base_results("train", cfg, cfg.seed)
    res["timings"]["train_s"] = summary.get("train_s")
    res["tables"].append({
        "name": "accuracy", "title": f"Classifier on {ds.name} classes {list(ds.classes)}",
        "caption": f"{cfg.arch} trained {cfg.epochs} epochs; accuracy as a fraction of "
                   f"{ds.x_train.shape[0]} train images / {evaluated(ds, ds.y_test)}.",
        "columns": ["split", "accuracy"],
        "rows": [["train", summary["train_accuracy"]], ["test", summary["test_accuracy"]]],
    })
    res["data"] = {**data_summary(ds, ds.y_test), **summary, "model": str(out / "model.pt")}
    res["summary"] = train_findings(cfg, ds, summary)
    finish(out, res, t0)
    return res


def train_findings(cfg: ModelConfig, ds: Dataset, summary: dict[str, Any]) -> list[str]:
    """The findings of ``advgame train``: accuracies, the training gap, the loss curve."""
    how = ("loaded from its earlier run (same config)" if summary.get("source") == "resumed"
           else f"trained {cfg.epochs} epochs in {summary.get('train_s') or 0.0:.1f} s")
    tr, te = float(summary["train_accuracy"]), float(summary["test_accuracy"])
    out = [f"{cfg.arch} on {ds.name} classes {list(ds.classes)}, {how}: train accuracy "
           f"{tr:.4f}, test accuracy {te:.4f} on {evaluated(ds, ds.y_test)}."]
    gap = tr - te
    out.append(f"Train minus test accuracy is {gap:+.4f}"
               + (" (over-fitting: more data or fewer epochs may help)." if gap > 0.05
                  else " (no sign of over-fitting)."))
    loss = summary.get("loss_curve") or []
    if len(loss) >= 2:
        out.append(f"Training loss went from {loss[0]:.4f} (epoch 1) to {loss[-1]:.4f} "
                   f"(epoch {len(loss)})" + ("; still falling: more epochs may help."
                                             if loss[-1] < 0.98 * loss[-2] else "."))
    return out


# --------------------------------------------------------------------------- attack

ATTACKS = ("fgm", "pgd")
EVAL_BLOCK = 250  # test points per stored unit of attack evaluation


@dataclass(frozen=True, kw_only=True)
class AttackRunConfig(ModelConfig):
    """``advgame attack``: clean and robust accuracy of a model under FGM/PGD at each eps."""

    model: str | None = None
    attacks: tuple[str, ...] = ATTACKS
    norm: str = "inf"
    eps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    pgd_steps: int = 20
    pgd_restarts: int = 1
    n_test: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad or not self.attacks:
            raise InputError("attack", f"unknown attack(s) {bad}; choose from {list(ATTACKS)}")
        parse_norm(self.norm)
        if not self.eps:
            raise InputError("eps", "give at least one value")
        for e in self.eps:
            check_nonnegative("eps", e)
        check_positive_int("pgd_steps", self.pgd_steps)
        check_positive_int("pgd_restarts", self.pgd_restarts)
        if self.n_test is not None:
            check_positive_int("n_test", self.n_test)


def robust_flags(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, attack: str, eps: float, norm: str,
    pgd_steps: int = 20, restarts: int = 1, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-example robustness flags (N,) bool: correct under the attack (worst of restarts).

    With several PGD restarts the first starts at x and the others at random points.
    """
    ok = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for r in range(restarts if attack == "pgd" else 1):
        if attack == "fgm":
            xa = fgm(model, x, y, eps, norm)
        else:
            xa = pgd(model, x, y, eps, norm, steps=pgd_steps,
                     random_start=r > 0 or restarts == 1, generator=generator)
        ok &= ~evaluate_attack(model, xa, y).success
    return ok


@dataclass(frozen=True)
class EvaluationRun:
    """What a run that evaluates one classifier (``attack``, ``certify``, ``evaluate``)
    starts from: the data, the model and its info (see :func:`obtain_model`), the seeded
    stratified test subset (x, y) and the unit store keyed by the config's digest."""

    ds: Dataset
    model: nn.Module
    info: dict[str, Any]
    x: torch.Tensor
    y: torch.Tensor
    store: UnitStore

    @property
    def evaluated(self) -> str:
        """The caption phrase of :func:`evaluated` for the subset (counts per class)."""
        return evaluated(self.ds, self.y)

    def results(self, command: str, cfg: Any, **data: Any) -> dict[str, Any]:
        """The results head (:func:`base_results`) with ``data`` = the subset's summary
        (:func:`data_summary`), then ``data``, the world size, and the classifier used
        (:func:`record_classifier`)."""
        res = base_results(command, cfg, cfg.seed)
        res["data"] = {**data_summary(self.ds, self.y), **data,
                       "world_size": distributed.world_size()}
        record_classifier(res, self.info)
        return res


def evaluation_setup(cfg: Any, out: Path, device: torch.device,
                     progress: Progress) -> EvaluationRun:
    """The start of a run that evaluates one classifier: the output directory, the data,
    the model (``cfg.model`` or one trained once), the seeded stratified test subset of
    ``cfg.n_test`` points and the unit store (:class:`EvaluationRun`)."""
    out.mkdir(parents=True, exist_ok=True)
    ds = load_data(cfg)
    model, info = obtain_model_once(cfg, ds, out, device, cfg.model, progress)
    x, y = eval_subset(ds, device, cfg.n_test, cfg.seed)
    return EvaluationRun(ds, model, info, x, y, UnitStore(out, config_digest(cfg)))


def run_attack(
    cfg: AttackRunConfig, out: Path, device: torch.device, progress: Progress = no_progress
) -> dict[str, Any]:
    """Clean and robust accuracy per attack and eps.

    Work is split in units (attack, eps, block of ``EVAL_BLOCK`` test points), each with its
    own generator seeded by (seed, unit), stored under OUT/units and shared out across
    torchrun processes: resumed and distributed runs equal one uninterrupted process.
    """
    t0 = time.perf_counter()
    run = evaluation_setup(cfg, out, device, progress)
    ds, model, x, y, store = run.ds, run.model, run.x, run.y, run.store
    clean = accuracy(model, x, y)
    norm = parse_norm(cfg.norm)
    units = [(a, e, s) for a in cfg.attacks for e in cfg.eps
             for s in range(0, x.shape[0], EVAL_BLOCK)]
    mine = distributed.my_units(list(enumerate(units)))
    local: dict[str, Any] = {}
    for k, (a, e, s) in progress(mine, "attack", len(mine)):
        key = f"attack-{a}-{norm}-{e}-{s}"

        def compute(a: str = a, e: float = e, s: int = s, k: int = k) -> list[bool]:
            return robust_flags(
                model, x[s:s + EVAL_BLOCK], y[s:s + EVAL_BLOCK], attack=a, eps=e, norm=norm,
                pgd_steps=cfg.pgd_steps, restarts=cfg.pgd_restarts,
                generator=unit_generator(cfg.seed, k, device),
            ).tolist()
        local[key] = store.get_or_compute(key, compute)
    flags = distributed.gather_units(local)
    if not distributed.is_main():
        return {"summary": []}
    acc: dict[str, list[float]] = {a: [] for a in cfg.attacks}
    for a in cfg.attacks:
        for e in cfg.eps:
            f = [v for s in range(0, x.shape[0], EVAL_BLOCK)
                 for v in flags[f"attack-{a}-{norm}-{e}-{s}"]]
            acc[a].append(float(np.mean(f)))
    res = run.results("attack", cfg, clean_accuracy=clean, eps=list(cfg.eps),
                      robust_accuracy=acc)
    res["tables"].append({
        "name": "robust_accuracy",
        "title": f"Robust accuracy under L{norm} attacks on {ds.name} {list(ds.classes)}",
        "caption": f"Accuracy (fraction of {run.evaluated}) under each attack at "
                   f"each eps (L{norm}, inputs in [0,1]); PGD: {cfg.pgd_steps} steps, "
                   f"{cfg.pgd_restarts} restart(s). Clean accuracy {clean:.4f}.",
        "columns": ["attack", "clean"] + [f"eps={e:g}" for e in cfg.eps],
        "rows": [[a.upper(), clean] + acc[a] for a in cfg.attacks],
    })
    res["summary"].append(
        f"On {run.evaluated}: clean accuracy {clean:.3f}; at eps={cfg.eps[-1]:g} "
        + ", ".join(f"{a.upper()} leaves {acc[a][-1]:.3f}" for a in cfg.attacks) + "."
    )
    _plot_attack(out, res, cfg, acc, clean)
    finish(out, res, t0)
    return res


def _plot_attack(out: Path, res: dict[str, Any], cfg: AttackRunConfig,
                 acc: dict[str, list[float]], clean: float) -> None:
    from advgame import plots

    eps = list(cfg.eps)
    curves = {a.upper(): acc[a] for a in cfg.attacks}
    if 0.0 not in eps:  # start every curve at the clean accuracy
        eps = [0.0] + eps
        curves = {k: [clean] + v for k, v in curves.items()}
    plots.accuracy_vs_eps(
        out / "robust_accuracy.png", eps, curves,
        title="Robust accuracy vs eps", xlabel=f"eps (L{parse_norm(cfg.norm)})",
        ylabel="accuracy",
    )
    res["figures"].append({"name": "robust_accuracy", "file": "robust_accuracy.png",
                           "caption": "Test accuracy under each attack as eps grows."})
