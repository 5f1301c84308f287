"""Benchmark: randomized-smoothing certification throughput and peak memory.

Compares, on the project's ``SmallCNN`` (1x28x28 -> 2 classes; an equivalent conv-ReLU
stack is defined inline if ``advgame.models`` is unavailable):

- ``forward+noise``: the same forward pass on ``x + sigma * torch.randn(...)`` drawn by
  torch's (serial) CPU sampler from one generator -- the cost of a naive loop;
- ``advgame``: :func:`advgame.smoothing.certify` with ``n0`` selection and ``n``
  estimation samples per input (noise streamed in batches of ``--batch-size`` rows);
- ``forward``: the raw forward pass of the same model over the same number of rows
  (``N * (n0 + n)``) in batches of the same size -- the lower bound on the cost;
- ``art``: ART's ``PyTorchRandomizedSmoothing.certify`` (same n0 = ``sample_size``, n,
  sigma = ``scale``, alpha, batch size), if ``adversarial-robustness-toolbox`` (and the
  ``statsmodels`` it needs for the bound) are installed;
- ``advgame-small-n``: advgame with ``n / 10`` estimation samples, to show that peak
  memory does not depend on ``n``.

Each measurement runs in its own subprocess so that its peak resident memory
(``ru_maxrss``) is clean; the table reports the peak and its increase over the resident
set measured just before the timed call (after imports, model construction and a small
warm-up). Throughput is forward rows (noisy copies) per second.

Usage:
    python benchmarks/smoothing.py                    # prints a Markdown section
    python benchmarks/smoothing.py --update benchmarks/BENCHMARKS.md
    python benchmarks/smoothing.py --inputs 2 --n 20000 --skip-art
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
from bench_common import update_section
from torch import nn

METHODS = ("forward", "forward+noise", "advgame", "art", "advgame-small-n")


def build_model() -> nn.Module:
    """The project's SmallCNN (random weights, seed 0): 1x28x28 -> 2 logits."""
    torch.manual_seed(0)  # benchmark script, not library code: fixed weights
    try:
        from advgame.models import SmallCNN

        return SmallCNN((1, 28, 28), 2).eval()
    except ImportError:  # pragma: no cover - inline fallback with the same layers
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 2),
        ).eval()


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    model = build_model()
    x = torch.rand(args.inputs, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    n = args.n // 10 if args.method == "advgame-small-n" else args.n
    rows = args.inputs * (args.n0 + n)
    out: dict[str, Any] = {"method": args.method, "rows": rows, "n": n}

    if args.method == "forward":
        batch = torch.rand(args.batch_size, 1, 28, 28)
        with torch.no_grad():
            model(batch)
            base = rss_bytes()
            c0, t0 = time.process_time(), time.perf_counter()
            done = 0
            while done < rows:
                b = min(args.batch_size, rows - done)
                model(batch[:b]).argmax(dim=1)
                done += b
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    elif args.method == "forward+noise":
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            model(x[:1] + args.sigma * torch.randn(args.batch_size, 1, 28, 28, generator=gen))
            base = rss_bytes()
            c0, t0 = time.process_time(), time.perf_counter()
            done = 0
            while done < rows:
                b = min(args.batch_size, rows - done)
                noise = torch.randn(b, 1, 28, 28, generator=gen)  # torch's serial sampler
                model(noise.mul_(args.sigma).add_(x[0])).argmax(dim=1)
                done += b
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    elif args.method in ("advgame", "advgame-small-n"):
        from advgame.smoothing import certify

        certify(model, x[:1], args.sigma, 10, args.batch_size, args.alpha, args.batch_size,
                torch.Generator().manual_seed(2))
        base = rss_bytes()
        c0, t0 = time.process_time(), time.perf_counter()
        cls, rad = certify(model, x, args.sigma, args.n0, n, args.alpha, args.batch_size,
                           torch.Generator().manual_seed(3))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["classes"], out["radii"] = cls.tolist(), rad.tolist()
    elif args.method == "art":
        from art.estimators.certification.randomized_smoothing import (
            PyTorchRandomizedSmoothing,
        )

        np.random.seed(3)  # noqa: NPY002 - ART draws its noise from the global generator
        art = PyTorchRandomizedSmoothing(
            model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=2,
            device_type="cpu", sample_size=args.n0, scale=args.sigma, alpha=args.alpha,
        )
        xn = x.numpy()
        art.certify(xn[:1], n=args.batch_size, batch_size=args.batch_size)
        base = rss_bytes()
        c0, t0 = time.process_time(), time.perf_counter()
        cls_np, rad_np = art.certify(xn, n=n, batch_size=args.batch_size)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["classes"], out["radii"] = cls_np.tolist(), rad_np.tolist()
    else:
        raise SystemExit(f"unknown method {args.method}")
    out.update(seconds=seconds, rows_per_s=rows / seconds, cpu_seconds=cpu, base_rss=base,
               peak_rss=peak_rss_bytes())
    return out


def run_method(method: str, args: argparse.Namespace) -> dict[str, Any] | str:
    cmd = [sys.executable, __file__, "--worker", method, "--inputs", str(args.inputs),
           "--n0", str(args.n0), "--n", str(args.n), "--batch-size", str(args.batch_size),
           "--sigma", str(args.sigma), "--alpha", str(args.alpha),
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return f"{method} failed: {tail}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(b: int) -> str:
    return f"{b / 2**20:,.0f}"


def markdown(args: argparse.Namespace, results: dict[str, dict[str, Any] | str]) -> str:
    import scipy

    try:
        import art

        art_version = art.__version__
    except ImportError:
        art_version = "not installed"
    lines = [
        "## Randomized smoothing certification (benchmarks/smoothing.py)",
        "",
        f"Command: `python benchmarks/smoothing.py --inputs {args.inputs} --n0 {args.n0} "
        f"--n {args.n} --batch-size {args.batch_size} --threads {args.threads} "
        f"--repeats {args.repeats}`  ",
        f"Date: {datetime.date.today().isoformat()}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({args.threads} threads), scipy {scipy.__version__}, ART {art_version}, "
        f"Python {platform.python_version()}; shared machine, load average "
        f"{args.load:.1f} at the start (other jobs running): absolute rates are noisy, the "
        "fastest of the interleaved runs is kept.",
        "",
        f"Model: advgame `SmallCNN` (1x28x28 -> 2, random weights), {args.inputs} inputs, "
        f"sigma = {args.sigma}, alpha = {args.alpha}, n0 = {args.n0}, n = {args.n:,} noise "
        f"samples per input, {args.batch_size} rows per forward batch. Each row below is a "
        "separate process; \"vs raw forward\" = throughput relative to the raw forward pass "
        "(wall clock, and process CPU time per row, which a busy machine disturbs less); "
        "memory = peak RSS and its increase over the RSS just before the timed call.",
        "",
        "| method | rows | wall (s) | rows/s | vs raw forward | CPU (s) | vs raw forward, "
        "CPU | peak RSS (MiB) | peak increase (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    fwd = results.get("forward")
    fwd_rate = fwd["rows_per_s"] if isinstance(fwd, dict) else None
    fwd_cpu = fwd["cpu_seconds"] / fwd["rows"] if isinstance(fwd, dict) else None
    names = {
        "forward": "raw forward (same model, same rows)",
        "forward+noise": "forward of x + sigma * torch.randn (one generator, no counting)",
        "advgame": "advgame `smoothing.certify`",
        "art": "ART `PyTorchRandomizedSmoothing.certify`",
        "advgame-small-n": f"advgame `smoothing.certify`, n = {args.n // 10:,}",
    }
    notes = []
    for method in METHODS:
        r = results.get(method)
        if r is None:
            continue
        if isinstance(r, str):
            notes.append(f"- {names[method]}: {r}")
            continue
        ratio = f"{r['rows_per_s'] / fwd_rate:.2f}x" if fwd_rate else "-"
        cpu_ratio = f"{fwd_cpu / (r['cpu_seconds'] / r['rows']):.2f}x" if fwd_cpu else "-"
        lines.append(
            f"| {names[method]} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} "
            f"| {ratio} | {r['cpu_seconds']:.1f} | {cpu_ratio} | {mib(r['peak_rss'])} "
            f"| {mib(r['peak_rss'] - r['base_rss'])} |"
        )
    ours, theirs = results.get("advgame"), results.get("art")
    naive = results.get("forward+noise")
    if isinstance(ours, dict) and isinstance(naive, dict) and fwd_rate:
        sampling = 1 - naive["rows_per_s"] / fwd_rate
        verdict = "meets" if ours["rows_per_s"] >= 0.9 * fwd_rate else "misses"
        cost = (
            f"drawing the Gaussian noise alone (784 normals per row from torch's CPU sampler) "
            f"costs {sampling:.0%} of the raw forward rate of this small CNN here, which bounds "
            "any exact implementation on this CPU; on an accelerator the sampling is "
            "negligible next to the forward pass"
            if sampling > 0.02
            else "the noise sampling cost is within the timing noise here"
        )
        notes.append(
            f"- advgame runs at {ours['rows_per_s'] / fwd_rate:.2f}x the raw forward rate "
            f"({verdict} the 0.9x target) and at {ours['rows_per_s'] / naive['rows_per_s']:.2f}x "
            f"the naive forward + `torch.randn` loop: {cost}."
        )
    if isinstance(ours, dict) and isinstance(theirs, dict):
        notes.append(
            f"- Speed vs ART: {ours['rows_per_s'] / theirs['rows_per_s']:.2f}x. Peak memory "
            f"increase: advgame {mib(ours['peak_rss'] - ours['base_rss'])} MiB (one batch of "
            f"{args.batch_size} rows and one noise block, independent of n: compare the "
            f"n = {args.n // 10:,} row), ART {mib(theirs['peak_rss'] - theirs['base_rss'])} "
            "MiB (it materializes all n noisy copies of an input, and the noise in float64)."
        )
    if isinstance(ours, dict) and isinstance(theirs, dict):
        agree = sum(a == b for a, b in zip(ours["classes"], theirs["classes"], strict=True))
        diff = max(abs(a - b) for a, b in zip(ours["radii"], theirs["radii"], strict=True))
        notes.append(
            f"- Same certificates: classes agree on {agree}/{len(ours['classes'])} inputs; "
            f"largest radius difference {diff:.4f} (independent noise draws)."
        )
    return "\n".join(lines + [""] + notes) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=3)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=2000)
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="runs per method (ART: one)")
    p.add_argument("--skip-art", action="store_true")
    p.add_argument("--update", metavar="FILE",
                   help="also replace (or append) this benchmark's section in FILE")
    p.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.method = args.worker
        print(json.dumps(worker(args)))
        return
    args.load = os.getloadavg()[0]
    results: dict[str, dict[str, Any] | str] = {}
    for rep in range(args.repeats):  # interleaved, fastest run kept: fairer on a busy machine
        for method in METHODS:
            if method == "art" and (args.skip_art or rep > 0):
                continue
            r = run_method(method, args)
            old = results.get(method)
            if not isinstance(old, dict) or (isinstance(r, dict) and r["seconds"] < old["seconds"]):
                results[method] = r
            print(f"{method} (run {rep + 1}): {r if isinstance(r, str) else 'done'}",
                  file=sys.stderr)
    section = markdown(args, results)
    print(section)
    if args.update:
        update_section(args.update, section)


if __name__ == "__main__":
    main()
