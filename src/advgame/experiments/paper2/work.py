"""The work directory of a paper2 run: trained models and stored units, keyed by the
config's digest, so that an interrupted run resumes without recomputing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgame.data import Dataset
from advgame.experiments.classifier import jsonable_config
from advgame.experiments.paper2.config import Paper2Config
from advgame.experiments.runtime import UnitStore
from advgame.models import build_model, load_checkpoint, save_checkpoint
from advgame.models.checkpoint import atomic_torch_save
from advgame.rng import seeded_init
from advgame.storage import digest

# --------------------------------------------------------------------------- storage


def _config_hash(cfg: Paper2Config) -> str:
    return digest(jsonable_config(cfg))


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
