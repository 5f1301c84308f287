"""Benchmark: advgame's FGSM / PGD against raw torch passes, torchattacks and ART.

In one process, on advgame's ``SmallCNN`` (1x28x28 inputs, eval mode, CPU, a fixed number
of torch threads), on one batch of ``--batch`` seeded uniform inputs, it times, interleaved,
``--warmup`` untimed then ``--repeats`` timed runs of each method, and reports medians:

- ``raw passes``: what an attack cannot avoid, as plain torch loops: FGSM = 1 forward +
  backward w.r.t. the input; PGD-10 = 10 forward + backward (no update, projection, clip);
- ``plain loop``: a hand-written minimal attack (the passes plus sign, step and one clamp
  on the ball-box intersection), the least a torch-level loop does;
- ``advgame``: :func:`advgame.attacks.gradient.fgm` (L-inf) and
  :func:`advgame.attacks.gradient.pgd` (L-inf, ``random_start=False``);
- ``torchattacks``: ``torchattacks.FGSM`` and ``torchattacks.PGD(random_start=False)``;
- ``ART``: ``FastGradientMethod`` and ``ProjectedGradientDescent(num_random_init=0)`` on a
  ``PyTorchClassifier`` (clip values (0, 1), ``batch_size`` = the batch), numpy in and out.

Every method uses the same eps and PGD step size (alpha). It also checks that advgame's
outputs equal torchattacks' (and shows ART's) on the same model and inputs: max |diff|.

Needs torchattacks and ART: run it with the bench venv (``scripts/bench-setup.sh``).

Usage:
    .venv-bench/bin/python benchmarks/attacks.py                    # prints Markdown
    .venv-bench/bin/python benchmarks/attacks.py --threads 2 --repeats 15
    .venv-bench/bin/python benchmarks/attacks.py --update benchmarks/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_common import header_lines, update_section
from torch import nn
from torch.nn import functional as F

import advgame
from advgame.attacks.gradient import fgm, pgd
from advgame.models.architectures import SmallCNN

HEADING = "## Attacks (benchmarks/attacks.py)"
EQUAL_TOL = 1e-6
NOTES = (
    "Where advgame's time over the raw passes goes (L-inf; the batch is 512 x 784 floats, "
    "1.6 MB): the forward and backward passes are 95% or more of it. Beside them, a step of "
    "`attack_loop` makes 7 elementwise passes over the batch (x + delta, sign, the fused "
    "step delta + alpha * sign, the clamp to the eps-ball, x + delta, the clamp to [0, 1], "
    "minus x), the plain loop 3 (sign, step, one clamp between max(x - eps, 0) and "
    "min(x + eps, 1)). Each such pass takes 0.1-0.2 ms alone but 0.6-1.2 ms inside the loop "
    "on this loaded machine (torch.profiler: caches cold after the convolution backward), "
    "1.5-3% of a forward + backward each. `check_images` adds an `isfinite(x).all()` pass "
    "(about 1.4 ms, some 4% of an FGSM) besides its min and max. The 7 passes are the "
    "fewest that keep the loop's values bit for bit (iterating on x_adv instead of delta "
    "saves 4 but moves results by an ulp, 1.5e-08 here)."
)


def raw_passes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int) -> torch.Tensor:
    """``passes`` forward + backward passes w.r.t. the input, nothing else."""
    grad = x
    for _ in range(passes):
        xa = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
    return grad


def plain_pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int
) -> torch.Tensor:
    """Minimal L-inf PGD from x (FGSM when steps=1, alpha=eps) as a plain torch loop.

    It iterates on x_adv itself and projects on the ball-box intersection in one clamp with
    tensor bounds, so a step costs 3 passes over the batch (sign, step, clamp) beside the
    forward and backward passes: the least a torch-level loop does.
    """
    lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
    xa = x
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        xa = torch.add(xa.detach(), grad.sign_(), alpha=alpha).clamp_(lo, hi)
    return xa


def build_methods(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
    num_classes: int,
) -> dict[str, dict[str, Callable[[], object]]]:
    import torchattacks
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    n = x.shape[0]
    ta_fgsm = torchattacks.FGSM(model, eps=eps)
    ta_pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    clf = PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=num_classes, clip_values=(0.0, 1.0), device_type="cpu",
    )
    art_fgm = FastGradientMethod(clf, norm=np.inf, eps=eps, batch_size=n)
    art_pgd = ProjectedGradientDescent(
        clf, norm=np.inf, eps=eps, eps_step=alpha, max_iter=steps, num_random_init=0,
        batch_size=n, verbose=False,
    )
    xn, yn = x.numpy(), y.numpy()
    return {
        "FGSM": {
            "raw passes": lambda: raw_passes(model, x, y, 1),
            "plain loop": lambda: plain_pgd(model, x, y, eps, eps, 1),
            "advgame": lambda: fgm(model, x, y, eps, "inf"),
            "torchattacks": lambda: ta_fgsm(x, y),
            "ART": lambda: torch.from_numpy(art_fgm.generate(xn, yn)),
        },
        f"PGD-{steps}": {
            "raw passes": lambda: raw_passes(model, x, y, steps),
            "plain loop": lambda: plain_pgd(model, x, y, eps, alpha, steps),
            "advgame": lambda: pgd(model, x, y, eps, "inf", steps=steps, step_size=alpha,
                                   random_start=False),
            "torchattacks": lambda: ta_pgd(x, y),
            "ART": lambda: torch.from_numpy(art_pgd.generate(xn, yn)),
        },
    }


Times = dict[str, dict[str, dict[str, list[float]]]]  # attack -> method -> wall/cpu -> runs


def run(args: argparse.Namespace) -> tuple[Times, dict[str, dict[str, float]]]:
    torch.manual_seed(args.seed)  # a script, not library code: seeds the model's init
    model = SmallCNN((1, 28, 28), args.classes).eval()
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, 1, 28, 28, generator=g)
    y = torch.randint(0, args.classes, (args.batch,), generator=g)
    methods = build_methods(model, x, y, args.eps, args.alpha, args.steps, args.classes)

    diffs: dict[str, dict[str, float]] = {}
    for attack, fns in methods.items():
        out = {name: fns[name]() for name in ("advgame", "torchattacks", "ART", "plain loop")}
        ref = out["advgame"]
        assert isinstance(ref, torch.Tensor)
        diffs[attack] = {
            name: float((t - ref).abs().max())  # type: ignore[operator]
            for name, t in out.items() if name != "advgame"
        }
        print(f"{attack}: max |advgame - other| "
              + ", ".join(f"{k} {v:.1e}" for k, v in diffs[attack].items()), file=sys.stderr)

    times: Times = {a: {m: {"wall": [], "cpu": []} for m in f} for a, f in methods.items()}
    for attack, fns in methods.items():
        for _ in range(args.warmup):
            for fn in fns.values():
                fn()
        repeats = args.fgsm_repeats if attack == "FGSM" else args.repeats
        for _ in range(repeats):  # interleaved, so that load changes hit every method
            for name, fn in fns.items():
                cpu, start = time.process_time(), time.perf_counter()
                fn()
                times[attack][name]["wall"].append(time.perf_counter() - start)
                times[attack][name]["cpu"].append(time.process_time() - cpu)
        print(f"{attack}: " + ", ".join(
            f"{k} {statistics.median(v['wall']) * 1e3:.1f} ms wall / "
            f"{statistics.median(v['cpu']) * 1e3:.1f} ms cpu" for k, v in times[attack].items()
        ), file=sys.stderr)
    return times, diffs


def _median(per: dict[str, dict[str, list[float]]], kind: str) -> dict[str, float]:
    return {name: statistics.median(t[kind]) for name, t in per.items()}


def paired_ratios(per: dict[str, dict[str, list[float]]], num: str, den: str) -> list[float]:
    """CPU(num) / CPU(den) in each round, the two timed back to back.

    Pairing cancels most of the load changes between rounds on a shared machine.
    """
    return [a / b for a, b in zip(per[num]["cpu"], per[den]["cpu"], strict=True)]


def paired_ratio(per: dict[str, dict[str, list[float]]], num: str, den: str) -> float:
    """Median over the rounds of the paired CPU-time ratio num / den."""
    return statistics.median(paired_ratios(per, num, den))


def markdown(args: argparse.Namespace, times: Times, diffs: dict[str, dict[str, float]],
             command: str, load: tuple[float, float]) -> str:
    import art
    import torchattacks

    lines = header_lines(HEADING, command, load, f"torch threads: {torch.get_num_threads()}")
    lines += [
        f"Versions: python {platform.python_version()}, torch {torch.__version__}, advgame "
        f"{advgame.__version__}, torchattacks {torchattacks.__version__}, "
        f"adversarial-robustness-toolbox {art.__version__}, numpy {np.__version__}",
        "",
        f"SmallCNN (1x28x28, {args.classes} classes, eval mode, parameters with "
        f"requires_grad as built), one batch of {args.batch} uniform inputs (seed "
        f"{args.seed}), L-inf, eps = {args.eps}, PGD step alpha = {args.alpha}, {args.steps} "
        f"steps, no random start. {args.fgsm_repeats} FGSM / {args.repeats} PGD rounds after "
        f"{args.warmup} warm-up rounds; each round runs every method once, back to back, in "
        "one process. CPU = process CPU time (with one torch thread, the time the attack "
        "itself computed: steadier than wall time on a loaded machine); spread = (max - min) "
        "/ median of the CPU times; ratios = median over the rounds of the CPU-time ratio "
        "within a round (paired, so that load changes between rounds cancel).",
        "",
        "| attack | method | wall median (ms) | CPU median (ms) | CPU min (ms) | spread "
        "| vs raw passes | vs advgame | max abs diff to advgame |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    targets = []
    for attack, per in times.items():
        wall, cpu = _median(per, "wall"), _median(per, "cpu")
        for name, t in per.items():
            diff = diffs[attack].get(name)
            lines.append(
                f"| {attack} | {name} | {wall[name] * 1e3:.1f} | {cpu[name] * 1e3:.1f} | "
                f"{min(t['cpu']) * 1e3:.1f} | {(max(t['cpu']) - min(t['cpu'])) / cpu[name]:.0%} "
                f"| {paired_ratio(per, name, 'raw passes'):.3f}x "
                f"| {paired_ratio(per, name, 'advgame'):.3f}x "
                f"| {'-' if diff is None else f'{diff:.1e}'} |"
            )
        checks = [  # label, numerator, denominator, target, bound, at most
            ("advgame / raw passes", "advgame", "raw passes", "<= 1.05", 1.05, True),
            ("advgame / torchattacks", "advgame", "torchattacks", "<= 1.00", 1.0, True),
            ("ART / advgame", "ART", "advgame", ">= 1.30", 1.3, False),
        ]
        parts = []
        for label, num, den, target, bound, at_most in checks:
            rs = paired_ratios(per, num, den)
            r = statistics.median(rs)
            q1, _, q3 = statistics.quantiles(rs, n=4)
            met = r <= bound if at_most else r >= bound
            parts.append(f"{label} {r:.3f} (quartiles {q1:.3f}-{q3:.3f}; target {target}: "
                         f"{'met' if met else 'missed'})")
        eq = diffs[attack]["torchattacks"]
        targets.append(
            f"- {attack}: " + "; ".join(parts) + f"; max abs(advgame - torchattacks) = {eq:.1e} "
            f"({'equal' if eq <= EQUAL_TOL else 'NOT equal'} to {EQUAL_TOL:g})."
        )
    lines += ["", "Targets (paired CPU-time ratios):", "", *targets, "", NOTES, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.025, help="PGD step size")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of PGD")
    parser.add_argument("--fgsm-repeats", type=int, default=45, help="timed runs of FGSM")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--update", type=Path, default=None,
                        help="write the Markdown section into this file (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
    command = ".venv-bench/bin/python " + " ".join(["benchmarks/attacks.py", *sys.argv[1:]])
    load_before = os.getloadavg()[0]
    times, diffs = run(args)
    section = markdown(args, times, diffs, command, (load_before, os.getloadavg()[0]))
    print(section)
    if args.update is not None:
        update_section(args.update, section)


if __name__ == "__main__":
    main()
