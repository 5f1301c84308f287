"""``advgame paper2`` end to end on tiny data: tables, figures, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advgame.cli import main
from advgame.errors import InputError
from advgame.experiments.paper2 import DEFENSES, Paper2Config

TINY = """
dataset = "digits-8x8"
arch = "mlp"
etas = [0.3, 0.5]
compare_archs = []
heatmap_rounds = 3
table_rounds = 1
epochs = 2
hidden = [32]
rounds = 3
round_epochs = 1
adv_epochs = 1
sens_epochs = 1
minimax_iterations = 4
minimax_k = 2
attnet_hidden = [16]
attnet_epochs = 1
attnet_restarts = 2
cnn_attnet_restarts = 1
attnet_train_size = 200
pgd_steps = 2
apgd_steps = 3
square_queries = 20
reformer_epochs = 1
n_test = 80
"""


def _tables(res: dict) -> dict[str, dict]:
    return {t["name"]: t for t in res["tables"]}


def test_paper2_tiny_run_tables_figures_and_resume(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["paper2", "--config", str(cfg), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "paper2" and res["config"]["rounds"] == 3
    tables = _tables(res)
    assert set(tables) == {"cat_and_mouse", "defense_attack", "minimax_maximin",
                           "cat_and_mouse_rounds", "eta_sweep"}

    cm = tables["cat_and_mouse"]
    assert cm["columns"] == ["model", "clean", "FGSM-1", "FGSM-2", "FGSM-3", "FGSM-curr"]
    rounds = [r for r in cm["rows"] if r[0] in ("u0", "u1", "u2", "u3")]
    assert [r[0] for r in rounds] == ["u0", "u1", "u2", "u3"]
    e = res["data"]["cat_and_mouse"]["error"]
    assert len(e) == 4 and all(len(r) == 4 for r in e)
    # FGSM-curr of u_k is FGSM against u_k = FGSM-(k+1): the E column k+1
    for k, row in enumerate(rounds):
        assert row[-1] == pytest.approx(e[k][k])
        if k < 3:
            assert row[2 + k] == pytest.approx(e[k][k])
    assert isinstance(res["data"]["cat_and_mouse"]["oscillation"]["fgsm_curr"]["oscillates"],
                      bool)
    # the per-round series agree with the matrix E: own attack of u_k = E[k][k-1] (FGSM-k),
    # FGSM-curr = E[k][k]
    cr = tables["cat_and_mouse_rounds"]
    assert cr["columns"] == ["round k", "own attack (FGSM-k)", "FGSM-curr", "clean"]
    assert [r[0] for r in cr["rows"]] == [0, 1, 2, 3] and cr["rows"][0][1] is None
    for k, row in enumerate(cr["rows"]):
        assert row[2] == pytest.approx(e[k][k]) and row[3] == pytest.approx(rounds[k][1])
        if k:
            assert row[1] == pytest.approx(e[k][k - 1])

    # the eta table: 5 defenses x 2 etas; at the main eta its cells are the main table's
    sw = tables["eta_sweep"]
    assert sw["columns"] == ["defense", "eta", "clean", "FGSM-curr", "AttNet-curr",
                             "fresh AttNet", "PGD", "Square", "worst case"]
    assert len(sw["rows"]) == 10 and {r[1] for r in sw["rows"]} == {0.3, 0.5}
    main_rows = {r[0]: dict(zip(tables["defense_attack"]["columns"], r, strict=True))
                 for r in tables["defense_attack"]["rows"]}
    names = {"Sens-FGSM": "Sens-FGSM", "online adv. training": "online adv. training (FGSM)",
             "Alt (plain alternating)": "minimax",
             "Minimax (sensitivity-penalized)": "minimax + sensitivity penalty",
             "clean model": "u0 (clean)"}
    for r in sw["rows"]:
        row = dict(zip(sw["columns"], r, strict=True))
        vals = [v for k, v in row.items() if k not in ("defense", "eta", "clean") and v is not None]
        assert row["worst case"] >= max(vals) - 1e-9
        assert (row["AttNet-curr"] is None) == (not r[0].startswith(("Alt", "Minimax")))
        if r[1] == 0.3:
            ref = main_rows[names[r[0]]]
            for col in ("clean", "FGSM-curr", "PGD", "Square", "worst case"):
                assert row[col] == pytest.approx(ref[col]), (r[0], col)
    assert set(res["data"]["eta_sweep"]) == {"mlp"}

    da = tables["defense_attack"]
    assert da["columns"] == ["defense", "clean", "FGSM-curr", "PGD", "APGD", "Square",
                             "AttNet-MLP", "AttNet-CNN", "AttNet-minimax", "worst case"]
    assert [r[0] for r in da["rows"]][:3] == ["u0 (clean)", "u1", "u3"]  # table_rounds = 1
    assert len(da["rows"]) == 3 + len(DEFENSES) - 2
    for row in da["rows"]:
        vals = row[1:]
        assert all(0.0 <= v <= 1.0 for v in vals)
        assert vals[-1] >= max(vals[1:-1]) - 1e-9  # worst case dominates every attack
    # the worst case over two MLP restarts is at least each restart
    for d, cells in res["data"]["defense_attack"].items():
        assert cells["AttNet-MLP"]["error"] >= max(cells["AttNet-MLP"]["restarts"]) - 1e-9, d
        assert len(cells["AttNet-MLP"]["restarts"]) == 2
    mm = tables["minimax_maximin"]
    assert [r[0] for r in mm["rows"]][:2] == ["minimax", "maximin"]
    assert all(r[1] > 0 for r in mm["rows"])  # payoff = cross-entropy

    for f in res["figures"]:
        assert (out / f["file"]).is_file()
    assert {f["name"] for f in res["figures"]} == {
        "cat_and_mouse", "cat_and_mouse_rounds", "minimax_curves", "defense_attack",
        "eta_sweep_fgsm-curr", "eta_sweep_fresh_attnet", "eta_sweep_worst_case"}
    assert res["summary"] and all(isinstance(s, str) for s in res["summary"])
    assert (out / "report.html").is_file()

    # a rerun resumes. Delete a trained model and some evaluated cells, as if the run had
    # been killed: only those are recomputed, and the results are identical.
    work = next(out.glob("work-*"))
    units = sorted(p.name for p in (work / "units").glob("*.json"))
    (work / "models" / "u2.pt").unlink()
    for p in (work / "units").glob("eval-u2-*.json"):
        p.unlink()
    assert main(["paper2", "--config", str(cfg), "--out", str(out)]) == 0
    res2 = json.loads((out / "results.json").read_text())
    assert res2["tables"] == res["tables"]
    assert res2["summary"] == res["summary"]
    assert res["data"]["trained_this_run"][0] == "train_u1_s"
    assert res2["data"]["trained_this_run"] == ["train_u2_s"]
    assert set(res2["timings"]) == set(res["timings"])  # stored times of resumed units
    assert sorted(p.name for p in (work / "units").glob("*.json")) == units


def test_paper2_config_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="defenses"):
        Paper2Config(defenses=("magic",))
    with pytest.raises(InputError, match="eta"):
        Paper2Config(eta=-0.1)
    with pytest.raises(InputError, match="sens_surrogate"):
        Paper2Config(sens_surrogate="sign")
    for bad, name in (({"eta": 0.0}, "eta"), ({"eta": 1.5}, "eta"), ({"etas": (0.3, 0.0)}, "etas"),
                      ({"etas": ()}, "etas"), ({"rounds": 0}, "rounds"),
                      ({"sweep_defenses": ("reformer",)}, "sweep_defenses"),
                      ({"compare_archs": ("cnn",)}, "compare_archs"),
                      ({"compare_archs": ("resnet",)}, "compare_archs"),
                      ({"attnet_objective": "hinge"}, "attnet_objective"),
                      ({"attnet_kappa": -1.0}, "attnet_kappa")):
        with pytest.raises(InputError, match=name):
            Paper2Config(**bad)
    assert main(["paper2", "--eta", "0", "--out", str(tmp_path / "y")]) == 2
    assert "eta" in capsys.readouterr().err
    assert main(["paper2", "--defenses", "magic", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "defenses" in err and "Traceback" not in err


def test_masking_flags_need_enough_points_only_square_fools() -> None:
    """paper2's masking check: Square must fool at least 2 points and 1% of the test set
    that every gradient column (FGSM-curr, PGD, APGD where present) misses."""
    import torch

    from advgame.experiments.paper2.outputs import masking_flags

    n = 300

    def flags(idx: list[int]) -> torch.Tensor:
        t = torch.zeros(n, dtype=torch.bool)
        t[idx] = True
        return t

    def row(square_only: int) -> dict[str, Any]:
        both = list(range(100))
        sq = both + list(range(200, 200 + square_only))
        return {"FGSM-curr": {"error": 0.2, "flags": flags(both[:60])},
                "PGD": {"error": 1 / 3, "flags": flags(both)},
                "Square": {"error": len(sq) / n, "flags": flags(sq)}}

    cells = {"one": row(1), "two": row(2), "three": row(3),
             "no-square": {"PGD": {"error": 0.5, "flags": flags(list(range(150)))}}}
    got = masking_flags(cells)
    assert [(m["defense"], m["square_only"], m["n"]) for m in got] == [("three", 3, n)]
    assert got[0]["gradient_attacks"] == ["FGSM-curr", "PGD"]
    assert got[0]["best_gradient_error"] == 1 / 3
