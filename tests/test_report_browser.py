"""End-to-end check of report.html in a real browser (headless Chromium).

Renders a realistic paper1-style report (several tables, every kind of figure from
``advgame.plots``, one missing figure), opens it with ``chromium --headless``, and checks
that the DOM loaded with every table and figure, that the browser reported no errors for
the page, and that the screenshot is a non-blank PNG.

Skipped when Chromium is not installed; ``scripts/install-browser.sh`` installs it.
Run only these tests with ``pytest -m browser``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image  # a dependency of matplotlib

from advgame import plots
from advgame.report import render_html

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find_chromium() -> str | None:
    env = os.environ.get("ADVGAME_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _find_chromium()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed; run scripts/install-browser.sh "
        "(apt-get install -y chromium) or set ADVGAME_CHROMIUM to a Chromium binary",
    ),
]


def write_realistic_run(out: Path) -> dict:
    """A paper1-like output directory: results.json with tables and real figures."""
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    eps = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    e = np.array(eps)
    curves = {
        "no defense FGM true": np.exp(-e * 14), "no defense FGM approx": np.exp(-e * 17),
        "equilibrium FGM true": np.exp(-e * 5), "equilibrium FGM approx": np.exp(-e * 6),
        "equilibrium PGD true": np.exp(-e * 7),
    }
    plots.accuracy_vs_eps(out / "eps_sweep.png", eps, curves,
                          title="Defended accuracy against ε, MNIST 0 vs 1",
                          reference={"chance": 0.5})
    n = np.array([10, 30, 100, 300, 1000, 3000])
    gaps = np.abs(rng.normal(1.0, 0.3, (20, n.size))) / np.sqrt(n)
    plots.convergence(out / "convergence_n.png", n, {"Φ(v*) − Φ(v_n)": gaps},
                      title="Finite-sample equilibrium defense: convergence in n",
                      reference_lines={"VC bound √((d+1)/n)": np.sqrt(785 / n),
                                       "Hoeffding exp(−2nt²), t = 0.05": np.exp(-0.005 * n)})
    radii = np.abs(rng.normal(0.5, 0.3, 300))
    correct = rng.random(300) < 0.9
    plots.certified_accuracy_vs_radius(out / "certified.png", radii, correct,
                                       label="Gaussian σ = 0.25",
                                       title="Certified accuracy of Gaussian smoothing")
    x = rng.random((4, 1, 28, 28)) * 0.2
    x[:, :, 6:22, 12:16] = 0.95
    plots.example_images(out / "examples.png",
                         {"clean": x, "FGM": np.clip(x + 0.1 * rng.choice([-1, 1], x.shape), 0, 1),
                          "defended": np.clip(x + 0.05, 0, 1)},
                         captions={"clean": ["pred 1 ✓"] * 4, "FGM": ["pred 0 ✗"] * 4,
                                   "defended": ["pred 1 ✓"] * 4},
                         title="Examples: clean, attacked (FGM ε = 0.1), defended")
    payoff = rng.random((3, 4))
    plots.payoff_heatmap(out / "payoff.png", payoff, ["none", "equilibrium shift", "Gaussian"],
                         ["FGM", "PGD", "AttNet", "transfer"], [0.0, 0.7, 0.3],
                         [0.0, 0.6, 0.4, 0.0], value=0.41)
    err = np.clip(rng.random((4, 5)) * 0.6, 0, 1)
    err[0, 0] = np.nan
    plots.heatmap(out / "cat_and_mouse.png", err, [f"u{k}" for k in range(4)],
                  ["clean"] + [f"FGSM-{j}" for j in range(1, 5)],
                  title="Cat-and-mouse: test error of u_k on FGSM-j", xlabel="test set",
                  ylabel="model", colorbar_label="test error", vmin=0, vmax=1)
    plots.bars(out / "defenses.png", ["clean", "FGM", "PGD"],
               {"none": [0.999, 0.247, 0.120], "Gaussian": [0.996, 0.441, 0.371],
                "equilibrium": [0.995, 0.607, 0.497]},
               title="Accuracy by defense and attack (ε = 0.1)")
    results = {
        "command": "paper1",
        "advgame_version": "0.1.0",
        "created": "2026-11-21T23:59:00+00:00",
        "seed": 0,
        "config": {"data": {"dataset": "mnist", "pair": [0, 1], "n_train": 1000},
                   "eps": [0.05, 0.1, 0.2], "norm_a": "inf", "norm_d": "inf", "eps_d": 0.1,
                   "solver": {"method": "exact", "time_limit_s": 60, "lr": 1e-5},
                   "quick": False},
        "versions": {"python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.6",
                     "scipy": "1.17.1"},
        "timings": {"total_s": 312.4, "train_s": 45.1, "attacks_s": 12.0, "solver_s": 250.3},
        "summary": [
            "The equilibrium defense raises FGM true accuracy at ε = 0.1 from 0.2466 to "
            "0.6065, and costs 0.0040 of clean accuracy.",
            "PGD beats FGM against every defense (true accuracy lower by 0.05–0.12).",
            "The linear model is faithful on 92 % of test points at ε = 0.05 but only on 41 % "
            "at ε = 0.2.",
        ],
        "tables": [
            {"name": "table1", "title": "Table 1: defended accuracy on MNIST 0 vs 1 (ε = 0.1)",
             "caption": "Rows are defenses, columns attacks × {true, approximate} accuracy. "
                        "ε is the L∞ attack budget on the [0, 1] pixel scale; eps_d = 0.1.",
             "columns": ["defense", "clean", "FGM true", "FGM approx", "PGD true",
                         "PGD approx"],
             "rows": [["no defense (v = 0)", 0.9991, 0.2466, 0.1827, 0.1203, None],
                      ["Gaussian σ = 0.25", 0.9962, 0.4410, None, 0.3712, None],
                      ["equilibrium (exact)", 0.9951, 0.6065, 0.5488, 0.4966, 0.4512],
                      ["equilibrium (fast)", 0.9949, 0.5979, 0.5401, 0.4870, 0.4433],
                      ["equilibrium (mixed, 3 maximizers)", 0.9950, 0.6012, 0.5460, 0.4921,
                       0.4490]]},
            {"name": "linearity", "title": "Linearity diagnostics",
             "caption": "Share of test points where the local linear model is faithful.",
             "columns": ["eps", "same region", "labels agree", "one hyperplane", "n"],
             "rows": [[0.05, 0.9210, 0.9870, 0.9400, 2000], [0.1, 0.7135, 0.9500, 0.8010, 2000],
                      [0.2, 0.4120, 0.8630, 0.5530, 2000]]},
            {"name": "solver_gap", "title": "Solver optimality gap",
             "caption": "fast vs exact on the same samples; time in seconds.",
             "columns": ["n", "exact objective", "fast objective", "gap", "exact time (s)",
                         "fast time (s)"],
             "rows": [[100, 0.71, 0.71, 0.0, 0.8, 0.05], [1000, 0.652, 0.649, 0.003, 41.2, 0.4],
                      [5000, None, 0.6377, None, None, 1.9]]},
        ],
        "figures": [
            {"name": "eps_sweep", "file": "eps_sweep.png",
             "caption": "True (solid) and linearized (dashed) accuracy against the attack "
                        "budget ε, per defense."},
            {"name": "convergence_n", "file": "convergence_n.png",
             "caption": "Gap Φ(v*) − Φ(v_n) on held-out data against n (20 draws, mean and "
                        "10–90 % band) beside the VC bound and the Hoeffding rate."},
            {"name": "certified", "file": "certified.png",
             "caption": "Certified accuracy of Gaussian smoothing against the L2 radius."},
            {"name": "examples", "file": "examples.png",
             "caption": "Four test digits: clean, under FGM, and with the equilibrium shift."},
            {"name": "payoff", "file": "payoff.png",
             "caption": "Empirical game: payoff matrix with the equilibrium strategies."},
            {"name": "cat_and_mouse", "file": "cat_and_mouse.png",
             "caption": "Cat-and-mouse error matrix E[k][j] (grey: not evaluated)."},
            {"name": "defenses", "file": "defenses.png",
             "caption": "Table 1 as bars: clean, FGM and PGD accuracy per defense."},
            {"name": "pgd_sweep", "file": "pgd_sweep.png",
             "caption": "This figure was not written (the run was interrupted)."},
        ],
        "data": {"eps": eps, "table1": {}},
    }
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2),
                                      encoding="utf-8")
    return results


def _run_chromium(*args: str, profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-extensions", "--hide-scrollbars",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _console_errors(stderr: str) -> list[str]:
    """Lines where Chromium reports a JavaScript/console error or a failed resource load."""
    pats = (r":CONSOLE[:(]\d+", r"Uncaught", r"net::ERR_", r"Failed to load resource",
            r"Refused to", r"Not allowed to load local resource")
    return [ln for ln in stderr.splitlines() if any(re.search(p, ln) for p in pats)]


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.img_srcs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids[str(a["id"])] = tag
        if tag == "img":
            self.img_srcs.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    results = write_realistic_run(out)
    render_html(out)
    return out, results


def test_dom_loads_with_every_table_and_figure(
    rendered: tuple[Path, dict], tmp_path: Path
) -> None:
    out, results = rendered
    proc = _run_chromium("--dump-dom", (out / "report.html").as_uri(), profile=tmp_path / "p")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Ids()
    dom.feed(proc.stdout)
    assert "advgame" in proc.stdout and "paper1" in proc.stdout
    for t in results["tables"]:
        assert dom.ids.get(f"table-{t['name'].replace('_', '-')}") == "table", t["name"]
    for g in results["figures"]:
        assert dom.ids.get(f"figure-{g['name'].replace('_', '-')}") == "figure", g["name"]
    assert len(dom.img_srcs) == len(results["figures"]) - 1  # one figure file is missing
    assert all(s.startswith("data:image/png;base64,") for s in dom.img_srcs)
    assert dom.scripts == 0
    assert "warnings" in dom.ids
    assert _console_errors(proc.stderr) == []


def test_console_error_detection_works(tmp_path: Path) -> None:
    """Control: the error check above is not vacuous, it sees errors on a broken page."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom-log");'
                    'throw new Error("boom-uncaught");</script></body></html>', encoding="utf-8")
    proc = _run_chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p")
    errors = _console_errors(proc.stderr)
    assert any("boom-uncaught" in e for e in errors), proc.stderr[-2000:]


