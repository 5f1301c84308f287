"""Benchmark: advgame's APGD, Square and AutoAttack cascade against torchattacks'.

In one process, on one model -- advgame's ``SmallCNN`` trained here on the 5,000 embedded
MNIST digits (10 classes, seeded) -- and the same ``--n`` stratified test images, it runs:

- the cascade: ``advgame.attacks.run_cascade(..., "standard")`` (APGD-CE, APGD-T, FAB-T,
  Square-5000, 100 iterations each as the protocol has it), the reference implementation
  of the same protocol (Croce & Hein's own code, on PyPI as ``pyautoattack``:
  ``AutoAttack(version="standard").run_standard_evaluation``, which also runs its few
  forward/backward passes of checks) with its stage times, and
  ``torchattacks.AutoAttack(version="standard")`` (whose APGD, APGD-T and FAB run 10
  iterations): robust accuracy, its standard error sqrt(p (1 - p) / n), wall time, and the
  ratios;
- APGD-CE (100 steps, one restart): advgame, torchattacks' ``APGD`` and a minimal
  hand-written loop of the same forward/backward passes (momentum step, projection, clamp;
  no step-size schedule or best-point tracking) -- times and robust accuracies;
- Square (``--square-queries`` queries): advgame and torchattacks' ``Square``;
- ART (adversarial-robustness-toolbox), through its ``PyTorchClassifier``: its
  ``AutoProjectedGradientDescent`` (CE, 100 iterations, one start), ``SquareAttack`` (the
  same queries) and its ``AutoAttack`` as ART ships it (APGD-CE and APGD-DLR with 5 starts
  each, DeepFool, Square-5000: not the standard cascade, reported for what it is);
  ``--skip-art-autoattack`` skips the last.

Needs torchattacks, ART and pyautoattack: run it with the bench venv
(``scripts/bench-setup.sh``).

On a standard model most points fall to APGD-CE; ``--adv-train-eps 0.1`` benchmarks a
PGD-trained model instead, where most points reach FAB-T and Square (its own section).

Usage:
    .venv-bench/bin/python benchmarks/autoattack.py                  # prints Markdown
    .venv-bench/bin/python benchmarks/autoattack.py --update benchmarks/BENCHMARKS.md
    .venv-bench/bin/python benchmarks/autoattack.py --adv-train-eps 0.1 --skip-art-autoattack \
        --update benchmarks/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import torch
from bench_common import header_lines, update_section
from torch import nn
from torch.nn import functional as F

from advgame.attacks import ATTACKS, apgd, fab, pgd, run_cascade, square
from advgame.data import load_dataset, stratified_indices
from advgame.models import TrainConfig, accuracy, build_model, train

T = TypeVar("T")
HEADING = "## Strong attacks and the AutoAttack cascade (benchmarks/autoattack.py)"


def plain_apgd_passes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                      steps: int) -> torch.Tensor:
    """The least an APGD-CE loop does: ``steps`` forward + backward passes with the
    momentum step, the projection on the ball and the clamp to the box."""
    x_adv = (x + eps * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
    prev = x_adv
    step = 2 * eps
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    for i in range(steps):
        xa = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, xa)
        with torch.no_grad():
            z = torch.clamp(x_adv + step * g.sign(), lo, hi)
            a = 0.75 if i else 1.0
            prev, x_adv = x_adv, torch.clamp(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - prev),
                                             lo, hi)
    return x_adv


def pgd_training(eps: float) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Madry et al.'s adversarial training as a ``train(perturb=...)``: each batch replaced by
    L-inf PGD-7 (step 2.5 eps / 7, random start) against the current model."""
    gen = torch.Generator().manual_seed(1)

    def perturb(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return pgd(m, xb, yb, eps, "inf", steps=7, step_size=2.5 * eps / 7,
                   random_start=True, generator=gen)

    return perturb


def robust(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    return float(still_correct(model, x_adv, y).float().mean())


def still_correct(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the points x_adv leaves correctly classified."""
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def agreement(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> str:
    """Per-point comparison of two robust sets: where each attack fooled a point the other
    left robust."""
    return (f"{name}: both leave {int((ours & theirs).sum())} points robust; advgame leaves "
            f"{int((ours & ~theirs).sum())} robust that {name} fools, {name} leaves "
            f"{int((~ours & theirs).sum())} robust that advgame fools")


def forward_seconds(model: nn.Module, x: torch.Tensor, reps: int = 100) -> float:
    """Seconds of one no-grad forward pass of the batch x (mean of ``reps``)."""
    with torch.no_grad():
        model(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(x)
    return (time.perf_counter() - t0) / reps


def compiled_forward(model: nn.Module, x: torch.Tensor) -> tuple[float, float] | None:
    """Seconds of one forward pass of x through an inference-compiled copy of the model
    (``torch.jit.optimize_for_inference``: frozen TorchScript, weights prepacked for oneDNN,
    conv + ReLU fused) and the largest absolute difference of its logits from eager's;
    None where the model does not script. This is not what any library compared here runs:
    it measures how much of the eager floor is PyTorch's eager execution, not the work."""
    try:
        fast = torch.jit.optimize_for_inference(torch.jit.script(model.eval()))
    except Exception:  # noqa: BLE001 - a model TorchScript cannot compile has no such row
        return None
    with torch.no_grad():
        diff = float((fast(x) - model(x)).abs().max())
    return forward_seconds(fast, x), diff


def art_version() -> str:
    import art

    return str(art.__version__)


def art_rows(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, queries: int,
             autoattack: bool) -> dict[str, tuple[str, float, float]]:
    """ART's APGD-CE, Square and (optionally) AutoAttack on the same model and images:
    {"apgd" | "square" | "autoattack": (row name, robust accuracy, seconds)}."""
    import numpy as np
    from art.attacks.evasion import AutoAttack as ArtAutoAttack
    from art.attacks.evasion import AutoProjectedGradientDescent, SquareAttack
    from art.estimators.classification import PyTorchClassifier

    n = x.shape[0]
    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(),
                            input_shape=tuple(x.shape[1:]), nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="cpu")
    xn, yn = x.numpy(), y.numpy()

    def run(attack: object, reps: int = 1) -> tuple[float, float]:
        def once() -> np.ndarray:
            np.random.seed(0)  # noqa: NPY002 -- ART draws from numpy's global generator
            return attack.generate(x=xn, y=yn)  # type: ignore[attr-defined]
        xa, t = best_of(once, reps)
        return robust(model, torch.from_numpy(xa), y), t

    out = {"apgd": ("ART AutoProjectedGradientDescent (CE, 100 steps; best of 3)", *run(
               AutoProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=2 * eps,
                                            max_iter=100, nb_random_init=1, batch_size=n,
                                            loss_type="cross_entropy", verbose=False), 3)),
           "square": (f"ART SquareAttack ({queries} queries)", *run(
               SquareAttack(clf, norm=np.inf, eps=eps, max_iter=queries, p_init=0.8,
                            nb_restarts=1, batch_size=n, verbose=False)))}
    if autoattack:
        out["autoattack"] = ("ART AutoAttack (its default attacks)", *run(
            ArtAutoAttack(clf, norm=np.inf, eps=eps, eps_step=2 * eps, batch_size=n)))
    return out


class _StageLog(logging.Handler):
    """Collects the reference AutoAttack's 'robust accuracy after X: ... (total time T s)'
    log lines as {stage: cumulative seconds}."""

    pattern = re.compile(r"robust accuracy after (\S+): .*\(total time ([0-9.]+) s\)")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.total: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = self.pattern.search(record.getMessage())
        if m:
            self.total[m.group(1).lower()] = float(m.group(2))


def reference_row(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
                  ) -> tuple[tuple[str, float, float], dict[str, float], str, torch.Tensor]:
    """Croce & Hein's AutoAttack (``pyautoattack``), standard version, on the same model
    and images: (row, {stage: seconds of that stage}, version, x_adv)."""
    try:
        import pyautoattack
    except ImportError:
        sys.exit("autoattack.py: pyautoattack is missing: run scripts/bench-setup.sh "
                 "(or pass --skip-reference)")
    log = logging.getLogger("auto-attack")
    handler = _StageLog()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        aa = pyautoattack.AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0)
        (xa, _), t = timed(lambda: aa.run_standard_evaluation(x, y, batch_size=x.shape[0]))
    finally:
        log.removeHandler(handler)
    stages, prev = {}, 0.0
    for name, total in handler.total.items():
        stages[name], prev = total - prev, total
    row = (f"AutoAttack reference code (Croce & Hein, pyautoattack "
           f"{pyautoattack.__version__}), standard", robust(model, xa, y), t)
    return row, stages, str(pyautoattack.__version__), xa


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def best_of(fn: Callable[[], T], reps: int = 3) -> tuple[T, float]:
    """``fn``'s output and its fastest of ``reps`` runs (``fn`` must seed itself, so every
    run computes the same thing): the second-long rows compared with each other, whose
    single runs differ by about 5% on a shared VM."""
    runs = [timed(fn) for _ in range(reps)]
    return runs[-1][0], min(t for _, t in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="test images (stratified)")
    ap.add_argument("--eps", type=float, default=0.1, help="L-inf budget")
    ap.add_argument("--epochs", type=int, default=5, help="training epochs of the CNN")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--adv-train-eps", type=float, default=0.0,
                    help="train the CNN with PGD-7 adversarial training at this L-inf eps "
                         "(default 0: standard training); its section is separate")
    ap.add_argument("--square-queries", type=int, default=1000)
    ap.add_argument("--skip-torchattacks-autoattack", action="store_true",
                    help="skip the slowest run (torchattacks' AutoAttack)")
    ap.add_argument("--skip-reference", action="store_true",
                    help="skip the reference AutoAttack (pyautoattack)")
    ap.add_argument("--skip-art", action="store_true", help="skip every ART run")
    ap.add_argument("--skip-art-autoattack", action="store_true",
                    help="skip ART's AutoAttack")
    ap.add_argument("--update", default=None, help="BENCHMARKS.md to update")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import torchattacks

    load0 = os.getloadavg()[0]
    ds = load_dataset("mnist-5k")
    torch.manual_seed(0)
    model = build_model("cnn", ds.input_shape, 10)
    t0 = time.perf_counter()
    perturb = pgd_training(args.adv_train_eps) if args.adv_train_eps > 0 else None
    train(model, ds.x_train, ds.y_train, TrainConfig(epochs=args.epochs),
          generator=torch.Generator().manual_seed(0), perturb=perturb)
    train_s = time.perf_counter() - t0
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    idx = stratified_indices(ds.y_test, args.n, generator=torch.Generator().manual_seed(0))
    x, y = ds.x_test[idx], ds.y_test[idx]
    clean = accuracy(model, x, y)
    eps, n = args.eps, x.shape[0]
    rows: list[tuple[str, float, float]] = []

    cascade, t_adv = timed(lambda: run_cascade(model, x, y, eps, "inf", "standard",
                                               torch.Generator().manual_seed(0)))
    acc_adv = robust(model, cascade.x_adv, y)
    stages = cascade.stages
    # the least any Square-5000 stage costs: its 5000 forward passes on the points that reach
    # it (torchattacks' AutoAttack ends with the same Square on the same points)
    sq_points = next(s.attacked for s in stages if s.name == "square")
    sq_floor = forward_seconds(model, x[:sq_points]) * 5000 if sq_points else 0.0
    compiled = compiled_forward(model, x[:sq_points]) if sq_points else None
    rows.append(("advgame run_cascade('standard')", acc_adv, t_adv))
    ref: tuple[str, float, float] | None = None
    agree: list[str] = []
    ref_stages: dict[str, float] = {}
    ref_version = ""
    if not args.skip_reference:
        ref, ref_stages, ref_version, x_ref = reference_row(model, x, y, eps)
        rows.append(ref)
        agree.append(agreement("the reference code", still_correct(model, cascade.x_adv, y),
                               still_correct(model, x_ref, y)))
    # torchattacks' AutoAttack runs APGD, APGD-T and FAB with their default 10 iterations
    # (the reference protocol uses 100): the same cascade at that effort, for equal work
    ATTACKS["apgd-ce@10"] = lambda m, xx, yy, e, p, g: apgd(m, xx, yy, e, p, steps=10,
                                                            generator=g)
    ATTACKS["apgd-t@10"] = lambda m, xx, yy, e, p, g: apgd(m, xx, yy, e, p, steps=10,
                                                           targeted=True, generator=g)
    ATTACKS["fab-t@10"] = lambda m, xx, yy, e, p, g: fab(m, xx, yy, e, p, steps=10,
                                                         generator=g)
    light, t_light = timed(lambda: run_cascade(
        model, x, y, eps, "inf", ["apgd-ce@10", "apgd-t@10", "fab-t@10", "square"],
        torch.Generator().manual_seed(0)))
    acc_light = robust(model, light.x_adv, y)
    rows.append(("advgame cascade at torchattacks' effort (10 iterations, Square 5000)",
                 acc_light, t_light))
    if not args.skip_torchattacks_autoattack:
        aa = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard",
                                     n_classes=10, seed=0)
        xt, t_ta = timed(lambda: aa(x, y))
        acc_ta = robust(model, xt, y)
        agree.append(agreement("torchattacks", still_correct(model, cascade.x_adv, y),
                               still_correct(model, xt, y)))
        rows.append(("torchattacks AutoAttack(standard)", acc_ta, t_ta))
    # APGD, torchattacks' APGD and the plain loop: best of 3 runs each (each run seeded)
    xa, t_ap = best_of(lambda: apgd(model, x, y, eps, "inf", steps=100,
                                    generator=torch.Generator().manual_seed(0)))
    rows.append(("advgame apgd (CE, 100 steps; best of 3)", robust(model, xa, y), t_ap))
    tap = torchattacks.APGD(model, norm="Linf", eps=eps, steps=100, n_restarts=1, loss="ce",
                            seed=0)
    xb, t_tap = best_of(lambda: tap(x, y))
    rows.append(("torchattacks APGD (CE, 100 steps; best of 3)", robust(model, xb, y), t_tap))

    def plain() -> torch.Tensor:
        torch.manual_seed(0)
        return plain_apgd_passes(model, x, y, eps, 100)

    xc, t_plain = best_of(plain)
    rows.append(("plain loop (100 forward/backward + momentum step; best of 3)",
                 robust(model, xc, y), t_plain))
    q = args.square_queries
    xs, t_sq = timed(lambda: square(model, x, y, eps, "inf", queries=q,
                                    generator=torch.Generator().manual_seed(0)))
    rows.append((f"advgame square ({q} queries)", robust(model, xs, y), t_sq))
    tsq = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=q, n_restarts=1, seed=0)
    xts, t_tsq = timed(lambda: tsq(x, y))
    rows.append((f"torchattacks Square ({q} queries)", robust(model, xts, y), t_tsq))
    art = {} if args.skip_art else art_rows(model, x, y, eps, q, not args.skip_art_autoattack)
    rows += art.values()
    load1 = os.getloadavg()[0]

    se = math.sqrt(max(acc_adv * (1 - acc_adv), 1e-12) / n)
    command = "python " + " ".join(["benchmarks/autoattack.py", *sys.argv[1:]])
    heading, how = HEADING, "trained"
    if args.adv_train_eps > 0:
        heading += f", PGD-trained model (eps {args.adv_train_eps:g})"
        how = (f"adversarially trained (Madry et al.: every batch replaced by L-inf PGD-7 "
               f"at eps {args.adv_train_eps:g}, step 2.5 eps / 7, random start)")
    lines = header_lines(heading, command, (load0, load1), f"torch threads: {args.threads}")
    lines += [
        f"Versions: torch {torch.__version__}, torchattacks {torchattacks.__version__}"
        + ("" if args.skip_reference else f", pyautoattack {ref_version}")
        + ("" if args.skip_art else f", ART {art_version()}") + "  ",
        "",
        f"Model: advgame SmallCNN {how} {args.epochs} epochs on mnist-5k ({train_s:.0f} s), "
        f"clean accuracy {clean:.3f} on {n} stratified test images; L-inf eps = {eps:g}. "
        f"Standard error of a robust accuracy p: sqrt(p(1-p)/n) = {se:.3f} at "
        f"p = {acc_adv:.3f}.",
        "",
        "| method | robust accuracy | wall time (s) |",
        "|---|---:|---:|",
        *[f"| {name} | {acc:.3f} | {t:.1f} |" for name, acc, t in rows],
        "",
        "advgame cascade stages (points attacked -> fooled, seconds): "
        + "; ".join(f"{s.name} {s.attacked} -> {s.fooled}, {s.time_s:.1f} s" for s in stages)
        + ".",
        "",
    ]
    if ref is not None:
        _, acc_ref, t_ref = ref
        lines += [
            "Reference AutoAttack stages (seconds): "
            + "; ".join(f"{k} {v:.1f} s" for k, v in ref_stages.items()) + ".",
            "",
            f"Same protocol: cascade time / reference AutoAttack time = {t_adv / t_ref:.2f}x "
            f"(robust accuracy {acc_adv:.3f} vs {acc_ref:.3f}, difference "
            f"{acc_adv - acc_ref:+.3f}); per stage "
            + ", ".join(f"{s.name} {s.time_s / ref_stages[s.name]:.2f}x" for s in stages
                        if ref_stages.get(s.name)) + ".",
            "",
        ]
    if agree:
        lines += ["Per point, against the cascade: " + "; ".join(agree) + ".", ""]
    lines += [
        f"Floor: 5000 forward passes of the {sq_points} points that reach Square take "
        f"{sq_floor:.1f} s on this model (measured, {1e3 * sq_floor / 5000:.2f} ms a pass): "
        "Square-5000 costs that much in any implementation that runs the model in eager "
        "PyTorch, as advgame, the reference code and torchattacks do, for the points it does "
        "not fool.",
    ]
    comp_floor = compiled[0] * 5000 if compiled else None
    if compiled and comp_floor:
        lines[-1] += (
            f" An inference-compiled copy of the model (torch.jit.optimize_for_inference: "
            f"frozen, oneDNN-prepacked weights, conv + ReLU fused) runs the same pass in "
            f"{1e3 * compiled[0]:.2f} ms ({sq_floor / comp_floor:.2f}x faster; logits within "
            f"{compiled[1]:.1e} of eager's, not bit-identical, so Square's accept decisions, "
            f"and with them the documented runs, would not reproduce bit for bit): "
            f"{comp_floor:.1f} s for the 5000.")
    if not args.skip_torchattacks_autoattack:
        lines += ["", f"Ratios: cascade time / torchattacks AutoAttack time = "
                      f"{t_adv / t_ta:.2f}x at the reference effort (100 iterations, 10x "
                      f"torchattacks'), {t_light / t_ta:.2f}x at equal effort (robust accuracy "
                      f"{acc_light:.3f}); robust accuracy {acc_adv:.3f} vs {acc_ta:.3f} "
                      f"(difference {acc_adv - acc_ta:+.3f}, one standard error {se:.3f}). "
                      f"APGD: advgame / torchattacks = {t_ap / t_tap:.2f}x, advgame / plain "
                      f"loop = {t_ap / t_plain:.2f}x. Square: advgame / torchattacks = "
                      f"{t_sq / t_tsq:.2f}x. Square's forward-pass floor alone is "
                      f"{sq_floor / t_ta:.2f}x torchattacks' whole AutoAttack time. Target "
                      f"cascade <= 0.5x torchattacks' AutoAttack: "
                      f"{'met' if t_adv <= 0.5 * t_ta else 'not met'} ({t_adv / t_ta:.2f}x)."]
        pre_sq = sum(s.time_s for s in light.stages if s.name != "square")
        bound = pre_sq + sq_floor
        lines += ["", f"Reading: at equal effort the stages before Square take {pre_sq:.1f} s; "
                      f"with Square at its forward-pass floor the cascade could take no less "
                      f"than {bound:.1f} s = {bound / t_ta:.2f}x torchattacks' AutoAttack, "
                      f"against the 0.5x target's {0.5 * t_ta:.1f} s"
                      + (": out of reach without running fewer queries or iterations than "
                         "the protocol's." if bound > 0.5 * t_ta else
                         ": within reach by cutting per-query overhead.")]
        if comp_floor is not None:
            cbound = pre_sq + comp_floor
            lines[-1] += (f" With Square at the compiled forward's floor instead, the bound "
                          f"is {cbound:.1f} s = {cbound / t_ta:.2f}x, at torchattacks' effort, "
                          f"not the protocol's.")
    if art:
        cascade_vs_art = ""
        if "autoattack" in art:
            _, acc_art, t_art = art["autoattack"]
            cascade_vs_art = (f"cascade time / ART AutoAttack time = {t_adv / t_art:.2f}x at "
                              f"the reference effort (robust accuracy {acc_adv:.3f} vs "
                              f"{acc_art:.3f}); ")
        lines += ["", f"ART: {cascade_vs_art}APGD: advgame / ART = "
                      f"{t_ap / art['apgd'][2]:.2f}x; Square: advgame / ART = "
                      f"{t_sq / art['square'][2]:.2f}x."]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.update:
        update_section(args.update, section)


if __name__ == "__main__":
    main()
