"""Progress reporting: plain lines off a terminal, tqdm on one, silent by default."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from advgame import progress
from advgame.errors import InputError
from advgame.models import TrainConfig, build_model, train
from advgame.progress import LineProgress, NullProgress, progress_bar, track
from advgame.smoothing import certify, predict


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture()
def every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step lines however fast the work goes (the default waits 2 s between two)."""
    monkeypatch.setattr(progress, "MIN_INTERVAL_S", 0.0)


def test_lines_every_tenth_without_carriage_returns(every_step: None) -> None:
    log = io.StringIO()
    with progress_bar(1000, "work", unit="rows", file=log) as bar:
        for _ in range(1000):
            bar.update(1)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split("%")[0] for line in lines] == [f"work: {p}" for p in range(0, 101, 10)]
    assert lines[-1].startswith("work: 100% (1,000/1,000 rows) done in ")
    assert "left" in lines[5]


def test_fast_work_leaves_two_lines_and_slow_work_one_per_step() -> None:
    now = [0.0]
    log = io.StringIO()
    with LineProgress(100, "fast", file=log, clock=lambda: now[0]) as bar:
        for _ in range(100):
            now[0] += 0.001
            bar.update(1)
    assert [line.split(" (")[0] for line in log.getvalue().splitlines()] == [
        "fast: 0%", "fast: 100%"]
    log = io.StringIO()
    with LineProgress(100, "slow", file=log, clock=lambda: now[0]) as bar:
        for _ in range(100):
            now[0] += 0.5  # a step (10 units) takes 5 s
            bar.update(1)
    assert len(log.getvalue().splitlines()) == 11
    log = io.StringIO()
    with LineProgress(100, "mid", file=log, clock=lambda: now[0]) as bar:
        for _ in range(100):
            now[0] += 0.15  # a step takes 1.5 s: every other step gets its line
            bar.update(1)
    assert [line.split("%")[0] for line in log.getvalue().splitlines()] == [
        "mid: 0", "mid: 20", "mid: 40", "mid: 60", "mid: 80", "mid: 100"]


def test_line_every_interval_and_where_it_stopped() -> None:
    now = [0.0]
    log = io.StringIO()
    bar = LineProgress(None, "scan", unit="files", file=log, interval=60, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 30
        bar.update(2)
    bar.close()
    lines = log.getvalue().splitlines()
    # the start, after 60 s and 120 s, and the close
    assert lines == ["scan: 0 files 0s elapsed", "scan: 4 files 1m 00s elapsed, 0.0667 files/s",
                     "scan: 8 files 2m 00s elapsed, 0.0667 files/s",
                     "scan: 10 files 2m 30s elapsed, 0.0667 files/s"]
    log = io.StringIO()
    with LineProgress(10, "cut", file=log, clock=lambda: 0.0) as early:
        early.update(3)
    assert log.getvalue().splitlines()[-1] == "cut: stopped at 30% (3/10 it) after 0s"


def test_terminal_gets_tqdm_and_disabled_gets_nothing() -> None:
    term = FakeTerminal()
    with progress_bar(10, "bar", file=term) as bar:
        assert not isinstance(bar, LineProgress)
        bar.update(10)
    assert "\r" in term.getvalue() and "bar" in term.getvalue()
    assert isinstance(progress_bar(10, "off", enabled=False), NullProgress)
    assert isinstance(progress_bar(10, "log", file=io.StringIO()), LineProgress)
    assert list(track(iter([1, 2]), "it", enabled=False)) == [1, 2]


def test_track_closes_when_the_loop_stops_early() -> None:
    log = io.StringIO()
    for i in track(range(10), "loop", file=log):
        if i == 4:
            break
    # CPython closes the abandoned generator at once: its reporter says where it stopped
    assert log.getvalue().splitlines()[-1] == "loop: stopped at 40% (4/10 it) after 0s"


def linear() -> nn.Linear:
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
        lin.bias.zero_()
    return lin


def test_certify_and_predict_report_samples_only_when_asked(
    capsys: pytest.CaptureFixture[str], every_step: None,
) -> None:
    x = torch.tensor([[0.5, 0.0], [0.0, 0.0], [-1.0, 0.0]])
    quiet = certify(linear(), x, 0.5, 10, 2000, generator=torch.Generator().manual_seed(0))
    assert capsys.readouterr().err == ""
    loud = certify(linear(), x, 0.5, 10, 2000, batch_size=100,
                   generator=torch.Generator().manual_seed(0), progress=True)
    err = capsys.readouterr().err
    assert torch.equal(quiet[0], loud[0]) and torch.equal(quiet[1], loud[1])
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0] == "certify: 0% (0/6,030 samples) 0s elapsed"
    assert lines[-1].startswith("certify: 100% (6,030/6,030 samples) done in")
    assert len(lines) == 11
    predict(linear(), x, 0.5, 500, generator=torch.Generator().manual_seed(0), progress=True)
    assert "predict: 100% (1,500/1,500 samples)" in capsys.readouterr().err
    with pytest.raises(InputError, match="progress"):
        certify(linear(), x, 0.5, progress="yes")  # type: ignore[arg-type]


