"""Tests of advgame.report (HTML / Markdown from results.json) and advgame.plots (PNGs).

The HTML is parsed with the standard library's html.parser into a small tree, and every
table, figure and number is compared with the results.json the test wrote.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pytest

from advgame import plots
from advgame.errors import InputError
from advgame.report import format_cell, load_results, render, render_html, render_markdown

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------- HTML tree

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str) -> list[Node]:
        return [n for n in self.iter() if n.tag == tag]

    def by_id(self, element_id: str) -> Node:
        found = [n for n in self.iter() if n.attrs.get("id") == element_id]
        assert len(found) == 1, f"expected one element with id={element_id!r}, got {len(found)}"
        return found[0]

    def has_class(self, cls: str) -> bool:
        return cls in self.attrs.get("class", "").split()


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if self.stack[-1].tag != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1].tag}>")
            while len(self.stack) > 1 and self.stack[-1].tag != tag:
                self.stack.pop()
        if len(self.stack) > 1:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html_text: str) -> Node:
    b = _TreeBuilder()
    b.feed(html_text)
    b.close()
    assert b.errors == [], b.errors
    assert len(b.stack) == 1, f"unclosed elements: {[n.tag for n in b.stack[1:]]}"
    return b.root


def table_cells(table: Node) -> tuple[list[str], list[list[str]]]:
    """(header texts, body rows of cell texts) of a <table>."""
    header = [th.text() for th in table.find_all("thead")[0].find_all("th")]
    rows = [[td.text() for td in tr.iter() if td.tag in ("td", "th")]
            for tr in table.find_all("tbody")[0].find_all("tr")]
    return header, rows


# --------------------------------------------------------------------------- fixtures


def expected_text(v: Any) -> str:
    """The documented cell formatting, written out independently of format_cell."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}"  # the test data stays within [1e-4, 1e6)
    return v


def base_results() -> dict[str, Any]:
    return {
        "command": "paper1",
        "advgame_version": "0.1.0",
        "created": "2026-11-21T23:59:00+00:00",
        "seed": 0,
        "config": {"eps": [0.05, 0.1], "norm": "inf", "solver": {"method": "exact",
                                                                  "lr": 1e-5}},
        "versions": {"python": "3.11.7", "torch": "2.13.0"},
        "timings": {"total_s": 12.3, "train_s": 4.5},
        "summary": ["PGD beats FGM on true accuracy.", "Defending costs 0.4 % clean accuracy."],
        "tables": [
            {"name": "table1", "title": "Table 1: defended accuracy on MNIST 0 vs 1",
             "caption": "eps = 0.1 (L-inf, pixel scale)",
             "columns": ["defense", "FGM true", "FGM approx", "n"],
             "rows": [["none", 0.5, 0.25, 100], ["equilibrium", 0.87654321, None, 100],
                      ["Gaussian", 1.0, 0.00015, 7]]},
            {"name": "solver_gap", "title": "Solver gap", "caption": "fast vs exact",
             "columns": ["n", "gap"], "rows": [[10, 0.0], [1000, 0.0312]]},
        ],
        "figures": [{"name": "eps_sweep", "file": "eps_sweep.png",
                     "caption": "Accuracy against eps."}],
        "data": {"eps": [0.0, 0.1]},
    }


def write_run(out: Path, results: dict[str, Any] | None = None, *, figure: bool = True) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    res = base_results() if results is None else results
    if figure:
        plots.accuracy_vs_eps(out / "eps_sweep.png", [0.0, 0.1, 0.2],
                              {"FGM true": [1.0, 0.6, 0.2], "FGM approx": [1.0, 0.5, 0.1]},
                              title="Accuracy vs eps")
    (out / "results.json").write_text(json.dumps(res), encoding="utf-8")
    return res


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, dict]:
    out = tmp_path / "run"
    return out, write_run(out)


# --------------------------------------------------------------------------- HTML


