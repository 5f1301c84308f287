"""The ``advgame`` command: parses arguments and delegates to ``advgame.experiments``.

Every command takes ``--out DIR``, ``--seed``, ``--device``, ``--config FILE`` (TOML whose
keys are the command's config fields) and ``--quick``; settings combine as defaults <
``--quick`` preset < ``--config`` file < flags (:func:`resolve_config`). Bad input exits
with status 2 and one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from advgame.errors import InputError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        self.exit(2, f"advgame: error: {message} (see '{self.prog} --help')\n")


def _progress(it: Iterable[Any], desc: str = "", total: int | None = None) -> Iterable[Any]:
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, total=total, leave=False, dynamic_ncols=True)


def _floats(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", type=Path, default=Path(default_out),
                   help=f"output directory (default {default_out})")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    p.add_argument("--config", type=Path, default=None, help="TOML file of config fields")
    p.add_argument("--quick", action="store_true", help="reduced run for smoke tests")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="mnist-5k (default), digits-8x8, gaussians, "
                   "linear, mnist, fashion-mnist, cifar10")
    p.add_argument("--classes", type=int, nargs="+", default=None, help="class ids to keep")
    p.add_argument("--data-dir", dest="data_dir", default=None,
                   help="directory with IDX / CIFAR-10 files")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=None, help="mlp (default), cnn, linear")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="MLP hidden widths")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advgame", description="Adversarial robustness as a two-player "
                     "zero-sum game: attacks, defenses, equilibria, certification.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a classifier (writes OUT/model.pt)")
    _common(p, "runs/train")
    _data_args(p)
    _model_args(p)

    p = sub.add_parser("attack", help="clean and robust accuracy under FGM/PGD")
    _common(p, "runs/attack")
    _data_args(p)
    _model_args(p)
    p.add_argument("--model", default=None, help="checkpoint (default: train one first)")
    p.add_argument("--attack", dest="attacks", nargs="+", default=None, help="fgm, pgd")
    p.add_argument("--norm", default=None, help="2 or inf (default inf)")
    p.add_argument("--eps", type=_floats, nargs="+", default=None)
    p.add_argument("--pgd-steps", dest="pgd_steps", type=int, default=None)
    p.add_argument("--pgd-restarts", dest="pgd_restarts", type=int, default=None)
    p.add_argument("--n-test", dest="n_test", type=int, default=None)

    for name, add in _EXTRA_COMMANDS.items():
        add(sub, name)

    p = sub.add_parser("report", help="render DIR/results.json into DIR/report.html")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--format", choices=("html", "md"), default="html")
    return parser


# Commands defined in other modules register here: name -> add_parser(sub, name).
_EXTRA_COMMANDS: dict[str, Callable[[Any, str], None]] = {}
_RUNNERS: dict[str, Callable[[argparse.Namespace], Any]] = {}


_QUICK: dict[str, dict[str, Any]] = {
    "train": {"epochs": 2},
    "attack": {"epochs": 2, "n_test": 200, "eps": (0.1, 0.2), "pgd_steps": 10},
}


def _overrides(args: argparse.Namespace, cls: type, skip: Sequence[str] = ()) -> dict[str, Any]:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    vals = {k: v for k, v in vars(args).items() if k in names and k not in skip}
    vals["seed"] = args.seed
    for k, v in vals.items():
        if isinstance(v, list):
            vals[k] = tuple(v)
    return vals


def resolve_config(args: argparse.Namespace, cls: type, quick: dict[str, Any]) -> Any:
    """The command's config: defaults < ``--quick`` preset < ``--config`` file < flags.

    Every value, from whichever layer, is checked against its field's type and range.
    """
    from advgame.experiments.common import load_config

    return load_config(cls, args.config, _overrides(args, cls),
                       quick=quick if args.quick else None)


def run_config_command(
    args: argparse.Namespace, cls: type, runner: Callable[..., Any], quick: dict[str, Any]
) -> Any:
    """Load the config (:func:`resolve_config`), check ``--out``, pick the device, run,
    report. A failed run leaves no empty output directory behind."""
    import torch

    from advgame.experiments.common import output_directory, parse_device

    cfg: Any = resolve_config(args, cls, quick)
    device = parse_device(args.device)
    with output_directory(args.out) as out:
        from advgame import distributed

        if distributed.init_from_env() and device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        res = runner(cfg, out, device, _progress)
    main_rank = distributed.is_main()
    distributed.shutdown()  # all ranks finished: leave the group together
    if not main_rank:
        return res
    print(f"advgame {args.command}: results in {out / 'results.json'}"
          f" and {out / 'report.html'}")
    for line in res.get("summary", []):
        print(f"  {line}")
    return res


def _run(args: argparse.Namespace) -> None:
    if args.command == "report":
        from advgame.report import render

        path = render(args.dir, fmt=args.format)
        print(f"advgame report: wrote {path}")
        return
    if args.command in _RUNNERS:
        _RUNNERS[args.command](args)
        return
    from advgame.experiments import classifier

    if args.command == "train":
        run_config_command(args, classifier.TrainRunConfig, classifier.run_train, _QUICK["train"])
    elif args.command == "attack":
        run_config_command(args, classifier.AttackRunConfig, classifier.run_attack,
                           _QUICK["attack"])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advgame`` console script. Returns the exit status."""
    _set_threads()
    _register_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except InputError as e:
        print(f"advgame: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("advgame: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def _set_threads() -> None:
    """Use one intra-op thread unless OMP_NUM_THREADS says otherwise.

    The models here are small: a second OpenMP thread gains little and, when the other
    core is busy, spin-waiting makes training 10-30x slower (measured on 2 cores).
    """
    import os

    import torch

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
        try:  # numpy's BLAS too (the zero-sum solvers factorize matrices)
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            pass


def _register_commands() -> None:
    """Let experiment modules add their subcommands (paper1, paper2, game, certify)."""
    import importlib

    for mod in ("advgame.experiments.paper1", "advgame.experiments.paper2",
                "advgame.experiments.game", "advgame.experiments.certify"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        register = getattr(m, "register_cli", None)
        if register is not None:
            register(_EXTRA_COMMANDS, _RUNNERS, run_config_command, _common)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
