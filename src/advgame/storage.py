"""Files that are never half-written, and the one short digest of a JSON payload.

Every result file, checkpoint and stored unit of work goes through :func:`atomic_write`:
the data is written to a temporary file in the target's directory, flushed, then renamed
over the target (``os.replace`` is atomic on POSIX and Windows), so a reader — or a run
resumed after ``kill -9`` — sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_write", "atomic_write_json", "atomic_write_text", "digest", "to_jsonable"]


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then rename it onto ``path``.

    The parent directory is created; the temporary file is removed if ``write`` raises.
    The file gets the permissions of any new file (0666 less the umask), not the
    owner-only ones of a temporary file, so that a results directory on a shared file
    system is readable as usual.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> p = atomic_write(d / "a.txt", lambda tmp: pathlib.Path(tmp).write_text("hi"))
        >>> p.read_text(), sorted(f.name for f in d.iterdir())
        ('hi', ['a.txt'])
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix="." + p.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) atomically, fsynced before the rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, arrays, dataclasses, tuples and paths to JSON types (NaN -> None).

    Example:
        >>> to_jsonable({"a": (1, float("nan")), "t": torch.tensor([0.5])})
        {'a': [1, None], 't': [0.5]}
    """
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
    """Atomically write ``obj`` (through :func:`to_jsonable`) as indented JSON."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def digest(payload: Any, length: int = 10) -> str:
    """The first ``length`` hex digits of sha256(json.dumps(payload, sort_keys=True)).

    Objects JSON cannot encode are written as ``str(obj)``. Used for work-directory names,
    unit-store tags and the keys of mixtures, so that a changed config never reuses units.

    Example:
        >>> digest({"b": 1, "a": [2]}) == digest({"a": [2], "b": 1})
        True
        >>> len(digest("x", 12))
        12
    """
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
