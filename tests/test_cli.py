"""The command line: commands run end to end; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------- precedence and --out


#: per command: (a field its --quick preset sets, a TOML value, a flag and its value)
PRECEDENCE = {
    "train": ("epochs", "epochs = 4", ["--epochs", "5"], 4, 5),
    "attack": ("eps", "eps = [0.05]", ["--eps", "0.3"], (0.05,), (0.3,)),
    "certify": ("n", "n = 3000", ["--num-samples", "500"], 3000, 500),
    "paper1": ("n_test", "n_test = 60", ["--n-test", "70"], 60, 70),
    "paper2": ("n_test", "n_test = 60", ["--n-test", "70"], 60, 70),
    "game": ("n_test", "n_test = 60", ["--n-test", "70"], 60, 70),
}


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the runs by recording the config each command would run with."""
    import advgame.cli as cli

    seen: list[Any] = []

    def record(args: Any, cls: type, runner: Any, quick: dict[str, Any]) -> None:
        seen.append((cli.resolve_config(args, cls, quick), quick))

    monkeypatch.setattr(cli, "run_config_command", record)
    return seen


@pytest.mark.parametrize("command", sorted(PRECEDENCE))
def test_precedence_defaults_quick_config_flags(
    tmp_path: Path, resolved: list[Any], command: str
) -> None:
    field, toml, flag, from_file, from_flag = PRECEDENCE[command]
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml + "\n")
    out = ["--out", str(tmp_path / "o")]
    for argv in ([], ["--quick"], ["--quick", "--config", str(cfg)],
                 ["--config", str(cfg), "--quick", *flag], ["--config", str(cfg)]):
        assert main([command, *argv, *out]) == 0
    (default, quick), (quick_cfg, preset), (file_cfg, _), (flag_cfg, _), (plain, _) = resolved
    assert getattr(quick_cfg, field) == preset[field] != getattr(default, field)
    assert getattr(file_cfg, field) == from_file  # the file beats --quick
    assert getattr(flag_cfg, field) == from_flag  # a flag beats both
    assert getattr(plain, field) == from_file
    # the rest of the quick preset still applies under --config
    for other in (k for k in preset if k != field):
        assert getattr(file_cfg, other) == preset[other]


#: a negative value for commands without an n_test field (or that check another first)
NEGATIVE = {"train": ("lr = -1.0", "lr"), "paper1": ("n_noise = -5", "n_noise")}


