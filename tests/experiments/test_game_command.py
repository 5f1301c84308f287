"""``advgame game`` end to end on tiny data: tables, figures, resume, bad configs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advgame.cli import main
from advgame.errors import InputError
from advgame.experiments.game import GameConfig

TINY = """
dataset = "digits-8x8"
classes = [0, 1, 2, 3]
hidden = [16]
epochs = 3
lr = 0.01
defense_epochs = 2
n_test = 80
fp_iterations = 300
rm_iterations = 300
do_max_iters = 2
do_eps = 0.1
do_attnet_hidden = [16]
do_attnet_epochs = 1
do_defender_epochs = 1
do_train_size = 200
eval_attackers = [{ name = "EOT-PGD", kind = "pgd", eps = 0.1, steps = 2 }]

[[defenders]]
name = "clean"
kind = "clean"

[[defenders]]
name = "adv-0.1"
kind = "adversarial"
eps = 0.1

[[defenders]]
name = "smooth"
kind = "smoothing"
sigma = 0.2
votes = 10
eot = 2

[[defenders]]
name = "mix"
kind = "mixture"
components = ["clean", "adv-0.1"]

[[attackers]]
name = "FGSM-0.1"
kind = "fgsm"
eps = 0.1

[[attackers]]
name = "PGD-0.1"
kind = "pgd"
eps = 0.1
steps = 3

[[attackers]]
name = "PGD-L2"
kind = "pgd"
eps = 1.0
norm = "2"
steps = 3

[[attackers]]
name = "AttNet"
kind = "attnet"
eps = 0.1
hidden = [16]
epochs = 1
train_size = 200

[[attackers]]
name = "transfer"
kind = "transfer"
eps = 0.1
method = "fgm"

