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

from advgame import __version__
from advgame.cli import flags
from advgame.cli.flags import floats as _floats
from advgame.errors import InputError


class _Parser(argparse.ArgumentParser):
    #: the help to point to (the command's, for options the top-level parser rejects)
    help_hint: str | None = None

    def error(self, message: str) -> NoReturn:  # one line, exit 2
        hint = self.help_hint or f"{self.prog} --help"
        self.exit(2, f"advgame: error: {message} (see '{hint}')\n")


def _progress(it: Iterable[Any], desc: str = "", total: int | None = None) -> Iterable[Any]:
    """The commands' progress: a tqdm bar on a terminal, plain lines (every 10%, at least
    once a minute) when stderr is a file or a pipe (:func:`advgame.progress.track`)."""
    from advgame.progress import track

    return track(it, desc, total)


def _common(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("--out", type=Path, default=Path(default_out),
                   help=f"output directory (default {default_out})")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of the run: split, subsets, training, attacks")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:1 ... (default: cuda when available, else cpu)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file of config fields (beats --quick, loses to flags)")
    p.add_argument("--quick", action="store_true",
                   help="reduced run for smoke tests (the values marked 'quick' below)")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None, help="mnist-5k, digits-8x8, gaussians, "
                   "linear, mnist, fashion-mnist, cifar10")
    p.add_argument("--classes", type=int, nargs="+", default=None,
                   help="class ids to keep, relabelled 0..k-1 in this order (default: all)")
    p.add_argument("--data-dir", dest="data_dir", default=None,
                   help="directory with IDX / CIFAR-10 files (mnist, fashion-mnist, cifar10)")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=None, help="classifier architecture: mlp, cnn, linear")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="MLP hidden widths")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of the classifier")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                   help="training batch size")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate of training")


#: Every command: name -> (module defining its runner and config, config class, help).
#: The top-level ``advgame --help`` is built from this table alone, without importing
#: torch or the experiments; a command's own parser imports its module. An experiment
#: module exposes its config dataclass, ``QUICK`` (the ``--quick`` preset) and
#: ``run_<command>(config, out, device, progress)``; its flags are in :mod:`advgame.cli.
#: flags`. Nothing below the CLI imports it.
COMMANDS: dict[str, tuple[str | None, str | None, str]] = {
    "train": ("advgame.experiments.classifier", "TrainRunConfig",
              "train a classifier (writes OUT/model.pt)"),
    "attack": ("advgame.experiments.classifier", "AttackRunConfig",
               "clean and robust accuracy under FGM/PGD"),
    "paper1": ("advgame.experiments.paper1", "Paper1Config",
               "S1: the additive game paper, end to end"),
    "paper2": ("advgame.experiments.paper2", "Paper2Config",
               "S2: cat-and-mouse, Sens-FGSM, minimax/maximin, cross-evaluation of defenses "
               "and attacks"),
    "game": ("advgame.experiments.game", "GameConfig",
             "the empirical game over configured strategies: payoff matrix, equilibrium, "
             "mixed defense, double oracle"),
    "certify": ("advgame.experiments.certify", "CertifyConfig",
                "randomized-smoothing certification of a model"),
    "evaluate": ("advgame.experiments.evaluate", "EvaluateConfig",
                 "robust accuracy to the AutoAttack standard (APGD, FAB, Square cascade) "
                 "with gradient-masking checks"),
    "report": (None, None, "render DIR/results.json into DIR/report.html"),
}

