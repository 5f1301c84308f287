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

The package: ``schema`` (results.json and its checks), ``formatting`` (cells, ids),
``html`` and ``markdown`` (the two renderers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from advgame.errors import InputError
from advgame.report.formatting import format_cell, slug
from advgame.report.html import render_html
from advgame.report.markdown import render_markdown
from advgame.report.schema import Figure, Results, Table, load_results

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
