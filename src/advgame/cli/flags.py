"""The flags of each experiment command, beyond the common (``--out``, ``--seed``, ...),
data and model flags every command takes. Each flag sets the config field of its ``dest``;
its help gets the field's default and ``--quick`` value added by
:func:`advgame.cli.document_defaults`."""

from __future__ import annotations

import argparse
from argparse import BooleanOptionalAction


def floats(s: str) -> float:
    """A float argument; a bad one is a one-line usage error."""
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None


def paper1_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``advgame paper1`` beyond the common, data and model ones."""
    p.add_argument("--model", default=None, help="two-class checkpoint to load")
    p.add_argument("--eps-a", dest="eps_a", type=floats, nargs="+", default=None,
                   help="attacker budgets of Table 1 (default 0.1 0.2)")
    p.add_argument("--eps-d", dest="eps_d", type=floats, nargs="+", default=None,
                   help="defender budgets of Table 1 (default 0.1)")
    p.add_argument("--norm", default=None, help="sets both --norm-a and --norm-d")
    p.add_argument("--norm-a", dest="norm_a", default=None, help="2 or inf (default inf)")
    p.add_argument("--norm-d", dest="norm_d", default=None, help="2 or inf (default inf)")
    p.add_argument("--objective", default=None,
                   help="game v_n is solved for outside Table 1: box (default, attacks "
                        "clipped to [0, 1]) or free (the paper's unbounded model)")
    p.add_argument("--clip-defense", dest="clip_defense", action="store_const",
                   const=True, default=None,
                   help="evaluate shifts on clip(x + delta + v, 0, 1)")
    p.add_argument("--max-clean-drop", dest="max_clean_drop", type=floats, default=None,
                   help="clean constraint of the constrained v_n, a fraction "
                        "(default 0.01 = one point)")
    p.add_argument("--sigma", type=float, default=None,
                   help="Gaussian smoothing sigma (default 0.25)")
    p.add_argument("--solver", default=None, help="auto (default), exact or fast")
    p.add_argument("--n-test", dest="n_test", type=int, default=None,
                   help="stratified sample of test points (default: all)")
    p.add_argument("--fashion-dir", dest="fashion_dir", default=None,
                   help="Fashion-MNIST IDX directory: adds its pairs")
    p.add_argument("--cifar-dir", dest="cifar_dir", default=None,
                   help="cifar-10-batches-py directory: adds CIFAR-2 pairs")
    p.add_argument("--no-pairs", dest="pairs", action="store_const", const="none",
                   default=None, help="skip the summary over other pairs")


def paper2_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``advgame paper2`` beyond the common, data and model ones."""
    from advgame.experiments.paper2.config import DEFENSES

    p.add_argument("--eta", type=floats, default=None,
                   help="L-inf budget of the cat-and-mouse and the main table")
    p.add_argument("--rounds", type=int, default=None,
                   help="cat-and-mouse rounds K")
    p.add_argument("--etas", nargs="+", type=floats, default=None,
                   help="budgets of the eta table")
    p.add_argument("--compare-archs", dest="compare_archs", nargs="*", default=None,
                   help="other classifiers the eta table also runs with (give the "
                        "flag alone for none)")
    p.add_argument("--heatmap-rounds", dest="heatmap_rounds", type=int, default=None,
                   help="rounds in the E[k][j] matrix")
    p.add_argument("--table-rounds", dest="table_rounds", type=int, default=None,
                   help="u_1..u_N (and u_K) in the defense x attack table")
    p.add_argument("--round-epochs", dest="round_epochs", type=int, default=None)
    p.add_argument("--warm-start", dest="warm_start", action=BooleanOptionalAction,
                   default=None, help="u_k starts from u_(k-1) (default) or from scratch")
    p.add_argument("--with-clean", dest="with_clean", action=BooleanOptionalAction,
                   default=None, help="u_k also trains on clean data")
    p.add_argument("--sens-epochs", dest="sens_epochs", type=int, default=None)
    p.add_argument("--sens-surrogate", dest="sens_surrogate", default=None,
                   help="tanh (default) or normalized")
    p.add_argument("--sens-scale", dest="sens_scale", default=None,
                   help="gradient scale of the tanh surrogate: example (default) or batch")
    p.add_argument("--sens-detach-scale", dest="sens_detach_scale",
                   action=BooleanOptionalAction, default=None,
                   help="hold the surrogate's gradient scale constant in u")
    p.add_argument("--sens-clean-weight", dest="sens_clean_weight", type=floats,
                   default=None, help="weight w of the clean loss beside Sens-FGSM's "
                   "(default 0.5; 0 = the bare objective, which leaks the label)")
    p.add_argument("--adv-with-clean", dest="adv_with_clean",
                   action=BooleanOptionalAction, default=None,
                   help="online adversarial training also sees the clean batch (default)")
    p.add_argument("--minimax-iterations", dest="minimax_iterations", type=int,
                   default=None)
    p.add_argument("--minimax-k", dest="minimax_k", type=int, default=None,
                   help="follower steps per leader step")
    p.add_argument("--minimax-rho", dest="minimax_rho", type=floats, default=None)
    p.add_argument("--attnet-epochs", dest="attnet_epochs", type=int, default=None)
    p.add_argument("--attnet-restarts", dest="attnet_restarts", type=int, default=None)
    p.add_argument("--attnet-objective", dest="attnet_objective", default=None,
                   help="what fresh AttNets maximize: cw, ce, clamped-ce or dlr")
    p.add_argument("--cnn-attnet-restarts", dest="cnn_attnet_restarts", type=int,
                   default=None)
    p.add_argument("--pgd-steps", dest="pgd_steps", type=int, default=None)
    p.add_argument("--n-test", dest="n_test", type=int, default=None)
    p.add_argument("--defenses", nargs="+", default=None,
                   help="subset of: " + ", ".join(DEFENSES))


