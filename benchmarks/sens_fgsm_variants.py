"""Benchmark: which Sens-FGSM settings train a usable classifier (issue 15 item 7).

Sens-FGSM trains min_u mean_n l(h(z_n(u); u), y_n) with
z_n(u) = clip(x_n + eta tanh(g_n / (tau c)), 0, 1), g_n = grad_x l(h(x_n; u), y_n),
differentiated through z(u) (:func:`advgame.defenses.training.sens_fgsm_train`). This
script trains each variant of (scale c per example or per batch, c detached or not, tau,
start from the clean model u_0 or from scratch, epochs, learning rate) on ``mnist-5k``
(4,000 train / 1,000 test) at eta = 0.3 and prints, per classifier and variant, averaged
over ``--seeds``:

- clean: test error on clean inputs;
- fgsm: FGSM-curr, test error under FGSM computed against the trained model itself;
- fgsm-pred: the same FGSM step taken with the model's own clean prediction as the label
  (Kurakin et al.'s label-leaking check): much above fgsm means the training attack leaks
  the true label into z, and the model reads it;
- noise: test error at x + eta * (uniform random signs), clipped — far below clean means
  the model learned the distribution of perturbed inputs and clean inputs are off it;
- pgd: test error under 20-step L-inf PGD (random start) against the trained model — a
  low FGSM-curr with a high PGD error is gradient masking, not robustness;
- |z-x|: mean |z - x| per pixel of the surrogate attack on the test set (eta = 0.3 is a
  full sign step), i.e. how much of the budget the training attack actually uses;
- s: seconds of Sens-FGSM training.

References in the same table: the clean model u_0, online adversarial training with the
surrogate attack (``through=False``) and with true FGSM, and the first-order form.

Every run uses one thread (``torch.set_num_threads(1)``). Usage::

    python benchmarks/sens_fgsm_variants.py                    # mlp and cnn, 1 seed
    python benchmarks/sens_fgsm_variants.py --archs mlp --seeds 0 1 2
    python benchmarks/sens_fgsm_variants.py --variants old new scratch4
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from advgame.attacks import fgm, pgd
from advgame.data import load_dataset
from advgame.defenses.training import (
    SensObjective,
    adversarial_training,
    sens_fgsm_inputs,
    sens_fgsm_train,
)
from advgame.models import build_model, train
from advgame.models.training import TrainConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import cpu_name  # noqa: E402

ETA = 0.3


@dataclass(frozen=True)
class Variant:
    name: str
    what: str
    kind: str = "sens"  # sens | clean | adv-surrogate | adv-fgsm
    kwargs: dict[str, Any] = field(default_factory=dict)
    from_scratch: bool = False
    epochs: int = 10
    lr: float = 1e-3


OLD = {"scale": "example", "detach_scale": False, "tau": 0.1}
VARIANTS = [
    Variant("u0", "clean model u_0 (10 epochs)", kind="clean"),
    Variant("old", "old default: example scale, not detached, tau 0.1, from u_0", kwargs=OLD),
    Variant("old-lr1e-4", "old default, lr 1e-4", kwargs=OLD, lr=1e-4),
    Variant("old-4ep", "old default, 4 epochs", kwargs=OLD, epochs=4),
    Variant("old-scratch4", "old default, from scratch, 4 epochs", kwargs=OLD,
            from_scratch=True, epochs=4),
    Variant("old-tau0.05", "example, not detached, tau 0.05", kwargs={**OLD, "tau": 0.05}),
    Variant("old-tau0.5", "example, not detached, tau 0.5", kwargs={**OLD, "tau": 0.5}),
    Variant("ex-det", "example scale, detached, tau 0.1",
            kwargs={**OLD, "detach_scale": True}),
    Variant("ex-det-tau0.05", "example scale, detached, tau 0.05",
            kwargs={**OLD, "detach_scale": True, "tau": 0.05}),
    Variant("batch", "batch scale, not detached, tau 0.1",
            kwargs={**OLD, "scale": "batch"}),
    Variant("batch-det", "batch scale, detached, tau 0.1",
            kwargs={"scale": "batch", "detach_scale": True, "tau": 0.1}),
    Variant("new", "batch scale, detached, tau 0.05, from u_0",
            kwargs={"scale": "batch", "detach_scale": True, "tau": 0.05}),
    Variant("new-scratch4", "batch, detached, tau 0.05, from scratch, 4 epochs (the "
            "independent implementation)",
            kwargs={"scale": "batch", "detach_scale": True, "tau": 0.05},
            from_scratch=True, epochs=4),
    Variant("abs-tau", "absolute tau 1e-3 (relative_tau=False)",
            kwargs={"relative_tau": False, "tau": 1e-3}),
    Variant("adv-sur-old", "online adv. training, old surrogate attack (through=False)",
            kwargs={**OLD, "through": False}),
    Variant("adv-sur-new", "online adv. training, new surrogate attack (through=False)",
            kwargs={"scale": "batch", "detach_scale": True, "tau": 0.05, "through": False}),
    Variant("adv-fgsm", "online adv. training with true FGSM", kind="adv-fgsm"),
    Variant("adv-fgsm-w0.5", "online adv. training with true FGSM, clean + FGSM batches",
            kind="adv-fgsm-clean"),
    Variant("old-w0.5", "old default + clean_weight 0.5", kwargs={**OLD, "clean_weight": 0.5}),
    Variant("old-w0.25", "old default + clean_weight 0.25",
            kwargs={**OLD, "clean_weight": 0.25}),
    Variant("old-w0.75", "old default + clean_weight 0.75",
            kwargs={**OLD, "clean_weight": 0.75}),
    Variant("old-w0.5-tau0.05", "old default, tau 0.05 + clean_weight 0.5",
            kwargs={**OLD, "tau": 0.05, "clean_weight": 0.5}),
    Variant("ex-det-w0.5", "example scale, detached, tau 0.1 + clean_weight 0.5",
            kwargs={**OLD, "detach_scale": True, "clean_weight": 0.5}),
    Variant("batch-w0.5", "batch scale, not detached, tau 0.1 + clean_weight 0.5",
            kwargs={**OLD, "scale": "batch", "clean_weight": 0.5}),
    Variant("new-w0.5", "batch, detached, tau 0.05 + clean_weight 0.5",
            kwargs={"scale": "batch", "detach_scale": True, "tau": 0.05, "clean_weight": 0.5}),
    Variant("old-w0.5-scratch4", "old default + clean_weight 0.5, from scratch, 4 epochs",
            kwargs={**OLD, "clean_weight": 0.5}, from_scratch=True, epochs=4),
    Variant("first-order", "first-order form l(x) + eta ||g||_1",
            kwargs={"form": "first-order"}),
]


def error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def run(arch: str, v: Variant, ds: Any, u0: torch.nn.Module, seed: int) -> dict[str, float]:
    torch.manual_seed(seed)
    model = build_model(arch, ds.input_shape, ds.num_classes) if v.from_scratch \
        else copy.deepcopy(u0)
    gen = torch.Generator().manual_seed(seed + 1)
    cfg = TrainConfig(epochs=v.epochs, batch_size=64, lr=v.lr)
    t0 = time.perf_counter()
    if v.kind == "sens":
        sens_fgsm_train(model, ds.x_train, ds.y_train, ETA, cfg, SensObjective(**v.kwargs),
                        generator=gen)
    elif v.kind in ("adv-fgsm", "adv-fgsm-clean"):
        adversarial_training(model, ds.x_train, ds.y_train, ETA, cfg, generator=gen,
                             with_clean=v.kind == "adv-fgsm-clean")
    secs = time.perf_counter() - t0 if v.kind != "clean" else 0.0
    model.eval()
    x, y = ds.x_test, ds.y_test
    sur = {k: v.kwargs[k] for k in ("scale", "detach_scale", "tau", "relative_tau")
           if k in v.kwargs}
    z = sens_fgsm_inputs(model, x, y, ETA, create_graph=False, **sur)
    with torch.no_grad():
        pred = model(x).argmax(1)
    signs = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    noise = (x + ETA * (2.0 * signs.to(x.dtype) - 1.0)).clamp(0.0, 1.0)
    return {
        "clean": error(model, x, y),
        "fgsm": error(model, fgm(model, x, y, ETA, "inf"), y),
        "fgsm-pred": error(model, fgm(model, x, pred, ETA, "inf"), y),
        "noise": error(model, noise, y),
        "pgd": error(model, pgd(model, x, y, ETA, "inf", steps=20,
                                generator=torch.Generator().manual_seed(seed)), y),
        "|z-x|": float((z - x).abs().mean()),
        "s": secs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--variants", nargs="+", default=[v.name for v in VARIANTS],
                    help="variant names (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    known = {v.name: v for v in VARIANTS}
    bad = [n for n in args.variants if n not in known]
    if bad:
        ap.error(f"unknown variants {bad}; choose from {list(known)}")
    ds = load_dataset("mnist-5k")
    print(f"# Sens-FGSM variants, mnist-5k, eta = {ETA}, seeds {args.seeds}, "
          f"1 thread, {cpu_name()}, torch {torch.__version__}")
    print(f"# command: python {' '.join(sys.argv)}\n")
    cols = ["clean", "fgsm", "fgsm-pred", "noise", "pgd", "|z-x|", "s"]
    for arch in args.archs:
        u0s = {}
        for seed in args.seeds:
            torch.manual_seed(seed)
            u0 = build_model(arch, ds.input_shape, ds.num_classes)
            train(u0, ds.x_train, ds.y_train, TrainConfig(epochs=10, batch_size=64, lr=1e-3),
                  generator=torch.Generator().manual_seed(seed))
            u0s[seed] = u0.eval()
        print(f"## {arch}\n")
        print("| variant | " + " | ".join(cols) + " | what |")
        print("|---|" + "---:|" * len(cols) + "---|")
        for name in args.variants:
            v = known[name]
            rows = [run(arch, v, ds, u0s[s], s) for s in args.seeds]
            mean = {c: sum(r[c] for r in rows) / len(rows) for c in cols}
            cells = [f"{mean[c]:.3f}" if c != "s" else f"{mean[c]:.1f}" for c in cols]
            print(f"| {name} | " + " | ".join(cells) + f" | {v.what} |", flush=True)
        print()


if __name__ == "__main__":
    main()
