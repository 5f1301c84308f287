"""Benchmark: randomized-smoothing certification throughput and peak memory.

On the project's ``SmallCNN`` (1x28x28 -> 2 classes, random weights; an equivalent
conv-ReLU stack is defined inline if ``advgame.models`` is unavailable), certifying
``--inputs`` inputs with ``n0`` selection and ``n`` estimation samples each, in forward
batches of ``--batch-size`` rows. Throughput is forward rows (noisy copies) per second.

Part 1, throughput (one process, ``--rounds`` interleaved rounds, paired ratios): each
round times, back to back, over the same number of rows ``N * (n0 + n)``:

- ``forward``: the raw forward pass (+ argmax) of the same model in batches of the same
  size -- the lower bound on the cost of any Monte-Carlo certification;
- ``advgame shared``: :func:`advgame.smoothing.certify` on the ``N`` inputs in one call
  with ``noise="shared"`` (the default: one noise stream read by every input);
- ``advgame independent``: the same with ``noise="independent"`` (a stream per input:
  the cost of certifying one input at a time);
- ``forward+randn``: a naive loop drawing ``x + sigma * torch.randn(...)`` from torch's
  serial CPU sampler for every row, without counting.

The ratio "vs raw forward" of a method is the median over rounds of (forward CPU time /
method CPU time) within a round, so load changes between rounds cancel; wall-clock ratios
are shown too.

Part 2, memory and ART (one subprocess per method, so that peak resident memory
(``ru_maxrss``) is clean): advgame shared, advgame with ``n / 10``, and ART's
``PyTorchRandomizedSmoothing.certify`` (same n0 = ``sample_size``, n, sigma = ``scale``,
alpha, batch size) if ``adversarial-robustness-toolbox`` and ``statsmodels`` are installed.
The table reports time, peak RSS and its increase over the RSS just before the timed call.

Usage:
    python benchmarks/smoothing.py                    # prints a Markdown section
    python benchmarks/smoothing.py --update benchmarks/BENCHMARKS.md
    python benchmarks/smoothing.py --inputs 2 --n 20000 --rounds 2 --skip-art
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
from bench_common import cpu_name, update_section
from torch import nn

WORKERS = ("forward", "advgame", "art", "advgame-small-n")
PAIRED = ("forward", "advgame shared", "advgame independent", "forward+randn")


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


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM; Linux >= 4.0). False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS since the last :func:`reset_peak_rss` (VmHWM), else since the start."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def rows_of(args: argparse.Namespace, n: int) -> int:
    return args.inputs * (args.n0 + n)


def forward_rows(model: nn.Module, rows: int, batch_size: int) -> None:
    """The raw forward pass (+ argmax) over ``rows`` rows in batches of ``batch_size``."""
    batch = torch.rand(min(batch_size, rows), 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        done = 0
        while done < rows:
            b = min(batch_size, rows - done)
            model(batch[:b]).argmax(dim=1)
            done += b


def randn_rows(model: nn.Module, x0: torch.Tensor, sigma: float, rows: int,
               batch_size: int, gen: torch.Generator) -> None:
    """Forward of ``x0 + sigma * torch.randn`` (torch's serial sampler), no counting."""
    with torch.no_grad():
        done = 0
        while done < rows:
            b = min(batch_size, rows - done)
            noise = torch.randn(b, *x0.shape, generator=gen)
            model(noise.mul_(sigma).add_(x0)).argmax(dim=1)
            done += b


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in a fresh process (for a clean peak RSS)."""
    torch.set_num_threads(args.threads)
    model = build_model()
    x = torch.rand(args.inputs, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    n = args.n // 10 if args.method == "advgame-small-n" else args.n
    rows = rows_of(args, n)
    out: dict[str, Any] = {"method": args.method, "rows": rows, "n": n}
    if args.method == "forward":
        forward_rows(model, args.batch_size, args.batch_size)
        base = rss_bytes()
        reset_peak_rss()
        c0, t0 = time.process_time(), time.perf_counter()
        forward_rows(model, rows, args.batch_size)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    elif args.method in ("advgame", "advgame-small-n"):
        from advgame.smoothing import certify

        certify(model, x[:1], args.sigma, 10, args.batch_size, args.alpha, args.batch_size,
                torch.Generator().manual_seed(2))
        base = rss_bytes()
        reset_peak_rss()
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
        reset_peak_rss()
        c0, t0 = time.process_time(), time.perf_counter()
        cls_np, rad_np = art.certify(xn, n=n, batch_size=args.batch_size)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["classes"], out["radii"] = cls_np.tolist(), rad_np.tolist()
    else:
        raise SystemExit(f"unknown method {args.method}")
    out.update(seconds=seconds, rows_per_s=rows / seconds, cpu_seconds=cpu, base_rss=base,
               peak_rss=peak_rss_bytes())
    # the raw forward of the same rows, right after, in the same process: a paired baseline
    c0 = time.process_time()
    forward_rows(model, rows, args.batch_size)
    out["forward_cpu_seconds"] = time.process_time() - c0
    return out


def run_worker(method: str, args: argparse.Namespace) -> dict[str, Any] | str:
    cmd = [sys.executable, __file__, "--worker", method, "--inputs", str(args.inputs),
           "--n0", str(args.n0), "--n", str(args.n), "--batch-size", str(args.batch_size),
           "--sigma", str(args.sigma), "--alpha", str(args.alpha),
           "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return f"{method} failed: {tail}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


Times = dict[str, dict[str, list[float]]]  # method -> {"wall": [...], "cpu": [...], ...}


class ForwardClock(nn.Module):
    """Wraps the model and adds up the process CPU time spent inside its forward calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0 = time.process_time()
        out = self.inner(x)
        self.seconds += time.process_time() - c0
        return out


def paired(args: argparse.Namespace) -> Times:
    """Part 1: interleaved rounds of the four throughput methods in this process."""
    from advgame.smoothing import certify

    torch.set_num_threads(args.threads)
    model = build_model()
    x = torch.rand(args.inputs, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    rows = rows_of(args, args.n)

    clock = ForwardClock(model)

    def run(method: str, seed: int) -> float:
        """Run one method; return the CPU time spent in the model's forward calls."""
        gen = torch.Generator().manual_seed(seed)
        clock.seconds = 0.0
        if method == "forward":
            forward_rows(clock, rows, args.batch_size)
        elif method == "forward+randn":
            randn_rows(clock, x[0], args.sigma, rows, args.batch_size, gen)
        else:
            noise = method.split()[1]
            certify(clock, x, args.sigma, args.n0, args.n, args.alpha, args.batch_size, gen,
                    noise=noise)
        return clock.seconds

    for method in PAIRED:  # warm-up (allocator, kernels), small
        small = argparse.Namespace(**{**vars(args), "n": args.batch_size})
        if method.startswith("advgame"):
            certify(model, x[:2], args.sigma, 10, small.n, args.alpha, args.batch_size,
                    torch.Generator().manual_seed(0), noise=method.split()[1])
        else:
            forward_rows(model, args.batch_size, args.batch_size)
    times: Times = {m: {"wall": [], "cpu": [], "model": []} for m in PAIRED}
    for r in range(args.rounds):
        for method in PAIRED:
            c0, t0 = time.process_time(), time.perf_counter()
            inside = run(method, 100 + r)
            times[method]["wall"].append(time.perf_counter() - t0)
            times[method]["cpu"].append(time.process_time() - c0)
            times[method]["model"].append(inside)
        print(f"round {r + 1}: " + ", ".join(
            f"{m} {times[m]['wall'][-1]:.1f} s" for m in PAIRED), file=sys.stderr)
    return times


def paired_ratio(times: Times, method: str, kind: str) -> tuple[float, float, float]:
    """Median, min and max over rounds of forward time / method time (same round)."""
    rs = [f / m for f, m in zip(times["forward"][kind], times[method][kind], strict=True)]
    return statistics.median(rs), min(rs), max(rs)


def model_share(times: Times, method: str) -> tuple[float, float, float]:
    """Median, min and max over rounds of the method's share of CPU time in the model's
    forward, relative to the raw forward loop's own share (its argmax and loop) in the
    same round: the throughput relative to the raw forward loop, from within-run shares."""
    def share(m: str, r: int) -> float:
        return times[m]["model"][r] / times[m]["cpu"][r]

    rs = [share(method, r) / share("forward", r) for r in range(len(times[method]["cpu"]))]
    return statistics.median(rs), min(rs), max(rs)


def inside_vs_raw(times: Times, method: str) -> float:
    """Median over rounds of (forward CPU inside the method / raw forward CPU), same round."""
    return statistics.median(
        m / f for m, f in zip(times[method]["model"], times["forward"]["cpu"], strict=True))


def mib(b: int) -> str:
    return f"{b / 2**20:,.0f}"


def markdown(args: argparse.Namespace, times: Times,
             results: dict[str, dict[str, Any] | str]) -> str:
    import scipy

    try:
        import art

        art_version = art.__version__
    except ImportError:
        art_version = "not installed"
    rows = rows_of(args, args.n)
    lines = [
        "## Randomized smoothing certification (benchmarks/smoothing.py)",
        "",
        f"Command: `python benchmarks/smoothing.py --inputs {args.inputs} --n0 {args.n0} "
        f"--n {args.n} --batch-size {args.batch_size} --threads {args.threads} "
        f"--rounds {args.rounds}`  ",
        f"Date: {datetime.date.today().isoformat()}; machine: {cpu_name()}, "
        f"{os.cpu_count()} CPU cores (shared VM; load average {args.load:.1f} at the start), "
        f"no GPU; torch {torch.__version__} ({args.threads} thread(s)), scipy "
        f"{scipy.__version__}, ART {art_version}, Python {platform.python_version()}.",
        "",
        f"Model: advgame `SmallCNN` (1x28x28 -> 2, random weights), {args.inputs} inputs, "
        f"sigma = {args.sigma}, alpha = {args.alpha}, n0 = {args.n0}, n = {args.n:,} noise "
        f"samples per input, {args.batch_size} rows per forward batch: {rows:,} forward "
        "rows per run.",
        "",
        f"Throughput: {args.rounds} interleaved rounds in one process. \"Paired\" = median "
        "over rounds of (raw forward time / method time) in the same round, [min, max] in "
        "brackets, CPU = process CPU time. \"From forward shares\" = median over rounds of "
        "the share of the method's CPU time spent inside the model's forward calls (timed by "
        "a wrapper in the same run) divided by the raw forward loop's share (its argmax and "
        "loop are the rest): the throughput relative to the raw forward loop, measured "
        "without comparing runs made at different times.",
        "",
        "| method | wall median (s) | rows/s | vs raw forward, paired (CPU) | vs raw forward, "
        "paired (wall) | vs raw forward, from forward shares |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {
        "forward": "raw forward (+ argmax) of the same rows",
        "advgame shared": "advgame `certify`, `noise=\"shared\"` (default)",
        "advgame independent": "advgame `certify`, `noise=\"independent\"` (= one input "
                               "at a time)",
        "forward+randn": "forward of x + sigma * `torch.randn` (naive loop, no counting)",
    }
    for m in PAIRED:
        wall = statistics.median(times[m]["wall"])
        cpu_r, cpu_lo, cpu_hi = paired_ratio(times, m, "cpu")
        wall_r, wall_lo, wall_hi = paired_ratio(times, m, "wall")
        share, share_lo, share_hi = model_share(times, m)
        lines.append(f"| {names[m]} | {wall:.1f} | {rows / wall:,.0f} | {cpu_r:.2f}x "
                     f"[{cpu_lo:.2f}, {cpu_hi:.2f}] | {wall_r:.2f}x [{wall_lo:.2f}, "
                     f"{wall_hi:.2f}] | {share:.2f}x [{share_lo:.2f}, {share_hi:.2f}] |")
    lines += [
        "",
        "Memory and ART: one process per row; peak RSS and its increase over the RSS just "
        "before the timed call.",
        "",
        "| method | rows | wall (s) | CPU (s) | vs raw forward right after (CPU) | peak RSS "
        "(MiB) | peak increase (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    wnames = {
        "forward": "raw forward",
        "advgame": "advgame `certify` (shared noise)",
        "art": "ART `PyTorchRandomizedSmoothing.certify`",
        "advgame-small-n": f"advgame `certify`, n = {args.n // 10:,}",
    }
    notes = []
    for method in WORKERS:
        r = results.get(method)
        if r is None:
            continue
        if isinstance(r, str):
            notes.append(f"- {wnames[method]}: {r}")
            continue
        lines.append(
            f"| {wnames[method]} | {r['rows']:,} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} "
            f"| {r['forward_cpu_seconds'] / r['cpu_seconds']:.2f}x | {mib(r['peak_rss'])} "
            f"| {mib(r['peak_rss'] - r['base_rss'])} |"
        )
    shared = model_share(times, "advgame shared")[0]
    indep = model_share(times, "advgame independent")[0]
    naive = model_share(times, "forward+randn")[0]
    paired_shared = paired_ratio(times, "advgame shared", "cpu")[0]
    fwd = times["forward"]["cpu"]
    verdict = "meets" if shared >= 0.9 else "misses"
    notes.append(
        f"- advgame certifies at {shared:.2f}x the raw forward rate with shared noise "
        f"({verdict} the 0.9x target; {paired_shared:.2f}x by the paired runs) and at "
        f"{indep:.2f}x with independent noise per input. The paired runs are noisier: the "
        f"raw forward alone took {min(fwd):.1f}-{max(fwd):.1f} s CPU across rounds on this "
        "shared VM. The share-based ratio assumes the forward pass costs as much inside "
        "certify as alone; measured: forward CPU inside certify / raw forward CPU of the "
        f"same round, median {inside_vs_raw(times, 'advgame shared'):.2f} (1 = same cost; "
        "the spread is the VM's drift between the runs)."
    )
    notes.append(
        f"- Drawing the Gaussian noise (784 normals per row from torch's CPU sampler) costs "
        f"{1 - naive:.0%} of the time of the naive forward + `torch.randn` loop here: with "
        f"independent noise that cost is paid for every row, with shared noise once per "
        f"noise row for all {args.inputs} inputs of the call (each input's samples stay "
        "i.i.d.; see `advgame.smoothing`). On an accelerator, or with a larger network, the "
        "sampling is small next to the forward pass either way."
    )
    ours, theirs = results.get("advgame"), results.get("art")
    if isinstance(ours, dict) and isinstance(theirs, dict):
        ours_rel = ours["forward_cpu_seconds"] / ours["cpu_seconds"]
        theirs_rel = theirs["forward_cpu_seconds"] / theirs["cpu_seconds"]
        raw_ratio = theirs["cpu_seconds"] / ours["cpu_seconds"]
        notes.append(
            f"- Speed vs ART: {ours_rel / theirs_rel:.2f}x (each relative to the raw forward "
            f"run right after it in its process; {raw_ratio:.2f}x "
            "by raw CPU seconds of runs made at different times). Peak memory "
            f"increase: advgame {mib(ours['peak_rss'] - ours['base_rss'])} MiB (one batch of "
            f"{args.batch_size} rows and one noise block, independent of n: compare the "
            f"n = {args.n // 10:,} row), ART {mib(theirs['peak_rss'] - theirs['base_rss'])} "
            "MiB (it materializes all n noisy copies of an input, and the noise in float64)."
        )
        agree = sum(a == b for a, b in zip(ours["classes"], theirs["classes"], strict=True))
        diff = max(abs(a - b) for a, b in zip(ours["radii"], theirs["radii"], strict=True))
        notes.append(
            f"- Same certificates: classes agree on {agree}/{len(ours['classes'])} inputs; "
            f"largest radius difference {diff:.4f} (different noise draws)."
        )
    return "\n".join(lines + [""] + notes) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=10)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--batch-size", type=int, default=2000)
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    p.add_argument("--skip-art", action="store_true")
    p.add_argument("--update", metavar="FILE",
                   help="also replace (or append) this benchmark's section in FILE")
    p.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.method = args.worker
        print(json.dumps(worker(args)))
        return
    args.load = os.getloadavg()[0]
    times = paired(args)
    results: dict[str, dict[str, Any] | str] = {}
    for method in WORKERS:
        if method == "art" and args.skip_art:
            continue
        results[method] = run_worker(method, args)
        print(f"{method}: {'done' if isinstance(results[method], dict) else results[method]}",
              file=sys.stderr)
    section = markdown(args, times, results)
    print(section)
    if args.update:
        update_section(args.update, section)


if __name__ == "__main__":
    main()
