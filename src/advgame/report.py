"""Render a run's ``results.json`` as a self-contained HTML page or as Markdown.

Every advgame command writes ``DIR/results.json`` (see ``docs/results-schema.md``) and PNG
figures next to it; this module turns them into ``DIR/report.html`` (one file: figures
embedded as ``data:image/png;base64`` URIs, inline CSS, no scripts, nothing fetched from
the network) or ``DIR/report.md`` (GitHub-flavoured tables, figures as relative image
links).

Page layout, top to bottom: title (from ``command``), run line (created, seed, version),
warnings found while rendering (e.g. a missing figure file), contents, findings (the
``summary`` list), tables (title, caption, then the table), figures (image and caption),
run details (seed, configuration, versions, timings).

Element ids, so that tests and links can find things: each table is
``<table id="table-SLUG">`` (its title ``table-SLUG-title``, its caption
``table-SLUG-caption``) and each figure ``<figure id="figure-SLUG">``, where SLUG is the
item's ``name`` lower-cased with runs of other characters than ``a-z0-9`` replaced by
``-`` (see :func:`slug`); a clash gets ``-2``, ``-3``, ... appended. The sections are
``findings``, ``tables``, ``figures``, ``run``, ``config``, ``versions`` and ``timings``.

Table cells are formatted by :func:`format_cell`: strings as they are, integers in full,
floats with 4 decimals (``0.5`` -> ``0.5000``; magnitudes below 1e-4 other than 0, or
1e6 and above, in scientific notation with 4 significant digits: ``1.2346e-05``), NaN
and infinities as ``NaN``, ``∞``, ``−∞``, booleans as ``true``/``false``, null as ``—``.
Configuration values are shown exactly as stored (JSON), since a reader needs the exact
learning rate or eps. Every string from ``results.json`` is HTML-escaped.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "results.json").write_text(json.dumps({
    ...     "command": "attack", "seed": 0, "summary": ["PGD beats FGM."],
    ...     "tables": [{"name": "acc", "title": "Accuracy", "caption": "eps = 0.1",
    ...                 "columns": ["attack", "accuracy"], "rows": [["FGM", 0.5]]}],
    ...     "figures": []}))
    >>> render_html(d).name
    'report.html'
    >>> 'id="table-acc"' in (d / "report.html").read_text()
    True
    >>> render(d, fmt="md").name
    'report.md'
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from advgame.errors import InputError
from advgame.storage import atomic_write_text

__all__ = [
    "Figure",
    "Results",
    "Table",
    "format_cell",
    "load_results",
    "render",
    "render_html",
    "render_markdown",
    "slug",
]

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


# --------------------------------------------------------------------------- formatting


def format_cell(value: Cell) -> str:
    """The text shown for one table cell.

    Strings as they are; integers in full; floats with 4 decimals, except magnitudes below
    1e-4 (other than 0) or of 1e6 and more, which get 4 significant digits in scientific
    notation; NaN as ``NaN``, infinities as ``∞`` / ``−∞``; booleans as ``true`` /
    ``false``; None (JSON null) as an em dash.

    Example:
        >>> [format_cell(v) for v in (0.5, 3, None, 1.23456e-5, "FGM", -0.0, float("inf"))]
        ['0.5000', '3', '—', '1.2346e-05', 'FGM', '0.0000', '∞']
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        a = abs(value)
        if a != 0 and (a < 1e-4 or a >= 1e6):
            return f"{value:.4e}"
        return f"{value:.4f}".replace("-0.0000", "0.0000")
    return str(value)


def _is_number(v: Cell) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def slug(name: str) -> str:
    """The id fragment of a table or figure name.

    Example:
        >>> slug("Table 1: MNIST 0 vs 1")
        'table-1-mnist-0-vs-1'
    """
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s or "item"


def _unique_ids(prefix: str, names: Iterable[str]) -> list[str]:
    used: set[str] = set()
    out = []
    for n in names:
        base = f"{prefix}-{slug(n)}"
        cand, k = base, 2
        while cand in used:
            cand, k = f"{base}-{k}", k + 1
        used.add(cand)
        out.append(cand)
    return out


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, key + "."))
        elif isinstance(v, str):
            out.append((key, v))
        else:
            out.append((key, json.dumps(v, ensure_ascii=False)))
    return out


def _format_seconds(v: float | None) -> str:
    if v is None:
        return "—"
    text = f"{v:.2f} s"
    if v >= 90:
        m, s = divmod(round(v), 60)
        h, m = divmod(m, 60)
        text += f" ({h} h {m} min)" if h else f" ({m} min {s} s)"
    return text


