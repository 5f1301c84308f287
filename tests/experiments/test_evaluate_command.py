"""``advgame evaluate``: the cascade per eps on a saved model, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advgame.cli import main

TRAIN = ["--dataset", "digits-8x8", "--epochs", "5", "--hidden", "32", "--batch-size", "32"]


def load(p: Path) -> dict:
    return json.loads((p / "results.json").read_text())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval-model")
    assert main(["train", *TRAIN, "--out", str(out)]) == 0
    return out / "model.pt"


def test_evaluate_writes_the_cascade_and_resumes(tmp_path: Path, model: Path) -> None:
    out = tmp_path / "ev"
    args = ["evaluate", *TRAIN, "--model", str(model), "--eps", "0.05", "0.2", "--n-test",
            "30", "--attacks", "apgd-ce,apgd-t,square", "--out", str(out)]
    assert main(args) == 0
    res = load(out)
    evs = res["data"]["evaluations"]
    assert [e["eps"] for e in evs] == [0.05, 0.2]
    assert res["data"]["n_test"] == 30 and sum(res["data"]["class_counts"].values()) == 30
    for e in evs:
        assert [s["name"] for s in e["stages"]] == ["apgd-ce", "apgd-t", "square"]
        assert e["stages"][0]["attacked"] == round(e["clean_accuracy"] * 30)
        assert e["robust_accuracy"] == pytest.approx(sum(e["robust"]) / 30)
    assert evs[1]["robust_accuracy"] <= evs[0]["robust_accuracy"]
    names = {t["name"] for t in res["tables"]}
    assert {"cascade_eps_0.05", "cascade_eps_0.2", "flags", "robust_vs_eps"} <= names
    assert (out / "robust_vs_eps.png").stat().st_size > 0
    caption = next(f["caption"] for f in res["figures"] if f["name"] == "robust_vs_eps")
    last = [s["robust_accuracy"] for e in evs for s in e["stages"][-1:]]
    square_hidden = last == [e["robust_accuracy"] for e in evs]  # worst case drawn over it
    assert ("after square" in caption) == square_hidden
    assert (out / "report.html").is_file()
    for e in evs:  # the summary names the attack that set the number, or none if none did
        line = next(x for x in res["summary"] if x.startswith(f"At eps={e['eps']:g} "))
        lowered = e["robust_accuracy"] < e["clean_accuracy"]
        assert ("last decrease by" in line) == lowered
        assert ("no attack lowered it" in line) == (not lowered)
    again = load(out) if main(args) == 0 else None  # stored units: the same tables
    assert again is not None and again["tables"] == res["tables"]


def test_evaluate_a_quantizer_defense_is_flagged_and_bpda_sees_through_it(
        tmp_path: Path, model: Path) -> None:
    """3-bit quantization in front of the model: its gradient is zero, so the gradient
    stages fail, Square sets the number and the checks say so; BPDA's attacks get the
    gradient back (lower robust accuracy from the gradient stages, no flag)."""
    common = ["evaluate", *TRAIN, "--model", str(model), "--eps", "0.1", "--n-test", "40",
              "--attacks", "apgd-ce,square", "--defense", "bit-depth:3"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--bpda", "--out", str(tmp_path / "bpda")]) == 0
    plain, bpda = load(tmp_path / "plain"), load(tmp_path / "bpda")
    ev, eb = plain["data"]["evaluations"][0], bpda["data"]["evaluations"][0]
    assert "3-bit depth reduction" in plain["data"]["defense"]
    assert "BPDA" in bpda["data"]["defense"] and "BPDA" in bpda["summary"][0]
    assert {"zero_gradients", "gradient_free_beats_gradient"} <= {f["name"] for f in ev["flags"]}
    assert ev["per_attack"]["apgd-ce"] == ev["clean_accuracy"]  # APGD-CE fooled nothing
    assert ev["per_attack"]["square"] < ev["clean_accuracy"]
    assert eb["clean_accuracy"] == ev["clean_accuracy"]  # the same forward pass
    assert eb["per_attack"]["apgd-ce"] < ev["per_attack"]["apgd-ce"]
    assert "zero_gradients" not in {f["name"] for f in eb["flags"]}


def test_evaluate_a_randomized_defense_is_flagged_without_eot(tmp_path: Path,
                                                              model: Path) -> None:
    args = ["evaluate", *TRAIN, "--model", str(model), "--eps", "0.1", "--n-test", "20",
            "--attacks", "apgd-ce", "--defense", "smoothing:0.25", "--eot", "2"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    ev = load(tmp_path / "a")["data"]["evaluations"][0]
    assert "random_outputs_without_eot" in {f["name"] for f in ev["flags"]}
    # the defense's noise is seeded per unit: a second run repeats the first bit for bit
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    eb = load(tmp_path / "b")["data"]["evaluations"][0]
    for e in (ev, eb):
        for s in e["stages"]:
            s.pop("time_s")
    assert eb == ev


@pytest.mark.parametrize("flags", [["--attacks", "magic"], ["--eps", "-0.1"],
                                   ["--norm", "3"], ["--n-test", "0"],
                                   ["--defense", "jpeg"], ["--defense", "median:2"],
                                   ["--defense", "bit-depth:0"], ["--defense", "smoothing:x"],
                                   ["--defense", "none:1"], ["--bpda"],
                                   ["--defense", "smoothing:0.25", "--bpda"],
                                   ["--eot", "0"]])
def test_evaluate_bad_input_exits_2(tmp_path: Path, model: Path, flags: list[str],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad"
    assert main(["evaluate", *TRAIN, "--model", str(model), *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
