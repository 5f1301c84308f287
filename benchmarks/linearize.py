"""linearize() cost against one raw forward+backward pass of the same model (issue 3).

Target: linearize <= 1.2x the raw pass. Run: .venv/bin/python benchmarks/linearize.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from advgame.linear import linearize
from advgame.models import MLP, SmallCNN


def raw_pass(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    xa = x.detach().requires_grad_(True)
    out = model(xa)
    (g,) = torch.autograd.grad((out[:, 1] - out[:, 0]).sum(), xa)
    return g


def paired_times(f, g, repeats: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Median times of f and g and the median of their per-round ratio g/f, interleaved
    so that background load hits both alike."""
    f(), g()
    tf, tg = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        tf.append(time.perf_counter() - t)
        t = time.perf_counter()
        g()
        tg.append(time.perf_counter() - t)
    ratios = [b / a for a, b in zip(tf, tg, strict=True)]
    return statistics.median(tf), statistics.median(tg), statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    for name, model in (("MLP 784-256-256-2", MLP((1, 28, 28), 2)),
                        ("SmallCNN 1x28x28", SmallCNN((1, 28, 28), 2))):
        model.eval()
        raw, lin, ratio = paired_times(lambda m=model: raw_pass(m, x),
                                       lambda m=model: linearize(m, x), args.repeats)
        print(f"{name:20s} raw fwd+bwd {raw * 1e3:8.2f} ms   linearize {lin * 1e3:8.2f} ms   "
              f"median paired ratio {ratio:5.3f}")


if __name__ == "__main__":
    main()
