"""The Markdown report (GitHub-flavoured tables, figures as relative image links)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from advgame.report.formatting import (
    _flatten,
    _format_seconds,
    _is_number,
    _load_images,
    format_cell,
)
from advgame.report.schema import Cell, load_results
from advgame.storage import atomic_write_text

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
    return atomic_write_text(d / "report.md", "\n".join(lines))