def game_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``advgame game`` beyond the common, data and model ones."""
    p.add_argument("--n-test", dest="n_test", type=int, default=None)
    p.add_argument("--defense-epochs", dest="defense_epochs", type=int, default=None,
                   help="epochs of trained defenders (default --epochs)")
    p.add_argument("--double-oracle", dest="double_oracle", action=BooleanOptionalAction,
                   default=None, help="run the double oracle (default on)")
    p.add_argument("--do-attacker", dest="do_attacker", default=None,
                   help="attacker oracle: attnet (default) or pgd")
    p.add_argument("--do-eps", dest="do_eps", type=floats, default=None)
    p.add_argument("--do-tol", dest="do_tol", type=floats, default=None)
    p.add_argument("--do-max-iters", dest="do_max_iters", type=int, default=None)


def certify_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``advgame certify`` beyond the common, data and model ones."""
    from advgame import smoothing

    p.add_argument("--model", default=None, help="checkpoint (default: train one first)")
    p.add_argument("--sigma", type=float, default=None,
                   help="std of the Gaussian smoothing noise, pixel units of [0, 1]")
    p.add_argument("--n0", type=int, default=None,
                   help="noise samples per input that select the class (Cohen's n0)")
    p.add_argument("--num-samples", "-N", dest="n", type=int, default=None,
                   help="estimation samples per input (Cohen et al.'s N)")
    p.add_argument("--alpha", type=float, default=None,
                   help="failure probability of each certificate (Clopper-Pearson)")
    p.add_argument("--noise-batch", dest="noise_batch", type=int, default=None,
                   help="noisy copies per forward pass (memory does not grow with "
                        "--num-samples)")
    p.add_argument("--n-test", dest="n_test", type=int, default=None,
                   help="test inputs certified, a seeded stratified sample")
    p.add_argument("--noise", choices=smoothing.NOISE_MODES, default=None,
                   help="noise across the inputs of a block: shared (default; one draw "
                        "serves the block, per input i.i.d.) or independent")
    p.add_argument("--block", type=int, default=None,
                   help="inputs per stored unit and per certify call (default 10)")


def evaluate_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``advgame evaluate`` beyond the common, data and model ones."""
    p.add_argument("--model", default=None, help="checkpoint (default: train one first)")
    p.add_argument("--norm", default=None, help="threat model norm: 2 or inf")
    p.add_argument("--eps", type=floats, nargs="+", default=None,
                   help="attack budgets, pixel units of [0, 1] images")
    p.add_argument("--attacks", default=None,
                   help="standard, plus, rand, or attack names joined by commas "
                        "(apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square, pgd, fgm, cw; "
                        "apgd-ce-eot, apgd-dlr-eot: gradients averaged over 20 draws; "
                        "apgd-ce-5, apgd-dlr-5, fab-5, square-5: 5 restarts)")
    p.add_argument("--n-test", dest="n_test", type=int, default=None,
                   help="test points evaluated, a seeded stratified sample")
    p.add_argument("--no-checks", dest="checks", action="store_const", const=False,
                   default=None, help="skip the gradient-masking checks' extra attacks")
    p.add_argument("--defense", default=None,
                   help="a defense in front of the model: none, median:K (K x K median "
                        "filter), bit-depth:B (B-bit quantization), smoothing:SIGMA "
                        "(Gaussian noise, randomized)")
    p.add_argument("--bpda", action="store_const", const=True, default=None,
                   help="attack median / bit-depth through BPDA (identity backward pass)")
    p.add_argument("--eot", type=int, default=None,
                   help="noise draws averaged per call of the smoothing defense's scores")
