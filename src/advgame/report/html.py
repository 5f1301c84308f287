"""The self-contained HTML report (inline CSS, figures as data URIs, no scripts)."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

from advgame.report.formatting import (
    _flatten,
    _format_seconds,
    _Image,
    _is_number,
    _load_images,
    _short,
    _unique_ids,
    format_cell,
)
from advgame.report.schema import Table, load_results
from advgame.storage import atomic_write_text

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
    return atomic_write_text(d / "report.html", "\n".join(parts))