def _short(text: str, limit: int = 90) -> str:
    """The first sentence of ``text``, cut to ``limit`` characters (for the contents)."""
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(])", text.strip(), maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class _Image:
    figure: Figure
    element_id: str
    png: bytes | None
    problem: str | None


def _load_images(out_dir: Path, figures: Sequence[Figure]) -> list[_Image]:
    ids = _unique_ids("figure", (g.name for g in figures))
    root = out_dir.resolve()
    out = []
    for g, fid in zip(figures, ids, strict=True):
        path = (out_dir / g.file).resolve()
        png: bytes | None = None
        problem: str | None = None
        if Path(g.file).is_absolute() or not path.is_relative_to(root):
            problem = f"figure file {g.file!r} lies outside the output directory; not embedded"
        elif not path.is_file():
            problem = f"figure file {g.file!r} is missing from the output directory"
        else:
            data = path.read_bytes()
            if not data.startswith(PNG_SIGNATURE):
                problem = f"figure file {g.file!r} is not a PNG image"
            else:
                png = data
        if problem is not None:
            log.warning("report: figure %r: %s", g.name, problem)
        out.append(_Image(g, fid, png, problem))
    return out


def _write_atomic(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)


# --------------------------------------------------------------------------- HTML

_CSS = """
:root {
  --fg: #1f2328; --muted: #59636e; --border: #d1d9e0; --head: #f6f8fa;
  --accent: #0969da; --stripe: #fafbfc; --warn-bg: #fff8c5; --warn-border: #d4a72c;
}
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body {
  margin: 0; background: #eef1f4; color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans",
        "Helvetica Neue", Arial, sans-serif;
}
main {
  max-width: 1200px; margin: 24px auto; padding: 28px 40px 56px; background: #fff;
  border: 1px solid var(--border); border-radius: 8px; overflow-wrap: break-word;
}
h1 { font-size: 1.9rem; margin: 0 0 4px; line-height: 1.25; }
h2 {
  font-size: 1.4rem; margin: 40px 0 12px; padding-bottom: 6px;
  border-bottom: 1px solid var(--border);
}
h3 { font-size: 1.1rem; margin: 24px 0 8px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono", Menlo,
  Consolas, monospace; font-size: 0.9em; }
.run-line { color: var(--muted); margin: 0 0 20px; }
.run-line span + span::before { content: "·"; margin: 0 8px; color: var(--border); }
nav.toc {
  background: var(--head); border: 1px solid var(--border); border-radius: 6px;
  padding: 12px 20px; margin: 16px 0 8px;
}
nav.toc h2 { font-size: 1rem; margin: 0 0 4px; padding: 0; border: 0; }
nav.toc ol { margin: 0; padding-left: 22px; }
nav.toc ol ol { padding-left: 20px; list-style: disc; font-size: 0.95em; }
nav.toc li { margin: 2px 0; }
ul.findings { padding-left: 22px; }
ul.findings li { margin: 6px 0; }
.empty { color: var(--muted); font-style: italic; }
.warning {
  background: var(--warn-bg); border: 1px solid var(--warn-border);
  border-left-width: 5px; border-radius: 6px; padding: 10px 14px; margin: 12px 0;
}
.warning ul { margin: 4px 0 0; padding-left: 20px; }
.table-wrap { overflow-x: auto; margin: 4px 0 12px; }
table { border-collapse: collapse; font-size: 0.9rem; }
table.compact { font-size: 0.82rem; }
.table-block { margin: 28px 0 0; }
.table-title { font-size: 1.05rem; margin: 0 0 2px; }
.table-caption { color: var(--muted); font-size: 0.9rem; margin: 0 0 8px; max-width: 80ch; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--border); vertical-align: top; }
table.compact th, table.compact td { padding: 4px 6px; }
thead th {
  background: var(--head); border-bottom: 2px solid #afb8c1; text-align: left;
  font-weight: 600; vertical-align: bottom; line-height: 1.25;
}
thead th.num { text-align: right; }
tbody tr:nth-child(even) { background: var(--stripe); }
tbody tr:hover { background: #eaf2fc; }
tbody td:first-child { font-weight: 500; min-width: 10ch; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
.null { color: #8c959f; }
table.kv td:first-child { font-family: ui-monospace, SFMono-Regular, "DejaVu Sans Mono",
  Menlo, Consolas, monospace; font-size: 0.88em; font-weight: 400; white-space: nowrap; }
table.kv td { word-break: break-word; }
figure { margin: 16px 0 36px; }
figure img {
  display: block; max-width: 100%; height: auto; border: 1px solid var(--border);
  border-radius: 4px;
}
figcaption { color: var(--fg); font-size: 0.92rem; margin-top: 8px; max-width: 80ch; }
figcaption .label { font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
footer { margin-top: 48px; color: var(--muted); font-size: 0.85rem; }
@media (max-width: 760px) {
  main { margin: 0; padding: 16px 16px 40px; border: 0; border-radius: 0; }
  h1 { font-size: 1.5rem; }
}
@media print {
  body { background: #fff; }
  main { border: 0; margin: 0; max-width: none; }
  figure, table { break-inside: avoid; }
  nav.toc { display: none; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


_NUM_CLASS = ' class="num"'
COMPACT_COLUMNS = 8
"""Tables with more columns than this are set compact (smaller type, tighter cells)."""


def _html_table(table: Table, element_id: str) -> str:
    numeric = [
        any(_is_number(r[j]) for r in table.rows)
        and all(_is_number(r[j]) or r[j] is None for r in table.rows)
        for j in range(len(table.columns))
    ]
    head = "".join(
        f'<th scope="col"{_NUM_CLASS if numeric[j] else ""}>{_e(c)}</th>'
        for j, c in enumerate(table.columns)
    )
    body = []
    for row in table.rows:
        cells = []
        for j, cell in enumerate(row):
            right = _is_number(cell) or (cell is None and numeric[j])
            classes = [c for c, on in (("num", right), ("null", cell is None)) if on]
            cls = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{cls}>{_e(format_cell(cell))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not table.rows:
        body.append(f'<tr><td class="empty" colspan="{max(len(table.columns), 1)}">'
                    "no rows</td></tr>")
    # Title and caption sit above the scrolling wrapper (a <caption> would scroll away with
    # a wide table on a narrow screen); aria attributes tie them to the table.
    tid, cid = f"{element_id}-title", f"{element_id}-caption"
    # many columns: smaller type and padding, so that a 15-column Table 1 fits 1,280 px
    kind = "results compact" if len(table.columns) > COMPACT_COLUMNS else "results"
    desc = f'<p class="table-caption" id="{cid}">{_e(table.caption)}</p>' if table.caption else ""
    described = f' aria-describedby="{cid}"' if table.caption else ""
    return (
        f'<div class="table-block"><h3 class="table-title" id="{tid}">{_e(table.title)}</h3>'
        f'{desc}<div class="table-wrap"><table id="{element_id}" class="{kind}" '
        f'aria-labelledby="{tid}"{described}>'
        f"<thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body)
        + "\n</tbody></table></div></div>"
    )


def _kv_table(
    element_id: str, label: str, header: tuple[str, str], items: Sequence[tuple[str, str]]
) -> str:
    if not items:
        return (f'<h3 id="{element_id}-title">{_e(label)}</h3><p id="{element_id}" class="empty">'
                f"No {_e(label.lower())} recorded.</p>")
    rows = "\n".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in items)
    return (
        f'<h3 id="{element_id}-title">{_e(label)}</h3>'
        f'<div class="table-wrap"><table id="{element_id}" class="kv" '
        f'aria-labelledby="{element_id}-title"><thead>'
        f'<tr><th scope="col">{_e(header[0])}</th><th scope="col">{_e(header[1])}</th>'
        f"</tr></thead><tbody>\n{rows}\n</tbody></table></div>"
    )


def _html_figure(img: _Image, number: int) -> str:
    g = img.figure
    label = f'<span class="label">Figure {number}.</span> '
    if img.png is not None:
        uri = "data:image/png;base64," + base64.b64encode(img.png).decode("ascii")
        alt = g.caption or g.name
        body = f'<img src="{uri}" alt="{_e(alt)}">'
    else:
        body = (f'<div class="warning" role="alert"><strong>Figure not available:</strong> '
                f"{_e(img.problem)}.</div>")
    return (f'<figure id="{img.element_id}">{body}'
            f"<figcaption>{label}{_e(g.caption or g.name)}</figcaption></figure>")


def render_html(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/report.html`` from ``out_dir/results.json`` and return its path.

    The page needs nothing else: PNG figures are embedded as base64 data URIs, the CSS is
    inline, and there is no JavaScript. A figure whose file is missing (or not a PNG, or
    outside ``out_dir``) is replaced by a visible warning; the page is still written.

    Raises:
        InputError: argument ``DIR`` when ``results.json`` is missing, not JSON, or does
            not match the schema (see :func:`load_results`).

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "results.json").write_text(json.dumps({"command": "train"}))
        >>> render_html(d) == d / "report.html"
        True
    """
    d = Path(out_dir)
    res = load_results(d)
    table_ids = _unique_ids("table", (t.name for t in res.tables))
    images = _load_images(d, res.figures)
    title = f"advgame {res.command} report"

    run_bits = []
    if res.created:
        run_bits.append(f"created {_e(res.created)}")
    run_bits.append(f"seed {_e(res.seed) if res.seed is not None else '—'}")
    if res.advgame_version:
        run_bits.append(f"advgame {_e(res.advgame_version)}")
    total = res.timings.get("total_s")
    if isinstance(total, int | float):
        run_bits.append(f"took {_e(_format_seconds(total))}")

    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="advgame.report">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body><main>",
        f'<header><h1>advgame <code>{_e(res.command)}</code> report</h1>',
        '<p class="run-line">' + "".join(f"<span>{b}</span>" for b in run_bits) + "</p>",
        "</header>",
    ]

    problems = [(img.element_id, img.figure.name, img.problem) for img in images if img.problem]
    if problems:
        items = "".join(f'<li><a href="#{fid}">{_e(name)}</a>: {_e(p)}</li>'
                        for fid, name, p in problems)
        n = len(problems)
        parts.append(f'<div class="warning" role="alert" id="warnings"><strong>{n} '
                     f'problem{"s" if n != 1 else ""} found while rendering this report'
                     f"</strong><ul>{items}</ul></div>")

    toc = ['<nav class="toc" aria-label="Contents"><h2>Contents</h2><ol>',
           '<li><a href="#findings">Findings</a></li>']
    if res.tables:
        toc.append('<li><a href="#tables">Tables</a><ol>')
        toc += [f'<li><a href="#{tid}-title">{_e(_short(t.title))}</a></li>'
                for t, tid in zip(res.tables, table_ids, strict=True)]
        toc.append("</ol></li>")
    if images:
        toc.append('<li><a href="#figures">Figures</a><ol>')
        toc += [f'<li><a href="#{img.element_id}">Figure {i}: '
                f"{_e(_short(img.figure.caption or img.figure.name))}</a></li>"
                for i, img in enumerate(images, 1)]
        toc.append("</ol></li>")
    toc.append('<li><a href="#run">Run details</a> (<a href="#config-title">configuration</a>, '
               '<a href="#versions-title">versions</a>, <a href="#timings-title">timings</a>)</li>')
    toc.append("</ol></nav>")
    parts += toc

    parts.append('<section id="findings"><h2>Findings</h2>')
    if res.summary:
        parts.append('<ul class="findings">' + "".join(f"<li>{_e(s)}</li>" for s in res.summary)
                     + "</ul>")
    else:
        parts.append('<p class="empty">No findings recorded.</p>')
    parts.append("</section>")

    if res.tables:
        parts.append('<section id="tables"><h2>Tables</h2>')
        parts += [_html_table(t, tid) for t, tid in zip(res.tables, table_ids, strict=True)]
        parts.append("</section>")

    if images:
        parts.append('<section id="figures"><h2>Figures</h2>')
        parts += [_html_figure(img, i) for i, img in enumerate(images, 1)]
        parts.append("</section>")

    facts = [("command", res.command), ("seed", "—" if res.seed is None else str(res.seed)),
             ("created", res.created or "—"), ("advgame", res.advgame_version or "—")]
    parts.append('<section id="run"><h2>Run details</h2><dl class="facts">'
                 + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>")
    parts.append(_kv_table("config", "Configuration", ("setting", "value"),
                           _flatten(res.config)))
    parts.append(_kv_table("versions", "Versions", ("package", "version"), [
        (str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in res.versions.items()
    ]))
    parts.append(_kv_table("timings", "Timings", ("step", "time"), [
        (str(k), _format_seconds(v)) for k, v in res.timings.items()
    ]))
    if res.data_keys:
        keys = ", ".join(f"<code>{_e(k)}</code>" for k in res.data_keys)
        parts.append(f"<p>Raw numbers behind the tables and figures are in "
                     f"<code>results.json</code> under <code>data</code>: {keys}.</p>")
    parts.append("</section>")
    parts.append("<footer>Rendered by <code>advgame.report</code> from "
                 "<code>results.json</code>.</footer></main></body></html>\n")
    return _write_atomic(d / "report.html", "\n".join(parts))


# --------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def _md(text: object, *, block: bool = False) -> str:
    """Escape text for GitHub Markdown, on one line (also inside a table cell).

    With ``block=True`` the text starts a block (paragraph, list item), so a leading
    ``#``, ``>``, ``-``, ``+``, ``=`` or ``1.`` is escaped too.
    """
    s = _MD_SPECIAL.sub(r"\\\1", str(text)).replace("&", "&amp;")
    s = re.sub(r"\r\n|\r|\n", "<br>", s)
    return re.sub(r"^([#>+\-=]|\d+[.)])", r"\\\1", s) if block else s


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str]:
    numeric = [bool(rows) and all(_is_number(r[j]) or r[j] is None for r in rows)
               for j in range(len(columns))]
    out = ["| " + " | ".join(_md(c) for c in columns) + " |",
           "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    for row in rows:
        out.append("| " + " | ".join(
            format_cell(c) if _is_number(c) or c is None else _md(format_cell(c)) for c in row
        ) + " |")
    return out


def render_markdown(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/report.md`` (GitHub-flavoured Markdown) and return its path.

    Tables become pipe tables (numbers formatted by :func:`format_cell`, right-aligned),
    figures relative image links to their PNG files (so ``report.md`` must stay next to
    them); a missing figure file becomes a warning line.

    Raises:
        InputError: argument ``DIR``, as :func:`render_html`.

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "results.json").write_text(json.dumps({"command": "train"}))
        >>> render_markdown(d).read_text().splitlines()[0]
        '# advgame train report'
    """
    d = Path(out_dir)
    res = load_results(d)
    images = _load_images(d, res.figures)
    lines = [f"# advgame {_md(res.command)} report", ""]
    bits = [f"created {_md(res.created)}" if res.created else None,
            f"seed {res.seed if res.seed is not None else '—'}",
            f"advgame {_md(res.advgame_version)}" if res.advgame_version else None]
    total = res.timings.get("total_s")
    if isinstance(total, int | float):
        bits.append(f"took {_format_seconds(total)}")
    lines += [" · ".join(b for b in bits if b), ""]
    problems = [img for img in images if img.problem]
    if problems:
        lines.append(f"> **Warning:** {len(problems)} problem(s) found while rendering:")
        lines += [f"> - {_md(img.figure.name)}: {_md(img.problem)}" for img in problems]
        lines.append("")
    lines += ["## Findings", ""]
    lines += [f"- {_md(s, block=True)}" for s in res.summary] or ["*No findings recorded.*"]
    lines.append("")
    if res.tables:
        lines += ["## Tables", ""]
        for t in res.tables:
            lines += [f"### {_md(t.title)}", ""]
            if t.caption:
                lines += [_md(t.caption, block=True), ""]
            lines += _md_table(t.columns, t.rows) if t.columns else ["*empty table*"]
            lines.append("")
    if images:
        lines += ["## Figures", ""]
        for i, img in enumerate(images, 1):
            g = img.figure
            if img.problem is None:
                lines.append(f"![{_md(g.caption or g.name)}]({quote(Path(g.file).as_posix())})")
            else:
                lines.append(f"> **Warning:** figure not available: {_md(img.problem)}.")
            lines += ["", f"*Figure {i}.* {_md(g.caption or g.name)}", ""]
    lines += ["## Run details", "", "### Configuration", ""]
    cfg = _flatten(res.config)
    lines += _md_table(["setting", "value"], cfg) if cfg else ["*No configuration recorded.*"]
    lines += ["", "### Versions", ""]
    ver = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in res.versions.items()]
    lines += _md_table(["package", "version"], ver) if ver else ["*No versions recorded.*"]
    lines += ["", "### Timings", ""]
    tim = [(str(k), _format_seconds(v)) for k, v in res.timings.items()]
    lines += _md_table(["step", "time"], tim) if tim else ["*No timings recorded.*"]
    lines.append("")
    return _write_atomic(d / "report.md", "\n".join(lines))


def render(out_dir: str | os.PathLike[str], fmt: Literal["html", "md"] = "html") -> Path:
    """Render the report of ``out_dir`` as ``"html"`` (report.html) or ``"md"`` (report.md).

    Example:
        >>> import json, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "results.json").write_text(json.dumps({"command": "certify"}))
        >>> render(d, fmt="md").suffix
        '.md'
    """
    if fmt == "html":
        return render_html(out_dir)
    if fmt == "md":
        return render_markdown(out_dir)
    raise InputError("fmt", f"must be 'html' or 'md', got {fmt!r}")
