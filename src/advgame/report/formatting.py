"""Formatting shared by the HTML and Markdown reports: table cells (:func:`format_cell`),
element ids (:func:`slug`), configuration rows, durations, and the figures' PNG files."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advgame.report.schema import PNG_SIGNATURE, Cell, Figure, log

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

