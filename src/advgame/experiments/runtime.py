"""The one experiment runtime: config loading and digests, run metadata, the output
directory, the unit store and its sharding over torchrun ranks.

Unit seeds come from :mod:`advgame.rng`, atomic files from :mod:`advgame.storage`.

Only ``experiments`` and ``cli`` touch files. A run directory holds ``results.json``
(written atomically), figures, and ``units/`` where finished units of work are stored one
file each (write-then-rename), so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import advgame
from advgame.errors import InputError
from advgame.storage import atomic_write_json, digest, to_jsonable

T = TypeVar("T")
C = TypeVar("C")

#: A progress wrapper: ``progress(iterable, description, total)`` -> iterable.
Progress = Callable[..., Iterable[Any]]


def no_progress(it: Iterable[T], desc: str = "", total: int | None = None) -> Iterable[T]:
    """The default progress wrapper: yields the items unchanged."""
    return it


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


def load_config(cls: type[C], path: str | Path | None, overrides: dict[str, Any],
                quick: dict[str, Any] | None = None) -> C:
    """Build a frozen dataclass config: defaults < ``quick`` < TOML file < ``overrides``.

    ``quick`` is the command's ``--quick`` preset (None without ``--quick``); the TOML
    file's keys must be field names of ``cls`` (unknown keys are rejected); ``overrides``
    (from command-line flags, None meaning "not given") win over everything. Every value
    from any layer is checked against the field's type (:func:`check_field`) before the
    dataclass checks its ranges, so a bad value in the file fails even when ``--quick``
    would have replaced it under another precedence.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True, kw_only=True)
        ... class Cfg:
        ...     eps: tuple[float, ...] = (0.3,)
        ...     n_test: int | None = None
        >>> load_config(Cfg, None, {"n_test": 5}, quick={"eps": [0.1], "n_test": 9})
        Cfg(eps=(0.1,), n_test=5)
        >>> load_config(Cfg, None, {"n_test": "x"})
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: n_test: must be an integer or nothing, got 'x'
    """
    values: dict[str, Any] = dict(quick or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise InputError("config", f"{p} " + (
                "is a directory, not a TOML file" if p.is_dir() else "not found"))
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
    hints = typing.get_type_hints(cls)
    values = {k: check_field(k, v, hints.get(k, Any)) for k, v in values.items()}
    try:
        return cls(**values)
    except TypeError as e:
        raise InputError("config", str(e)) from None


def _describe(hint: Any) -> str:
    """Plain words for a type hint, for error messages ("a list of numbers")."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        words = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or nothing" if type(None) in args else "")
    if origin is tuple:
        return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(origin or hint, getattr(hint, "__name__", str(hint)))