def test_structure_title_findings_contents(run_dir: tuple[Path, dict]) -> None:
    out, res = run_dir
    path = render_html(out)
    assert path == out / "report.html"
    doc = parse(path.read_text(encoding="utf-8"))
    assert doc.find_all("title")[0].text() == "advgame paper1 report"
    assert "paper1" in doc.find_all("h1")[0].text()
    findings = doc.by_id("findings")
    assert [li.text() for li in findings.find_all("li")] == res["summary"]
    for sec in ("tables", "figures", "run", "config", "versions", "timings"):
        doc.by_id(sec)
    toc = doc.find_all("nav")[0]
    links = {a.attrs["href"] for a in toc.find_all("a")}
    assert {"#findings", "#table-table1-title", "#table-solver-gap-title", "#figure-eps-sweep",
            "#run", "#config-title"} <= links
    ids = {n.attrs["id"] for n in doc.iter() if "id" in n.attrs}
    assert {h[1:] for h in links} <= ids, "every contents link has a target"
    # Order: findings before tables before figures before run details.
    order = [n.attrs["id"] for n in doc.iter() if "id" in n.attrs]
    assert order.index("findings") < order.index("table-table1") \
        < order.index("figure-eps-sweep") < order.index("config")
    # Self-contained: no scripts, nothing loaded from elsewhere, every link in-page.
    assert doc.find_all("script") == [] and doc.find_all("link") == []
    assert all(n.attrs["src"].startswith("data:") for n in doc.iter() if "src" in n.attrs)
    assert all(n.attrs["href"].startswith("#") for n in doc.iter() if "href" in n.attrs)
    assert doc.find_all("style"), "CSS must be inline"
    assert not list(out.glob(".report.html.*")), "temporary file left behind"


def test_every_table_matches_results_json(run_dir: tuple[Path, dict]) -> None:
    out, res = run_dir
    doc = parse(render_html(out).read_text(encoding="utf-8"))
    for t in res["tables"]:
        node = doc.by_id("table-" + t["name"].replace("_", "-"))
        assert node.tag == "table"
        assert doc.by_id(node.attrs["aria-labelledby"]).text() == t["title"]
        assert doc.by_id(node.attrs["aria-describedby"]).text() == t["caption"]
        header, rows = table_cells(node)
        assert header == t["columns"]
        assert rows == [[expected_text(v) for v in row] for row in t["rows"]]
    header, rows = table_cells(doc.by_id("table-table1"))
    assert rows[1][1] == "0.8765" and rows[1][2] == "—" and rows[2][1] == "1.0000"
    assert rows[0][3] == "100"


def test_run_details_config_versions_timings(run_dir: tuple[Path, dict]) -> None:
    out, res = run_dir
    doc = parse(render_html(out).read_text(encoding="utf-8"))
    _, cfg = table_cells(doc.by_id("config"))
    assert {k: v for k, v in cfg} == {"eps": "[0.05, 0.1]", "norm": "inf",
                                     "solver.method": "exact", "solver.lr": "1e-05"}
    _, ver = table_cells(doc.by_id("versions"))
    assert {k: v for k, v in ver} == res["versions"]
    _, tim = table_cells(doc.by_id("timings"))
    assert [k for k, _ in tim] == ["total_s", "train_s"]
    assert tim[0][1].startswith("12.30")
    run = doc.by_id("run").text()
    assert "seed" in run and "0.1.0" in run


def test_figures_are_embedded_pngs(run_dir: tuple[Path, dict]) -> None:
    out, res = run_dir
    doc = parse(render_html(out).read_text(encoding="utf-8"))
    for g in res["figures"]:
        fig = doc.by_id("figure-" + g["name"].replace("_", "-"))
        assert fig.tag == "figure"
        (img,) = fig.find_all("img")
        prefix = "data:image/png;base64,"
        assert img.attrs["src"].startswith(prefix)
        data = base64.b64decode(img.attrs["src"][len(prefix):], validate=True)
        assert data == (out / g["file"]).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert g["caption"] in fig.find_all("figcaption")[0].text()
        assert img.attrs.get("alt")
    assert doc.find_all("img") and not [n for n in doc.iter() if n.has_class("warning")]


