"""The schema of ``results.json`` (``docs/results-schema.md``): :class:`Results`,
:class:`Table`, :class:`Figure`, and :func:`load_results`, which checks every field and
names the first one that is wrong."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advgame.errors import InputError

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Cell = str | int | float | bool | None


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, kw_only=True)
class Table:
    """One table of ``results.json``: ``rows`` has one list of cells per row."""

    name: str
    title: str
    caption: str
    columns: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One figure of ``results.json``; ``file`` is relative to the output directory."""

    name: str
    file: str
    caption: str


@dataclass(frozen=True, kw_only=True)
class Results:
    """A validated ``results.json`` (see ``docs/results-schema.md``)."""

    command: str
    advgame_version: str | None = None
    created: str | None = None
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float | None] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    data_keys: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- loading


def load_results(out_dir: str | os.PathLike[str]) -> Results:
    """Read and validate ``out_dir/results.json``.

    Args:
        out_dir: the output directory of an advgame command.

    Returns:
        The parsed :class:`Results`.

    Raises:
        InputError: argument ``DIR``, when the directory or the file is missing, the file
            is not JSON, or it does not match the schema (the message names the field,
            e.g. ``tables[0].rows[2]``).

    Example:
        >>> import tempfile
        >>> load_results(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: DIR: no results.json in ...
    """
    d = Path(out_dir)
    if not d.is_dir():
        raise InputError("DIR", f"{d} is not a directory")
    f = d / "results.json"
    if not f.is_file():
        raise InputError(
            "DIR", f"no results.json in {d}; run an advgame command with --out {d} first"
        )
    try:
        raw = json.loads(f.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError("DIR", f"{f} is not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(
            "DIR", f"{f} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    try:
        return _parse(raw)
    except _SchemaError as exc:
        raise InputError("DIR", f"{f} does not match the results schema: {exc}") from None


class _SchemaError(Exception):
    pass


def _type_name(v: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _expect(where: str, v: object, kind: type | tuple[type, ...], what: str) -> Any:
    ok = isinstance(v, kind) and not (isinstance(v, bool) and bool not in _as_tuple(kind))
    if not ok:
        raise _SchemaError(f"{where} must be {what}, got {_type_name(v)}")
    return v


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    v = raw.get(key)
    return None if v is None else _expect(key, v, str, "a string")


def _parse(raw: object) -> Results:
    top = _expect("the top level", raw, dict, "an object")
    if "command" not in top:
        raise _SchemaError("the field 'command' is missing")
    command = _expect("command", top["command"], str, "a string")
    if not command.strip():
        raise _SchemaError("command must not be empty")
    seed = top.get("seed")
    if seed is not None:
        _expect("seed", seed, int, "an integer or null")
    config = _expect("config", top.get("config") or {}, dict, "an object")
    versions = _expect("versions", top.get("versions") or {}, dict, "an object")
    timings = _expect("timings", top.get("timings") or {}, dict, "an object")
    for k, v in timings.items():
        if v is not None:
            _expect(f"timings.{k}", v, (int, float), "a number of seconds or null")
    summary = _expect("summary", top.get("summary") or [], list, "an array of strings")
    for i, s in enumerate(summary):
        _expect(f"summary[{i}]", s, str, "a string")
    tables = [_parse_table(i, t) for i, t in enumerate(
        _expect("tables", top.get("tables") or [], list, "an array of tables"))]
    figures = [_parse_figure(i, g) for i, g in enumerate(
        _expect("figures", top.get("figures") or [], list, "an array of figures"))]
    _check_unique("tables", [t.name for t in tables])
    _check_unique("figures", [g.name for g in figures])
    data = top.get("data")
    return Results(
        command=command,
        advgame_version=_optional_str(top, "advgame_version"),
        created=_optional_str(top, "created"),
        seed=seed,
        config=config,
        versions=versions,
        timings=timings,
        summary=summary,
        tables=tables,
        figures=figures,
        data_keys=sorted(map(str, data)) if isinstance(data, dict) else [],
    )


def _check_unique(kind: str, names: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise _SchemaError(f"{kind}[{i}].name {name!r} is already used by "
                               f"{kind}[{seen[name]}]")
        seen[name] = i


def _parse_table(i: int, raw: object) -> Table:
    where = f"tables[{i}]"
    t = _expect(where, raw, dict, "an object")
    for key in ("name", "columns", "rows"):
        if key not in t:
            raise _SchemaError(f"{where} has no field {key!r}")
    name = _expect(f"{where}.name", t["name"], str, "a string")
    if not name.strip():
        raise _SchemaError(f"{where}.name must not be empty")
    title = _expect(f"{where}.title", t.get("title", name), str, "a string")
    caption = _expect(f"{where}.caption", t.get("caption") or "", str, "a string")
    columns = _expect(f"{where}.columns", t["columns"], list, "an array of strings")
    for j, c in enumerate(columns):
        _expect(f"{where}.columns[{j}]", c, str, "a string")
    rows = _expect(f"{where}.rows", t["rows"], list, "an array of rows")
    for r, row in enumerate(rows):
        _expect(f"{where}.rows[{r}]", row, list, "an array of cells")
        if len(row) != len(columns):
            raise _SchemaError(f"{where}.rows[{r}] has {len(row)} cells but {where}.columns "
                               f"has {len(columns)}")
        for c, cell in enumerate(row):
            if cell is not None and not isinstance(cell, str | int | float):
                raise _SchemaError(f"{where}.rows[{r}][{c}] must be a string, a number or "
                                   f"null, got {_type_name(cell)}")
    return Table(name=name, title=title, caption=caption, columns=columns, rows=rows)


def _parse_figure(i: int, raw: object) -> Figure:
    where = f"figures[{i}]"
    g = _expect(where, raw, dict, "an object")
    for key in ("name", "file"):
        if key not in g:
            raise _SchemaError(f"{where} has no field {key!r}")
    name = _expect(f"{where}.name", g["name"], str, "a string")
    if not name.strip():
        raise _SchemaError(f"{where}.name must not be empty")
    file = _expect(f"{where}.file", g["file"], str, "a string")
    caption = _expect(f"{where}.caption", g.get("caption") or "", str, "a string")
    return Figure(name=name, file=file, caption=caption)