[[attackers]]
name = "TA-PGD"
kind = "torchattacks"
attack = "PGD"
eps = 0.1
"""


def _tables(res: dict) -> dict[str, dict]:
    return {t["name"]: t for t in res["tables"]}


def _units(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in out.glob("work-*/**/*") if p.is_file()}


def test_game_command_tables_figures_and_resume(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["game", "--config", str(cfg), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "game" and res["config"]["n_test"] == 80
    tables = _tables(res)
    assert {"payoff", "equilibrium", "game_summary", "mixed_defense", "double_oracle",
            "oracle_calls", "double_oracle_equilibrium",
            "double_oracle_mixed_defense"} <= set(tables)
    data = res["data"]
    defenders, attackers = data["defenders"], data["attackers"]
    assert defenders == ["clean", "adv-0.1", "smooth", "mix"]
    expected_attackers = ["FGSM-0.1", "PGD-0.1", "PGD-L2", "AttNet", "transfer"]
    if "TA-PGD" in data["skipped"]:  # torchattacks not installed: skipped with a note
        assert "not installed" in data["skipped"]["TA-PGD"]
        assert any("TA-PGD" in s for s in res["summary"])
    else:
        expected_attackers.append("TA-PGD")
    assert attackers == expected_attackers

    pay = tables["payoff"]
    assert pay["columns"] == ["defender", *attackers, "any attack", "clean", "P"]
    a = np.array(data["payoff"])
    assert a.shape == (4, len(attackers)) and np.all((a >= 0) & (a <= 1))
    for i, row in enumerate(pay["rows"][:4]):
        assert row[1:1 + len(attackers)] == pytest.approx(a[i].tolist())
        assert row[-3] <= min(a[i]) + 1e-12  # worst case (OR) <= every single attack
    p, q = np.array(data["defender_strategy"]), np.array(data["attacker_strategy"])
    assert p.sum() == pytest.approx(1) and q.sum() == pytest.approx(1)
    assert data["value"] == pytest.approx(float(p @ a @ q), abs=1e-9)
    assert data["exploitability"] <= 1e-9
    assert float((p @ a).min()) == pytest.approx(data["value"], abs=1e-9)
    assert float((a @ q).max()) == pytest.approx(data["value"], abs=1e-9)
    best = data["best_pure_defense"]
    assert best["worst_case_value"] == pytest.approx(a.min(axis=1).max())
    assert data["gain_over_best_pure"] == pytest.approx(data["value"]
                                                        - best["worst_case_value"])
    assert data["gain_over_best_pure"] >= -1e-9
    eq = data["equilibrium"]
    assert sum(eq["defender"].values()) == pytest.approx(1)
    assert set(eq["defender"]) <= set(defenders)
    # mixed defense: expected payoff = p . A[:, j]; the attack outside the game is listed
    rows = tables["mixed_defense"]["rows"]
    for row in rows[:len(attackers)]:
        j = attackers.index(row[0])
        assert row[1] == pytest.approx(float(p @ a[:, j]))
    assert rows[-1][0] == "EOT-PGD (outside the game)" and rows[-1][4] is not None
    assert len(data["mixed_defense"]["outside"]) == 1
    # fictitious play / regret matching curves and double oracle bounds
    fp = data["fictitious_play"]
    assert len(fp["iterations"]) == len(fp["exploitability"]) and fp["iterations"][-1] == 300
    do = data["double_oracle"]
    assert 1 <= len(do["iterations"]) <= 2
    for it in do["iterations"]:
        assert it["lower"] <= it["value"] + 1e-12 <= it["upper"] + 2e-12
    assert do["converged"] == (do["upper"][-1] - do["lower"][-1] <= do["tol"])
    for f in res["figures"]:
        assert (out / f["file"]).is_file()
    assert {f["name"] for f in res["figures"]} >= {"payoff", "solver_convergence",
                                                   "double_oracle"}
    assert all(isinstance(s, str) and s for s in res["summary"])
    assert (out / "report.html").is_file()

    # rerun: every unit is read back, none is recomputed or rewritten
    before = _units(out)
    assert any("cell-" in k for k in before)
    assert main(["game", "--config", str(cfg), "--out", str(out)]) == 0
    again = json.loads((out / "results.json").read_text())
    assert _units(out) == before
    assert _tables(again)["payoff"]["rows"] == pay["rows"]
    assert again["data"]["double_oracle"]["iterations"] == do["iterations"]


@pytest.mark.parametrize("extra, message", [
    ("bogus_key = 1\n", "unknown key"),
    ('[[defenders]]\nname = "x"\nkind = "magic"\n', "unknown strategy kind"),
    ('[[attackers]]\nname = "x"\nkind = "pgd"\neps = 0.1\nsteps_typo = 3\n', "steps_typo"),
    ('[[attackers]]\nname = "x"\nkind = "transfer"\neps = 0.1\nsurrogate = "nobody"\n',
     "unknown defender"),
    ('eval_attackers = [{ name = "PGD-0.1", kind = "pgd", eps = 0.1 }]\n',
     "eval_attackers"),
])
def test_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          extra: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    text = TINY.replace("eval_attackers", "# eval_attackers") \
        if extra.startswith("eval_attackers") else TINY
    cfg.write_text(text + "\n" + extra if extra.startswith("[[") else extra + text)
    assert main(["game", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_game_config_defaults_parse() -> None:
    cfg = GameConfig()
    assert cfg.defenders[0]["kind"] == "clean" and len(cfg.attackers) >= 5
    with pytest.raises(InputError, match="do_attacker"):
        GameConfig(do_attacker="oracle")
    with pytest.raises(InputError, match="defenders"):
        GameConfig(defenders=())


def test_strong_attack_kinds_in_the_game() -> None:
    """apgd, square, fab, cw and autoattack strategies parse, build and stay in the ball;
    AutoAttack is at least as strong as APGD-CE alone on every point."""
    import torch

    from advgame.game.build import BuildContext, build_attackers
    from advgame.game.specs import parse_strategies
    from advgame.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", (1, 4, 4), 3, hidden=(16,))
    x = torch.rand(12, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    ctx = BuildContext(x, y, 3, model)
    specs = [{"name": "APGD-T", "kind": "apgd", "eps": 0.1, "targeted": True, "loss": "dlr",
              "steps": 10},
             {"name": "Square", "kind": "square", "eps": 0.1, "queries": 50},
             {"name": "FAB", "kind": "fab", "eps": 0.1, "steps": 5},
             {"name": "CW", "kind": "cw", "eps": 0.5, "norm": "2", "steps": 20},
             {"name": "AA", "kind": "autoattack", "eps": 0.1},
             {"name": "APGD", "kind": "apgd", "eps": 0.1}]
    _, at = parse_strategies([{"name": "clean", "kind": "clean"}], specs)
    atks, skipped = build_attackers(at, ctx, {})
    assert skipped == {} and set(atks) == {s["name"] for s in specs}
    fooled = {}
    for name, a in atks.items():  # the same seed: AA's first stage is this APGD-CE run
        xa = a.craft(model, x, y, generator=torch.Generator().manual_seed(0))
        d = (xa - x).flatten(1)
        size = d.norm(dim=1) if a.norm == "2" else d.abs().amax(1)
        assert bool((size <= a.eps + 1e-5).all() and (xa >= 0).all() and (xa <= 1).all())
        with torch.no_grad():
            fooled[name] = model(xa).argmax(1) != y
    assert bool((fooled["AA"] | ~fooled["APGD"]).all())
    for bad, arg in [({"name": "c", "kind": "cw", "eps": 0.1}, "norm"),
                     ({"name": "a", "kind": "apgd", "eps": 0.1, "loss": "hinge"}, "loss"),
                     ({"name": "a", "kind": "autoattack", "eps": 0.1, "version": "x"},
                      "version")]:
        with pytest.raises(InputError) as info:
            parse_strategies([{"name": "clean", "kind": "clean"}], [bad])
        assert arg in str(info.value)


def test_mixture_masking_compares_outside_attacks_of_one_budget() -> None:
    from advgame.experiments.game.outputs import _masking_text, mixture_masking
    from advgame.game.payoff import MixedDefenseEvaluation

    def ev(name: str, acc: float) -> MixedDefenseEvaluation:
        return MixedDefenseEvaluation(name, True, acc, acc, math.sqrt(acc * (1 - acc) / 1000),
                                      None, None)

    specs = [{"name": "PGD", "kind": "pgd", "eps": 0.2}, {"name": "APGD", "kind": "apgd",
             "eps": 0.2}, {"name": "Sq", "kind": "square", "eps": 0.2},
             {"name": "Sq-0.1", "kind": "square", "eps": 0.1}]
    healthy = mixture_masking(specs, [ev("PGD", 0.10), ev("APGD", 0.084), ev("Sq", 0.124),
                                      ev("Sq-0.1", 0.3)])
    assert healthy == [{"attacker": "Sq", "accuracy": 0.124, "best_gradient": "APGD",
                        "best_gradient_accuracy": 0.084, "masking": False}]  # no PGD at 0.1
    masked = mixture_masking(specs, [ev("PGD", 0.60), ev("APGD", 0.55), ev("Sq", 0.20)])
    assert [c["masking"] for c in masked] == [True]
    assert "beats the gradient attacks" in _masking_text([], [], masked)
    assert "do not beat" in _masking_text([], [], healthy)
    assert mixture_masking(specs[2:], [ev("Sq", 0.2)]) == []  # nothing to compare with


def test_masking_flag_when_a_gradient_free_attack_beats_the_gradient_ones() -> None:
    import torch

    from advgame.experiments.game import masking_flags
    from advgame.game.payoff import PayoffMatrix

    attackers = [{"name": "PGD-0.2", "kind": "pgd", "eps": 0.2},
                 {"name": "APGD-0.2", "kind": "apgd", "eps": 0.2},
                 {"name": "PGD-0.1", "kind": "pgd", "eps": 0.1},
                 {"name": "AttNet-0.2", "kind": "attnet", "eps": 0.2},
                 {"name": "Square-0.2", "kind": "square", "eps": 0.2}]
    acc = np.array([[0.50, 0.48, 0.70, 0.20, 0.47],    # healthy: Square within noise
                    [0.90, 0.85, 0.95, 0.10, 0.30],    # masked: Square far below PGD/APGD
                    [0.40, 0.40, 0.05, 0.30, 0.20]])   # the eps 0.1 column does not count
    m = PayoffMatrix(("healthy", "masked", "other"), tuple(a["name"] for a in attackers), acc,
                     torch.zeros(3, 5, 400, dtype=torch.bool))
    flags = masking_flags(attackers, m)
    assert [(f["defender"], f["attacker"]) for f in flags] == [("masked", "Square-0.2"),
                                                              ("other", "Square-0.2")]
    assert flags[0]["best_gradient_accuracy"] == 0.85
    assert flags[0]["gradient_attackers"] == ["PGD-0.2", "APGD-0.2"]
    assert masking_flags(attackers[:4], m.submatrix(m.defenders, m.attackers[:4])) == []


def test_preprocess_defenders_bpda_and_bad_specs() -> None:
    """``preprocess`` defenders: 3-bit quantization attacked through its own (zero)
    gradient leaves PGD helpless, while BPDA (the default) and the gradient-free Square
    break it; both variants make the same decisions; bad specs name the field."""
    import torch

    from advgame.data import load_dataset, stratified_indices
    from advgame.game.build import BuildContext, build_attackers, build_defenders
    from advgame.game.specs import parse_strategies
    from advgame.models import TrainConfig, build_model, train

    ds = load_dataset("digits-8x8")
    torch.manual_seed(0)
    model = build_model("mlp", ds.input_shape, 10, hidden=(32,))
    train(model, ds.x_train, ds.y_train, TrainConfig(epochs=5, lr=0.01),
          generator=torch.Generator().manual_seed(0))
    idx = stratified_indices(ds.y_test, 120, generator=torch.Generator().manual_seed(0))
    x, y = ds.x_test[idx], ds.y_test[idx]
    ctx = BuildContext(ds.x_train, ds.y_train, 10, model)
    dspecs, aspecs = parse_strategies(
        [{"name": "clean", "kind": "clean"},
         {"name": "bd", "kind": "preprocess", "transform": "bit-depth", "bits": 3,
          "bpda": False},
         {"name": "bd-bpda", "kind": "preprocess", "transform": "bit-depth", "bits": 3},
         {"name": "med", "kind": "preprocess", "transform": "median", "size": 3}],
        [{"name": "PGD", "kind": "pgd", "eps": 0.1, "steps": 10},
         {"name": "Square", "kind": "square", "eps": 0.1, "queries": 300},
         {"name": "PGD-through", "kind": "pgd", "eps": 0.1, "steps": 10, "bpda": False},
         {"name": "BPDA-PGD", "kind": "pgd", "eps": 0.1, "steps": 10, "bpda": True}])
    defs = build_defenders(dspecs, ctx)
    atks, _ = build_attackers(aspecs, ctx, defs)

    def acc(d: str, a: str) -> float:
        xa = atks[a].craft(atks[a].against(defs[d]), x, y,
                           generator=torch.Generator().manual_seed(0))
        return float((defs[d].predict(xa) == y).float().mean())

    clean_bd = float((defs["bd"].predict(x) == y).float().mean())
    assert torch.equal(defs["bd"].predict(x), defs["bd-bpda"].predict(x))
    assert acc("bd", "PGD") >= clean_bd - 0.05  # zero gradients: PGD barely moves it
    assert acc("bd-bpda", "PGD") < acc("bd", "PGD") - 0.2
    assert acc("bd", "Square") < acc("bd", "PGD") - 0.2
    assert defs["med"].attack_model() is not defs["med"]  # BPDA by default
    assert defs["bd"].attack_model() is defs["bd"]
    # the attacker's bpda overrides the defender's: the same PGD as the matching default
    assert acc("bd-bpda", "PGD-through") == acc("bd", "PGD")
    assert acc("bd", "BPDA-PGD") == acc("bd-bpda", "PGD")
    assert spec_keys_unchanged_by_an_unset_bpda(aspecs)
    for bad, field in [({"transform": "jpeg"}, "transform"),
                       ({"transform": "median", "size": 4}, "size"),
                       ({"transform": "bit-depth", "bits": 9}, "bits"),
                       ({"transform": "median", "bpda": "yes"}, "bpda")]:
        with pytest.raises(InputError) as info:
            parse_strategies([{"name": "clean", "kind": "clean"},
                              {"name": "p", "kind": "preprocess", **bad}],
                             [{"name": "F", "kind": "fgsm", "eps": 0.1}])
        assert field in str(info.value)
    with pytest.raises(InputError, match="bpda"):
        parse_strategies([{"name": "clean", "kind": "clean"}],
                         [{"name": "P", "kind": "pgd", "eps": 0.1, "bpda": "yes"}])


def spec_keys_unchanged_by_an_unset_bpda(aspecs: Any) -> bool:
    """An attacker without ``bpda`` keeps the dict (hence key and seeds) it had before the
    field existed; one that sets it gets its own."""
    plain, through = aspecs[0].as_dict(), aspecs[2].as_dict()
    return "bpda" not in plain and through["bpda"] is False
