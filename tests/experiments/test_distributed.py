"""torch.distributed: 2 gloo processes under torchrun give the results of 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advgame.cli import main

COMMON = ["--dataset", "digits-8x8", "--classes", "0", "1", "--epochs", "2", "--hidden", "16",
          "--batch-size", "32"]


def torchrun(args: list[str], log_dir: Path, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """``advgame ARGS`` under torchrun with ``nproc`` gloo ranks; each rank's stdout and
    stderr are also kept under ``log_dir`` (``--tee 3``) for :func:`check`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVGAME_BACKEND": "gloo"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={nproc}", "--log-dir", str(log_dir), "--tee", "3",
         str(Path(sys.executable).parent / "advgame"), *args],
        capture_output=True, text=True, timeout=600, env=env)


def rank_logs(log_dir: Path, tail: int = 4000) -> str:
    """The end of every rank's own stderr (and error file) under ``log_dir``."""
    parts = []
    for f in sorted(log_dir.rglob("*")):
        if f.is_file() and (f.name in ("stderr.log", "error.json")):
            text = f.read_text(errors="replace")
            parts.append(f"--- {f.relative_to(log_dir)} ---\n{text[-tail:]}")
    return "\n".join(parts) or "(no rank logs)"


def check(p: subprocess.CompletedProcess[str], log_dir: Path) -> None:
    """Fail with each rank's own stderr (not only torchrun's summary) unless ``p`` passed."""
    assert p.returncode == 0, (f"torchrun exited {p.returncode}\n{rank_logs(log_dir)}\n"
                               f"--- torchrun ---\n{p.stderr[-2000:]}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dist")
    out = {}
    for cmd, extra in (("train", []), ("attack", ["--eps", "0.1", "0.3", "--n-test", "300"]),
                       ("certify", ["--num-samples", "200", "--n0", "20", "--n-test", "30"])):
        one, two = root / f"{cmd}-1", root / f"{cmd}-2"
        assert main([cmd, *COMMON, *extra, "--out", str(one)]) == 0
        logs = root / f"{cmd}-logs"
        check(torchrun([cmd, *COMMON, *extra, "--out", str(two)], logs), logs)
        out[cmd + "1"], out[cmd + "2"] = one, two
    return out


def load(p: Path) -> dict:
    return json.loads((p / "results.json").read_text())


def test_ddp_training_matches_one_process(runs: dict[str, Path]) -> None:
    a = torch.load(runs["train1"] / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(runs["train2"] / "model.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)


def test_sharded_attack_evaluation_is_identical(runs: dict[str, Path]) -> None:
    a, b = load(runs["attack1"]), load(runs["attack2"])
    assert b["data"]["world_size"] == 2 and a["data"]["world_size"] == 1
    assert a["tables"] == b["tables"]


def test_sharded_certification_is_identical(runs: dict[str, Path]) -> None:
    a, b = load(runs["certify1"]), load(runs["certify2"])
    assert b["data"]["world_size"] == 2
    assert a["data"]["radius"] == b["data"]["radius"]
    assert a["data"]["class"] == b["data"]["class"]


def one_and_two(tmp_path: Path, command: str, config: str) -> tuple[dict, dict, Path, str]:
    """Run ``command`` with ``config`` in this process and under torchrun with 2 ranks:
    (results of 1, results of 2, output dir of 2, torchrun's stderr)."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(config)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main([command, "--config", str(cfg), "--out", str(one)]) == 0
    p = torchrun([command, "--config", str(cfg), "--out", str(two)], tmp_path / "logs")
    check(p, tmp_path / "logs")
    return load(one), load(two), two, p.stderr


def test_sharded_payoff_matrix_is_identical(tmp_path: Path) -> None:
    from tests.experiments.test_game_command import TINY

    a, b, _, stderr = one_and_two(tmp_path, "game", TINY)
    assert "payoff cells (rank 1)" in stderr  # the cells were split between the ranks
    payoff = [t for t in a["tables"] if "payoff" in t["name"]]
    assert payoff, [t["name"] for t in a["tables"]]
    assert payoff == [t for t in b["tables"] if "payoff" in t["name"]]


def untimed(value: object) -> object:
    """``value`` without the wall-clock fields (keys ending in ``_s``)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def test_sharded_paper1_is_identical(tmp_path: Path) -> None:
    """paper1's units (tables, sweep, convergence draws, diagnostics, certification, the
    other pairs with their own models) split across 2 ranks give one process's results."""
    from tests.experiments.test_paper1 import TINY

    config = (TINY.format(dataset="digits-8x8", arch="mlp").replace("n_synthetic = 400\n", "")
              .replace('pairs = "none"', "pairs = [[2, 3], [4, 5]]\nclasses = [0, 1]")
              + 'solver = "fast"\n')  # no wall-clock limit (test_resume.py)
    a, b, two, stderr = one_and_two(tmp_path, "paper1", config)
    assert "(rank 1)" in stderr  # rank 1 computed units of its own
    assert b["data"]["world_size"] == 2 and a["data"]["world_size"] == 1
    assert a["tables"] == b["tables"]
    for key in ("table1", "sweep", "convergence", "diagnostics", "certification", "pairs"):
        assert untimed(a["data"][key]) == untimed(b["data"][key]), key
    assert [f["file"] for f in a["figures"]] == [f["file"] for f in b["figures"]]
    assert all((two / f["file"]).stat().st_size > 0 for f in b["figures"])
    assert (two / "pairs" / "digits-8x8-2-3" / "model.pt").is_file()


def test_sharded_paper2_is_identical(tmp_path: Path) -> None:
    """paper2 under torchrun: rank 0 trains the cat-and-mouse rounds, the other defenses and
    the eta table's cells (a second classifier included) are trained round-robin across the
    ranks, and the defense x attack cells (AttNet trainings included) are split too."""
    from tests.experiments.test_paper2 import TINY

    config = TINY.replace("compare_archs = []", 'compare_archs = ["cnn"]')
    assert config != TINY
    a, b, _, stderr = one_and_two(tmp_path, "paper2", config)
    assert "paper2 evaluation (rank 1)" in stderr
    assert "paper2 training (rank 1)" in stderr and "paper2 rounds (rank 0)" in stderr
    assert untimed(a["data"]["eta_sweep"]) == untimed(b["data"]["eta_sweep"])
    assert b["data"]["world_size"] == 2 and a["data"]["world_size"] == 1
    assert a["tables"] == b["tables"]
    assert untimed(a["summary"]) == untimed(b["summary"])


def test_a_failing_rank_shows_its_own_stderr(tmp_path: Path) -> None:
    p = torchrun(["attack", *COMMON, "--eps", "-1", "--out", str(tmp_path / "o")],
                 tmp_path / "logs")
    assert p.returncode != 0
    logs = rank_logs(tmp_path / "logs")
    for r in (0, 1):  # each rank's own stderr file names the bad argument
        assert f"/{r}/stderr.log ---" in logs
    assert logs.count("eps") >= 2, logs
    with pytest.raises(AssertionError, match="eps"):
        check(p, tmp_path / "logs")