def test_hostile_strings_are_escaped(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    img = '<img src=x onerror=alert(1)>'
    res = base_results()
    res["command"] = evil
    res["summary"] = [img, "a & b < c > d \"quoted\" 'single'"]
    res["tables"] = [{"name": '"><b>bold</b>', "title": evil, "caption": img,
                      "columns": ["</th><th>x", "&amp;"],
                      "rows": [["</td></tr></table>" + evil, 0.5]]}]
    res["figures"] = [{"name": "f", "file": "eps_sweep.png", "caption": '" onload="alert(1)'}]
    res["config"] = {evil: img}
    res["versions"] = {"<b>": "</table>"}
    write_run(tmp_path, res)
    text = render_html(tmp_path).read_text(encoding="utf-8")
    for raw in ("<script", "<b>", "<img src=x", '" onload='):
        assert raw not in text, raw
    doc = parse(text)
    assert doc.find_all("script") == [] and doc.find_all("b") == []
    assert len(doc.find_all("img")) == 1  # the real figure only
    assert evil in doc.find_all("title")[0].text()
    assert [li.text() for li in doc.by_id("findings").find_all("li")] == res["summary"]
    table = [n for n in doc.find_all("table") if n.has_class("results")][0]
    assert table.attrs["id"].startswith("table-")
    header, rows = table_cells(table)
    assert header == ["</th><th>x", "&amp;"]
    assert rows == [["</td></tr></table>" + evil, "0.5000"]]
    _, cfg = table_cells(doc.by_id("config"))
    assert cfg == [[evil, img]]
    assert '" onload="alert(1)' in doc.find_all("figcaption")[0].text()
    assert all(set(n.attrs) <= {"id", "class", "href", "src", "alt", "lang", "charset",
                                "name", "content", "scope", "colspan", "role", "aria-label",
                                "aria-labelledby", "aria-describedby"}
               for n in doc.iter())
    assert doc.by_id(table.attrs["aria-labelledby"]).text() == evil


def test_missing_figure_gives_warning_not_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    res = base_results()
    res["figures"].append({"name": "gone", "file": "gone.png", "caption": "never written"})
    write_run(tmp_path, res)
    with caplog.at_level(logging.WARNING, logger="advgame.report"):
        doc = parse(render_html(tmp_path).read_text(encoding="utf-8"))
    fig = doc.by_id("figure-gone")
    assert fig.find_all("img") == []
    warn = [n for n in fig.iter() if n.has_class("warning")]
    assert warn and "gone.png" in warn[0].text() and "missing" in warn[0].text()
    assert "never written" in fig.text()
    banner = doc.by_id("warnings")
    assert "gone.png" in banner.text()
    assert any("gone.png" in r.getMessage() for r in caplog.records)
    # The other figure is still embedded.
    assert doc.by_id("figure-eps-sweep").find_all("img")


@pytest.mark.parametrize(
    ("file", "content", "problem"),
    [("notpng.png", b"GIF89a....", "not a PNG"), ("../outside.png", PNG_SIGNATURE, "outside")],
)
def test_unusable_figure_files_give_warnings(
    tmp_path: Path, file: str, content: bytes, problem: str
) -> None:
    out = tmp_path / "run"
    res = base_results()
    res["figures"] = [{"name": "bad", "file": file, "caption": "c"}]
    write_run(out, res, figure=False)
    (out / file).write_bytes(content)
    doc = parse(render_html(out).read_text(encoding="utf-8"))
    fig = doc.by_id("figure-bad")
    assert fig.find_all("img") == [] and problem in fig.text()


def test_minimal_results_and_empty_sections(tmp_path: Path) -> None:
    write_run(tmp_path, {"command": "train"}, figure=False)
    doc = parse(render_html(tmp_path).read_text(encoding="utf-8"))
    assert "No findings recorded" in doc.by_id("findings").text()
    assert doc.find_all("table") == []
    assert "No configuration recorded" in doc.by_id("config").text()


def test_ids_are_unique_when_names_slug_alike(tmp_path: Path) -> None:
    res = base_results()
    t = res["tables"][1]
    res["tables"] = [dict(t, name="a b"), dict(t, name="a-b"), dict(t, name="***")]
    write_run(tmp_path, res)
    doc = parse(render_html(tmp_path).read_text(encoding="utf-8"))
    for i in ("table-a-b", "table-a-b-2", "table-item"):
        assert doc.by_id(i).tag == "table"
    ids = [n.attrs["id"] for n in doc.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------- bad input


def test_missing_results_json_raises_input_error_naming_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="results.json") as exc:
        render_html(tmp_path)
    assert exc.value.argument == "DIR"
    with pytest.raises(InputError, match="not a directory") as exc:
        render_markdown(tmp_path / "nope")
    assert exc.value.argument == "DIR"


def test_invalid_json_raises_input_error(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"command": "paper1", ', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON.*line 1") as exc:
        render(tmp_path)
    assert exc.value.argument == "DIR"
    (tmp_path / "results.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="UTF-8") as exc:
        render(tmp_path)
    assert exc.value.argument == "DIR"


def _set(path: str, value: Any) -> dict[str, Any]:
    res = base_results()
    target: Any = res
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return res


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("command", _DELETE, "'command' is missing"),
        ("command", 3, "command must be a string"),
        ("seed", "zero", "seed must be an integer"),
        ("tables", {"a": 1}, "tables must be an array"),
        ("tables.0.rows.1", [1, 2], r"tables\[0\]\.rows\[1\] has 2 cells but .* has 4"),
        ("tables.0.rows.0.1", {"x": 1}, r"tables\[0\]\.rows\[0\]\[1\] must be a string, a "
                                        "number or null"),
        ("tables.0.columns", "abc", r"tables\[0\]\.columns must be an array"),
        ("tables.1.name", "table1", r"tables\[1\]\.name 'table1' is already used"),
        ("tables.0.name", _DELETE, r"tables\[0\] has no field 'name'"),
        ("figures.0.file", None, r"figures\[0\]\.file must be a string"),
        ("summary", ["ok", 5], r"summary\[1\] must be a string"),
        ("timings.total_s", "12s", "timings.total_s must be a number"),
        ("config", [1, 2], "config must be an object"),
    ],
)
def test_schema_violations_name_the_field(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    write_run(tmp_path, _set(path, value), figure=False)
    with pytest.raises(InputError, match=message) as exc:
        render_html(tmp_path)
    assert exc.value.argument == "DIR"
    assert "does not match the results schema" in str(exc.value)
    with pytest.raises(InputError, match=message):
        render_markdown(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_top_level_must_be_object(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputError, match="top level must be an object"):
        load_results(tmp_path)


def test_render_dispatch_and_bad_format(run_dir: tuple[Path, dict]) -> None:
    out, _ = run_dir
    assert render(out) == out / "report.html"
    assert render(out, fmt="md") == out / "report.md"
    with pytest.raises(InputError, match="'html' or 'md'") as exc:
        render(out, fmt=cast(Any, "pdf"))
    assert exc.value.argument == "fmt"


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.5, "0.5000"), (0.87654321, "0.8765"), (1.0, "1.0000"), (0.0, "0.0000"),
     (-0.0, "0.0000"), (-0.25, "-0.2500"), (12.3456789, "12.3457"), (3, "3"), (0, "0"),
     (10**12, "1000000000000"), (None, "—"), (True, "true"), (False, "false"),
     ("FGM", "FGM"), ("", ""), (1.23456e-5, "1.2346e-05"), (-2e-7, "-2.0000e-07"),
     (3.5e7, "3.5000e+07"), (float("nan"), "NaN"), (float("inf"), "∞"),
     (float("-inf"), "−∞")],
)
def test_format_cell(value: Any, text: str) -> None:
    assert format_cell(value) == text


