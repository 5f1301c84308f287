"""What every experiment shares: config loading, run metadata, atomic result files.

Only ``experiments`` and ``cli`` touch files. A run directory holds ``results.json``
(written atomically), figures, and ``units/`` where finished units of work are stored one
file each (write-then-rename), so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import advgame
from advgame.errors import InputError

T = TypeVar("T")
C = TypeVar("C")

#: A progress wrapper: ``progress(iterable, description, total)`` -> iterable.
Progress = Callable[..., Iterable[Any]]


def no_progress(it: Iterable[T], desc: str = "", total: int | None = None) -> Iterable[T]:
    """The default progress wrapper: yields the items unchanged."""
    return it


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix="." + p.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, arrays, dataclasses, tuples and paths to JSON types (NaN -> None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def versions() -> dict[str, str]:
    """Versions of Python, advgame and the numeric stack, for results.json."""
    import scipy

    return {
        "python": platform.python_version(), "advgame": advgame.__version__,
        "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "platform": platform.platform(),
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def load_config(cls: type[C], path: str | Path | None, overrides: dict[str, Any]) -> C:
    """Build a frozen dataclass config from a TOML file and explicit overrides.

    TOML keys must be field names of ``cls`` (unknown keys are rejected); ``overrides``
    (from command-line flags, None meaning "not given") win over the file.
    """
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError("config", f"{p} not found")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise InputError("config", f"{p} is not valid TOML ({e})") from None
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(
                "config", f"unknown key(s) {unknown} in {p}; allowed: {sorted(names)}"
            )
        values.update(data)
    values.update({k: v for k, v in overrides.items() if v is not None})
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    try:
        return cls(**values)
    except TypeError as e:
        raise InputError("config", str(e)) from None


def config_digest(cfg: Any) -> str:
    """A short stable hash of a config dataclass (its JSON form)."""
    import hashlib

    text = json.dumps(to_jsonable(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class UnitStore:
    """Finished units of work under ``out/units/[tag/]``, one JSON file each, atomically.

    ``get_or_compute(key, fn)`` returns the stored value of ``key`` or computes, stores and
    returns ``fn()``. A run killed between units loses at most the unit in progress. Pass
    ``tag=config_digest(cfg)`` so that a rerun with a different config never reuses units
    computed under another one.
    """

    def __init__(self, out: str | Path, tag: str = "") -> None:
        self.dir = Path(out) / "units" / tag if tag else Path(out) / "units"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in key)
        return self.dir / f"{safe}.json"

    def get(self, key: str) -> Any | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None

    def put(self, key: str, value: Any) -> Any:
        atomic_write_json(self.path(key), value)
        return to_jsonable(value)

    def get_or_compute(self, key: str, fn: Callable[[], Any]) -> Any:
        got = self.get(key)
        if got is not None:
            return got
        return self.put(key, fn())

    def keys(self) -> Iterator[str]:
        return (p.stem for p in sorted(self.dir.glob("*.json")))


def sharded_units(store: UnitStore, jobs: list[tuple[str, Callable[[], Any]]],
                  progress: Progress = no_progress, desc: str = "") -> list[Any]:
    """Compute keyed, independent units split across torchrun ranks; all ranks get all.

    Rank ``r`` of ``W`` computes (or reads from ``store``) jobs ``r, r + W, ...``; the
    results are then exchanged, so every rank returns every job's value, in job order.
    With one process this is ``[store.get_or_compute(key, fn) for key, fn in jobs]``.
    Each job must seed its own randomness (never a generator shared between jobs), so
    that the split does not change any result; a job must not call collectives.
    """
    from advgame import distributed

    mine = distributed.my_units(list(range(len(jobs))))
    label = f"{desc} (rank {distributed.rank()})" if distributed.world_size() > 1 else desc
    local = {i: store.get_or_compute(*jobs[i]) for i in progress(mine, label, len(mine))}
    merged = distributed.gather_units(local)
    return [merged[i] for i in range(len(jobs))]


def parse_device(device: str | None) -> torch.device:
    """``None``/``"auto"`` -> cuda if available else cpu; otherwise the named device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError("device", f"unknown device {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "cuda requested but no CUDA device is available")
    return dev


def seed_generators(seed: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """A CPU generator (shuffling, splits) and one on ``device`` (noise, random starts)."""
    cpu = torch.Generator().manual_seed(seed)
    dev = torch.Generator(device=device).manual_seed(seed + 1) if device.type != "cpu" else (
        torch.Generator().manual_seed(seed + 1)
    )
    return cpu, dev
