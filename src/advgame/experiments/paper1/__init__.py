"""``advgame paper1``: the additive "no-box" game (S1, SPEC section 1) end to end.

Trains (or loads) a two-class ReLU network, linearizes it, attacks it with FGM (the
linearized game's exact best response in ball ∩ box) and PGD, defends it with no defense,
Cohen et al.'s Gaussian smoothing and the finite-sample equilibrium shift (pure, mixed,
clean-constrained, and for both the game played on images and the paper's unbounded
model), and writes Table 1, the payoff matrices of the S1 game with their equilibria and
the exploitability of the claimed equilibrium (FGM, v_n), an eps sweep, convergence in n
against the VC and Hoeffding rates, linearity diagnostics, certification, and a summary
over other class pairs / datasets. Every stage is a stored unit: a rerun resumes.

Modules: ``config`` (:class:`Paper1Config`, ``QUICK``), ``stages`` (the units),
``outputs`` (tables, figures, summary).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from advgame.data import Dataset
from advgame.experiments.classifier import base_results, finish, load_data
from advgame.experiments.paper1 import outputs
from advgame.experiments.paper1.config import QUICK, Paper1Config
from advgame.experiments.paper1.stages import (
    certification,
    convergence_draw,
    diagnostics,
    pair_summary,
    prepare,
    sweep_point,
    table1,
    v_star,
)
from advgame.experiments.runtime import (
    Progress,
    UnitStore,
    config_digest,
    no_progress,
    seed_generators,
    sharded_units,
)
from advgame.threat import parse_norm

__all__ = ["QUICK", "Paper1Config", "run_paper1", "run_paper1_with_model"]


def _pairs(cfg: Paper1Config, classes_available: tuple[int, ...]) -> list[tuple[int, int]]:
    if isinstance(cfg.pairs, str):
        return ([] if cfg.pairs == "none"
                else list(itertools.combinations(classes_available, 2)))
    return [tuple(p) for p in cfg.pairs]  # type: ignore[misc]


def run_paper1(cfg: Paper1Config, out: Path, device: torch.device,
               progress: Progress = no_progress, *, ds: Dataset | None = None
               ) -> dict[str, Any]:
    """Run S1 end to end: every unit below is stored under ``out/units/`` (a rerun
    resumes) and, under torchrun, the units of each phase are split across the ranks
    (each unit seeds its own generator, so the results are those of one process); rank 0
    writes ``results.json``, the figures and the report. ``ds``: the data of ``cfg``
    when the caller has loaded it already."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    store = UnitStore(out, config_digest(cfg))
    timings: dict[str, float] = {}
    res = base_results("paper1", cfg, cfg.seed)
    tick = time.perf_counter()
    ds = load_data(cfg) if ds is None else ds
    g, info = prepare(cfg, ds, out / "model", device, progress)
    timings["model_s"] = time.perf_counter() - tick

    def gen(offset: int) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(cfg.seed + offset)

    def per_budget(key: str, label: str, pairs: Iterable[tuple[float, float]],
                   unit: Callable[..., dict[str, Any]], offset: int) -> list[dict[str, Any]]:
        """``unit(cfg, g, eps_a, eps_d, gen(offset))`` at each budget pair, a unit each."""
        def job(eps_a: float, eps_d: float) -> Callable[[], dict[str, Any]]:
            return lambda: unit(cfg, g, eps_a, eps_d, gen(offset))
        tick = time.perf_counter()
        done = sharded_units(store, [(f"{key}-{a}-{d}", job(a, d)) for a, d in pairs],
                             progress, label)
        timings[f"{key}_s"] = time.perf_counter() - tick
        return done

    # 1. Table 1 (and the payoff game) at each configured (eps_a, eps_d)
    tables = per_budget("table1", "table 1", itertools.product(cfg.eps_a, cfg.eps_d), table1, 11)
    # 2. eps sweep: over eps_A at the first eps_D, and over eps_D at the last eps_A
    sweep = per_budget("sweep", "eps sweep", [(e, cfg.eps_d[0]) for e in cfg.sweep_eps_a]
                       + [(cfg.eps_a[-1], e) for e in cfg.sweep_eps_d], sweep_point, 13)

    # 3. convergence in n (the reference v* first: every draw compares with it)
    tick = time.perf_counter()
    eps_a, eps_d = cfg.eps_a[-1], cfg.eps_d[0]
    (ref,) = sharded_units(store, [(f"vstar-{eps_a}-{eps_d}",
                                    lambda: v_star(cfg, g, eps_a, eps_d))])
    jobs: list[tuple[str, Any]] = []
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
            return diagnostics(cfg, g, e, gen(0))
        jobs.append((f"diag-{e}", compute_d))
    diag = sharded_units(store, jobs, progress, "linearity diagnostics")
    timings["diagnostics_s"] = time.perf_counter() - tick

    # 5. certification of the smoothed classifier, and 6. the other pairs and datasets
    tick = time.perf_counter()
    jobs = [("certify", lambda: certification(cfg, g, gen(17)))]
    jobs.append((f"pair-main-{cfg.eps_a[-1]}-{cfg.eps_d[0]}",
                 lambda: pair_summary(cfg, g, info["clean_accuracy"], cfg.eps_a[-1],
                                      cfg.eps_d[0], gen(19))))
    cert, *summaries = sharded_units(store, jobs + _other_pairs(cfg, out, device), progress,
                                     "certification and other pairs")
    timings["certify_and_pairs_s"] = time.perf_counter() - tick

    from advgame import distributed

    if not distributed.is_main():
        return {"summary": []}
    na, nd = parse_norm(cfg.norm_a), parse_norm(cfg.norm_d)
    pair = f"{ds.name} {ds.classes[0]} vs {ds.classes[1]}"
    res["data"]["classifier"] = {k: v for k, v in info.items()
                                 if k not in ("loss_curve", "class_counts",
                                              "train_class_counts")}
    res["data"]["n_train"] = int(g.x_tr.shape[0])
    res["data"]["n_test"] = int(g.x_te.shape[0])
    res["data"]["class_counts"] = info["class_counts"]
    res["data"]["train_class_counts"] = info["train_class_counts"]
    res["data"]["world_size"] = distributed.world_size()
    outputs.table1_outputs(cfg, res, tables, pair, int(g.x_te.shape[0]),
                           info["class_counts"], na, nd)
    games = outputs.payoff_outputs(cfg, res, tables, out)
    res["data"]["sweep"] = sweep
    outputs.sweep_outputs(cfg, res, sweep, out, na, nd)
    res["data"]["convergence"] = {"reference": ref, "draws": conv, "eps_a": eps_a,
                                  "eps_d": eps_d, "objective": cfg.objective}
    outputs.convergence_outputs(cfg, res, conv, ref, out, int(g.w_tr.shape[1]))
    res["data"]["diagnostics"] = diag
    outputs.diagnostics_outputs(cfg, res, diag, out, na)
    res["data"]["certification"] = cert
    outputs.certification_outputs(cfg, res, cert, out)
    res["data"]["pairs"] = summaries
    outputs.pairs_outputs(cfg, res, summaries)
    outputs.summary(cfg, res, tables, games, diag, conv, ref, summaries)
    res["timings"].update(timings)
    finish(out, res, t0)
    return res


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
            g, info = prepare(sub, ds, out / "pairs" / f"{name}-{p[0]}-{p[1]}", device,
                              no_progress, alone=True)
            _, gen = seed_generators(cfg.seed, device)
            return pair_summary(sub, g, info["clean_accuracy"], eps_a, eps_d, gen)
        jobs.append((f"pair-{name}-{p[0]}-{p[1]}-{eps_a}-{eps_d}", compute))
    return jobs


def run_paper1_with_model(cfg: Paper1Config, out: Path, device: torch.device, model: str,
                          progress: Progress = no_progress) -> dict[str, Any]:
    """As :func:`run_paper1`, on a saved two-class checkpoint instead of a trained one."""
    from advgame.experiments.classifier import check_checkpoint_fits, jsonable_config
    from advgame.models import load_checkpoint, save_checkpoint

    m, ck = load_checkpoint(model, map_location=device)
    ds = load_data(cfg)
    check_checkpoint_fits(ck, ds)  # before the copy: a rejected model leaves no file
    dest = out / "model" / "model.pt"
    save_checkpoint(dest, m, arch=ck["arch"], input_shape=tuple(ck["input_shape"]),
                    num_classes=ck["num_classes"], kwargs=ck["kwargs"],
                    meta={**ck.get("meta", {}), "config": jsonable_config(cfg)})
    return run_paper1(cfg, out, device, progress, ds=ds)