#: Help of config fields whose flags a command module adds without help text.
FIELD_HELP: dict[str, str] = {
    "model": "checkpoint to load (default: train one first)",
    "attacks": "attacks to run: fgm, pgd",
    "norm": "threat model norm: 2 or inf",
    "eps": "attack budgets, in pixel units of [0, 1] images",
    "pgd_steps": "PGD iterations",
    "pgd_restarts": "PGD restarts (worst case per example; the first starts at x)",
    "n_test": "test points evaluated, a seeded stratified sample (default: all)",
    "sigma": "std of the Gaussian smoothing noise, pixel units",
    "n0": "noise samples that select the class (Cohen et al.'s n0)",
    "n": "noise samples that estimate the class probability (Cohen et al.'s n)",
    "alpha": "failure probability of the Clopper-Pearson bound",
    "eps_a": "attacker budgets of Table 1 (L-norm_a)",
    "eps_d": "defender budgets of Table 1 (L-norm_d)",
    "norm_a": "attacker norm: 2 or inf",
    "norm_d": "defender norm: 2 or inf",
    "solver": "finite-sample shift solver: auto, exact or fast",
    "fashion_dir": "directory of Fashion-MNIST IDX files: adds its pairs (default: none)",
    "cifar_dir": "directory of the CIFAR-10 python batches: adds CIFAR-2 pairs "
                 "(default: none)",
    "round_epochs": "epochs to train each cat-and-mouse model u_k",
    "sens_epochs": "epochs of Sens-FGSM training",
    "minimax_iterations": "outer iterations of the alternating minimax solver",
    "minimax_rho": "weight of the sensitivity penalty of minimax-sens",
    "attnet_epochs": "epochs to train each fresh AttNet",
    "attnet_restarts": "fresh MLP AttNets per defense (worst case per example)",
    "cnn_attnet_restarts": "fresh convolutional AttNets per defense (0 disables)",
    "do_eps": "budget of the double oracle's attacker oracle",
    "do_tol": "double oracle stops when its bounds are this close",
    "do_max_iters": "double oracle iterations at most",
}