# --------------------------------------------------------------------------- Markdown


def test_markdown_contains_tables_and_figure_links(run_dir: tuple[Path, dict]) -> None:
    out, res = run_dir
    md = render_markdown(out).read_text(encoding="utf-8")
    lines = md.splitlines()
    assert lines[0] == "# advgame paper1 report"
    for s in res["summary"]:
        assert f"- {s}" in lines
    for t in res["tables"]:
        assert f"### {t['title']}" in lines
        head = "| " + " | ".join(t["columns"]) + " |"
        i = lines.index(head)
        assert set(lines[i + 1]) <= set("|-:")
        assert lines[i + 1].count("|") == len(t["columns"]) + 1
        for k, row in enumerate(t["rows"]):
            assert lines[i + 2 + k] == "| " + " | ".join(expected_text(v) for v in row) + " |"
    assert "![Accuracy against eps\\.](eps_sweep.png)" in md or \
        "![Accuracy against eps.](eps_sweep.png)" in md
    assert "| solver.method | exact |" in lines
    assert "advgame 0.1.0" in lines[2]
    assert "data:image" not in md


def test_markdown_escapes_and_warns(tmp_path: Path) -> None:
    res = base_results()
    res["summary"] = ["<script>alert(1)</script> | pipe", "# not a heading"]
    res["tables"][1]["rows"] = [["a|b\nc", 0.5]]
    res["figures"] = [{"name": "gone", "file": "my plot.png", "caption": "x"}]
    write_run(tmp_path, res, figure=False)
    md = render_markdown(tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in md
    assert "- \\# not a heading" in md.splitlines()
    assert "| a\\|b<br>c | 0.5000 |" in md
    assert "Warning" in md and "my plot.png" in md
    (tmp_path / "my plot.png").write_bytes(PNG_SIGNATURE)
    md = render_markdown(tmp_path).read_text(encoding="utf-8")
    assert "](my%20plot.png)" in md


# --------------------------------------------------------------------------- plots


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _all_plots(d: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    n = np.array([10, 100, 1000])
    return [
        plots.accuracy_vs_eps(d / "a.png", [0, 0.1, 0.2], {"FGM true": [1, 0.5, None],
                                                          "FGM approx": [1, 0.4, 0.1]},
                              title="t", styles={"FGM true": {"color": "black"}},
                              reference={"chance": 0.5}),
        plots.certified_accuracy_vs_radius(d / "c.png", rng.random(50), rng.random(50) < 0.8),
        plots.certified_accuracy_vs_radius(d / "c2.png", {"σ=0.25": [0.1, 0.2], "σ=0.5": [0.3]},
                                           {"σ=0.25": [True, False], "σ=0.5": [True]}),
        plots.heatmap(d / "h.png", [[0.1, np.nan], [0.5, 0.2]], ["u0", "u1"], ["c", "FGSM-1"],
                      title="E", vmin=0, vmax=1, colorbar_label="error"),
        plots.payoff_heatmap(d / "p.png", rng.random((3, 2)), ["d1", "d2", "d3"], ["a1", "a2"],
                             [0.5, 0.5, 0.0], [1.0, 0.0], value=0.5),
        plots.payoff_heatmap(d / "p2.png", [[1.0]], ["d"], ["a"]),
        plots.convergence(d / "n.png", n, {"gap": rng.random((5, 3)), "one": [0.3, 0.1, 0.0]},
                          title="t", reference_lines={"VC": [1, 0.3, 0.1], "level": 0.05}),
        plots.convergence(d / "it.png", [1, 2, 3], {"value": [0.2, 0.4, 0.5]}, title="solver",
                          xlabel="iteration", ylabel="bound", logx=False, logy=False),
        plots.example_images(d / "e1.png", {"clean": rng.random((3, 1, 8, 8)),
                                            "FGM": rng.random((3, 1, 8, 8))},
                             captions={"FGM": ["a", "b", "c"]}, column_labels=["x", "y", "z"]),
        plots.example_images(d / "e3.png", {"clean": rng.random((2, 3, 8, 8))}),
        plots.bars(d / "b.png", ["clean", "FGM"], {"none": [0.9, 0.1], "eq": [0.8, None]},
                   title="t"),
    ]


@pytest.fixture(scope="module")
def all_plots(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[int]]:
    before = plt.get_fignums()
    paths = _all_plots(tmp_path_factory.mktemp("figs"))
    return paths, before


def test_every_plot_writes_a_png_and_leaves_no_open_figure(
    all_plots: tuple[list[Path], list[int]],
) -> None:
    paths, before = all_plots
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0
        w, h = _png_size(p)
        assert w >= 100 and h >= 100, (p.name, w, h)
    assert plt.get_fignums() == before
    doc_width = _png_size(paths[0])[0]
    assert 500 <= doc_width <= 1400, "figure width should suit a report page at ~110 dpi"


def test_plots_embed_in_a_report(
    tmp_path: Path, all_plots: tuple[list[Path], list[int]]
) -> None:
    paths = [Path(shutil.copy(p, tmp_path)) for p in all_plots[0]]
    res = base_results()
    res["figures"] = [{"name": p.stem, "file": p.name, "caption": p.stem} for p in paths]
    write_run(tmp_path, res, figure=False)
    doc = parse(render_html(tmp_path).read_text(encoding="utf-8"))
    assert len(doc.find_all("img")) == len(paths)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda d: plots.accuracy_vs_eps(d / "x.png", [0, 1], {"a": [1]}, title="t"),
         "curves['a']"),
        (lambda d: plots.accuracy_vs_eps(d / "x.png", [0, 1], {}, title="t"), "curves"),
        (lambda d: plots.accuracy_vs_eps(d / "x.pdf", [0], {"a": [1]}, title="t"), "path"),
        (lambda d: plots.accuracy_vs_eps(d / "x.png", [0], {"a": [1]}, title="t",
                                         styles={"b": {}}), "styles"),
        (lambda d: plots.accuracy_vs_eps(d / "x.png", cast(Any, ["a"]), {"a": [1]},
                                         title="t"), "eps"),
        (lambda d: plots.certified_accuracy_vs_radius(d / "x.png", [0.1, 0.2], [True]),
         "correct"),
        (lambda d: plots.certified_accuracy_vs_radius(d / "x.png", [0.1], [0.5]), "correct"),
        (lambda d: plots.heatmap(d / "x.png", [[1, 2]], ["r"], ["c"], title="t"), "col_labels"),
        (lambda d: plots.heatmap(d / "x.png", [1, 2], ["r"], ["c"], title="t"), "matrix"),
        (lambda d: plots.payoff_heatmap(d / "x.png", [[1, 2]], ["r"], ["a", "b"],
                                        [1.0], [0.7, 0.7]), "col_strategy"),
        (lambda d: plots.convergence(d / "x.png", [1, 2], {"s": [1, 2, 3]}, title="t"),
         "series['s']"),
        (lambda d: plots.convergence(d / "x.png", [1, 2], {"s": [1, 2]}, title="t",
                                     reference_lines={"r": [1]}), "reference_lines['r']"),
        (lambda d: plots.example_images(d / "x.png", {"a": np.zeros((2, 2, 4, 4))}),
         "rows['a']"),
        (lambda d: plots.example_images(d / "x.png", {"a": np.full((1, 1, 4, 4), 2.0)}),
         "rows['a']"),
        (lambda d: plots.example_images(d / "x.png", {"a": np.zeros((2, 1, 4, 4)),
                                                      "b": np.zeros((3, 1, 4, 4))}), "rows['b']"),
        (lambda d: plots.bars(d / "x.png", ["a", "b"], {"s": [1]}, title="t"), "series['s']"),
    ],
)
def test_plots_reject_bad_input_naming_the_argument(
    tmp_path: Path, call: Any, argument: str
) -> None:
    with pytest.raises(InputError) as exc:
        call(tmp_path)
    assert exc.value.argument == argument
    assert not (tmp_path / "x.png").exists()


