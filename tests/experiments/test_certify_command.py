"""``advgame certify``: noise modes, blocks, stored units, bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from advgame.cli import main

TRAIN = ["--dataset", "digits-8x8", "--classes", "0", "1", "--epochs", "2", "--hidden", "16",
         "--batch-size", "32"]
COMMON = ["certify", *TRAIN, "--num-samples", "300", "--n0", "20", "--n-test", "12",
          "--block", "5"]


def load(p: Path) -> dict:
    return json.loads((p / "results.json").read_text())


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cert-model")
    assert main(["train", *TRAIN, "--out", str(out)]) == 0
    return out / "model.pt"


@pytest.mark.parametrize("noise", ["shared", "independent"])
def test_certify_modes_are_consistent_and_resume(tmp_path: Path, model: Path,
                                                 noise: str) -> None:
    out = tmp_path / noise
    args = [*COMMON, "--model", str(model), "--noise", noise, "--out", str(out)]
    assert main(args) == 0
    res = load(out)
    classes = np.array(res["data"]["class"])
    radius = np.array(res["data"]["radius"])
    labels = np.array(res["data"]["label"])
    assert classes.shape == radius.shape == labels.shape == (12,)
    assert np.all(radius >= 0) and np.all(radius[classes == -1] == 0)
    table = next(t for t in res["tables"] if t["name"] == "certified_accuracy")
    assert f"{noise} noise across blocks of 5 inputs" in table["caption"]
    assert table["rows"][0][1] == pytest.approx(float(np.mean(classes == labels)))
    units = sorted((out / "units").rglob("*.json"))
    assert len(units) >= 3  # 12 inputs in blocks of 5
    # A rerun resumes from the stored blocks and gives the same certificates.
    assert main(args) == 0
    assert load(out)["data"] == res["data"]


def test_noise_modes_draw_different_noise(tmp_path: Path, model: Path) -> None:
    runs = {}
    for noise in ("shared", "independent"):
        out = tmp_path / noise
        assert main([*COMMON, "--model", str(model), "--noise", noise, "--out", str(out)]) == 0
        runs[noise] = load(out)["data"]["radius"]
    assert runs["shared"] != runs["independent"]


def test_bad_noise_setting_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('noise = "per-batch"\n')
    assert main([*COMMON, "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "noise" in err[0]


def test_loaded_model_records_its_own_training(tmp_path: Path, model: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The checkpoint was trained 2 epochs with hidden 16; the run's config says 10 and
    256 256 (defaults, unused): results.json records the checkpoint's values. One process
    labels its progress "certify", not "certify (rank 0)"."""
    out = tmp_path / "o"
    args = ["certify", "--dataset", "digits-8x8", "--classes", "0", "1", "--num-samples",
            "100", "--n0", "10", "--n-test", "4", "--model", str(model), "--out", str(out)]
    assert main(args) == 0
    res = load(out)
    assert res["config"]["epochs"] == 2 and res["config"]["hidden"] == [16]
    assert res["data"]["classifier"]["from"] == f"checkpoint {model}"
    assert res["data"]["classifier"]["batch_size"] == 32
    assert res["data"]["class_counts"] == {"0": 2, "1": 2}
    err = capsys.readouterr().err
    assert "certify" in err and "(rank" not in err