def _shown(value: Any) -> str:
    """A default as a user would type it on the command line."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)) and not value:
        return "none"
    if isinstance(value, (tuple, list)):
        return " ".join(_shown(v) for v in value) if all(
            not isinstance(v, (tuple, list, dict)) for v in value) else str(list(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def document_defaults(p: argparse.ArgumentParser, cls: type, quick: dict[str, Any]) -> None:
    """Give every option of ``p`` a help text that ends with its default and, where the
    ``--quick`` preset changes it, its quick value: "training epochs (default 10; quick 2)".

    Options that set a config field of ``cls`` take the field's default; the text comes
    from the option itself or :data:`FIELD_HELP`.
    """
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(cls)}
    for action in p._actions:
        if not action.option_strings or action.dest == "help":
            continue
        text = action.help or FIELD_HELP.get(action.dest, "")
        f = fields.get(action.dest)
        if f is not None and action.nargs != 0:
            default = f.default if f.default is not dataclasses.MISSING else None
            if default is not None and text.endswith(" (default: all)"):
                text = text[:-len(" (default: all)")]  # a command whose default is not all
            parts = []
            if default is not None and "default" not in text:
                parts.append(f"default {_shown(default)}")
            if action.dest in quick:
                parts.append(f"quick {_shown(quick[action.dest])}")
            if parts and text.endswith(")") and "default" in text:
                text = f"{text[:-1]}; {'; '.join(parts)})"  # "(default: all; quick 50)"
            elif parts:
                text = f"{text} ({'; '.join(parts)})" if text else "; ".join(parts)
        elif isinstance(action, argparse.BooleanOptionalAction) and f is not None and (
                "default" not in text):
            text = f"{text} (default {_shown(f.default)})"
        action.help = text


def _command_module(name: str) -> tuple[Any, type, dict[str, Any]]:
    """(module, config class, --quick preset) of a command (imports the module)."""
    import importlib

    mod_name, cls_name, _ = COMMANDS[name]
    assert mod_name is not None and cls_name is not None
    mod = importlib.import_module(mod_name)
    quick = _QUICK[name] if name in _QUICK else getattr(mod, "QUICK", {})
    return mod, getattr(mod, cls_name), quick


def build_parser(commands: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``advgame`` parser. ``commands``: those that get their full option set
    (None = all); the others are listed with their help only, so that ``advgame --help``
    imports neither torch nor the experiments."""
    parser = _Parser(prog="advgame", description="Adversarial robustness as a two-player "
                     "zero-sum game: attacks, defenses, equilibria, certification.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"advgame {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    full = set(COMMANDS if commands is None else commands)
    for name, (_, _, help_text) in COMMANDS.items():
        if name not in full:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        if name == "report":
            p = sub.add_parser("report", help=help_text)
            p.add_argument("dir", type=Path, metavar="DIR", help="a run's output directory")
            p.add_argument("--format", choices=("html", "md"), default="html",
                           help="html (default: DIR/report.html) or md (DIR/report.md)")
            continue
        _, cls, quick = _command_module(name)
        p = sub.add_parser(name, help=help_text)
        _common(p, f"runs/{name}")
        _data_args(p)
        _model_args(p)
        if name == "attack":
            _attack_args(p)
        elif name != "train":
            getattr(flags, f"{name}_flags")(p)
        document_defaults(p, cls, quick)
    return parser


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="checkpoint (default: train one first)")
    p.add_argument("--attack", dest="attacks", nargs="+", default=None, help="fgm, pgd")
    p.add_argument("--norm", default=None, help="threat model norm: 2 or inf")
    p.add_argument("--eps", type=_floats, nargs="+", default=None,
                   help="attack budgets, in pixel units of [0, 1] images")
    p.add_argument("--pgd-steps", dest="pgd_steps", type=int, default=None,
                   help="PGD iterations")
    p.add_argument("--pgd-restarts", dest="pgd_restarts", type=int, default=None,
                   help="PGD restarts (worst case per example; the first starts at x)")
    p.add_argument("--n-test", dest="n_test", type=int, default=None,
                   help="test points evaluated, a seeded stratified sample (default: all)")


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
    from advgame.experiments.runtime import load_config

    return load_config(cls, args.config, _overrides(args, cls),
                       quick=quick if args.quick else None)


def run_config_command(
    args: argparse.Namespace, cls: type, runner: Callable[..., Any], quick: dict[str, Any]
) -> Any:
    """Load the config (:func:`resolve_config`), check ``--out``, pick the device, run,
    report. A failed run leaves no empty output directory behind."""
    import torch

    from advgame.experiments.runtime import (
        check_previous_results,
        output_directory,
        parse_device,
    )

    cfg: Any = resolve_config(args, cls, quick)
    device = parse_device(args.device)
    check_previous_results(args.out, args.command, cfg)
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
    _set_threads()
    mod, cls, quick = _command_module(args.command)
    runner = getattr(mod, f"run_{args.command}")
    if args.command == "paper1":
        runner = _paper1_runner(args, mod)
    run_config_command(args, cls, runner, quick)


def _paper1_runner(args: argparse.Namespace, mod: Any) -> Callable[..., Any]:
    """paper1: ``--norm`` sets both norms; ``--model`` runs on a saved two-class model."""
    if args.norm is not None:
        args.norm_a = args.norm_a or args.norm
        args.norm_d = args.norm_d or args.norm
    model = args.model

    def runner(cfg: Any, out: Path, device: Any, progress: Any) -> Any:
        if model is not None:
            return mod.run_paper1_with_model(cfg, out, device, model, progress)
        return mod.run_paper1(cfg, out, device, progress)
    return runner


def _flag_named(parser: argparse.ArgumentParser, command: str | None, field: str
                ) -> str | None:
    """The option of ``command`` that sets config field ``field`` where its name is not
    simply ``--field`` spelled with dashes (``n`` is set by ``--num-samples``), else None."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
               None)
    if sub is None or command not in sub.choices:
        return None
    for action in sub.choices[command]._actions:
        if action.dest == field and action.option_strings:
            flag = max(action.option_strings, key=len)
            return None if flag == "--" + field.replace("_", "-") else flag
    return None


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advgame`` console script. Returns the exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command_in(words)
    parser = build_parser([] if command is None else [command])
    if command is not None and isinstance(parser, _Parser):
        parser.help_hint = f"advgame {command} --help"
    args = parser.parse_args(words)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except InputError as e:
        flag = _flag_named(parser, command, e.argument)
        said = f"{e.argument} ({flag}): {e.problem}" if flag else str(e)
        print(f"advgame: error: {said}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("advgame: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    if "advgame.distributed" in sys.modules:  # a torchrun worker ends without finalization
        sys.modules["advgame.distributed"].exit_now_if_distributed(0)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