def test_true_and_approx_curves_share_colour_and_differ_in_dash() -> None:
    st = plots.style._line_styles(["FGM true", "FGM approx", "PGD (true)", "PGD (approx)", "none"],
                            {"none": {"color": "gray"}})
    assert st["FGM true"]["color"] == st["FGM approx"]["color"]
    assert st["PGD (true)"]["color"] == st["PGD (approx)"]["color"] != st["FGM true"]["color"]
    assert st["FGM true"]["linestyle"] == "-" and st["FGM approx"]["linestyle"] == "--"
    assert st["none"]["color"] == "gray"


def test_certified_curve_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    radii = np.round(rng.random(40), 2)
    radii[:3] = [np.nan, -1.0, 0.0]
    correct = rng.random(40) < 0.7
    xs, ys = plots.curves._certified_curve(radii, correct)
    assert xs[0] == 0 and np.all(np.diff(xs) > 0)
    ok = correct & np.isfinite(radii) & (radii >= 0)
    for r in np.linspace(0, 1.1, 300):
        brute = np.sum(ok & (radii >= r)) / radii.size
        j = np.searchsorted(xs, r, side="left")  # value on (xs[j-1], xs[j]]
        drawn = ys[j] if j < xs.size else 0.0
        assert drawn == pytest.approx(brute), r
