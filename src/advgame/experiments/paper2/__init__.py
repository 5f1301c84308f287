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

The package: ``config`` (:class:`Paper2Config`, the defenses, ``--quick``), ``work`` (the
work directory), ``stages`` (training and its sharding over ranks), ``evaluation`` (the
defense x attack cells, the rounds series, the eta table), ``outputs`` (tables, figures,
findings); this module runs the stages in order and registers the CLI flags.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from advgame import distributed
from advgame.data import class_counts
from advgame.defenses.training import cat_and_mouse_errors, error_rate, fgsm_examples
from advgame.experiments import classifier as clf
from advgame.experiments.paper2.config import DEFENSES, QUICK, Paper2Config
from advgame.experiments.paper2.evaluation import (
    _eta_sweep,
    _evaluate,
    _rounds_series,
    _sign_agreement,
)
from advgame.experiments.paper2.outputs import (
    _data,
    _figures,
    _summary,
    _tables,
    rounds_outputs,
    sweep_outputs,
)
from advgame.experiments.paper2.stages import _is_round, _train_defenses, _train_share
from advgame.experiments.paper2.work import _Work
from advgame.experiments.runtime import Progress, no_progress
from advgame.rng import unit_generator

__all__ = ["DEFENSES", "QUICK", "SWEEP_DEFENSES", "Paper2Config", "run_paper2"]

# --------------------------------------------------------------------------- the run


def run_paper2(
    cfg: Paper2Config, out: Path, device: torch.device, progress: Progress = no_progress
) -> dict[str, Any]:
    """Run S2's stages (module notes) with ``cfg`` on ``device``; write
    ``out/results.json`` (cat-and-mouse rounds, the defense x attack error table, the eta
    table per architecture), the heatmaps and curves, and ``out/report.html`` (schema:
    ``docs/results-schema.md``). Returns the results dictionary on rank 0 and
    ``{"summary": []}`` on the other torchrun ranks.

    Example (command line):
        advgame paper2 --quick --out runs/paper2-quick
    """
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = clf.load_data(cfg)
    work = _Work(cfg, out, ds, device)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    x_te, y_te = clf.eval_subset(ds, device, cfg.n_test, cfg.seed)
    x_att, y_att = clf.train_subset(x_tr, y_tr, cfg.attnet_train_size,
                                    unit_generator(cfg.seed, "attnet-train-subset"))

    u0, info = clf.obtain_model_once(cfg, ds, out, device, progress=progress)
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

    res = clf.base_results("paper2", cfg, cfg.seed)
    res["timings"].update(work.timings)
    _tables(cfg, res, cells, cm, cm_others, clf.evaluated(ds, y_te))
    _data(cfg, res, cells, cm, cm_others, agreement, curves, info, x_te.shape[0], work)
    res["data"].update(clf.data_summary(ds, y_te))
    res["data"]["attnet_train_class_counts"] = class_counts(y_att, ds.classes)
    res["data"]["world_size"] = distributed.world_size()
    res["summary"] = _summary(cfg, res, cells, cm, agreement, x_te.shape[0])
    rounds_outputs(cfg, res, rounds, out, clf.evaluated(ds, y_te))
    sweep_outputs(cfg, res, sweep, out, clf.evaluated(ds, y_te))
    _figures(cfg, out, res, cells, cm, curves)
    clf.finish(out, res, t0)
    return res


# --------------------------------------------------------------------------- CLI
