"""Fresh AttNets as best responses: which attacker objective collapses, which one fools (issue 15).

For a frozen MNIST classifier (``mnist-5k``: 4,000 train / 1,000 test, 10 classes; an MLP
trained 5 epochs, and the same MLP FGSM-adversarially trained at each eta), trains fresh
attack networks (the paper's MLP AttNet with 3 x 300 hidden units, and the ConvAttNet) on
the training set with each attacker objective and learning rate, ``--seeds`` independently
initialized restarts each (``best_response_attnet``), and prints per row: the test error of
the attacked classifier (mean and range over restarts, and the worst case per example ORed
over restarts), how many restarts collapsed (mode_fraction >= 0.9: one class takes >= 90 %
of the attacked predictions), the mean mode fraction and the mean tanh saturation; then,
per objective and learning rate, the worst case over both architectures and all restarts,
next to PGD-20 (random start) as the reference best response.

Not a test. Run (about 15 minutes on 2 busy cores):
    .venv/bin/python benchmarks/attnet_objectives.py
    .venv/bin/python benchmarks/attnet_objectives.py --etas 0.3 --lrs 1e-3 --seeds 2  # quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from advgame.attacks import pgd
from advgame.attacks.learned import OBJECTIVES, BestResponse, best_response_attnet, build_attnet
from advgame.data import load_dataset
from advgame.defenses.training import adversarial_training
from advgame.models import TrainConfig, build_model, predict, train


def classifier(ds: Any, kind: str, eta: float, epochs: int) -> torch.nn.Module:
    """The MLP classifier, trained clean or with online FGSM adversarial training at eta."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("mlp", ds.input_shape, ds.num_classes)
    cfg = TrainConfig(epochs=epochs)
    g = torch.Generator().manual_seed(0)
    if kind == "clean":
        train(model, ds.x_train, ds.y_train, cfg, generator=g)
    else:
        adversarial_training(model, ds.x_train, ds.y_train, eta, cfg, generator=g)
    return model.eval()


def parse_objective(spec: str) -> tuple[str, str, dict[str, float]]:
    """``cw`` or ``cw:kappa=1`` or ``clamped-ce:cap=0.69`` -> (label, name, keyword args)."""
    name, _, rest = spec.partition(":")
    kwargs = {k: float(v) for k, v in (kv.split("=") for kv in rest.split(",") if kv)}
    if name not in OBJECTIVES:
        raise SystemExit(f"--objectives: unknown objective {name!r}; choose from {OBJECTIVES}")
    return spec, name, kwargs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--etas", type=float, nargs="+", default=[0.3, 0.1])
    ap.add_argument("--classifiers", nargs="+", default=["clean", "fgsm-at"],
                    choices=["clean", "fgsm-at"])
    ap.add_argument("--objectives", nargs="+", default=["ce", "cw", "clamped-ce", "dlr"])
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-4])
    ap.add_argument("--seeds", type=int, default=3, help="restarts per row")
    ap.add_argument("--epochs", type=int, default=5, help="AttNet training epochs")
    ap.add_argument("--clf-epochs", type=int, default=5)
    ap.add_argument("--pgd-steps", type=int, default=20)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    objectives = [parse_objective(s) for s in args.objectives]

    ds = load_dataset("mnist-5k")
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    print(f"mnist-5k: {ds.x_train.shape[0]} train / {ds.x_test.shape[0]} test, "
          f"{ds.num_classes} classes; AttNet epochs {args.epochs}, {args.seeds} restarts",
          flush=True)
    for kind in args.classifiers:
        clean_model = classifier(ds, "clean", 0.0, args.clf_epochs) if kind == "clean" else None
        for eta in args.etas:
            model = clean_model if clean_model is not None else classifier(
                ds, kind, eta, args.clf_epochs)
            clean_err = float((predict(model, ds.x_test) != ds.y_test).float().mean())
            x_pgd = pgd(model, ds.x_test, ds.y_test, eta, "inf", steps=args.pgd_steps,
                        generator=torch.Generator().manual_seed(0))
            pgd_err = float((predict(model, x_pgd) != ds.y_test).float().mean())
            print(f"\n## classifier {kind}, eta {eta}: clean error {clean_err:.3f}, "
                  f"PGD-{args.pgd_steps} error {pgd_err:.3f}", flush=True)
            for lr in args.lrs:
                for label, name, kw in objectives:
                    per_arch: dict[str, BestResponse] = {}
                    for arch in args.archs:
                        ts = time.perf_counter()
                        hidden = {"hidden": (300, 300, 300)} if arch == "mlp" else {}
                        br = best_response_attnet(
                            lambda arch=arch, hidden=hidden: build_attnet(
                                arch, ds.input_shape, **hidden),
                            model, ds.x_train, ds.y_train, eta, restarts=args.seeds,
                            objective=name, epochs=args.epochs, lr=lr,
                            x_eval=ds.x_test, y_eval=ds.y_test,
                            generator=torch.Generator().manual_seed(1), **kw)
                        secs = (time.perf_counter() - ts) / args.seeds
                        errs = [r.error for r in br.restarts]
                        row = {
                            "classifier": kind, "eta": eta, "lr": lr, "objective": label,
                            "arch": arch, "clean": clean_err, "pgd": pgd_err,
                            "errors": errs, "worst": br.error, "collapsed": br.collapsed,
                            "mode_fraction": [r.mode_fraction for r in br.restarts],
                            "saturation": [r.saturation for r in br.restarts],
                            "seconds_per_attnet": secs,
                        }
                        rows.append(row)
                        per_arch[arch] = br
                    flags = torch.stack([b.flags for b in per_arch.values()]).any(dim=0)
                    summary.append({"classifier": kind, "eta": eta, "lr": lr,
                                    "objective": label, "worst_all": float(flags.float().mean()),
                                    "collapsed": sum(b.collapsed for b in per_arch.values()),
                                    "n": sum(len(b.restarts) for b in per_arch.values()),
                                    "pgd": pgd_err})
                    print_rows(rows[-len(args.archs):])
    print(f"\n# per-row table ({time.perf_counter() - t_start:.0f} s in all)")
    print_rows(rows, header=True)
    print("\n# worst case over architectures and restarts (what a fresh-AttNet column reports)")
    print("| classifier | eta | lr | objective | worst error | PGD error | collapsed |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for s in summary:
        print(f"| {s['classifier']} | {s['eta']} | {s['lr']:g} | {s['objective']} | "
              f"{s['worst_all']:.3f} | {s['pgd']:.3f} | {s['collapsed']}/{s['n']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summary, "args": vars(args)}, f, indent=1)


_printed_header = False


def print_rows(rows: list[dict[str, Any]], header: bool = False) -> None:
    global _printed_header
    if header or not _printed_header:
        print("| classifier | eta | lr | arch | objective | error mean [min, max] | worst (OR) "
              "| PGD | collapsed | mode frac | saturation | s/AttNet |")
        print("|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|")
        _printed_header = True
    for r in rows:
        e = r["errors"]
        print(f"| {r['classifier']} | {r['eta']} | {r['lr']:g} | {r['arch']} | {r['objective']} "
              f"| {statistics.mean(e):.3f} [{min(e):.3f}, {max(e):.3f}] | {r['worst']:.3f} "
              f"| {r['pgd']:.3f} | {r['collapsed']}/{len(e)} "
              f"| {statistics.mean(r['mode_fraction']):.3f} "
              f"| {statistics.mean(r['saturation']):.3f} | {r['seconds_per_attnet']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