def check_field(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the type hint of config field ``name``, normalized.

    Lists become tuples, integers given for a float field become floats, numbers given
    for a string field become strings (TOML ``norm = 2``); anything else
    that does not match raises :class:`InputError` naming the field. Handles bool, int,
    float, str, ``X | None``, ``tuple[X, ...]`` and ``dict``; other hints pass through.

    Example:
        >>> check_field("eps", [0.1, 1], tuple[float, ...])
        (0.1, 1.0)
        >>> check_field("eps", "abc", tuple[float, ...])
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: eps: must be a list of numbers, got 'abc'
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def bad() -> InputError:
        return InputError(name, f"must be {_describe(hint)}, got {value!r}")

    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return check_field(name, value, a)
            except InputError:
                pass
        raise bad()
    if hint is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad()
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise bad()
        return float(value)
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{value:g}" if isinstance(value, float) else str(value)  # norm = 2
        if not isinstance(value, str):
            raise bad()
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            try:
                return tuple(check_field(name, v, args[0]) for v in value)
            except InputError:
                raise bad() from None
        if args and len(args) != len(value):
            raise bad()
        return tuple(value) if not args else tuple(
            check_field(name, v, a) for v, a in zip(value, args, strict=True))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise bad()
        return value
    return value


def check_output_dir(out: str | Path) -> Path | None:
    """Check that ``out`` is, or can be created as, a writable directory.

    Returns the topmost directory a run will create (``out`` itself or the first of its
    missing parents), or None when ``out`` exists already.

    Raises:
        InputError: argument ``out`` when it is a regular file, when one of its parents is
            one, or when the directory (or its nearest existing parent) is not writable.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> check_output_dir(d / "a" / "b") == d / "a", check_output_dir(d)
        (True, None)
        >>> _ = (d / "f").write_text("")
        >>> check_output_dir(d / "f")
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: out: ... exists and is not a directory
    """
    p = Path(out)
    existing, top = p, None
    while not existing.exists() and existing != existing.parent:
        existing, top = existing.parent, existing
    if not existing.is_dir():
        what = "exists and is not a directory" if top is None else "is not a directory"
        raise InputError("out", f"{existing} {what}" + ("" if top is None else
                                                         f" (cannot create {p})"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError("out", f"cannot write in {existing}")
    return top


def check_previous_results(out: str | Path, command: str, cfg: Any) -> None:
    """Refuse to overwrite the results of another run: ``out/results.json`` may only be
    replaced by a rerun of the same command with the same config (which resumes, and
    writes the same results).

    ``cfg``: the run's config (a dataclass, or its dict); the same config is the same
    :func:`config_digest` (results.json's ``config_digest``; the ``config`` dict where a
    file lacks it).

    Raises:
        InputError: argument ``out``, naming the command or the config fields that differ.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "results.json").write_text('{"command": "train", "config": {"seed": 0}}')
        >>> check_previous_results(d, "train", {"seed": 0})
        >>> check_previous_results(d, "train", {"seed": 1})
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: out: ... with another seed; give another --out ...
        >>> check_previous_results(d, "attack", {"seed": 0})
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: out: ... holds the results of 'advgame train'; give another --out
    """
    p = Path(out) / "results.json"
    if not p.is_file():
        return
    try:
        prev = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        prev = None
    if not isinstance(prev, dict) or not isinstance(prev.get("config"), dict):
        raise InputError("out", f"{p} exists and is not an advgame results file; give "
                         "another --out")
    if prev.get("command") != command:
        raise InputError("out", f"{out} holds the results of 'advgame {prev.get('command')}'"
                         "; give another --out")
    was, now = prev["config"], json.loads(json.dumps(to_jsonable(cfg)))
    if "config_digest" in prev:
        if prev["config_digest"] == config_digest(cfg):
            return
    elif was == now:
        return
    # the classifier fields of a run on a checkpoint record the checkpoint's values
    classifier = (prev.get("data") or {}).get("classifier") or {}
    loaded = str(classifier.get("from", "")).startswith("checkpoint")
    differ = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k)
                    and not (loaded and k in classifier))
    what = ", ".join(differ[:4]) + (f" and {len(differ) - 4} more" if len(differ) > 4 else "")
    raise InputError("out", f"{out} holds the results of an 'advgame {command}' run with "
                     f"another {what or 'config'}; give another --out (the same settings "
                     "resume that run)")


def _prune_empty_dirs(root: Path, keep: set[str]) -> None:
    """Remove the empty directories below and including ``root``, bottom-up, except those
    in ``keep``; a directory holding any file stays (stored units of work are resumable)."""
    if not root.is_dir():
        return
    for d, _, _ in os.walk(root, topdown=False):
        if d not in keep:
            try:
                os.rmdir(d)  # only succeeds when empty
            except OSError:
                pass


@contextlib.contextmanager
def output_directory(out: str | Path) -> Iterator[Path]:
    """Run a command into ``out``: checked first (:func:`check_output_dir`); when the run
    fails or is interrupted, the directories it created and left empty are removed.

    Stored units and any other file stay, so an interrupted run still resumes.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "run"
        >>> try:
        ...     with output_directory(d) as out:
        ...         (out / "units").mkdir(parents=True)
        ...         raise InputError("model", "not found")
        ... except InputError:
        ...     pass
        >>> d.exists()
        False
    """
    p = Path(out)
    top = check_output_dir(p)
    before = set() if top is not None else {d for d, _, _ in os.walk(p)}
    try:
        yield p
    except BaseException:
        _prune_empty_dirs(top if top is not None else p, before)
        raise


def config_digest(cfg: Any) -> str:
    """A short stable hash of a config dataclass (its JSON form)."""
    return digest(to_jsonable(cfg), 12)


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
    label = distributed.label(desc)
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
