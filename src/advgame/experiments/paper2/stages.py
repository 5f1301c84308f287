"""The training stages of paper2: the cat-and-mouse rounds, the defenses fine-tuned from
u_0 (online adversarial training, Sens-FGSM, the minimax games, the reformer), and their
sharding over torchrun ranks."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch import nn

from advgame import distributed
from advgame.attacks.learned import build_attnet
from advgame.defenses.training import (
    SensObjective,
    adversarial_training,
    cat_and_mouse_round,
    learned_minimax,
    sens_fgsm_train,
)
from advgame.defenses.transforms import ReformedClassifier, build_autoencoder, train_autoencoder
from advgame.experiments.paper2.config import DEFENSES, Paper2Config
from advgame.experiments.paper2.work import _load_state, _save_state, _Work
from advgame.experiments.runtime import Progress
from advgame.models import TrainConfig, load_checkpoint, save_checkpoint, train
from advgame.rng import seeded_init, unit_generator


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
                SensObjective(
                    form=form, surrogate=cfg.sens_surrogate, tau=cfg.sens_tau,  # type: ignore
                    scale=cfg.sens_scale, detach_scale=cfg.sens_detach_scale,  # type: ignore
                    # the first-order form already holds the clean loss: l + eta ||g||_1
                    clean_weight=cfg.sens_clean_weight if form == "fgsm" else 0.0),
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
                prev, x_tr, y_tr, eps=cfg.eta,
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


def _sweep_tag(arch: str, eta: float) -> str:
    """The suffix of the unit and model keys of an eta-table cell, e.g. ``@cnn-eta0.4``."""
    return f"@{arch}-eta{eta:g}"


def _sweep_cells(cfg: Paper2Config) -> list[tuple[str, float, str]]:
    """(classifier, eta, unit-key tag) of the eta table's cells that train their own
    defenses: all but (cfg.arch, cfg.eta), which are the main table's."""
    return [(arch, eta, _sweep_tag(arch, eta)) for arch in (cfg.arch, *cfg.compare_archs)
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