def test_screenshot_is_a_non_blank_png(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = rendered
    shot = tmp_path / "report.png"
    proc = _run_chromium(f"--screenshot={shot}", "--window-size=1280,2000",
                         (out / "report.html").as_uri(), profile=tmp_path / "p")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (1280, 2000)
        px = np.asarray(im.convert("RGB"))
    rgb = px.astype(float)
    assert rgb.std() > 10, "screenshot is (nearly) one colour"
    dark = (rgb.mean(axis=-1) < 100).mean()
    assert dark > 0.002, f"too little text or graphics on the page ({dark:.4%} dark pixels)"
    colours = np.unique(px[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 50, "no figure seems to be drawn"
    assert _console_errors(proc.stderr) == []
    keep = os.environ.get("ADVGAME_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


# ------------------------------------------------------------------ the page fits 1,280 px

MEASURE = """<script>
(() => {
  const tables = [...document.querySelectorAll('.table-wrap')].map(w => {
    const t = w.querySelector('table');
    const lines = [...t.querySelectorAll('tbody td:first-child')].map(td => {
      const r = document.createRange();
      r.selectNodeContents(td);
      return new Set([...r.getClientRects()].map(q => Math.round(q.top))).size;
    });
    return {id: t.id, scroll: w.scrollWidth, client: w.clientWidth,
            label_lines: Math.max(0, ...lines)};
  });
  const pre = document.createElement('pre');
  pre.id = 'advgame-measure';
  pre.textContent = JSON.stringify({page: document.documentElement.scrollWidth,
                                    view: window.innerWidth, tables: tables});
  document.body.appendChild(pre);
})();
</script>"""


def measure_layout(report: Path, profile: Path, width: int = 1280) -> dict:
    """Open a copy of ``report`` with a measuring script at ``width`` px: the page's and
    every table wrapper's scroll and client widths, and the most lines a row label takes."""
    page = report.resolve().with_name("measured.html")
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
                    encoding="utf-8")
    proc = _run_chromium("--dump-dom", f"--window-size={width},900", page.as_uri(),
                         profile=profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'<pre id="advgame-measure">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stdout[-2000:]
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


def wide_table_run(out: Path) -> None:
    """A report whose Table 1 has paper1's full set of 15 columns and its row labels."""
    out.mkdir(parents=True, exist_ok=True)
    columns = ["defense", "clean", "clean approx", "FGM true", "FGM approx",
               "FGM approx no box", "FGM clip true", "PGD true", "PGD approx", "PGD adaptive",
               "AA adaptive", "BPDA-PGD", "worst case", "outside box"]
    labels = ["none", "Gauss vote", "Gauss payoff", "v_n box", "v_n box mix(3)",
              "v_n box clean≤1pt", "v_n box clipped", "v_n paper", "v_n paper clean≤1pt",
              "median 3x3", "bit depth 3"]
    rows = [[lab, *[0.1234 + 0.01 * i for i in range(len(columns) - 1)]] for lab in labels]
    (out / "results.json").write_text(json.dumps({
        "command": "paper1", "seed": 0, "summary": [],
        "tables": [{"name": "table1_eps_a_0.2_eps_d_0.1",
                    "title": "Table 1 — mnist-5k 0 vs 1: eps_A=0.2 (Linf), eps_D=0.1 (Linf)",
                    "caption": "Accuracy on 200 test images (100 of class 0, 100 of class "
                               "1). true = the network on the perturbed input; " * 4,
                    "columns": columns, "rows": rows}],
        "figures": []}), encoding="utf-8")


def assert_fits(layout: dict, max_label_lines: int = 2) -> None:
    assert layout["view"] == 1280
    assert layout["page"] <= 1280, f"the page scrolls sideways: {layout['page']} px"
    for t in layout["tables"]:
        assert t["scroll"] <= t["client"] + 1, f"{t['id']} overflows: {t}"
        assert t["label_lines"] <= max_label_lines, f"{t['id']} row labels wrap: {t}"


def test_measurement_sees_an_overflowing_table(tmp_path: Path) -> None:
    """Control: a table far wider than the page is reported as overflowing."""
    out = tmp_path / "wide"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({
        "command": "x", "tables": [{"name": "t", "title": "t",
                                     "columns": [f"column number {i}" for i in range(40)],
                                     "rows": [[123456.789] * 40]}]}), encoding="utf-8")
    render_html(out)
    layout = measure_layout(out / "report.html", tmp_path / "p")
    with pytest.raises(AssertionError, match="overflows"):
        assert_fits(layout)


def test_tables_fit_1280_px(rendered: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = rendered
    assert_fits(measure_layout(out / "report.html", tmp_path / "p"))
    wide = tmp_path / "table1"
    wide_table_run(wide)
    render_html(wide)
    layout = measure_layout(wide / "report.html", tmp_path / "p2")
    assert_fits(layout)
    assert any(t["id"].startswith("table-table1") for t in layout["tables"])
