"""``advgame paper2`` end to end on tiny data: tables, figures, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advgame.cli import main
from advgame.errors import InputError
from advgame.experiments.paper2 import DEFENSES, Paper2Config

TINY = """
dataset = "digits-8x8"
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
    assert set(tables) == {"cat_and_mouse", "defense_attack", "minimax_maximin"}

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

    da = tables["defense_attack"]
    assert da["columns"] == ["defense", "clean", "FGSM-curr", "PGD", "APGD", "Square",
                             "AttNet-MLP", "AttNet-CNN", "AttNet-minimax", "worst case"]
    assert len(da["rows"]) == 4 + len(DEFENSES) - 2
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
    assert {f["name"] for f in res["figures"]} == {"cat_and_mouse", "fgsm_curr",
                                                   "minimax_curves", "defense_attack"}
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
    assert main(["paper2", "--defenses", "magic", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "defenses" in err and "Traceback" not in err