def test_train_reports_batches_with_the_loss(
    capsys: pytest.CaptureFixture[str], every_step: None,
) -> None:
    x, y = torch.rand(40, 1, 2, 2), torch.arange(40) % 2
    calls: list[int] = []
    model = build_model("mlp", (1, 2, 2), 2, hidden=(4,))
    train(model, x, y, TrainConfig(epochs=3, batch_size=8),
          generator=torch.Generator().manual_seed(0), progress=lambda e, _loss: calls.append(e))
    assert calls == [0, 1, 2] and capsys.readouterr().err == ""
    hist = train(model, x, y, TrainConfig(epochs=3, batch_size=8),
                 generator=torch.Generator().manual_seed(0), progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "train: 0% (0/15 batches) 0s elapsed"
    assert lines[-1].startswith("train: 100% (15/15 batches) done in")
    assert lines[-1].endswith(f", epoch 3/3 loss {hist.loss[-1]:.4f}")
    assert any(line.endswith(f", epoch 1/3 loss {hist.loss[0]:.4f}") for line in lines)
    with pytest.raises(InputError, match="progress"):
        train(model, x, y, TrainConfig(epochs=1), generator=torch.Generator(),
              progress="on")  # type: ignore[arg-type]


def test_command_writes_plain_progress_lines_to_a_log_file(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with log.open("w") as err:
        subprocess.run(
            [sys.executable, "-m", "advgame.cli", "train", "--dataset", "digits-8x8",
             "--classes", "0", "1", "--epochs", "3", "--hidden", "8",
             "--out", str(tmp_path / "o")],
            check=True, stdout=subprocess.DEVNULL, stderr=err,
        )
    text = log.read_text()
    assert "\r" not in text
    assert "train: 0% (0/3 it)" in text and "train: 100% (3/3 it) done in" in text


def test_cascade_and_evaluate_report_stages_only_when_asked(
    capsys: pytest.CaptureFixture[str], every_step: None,
) -> None:
    from advgame.attacks.cascade import run_cascade
    from advgame.evaluation import evaluate

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    quiet = run_cascade(model, x, y, 0.3, "inf", ["apgd-ce", "square"],
                        torch.Generator().manual_seed(0))
    assert capsys.readouterr().err == ""
    loud = run_cascade(model, x, y, 0.3, "inf", ["apgd-ce", "square"],
                       torch.Generator().manual_seed(0), progress=True)
    assert torch.equal(quiet.robust, loud.robust)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "cascade: 0% (0/2 stages) 0s elapsed"
    assert lines[1].startswith("cascade: 50% (1/2 stages)")
    assert lines[1].endswith("apgd-ce on 6 points")
    assert lines[-1].startswith("cascade: 100% (2/2 stages) done in")
    evaluate(model, x, y, 0.3, "inf", ["apgd-ce"], torch.Generator().manual_seed(0),
             checks=False, progress=True)
    assert "cascade: 100% (1/1 stages)" in capsys.readouterr().err
    with pytest.raises(InputError, match="progress"):
        run_cascade(model, x, y, 0.3, "inf", ["fgm"], progress="yes")  # type: ignore[arg-type]
