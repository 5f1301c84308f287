"""Checkpoints that store the architecture and load with ``weights_only=True``.

A checkpoint is a plain dict of tensors, strings, ints, floats, lists and dicts:
``{"format": "advgame-checkpoint-v1", "arch": str, "input_shape": [...],
"num_classes": int, "kwargs": {...}, "state_dict": {...}, "meta": {...}}``.
It is written atomically (temporary file, then rename) and read with
``torch.load(weights_only=True)``, so a file carrying a pickled object is refused.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advgame.errors import InputError
from advgame.models.architectures import build_model
from advgame.storage import atomic_write

FORMAT = "advgame-checkpoint-v1"


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    kwargs: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Atomically save ``model`` with what is needed to rebuild it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT, "arch": arch, "input_shape": list(input_shape),
        "num_classes": int(num_classes),
        "kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in (kwargs or {}).items()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    return atomic_torch_save(p, payload)


def atomic_torch_save(path: str | Path, payload: Any) -> Path:
    """``torch.save`` to a temporary file in the same directory, then rename: a reader
    never sees a half-written file, even if the process is killed."""
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`. Returns (model in eval mode, dict).

    Raises:
        InputError: missing file, not a checkpoint, a pickle payload, or mismatched weights.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("model", f"checkpoint {p} " + (
            "is a directory, not a checkpoint file" if p.is_dir() else "not found"))
    if not zipfile.is_zipfile(p):
        raise InputError("model", f"{p} is not a valid checkpoint (not a torch.save zip file)")
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        culprit = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" (it carries {culprit.group(1)})" if culprit else ""
        raise InputError(
            "model", f"{p} is refused: it holds pickled objects, not plain weights{what}; "
            "only weights-only checkpoints are loaded"
        ) from None
    except Exception as e:  # noqa: BLE001 - any failure to read means not a checkpoint
        raise InputError("model", f"{p} is not a valid checkpoint ({type(e).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise InputError("model", f"{p} is not an advgame checkpoint")
    try:
        model = build_model(
            ck["arch"], tuple(ck["input_shape"]), int(ck["num_classes"]), **ck["kwargs"]
        )
        model.load_state_dict(ck["state_dict"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise InputError("model", f"{p} has inconsistent contents ({str(e)[:120]})") from None
    model.to(map_location).eval()
    return model, ck
