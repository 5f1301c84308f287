"""The command line: commands run end to end; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from advgame.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advgame.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_train_and_attack_with_saved_model(tmp_path: Path) -> None:
    out = tmp_path / "train"
    assert main(["train", "--dataset", "digits-8x8", "--classes", "0", "1", "--epochs", "3",
                 "--hidden", "32", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "train" and res["seed"] == 0
    acc = dict(res["tables"][0]["rows"])
    assert acc["test"] > 0.9
    out2 = tmp_path / "attack"
    assert main(["attack", "--dataset", "digits-8x8", "--classes", "0", "1", "--model",
                 str(out / "model.pt"), "--eps", "0", "0.3", "--norm", "inf",
                 "--out", str(out2)]) == 0
    res2 = json.loads((out2 / "results.json").read_text())
    rows = {r[0]: r[1:] for r in res2["tables"][0]["rows"]}
    clean = rows["FGM"][0]
    assert rows["FGM"][1] == pytest.approx(clean)  # eps = 0 changes nothing
    assert rows["PGD"][2] <= rows["FGM"][2] + 0.05


def test_same_seed_same_results(tmp_path: Path) -> None:
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        assert main(["attack", "--dataset", "gaussians", "--epochs", "2", "--hidden", "16",
                     "--eps", "0.1", "--out", str(out)]) == 0
        outs.append(json.loads((out / "results.json").read_text()))
    assert outs[0]["tables"] == outs[1]["tables"]


def test_attack_subset_is_stratified_and_recorded(tmp_path: Path) -> None:
    """--n-test 50 of a 10-class model sees 5 of every digit (not the first 50 images)
    and says so in results.json, the caption and the summary."""
    out = tmp_path / "o"
    assert main(["attack", "--dataset", "digits-8x8", "--epochs", "1", "--hidden", "16",
                 "--eps", "0.1", "--attack", "fgm", "--n-test", "50", "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["data"]["class_counts"] == {str(c): 5 for c in range(10)}
    assert res["data"]["n_test"] == 50 and res["data"]["classes"] == list(range(10))
    assert "5 of each of classes 0-9" in res["tables"][0]["caption"]
    assert "50 test images of digits-8x8" in res["summary"][0]


def test_config_file_and_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('dataset = "gaussians"\nepochs = 1\nhidden = [8]\neps = [0.05]\n')
    assert main(["attack", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["config"]["eps"] == [0.05] and res["config"]["dataset"] == "gaussians"
    cfg.write_text('dataset = "gaussians"\nepsilon = 0.1\n')
    p = run_cli("attack", "--config", str(cfg), "--out", str(tmp_path / "o2"))
    assert p.returncode == 2 and "unknown key" in p.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["attack", "--eps", "-0.1"], "eps"),
        (["attack", "--eps", "abc"], "not a number"),
        (["attack", "--dataset", "imagenet"], "dataset"),
        (["attack", "--norm", "7"], "norm"),
        (["attack", "--attack", "cw"], "attack"),
        (["attack", "--model", "/nonexistent.pt"], "not found"),
        (["train", "--classes", "3"], "classes"),
        (["train", "--dataset", "mnist"], "data_dir"),
        (["train", "--epochs", "-1"], "epochs"),
        (["train", "--device", "tpu9"], "device"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    p = run_cli(*args, *(["--out", str(tmp_path / "o")] if args[0] != "nosuchcommand" else []))
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert needle in lines[0] and "Traceback" not in p.stderr


def test_corrupt_checkpoint_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    p = run_cli("attack", "--model", str(bad), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "not a valid checkpoint" in p.stderr


def test_help_lists_commands() -> None:
    p = run_cli("--help")
    assert p.returncode == 0
    for cmd in ("train", "attack", "report"):
        assert cmd in p.stdout


def test_train_same_seed_identical_weights(tmp_path: Path) -> None:
    import torch

    weights = []
    for k in range(2):
        out = tmp_path / f"t{k}"
        assert main(["train", "--dataset", "gaussians", "--epochs", "2", "--hidden", "8",
                     "--out", str(out)]) == 0
        weights.append(torch.load(out / "model.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