@pytest.mark.parametrize("command", sorted(PRECEDENCE))
@pytest.mark.parametrize(("toml", "needle"), [
    ('n_test = -5', "n_test"), ('epochs = "abc"', "epochs: must be an integer"),
    ('seed = 1.5', "seed"), ('hidden = []', "hidden"), ('arch = "resnet"', "arch"),
    ('classes = [3]', "classes"), ('test_fraction = 2.0', "test_fraction"),
])
def test_bad_config_values_fail_under_quick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, toml: str,
    needle: str,
) -> None:
    if toml.startswith("n_test") and command in NEGATIVE:
        toml, needle = NEGATIVE[command]
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml + "\n")
    out = tmp_path / "o"
    assert main([command, "--quick", "--config", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not out.exists()


def test_attack_quick_with_config_runs_the_config_eps(tmp_path: Path) -> None:
    """The issue's example: eps in the file wins over --quick's eps, and is recorded."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('dataset = "gaussians"\nhidden = [8]\neps = [0.05]\n')
    assert main(["attack", "--quick", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["config"]["eps"] == [0.05] and res["config"]["epochs"] == 2
    assert res["tables"][0]["columns"][-1] == "eps=0.05"


@pytest.mark.parametrize("command", [*sorted(PRECEDENCE), "report"])
def test_out_that_is_a_file_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    target = tmp_path / "taken"
    target.write_text("a regular file\n")
    for out in (target, target / "below"):
        args = [command, str(out)] if command == "report" else [command, "--out", str(out)]
        p = run_cli(*args)
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert "not a directory" in lines[0], lines
    assert target.read_text() == "a regular file\n"


def test_failed_run_leaves_no_empty_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "new" / "run"
    p = run_cli("attack", "--dataset", "gaussians", "--model", str(tmp_path / "none.pt"),
                "--out", str(out))
    assert p.returncode == 2 and "not found" in p.stderr
    assert not (tmp_path / "new").exists()
    keep = tmp_path / "existing"
    keep.mkdir()
    p = run_cli("attack", "--dataset", "gaussians", "--model", str(tmp_path / "none.pt"),
                "--out", str(keep))
    assert p.returncode == 2 and keep.is_dir() and not any(keep.iterdir())


# ------------------------------------------------------------------ help texts


def _options(parser: Any) -> list[Any]:
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


@pytest.mark.parametrize("command", ["train", "attack", "paper1", "paper2", "game",
                                     "certify", "report"])
def test_every_option_has_help_and_its_default(command: str) -> None:
    import dataclasses

    from advgame.cli import COMMANDS, _command_module, build_parser

    p = build_parser([command])._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    fields = {}
    if COMMANDS[command][1] is not None:
        fields = {f.name: f.default for f in dataclasses.fields(_command_module(command)[1])}
    for action in _options(p):
        assert action.help, f"{command} {action.option_strings} has no help"
        default = fields.get(action.dest)
        if default not in (None, dataclasses.MISSING) and action.nargs != 0:
            assert "default" in action.help, (command, action.option_strings, action.help)


def test_certify_help_names_its_flags() -> None:
    import re

    p = run_cli("certify", "--help")
    assert p.returncode == 0
    assert "--num-samples" in p.stdout and not re.search(r"--n(?![\w-])", p.stdout)
    assert "default 100000; quick 1000" in " ".join(p.stdout.split())


def test_top_level_help_is_fast_and_imports_no_torch() -> None:
    code = ("import sys\nfrom advgame.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('TORCH' if 'torch' in sys.modules else 'NONE')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stdout.strip().endswith("NONE"), p.stdout + p.stderr
    for cmd in ("train", "attack", "paper1", "paper2", "game", "certify", "report"):
        assert cmd in p.stdout


# ------------------------------------------------------------------ stored results


def test_out_holding_another_runs_results_is_never_overwritten(tmp_path: Path) -> None:
    """A run refuses an --out that holds another command's results or the same command's
    under another config (one line, exit 2, the files untouched); the same command with
    the same settings resumes into it."""
    import hashlib

    out = tmp_path / "run"
    train = ["train", "--dataset", "digits-8x8", "--classes", "0", "1", "--epochs", "1",
             "--hidden", "8", "--out", str(out)]
    assert main(train) == 0

    def digests() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.iterdir()) if p.is_file()}

    before = digests()
    for args, needle in [
        (["attack", "--dataset", "digits-8x8", "--classes", "0", "1", "--epochs", "1",
          "--hidden", "8", "--eps", "0.1", "--out", str(out)], "'advgame train'"),
        ([*train[:-2], "--seed", "3", "--out", str(out)], "another seed"),
    ]:
        p = run_cli(*args)
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert "out:" in lines[0] and needle in lines[0], lines
        assert digests() == before
    # a model.pt of another config without results (an interrupted run) is kept too
    (out / "results.json").unlink()
    p = run_cli(*train[:-2], "--epochs", "2", "--out", str(out))
    assert p.returncode == 2 and "another config" in p.stderr, p.stderr
    assert digests()["model.pt"] == before["model.pt"]
    # the same settings resume: the stored model is reused, not retrained
    assert main(train) == 0
    assert digests()["model.pt"] == before["model.pt"]
    res = json.loads((out / "results.json").read_text())
    assert res["command"] == "train"
    # a run on a checkpoint records the checkpoint's classifier fields in its config:
    # its rerun is still the same run
    att = tmp_path / "att"
    attack = ["attack", "--dataset", "digits-8x8", "--classes", "0", "1", "--model",
              str(out / "model.pt"), "--arch", "cnn", "--eps", "0.1", "--out", str(att)]
    assert main(attack) == 0
    assert json.loads((att / "results.json").read_text())["config"]["arch"] == "mlp"
    assert main(attack) == 0
    p = run_cli(*attack[:-2], "--eps", "0.2", "--out", str(att))
    assert p.returncode == 2 and "another eps" in p.stderr, p.stderr


def test_result_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Atomic writes go through a temporary file (mkstemp: owner-only); the file that
    lands gets 0666 less the umask, like any new file (here umask 022: 0644)."""
    import os
    import stat

    from advgame.storage import atomic_write_json, atomic_write_text

    old = os.umask(0o022)
    try:
        for p in (atomic_write_json(tmp_path / "r.json", {"a": 1}),
                  atomic_write_text(tmp_path / "r.html", "<p>")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o644, oct(p.stat().st_mode)
        os.umask(0o077)
        p = atomic_write_text(tmp_path / "private.txt", "x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_paper1_checks_its_arguments_before_any_work(tmp_path: Path) -> None:
    """Extra dataset directories and --n-test are checked before training (they were read
    or used only late in the run); a checkpoint that does not fit is not copied."""
    for args, needle in [(["--fashion-dir", str(tmp_path / "none")], "fashion_dir"),
                         (["--cifar-dir", str(tmp_path)], "cifar_dir"),
                         (["--n-test", "0"], "n_test")]:
        out = tmp_path / "p1"
        p = run_cli("paper1", "--quick", *args, "--out", str(out))
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], p.stderr
        assert not out.exists()
    ten = tmp_path / "ten"
    assert main(["train", "--dataset", "digits-8x8", "--epochs", "1", "--hidden", "8",
                 "--out", str(ten)]) == 0
    out = tmp_path / "p1m"
    p = run_cli("paper1", "--quick", "--dataset", "digits-8x8", "--model",
                str(ten / "model.pt"), "--out", str(out))
    assert p.returncode == 2 and "model:" in p.stderr and "10 classes" in p.stderr, p.stderr
    assert not out.exists()
