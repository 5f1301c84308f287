"""paper2's evaluation: every defense against every attack (per-example error flags,
worst case ORed), the rounds series of the cat-and-mouse and the eta table's cells."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from advgame import distributed
from advgame.attacks import Attack, AttNetAttack, GradientAttack, StrongAttack
from advgame.attacks.learned import attnet_saturation, build_attnet, mode_fraction, train_attnet
from advgame.defenses.training import error_rate, fgsm_examples
from advgame.experiments.paper2.config import Paper2Config
from advgame.experiments.paper2.stages import _compare_base, _fine_tuned, _sweep_tag
from advgame.experiments.paper2.work import _flags_to_str, _str_to_flags, _Work
from advgame.experiments.runtime import Progress, sharded_units
from advgame.models import predict
from advgame.rng import seeded_init, unit_generator

# --------------------------------------------------------------------------- evaluation

#: Columns whose attack draws random numbers: each (defense, column) cell has its generator.
_SEEDED = ("PGD", "APGD", "Square")


def _column_attack(cfg: Paper2Config, column: str, eps: float,
                   game_attnets: dict[str, nn.Module], defense: str) -> Attack | None:
    """The :class:`~advgame.attacks.Attack` behind a column of the defense x attack table,
    or None for ``clean`` and the fresh AttNets (trained per cell in ``_evaluate``).

    FGSM-curr and PGD are the gradient loop, APGD-CE and Square the strong attacks, and
    ``AttNet-minimax`` / ``own`` the minimax games' attackers applied as fixed maps.
    """
    if column == "FGSM-curr":
        return GradientAttack(column, "fgm", eps)
    if column == "PGD":
        return GradientAttack(column, "pgd", eps, steps=cfg.pgd_steps)
    if column == "APGD":
        return StrongAttack(column, eps, method="apgd", steps=cfg.apgd_steps)
    if column == "Square":
        return StrongAttack(column, eps, method="square", queries=cfg.square_queries)
    if column == "AttNet-minimax":
        return AttNetAttack(column, eps, net=game_attnets["minimax"])
    if column == "own":
        return AttNetAttack(column, eps, net=game_attnets[defense])
    return None


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
            fixed = _column_attack(cfg, attack, budget, game_attnets, d)
            if attack == "clean":
                x_adv = x_te
            elif fixed is not None:
                g = (unit_generator(cfg.seed, f"{attack.lower()}-{d}{tag}", x_te.device)
                     if attack in _SEEDED else None)
                x_adv = fixed.craft(model, x_te, y_te, generator=g)
                if attack == "own":
                    with torch.no_grad():
                        extra = {"saturation": attnet_saturation(game_attnets[d], x_te),
                                 "payoff": float(_batched(
                                     lambda zb, yb: nn.functional.cross_entropy(
                                         model(zb), yb, reduction="none"),
                                     x_adv, y_te).mean())}
            else:  # a fresh AttNet: the attacker's best response to the frozen defense
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
                x_adv = AttNetAttack(attack, budget, net=net).craft(model, x_te, y_te)
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
    same units). Under torchrun the models were trained by :func:`_train_share` and are
    loaded here (rank 0 first, then the others); the evaluation cells are split.

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
            tag = _sweep_tag(arch, eta)
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
