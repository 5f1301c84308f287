"""Benchmark: zero-sum matrix game solvers, advgame against nashpy.

On seeded random payoff matrices (uniform entries in [0, 1], rows = defender) it times,
in one process, interleaved, best of ``--repeats``:

- ``nashpy``: ``nashpy.Game(A).linear_program()`` (two HiGHS LPs through
  ``scipy.optimize.linprog``, one per player);
- ``advgame``: :func:`advgame.game.solve_zero_sum` with its default ``method="auto"``
  (interior point -> support -> certified exact solve for min(m, n) >= 64);
- ``advgame-highs``: ``solve_zero_sum(A, method="highs")`` (one HiGHS LP in the standard
  positive form; the attacker's strategy from its duals);
- ``advgame-caller-threads``: ``solve_zero_sum(A, blas_threads=os.cpu_count())``, the
  default method with BLAS on all cores, as numpy sets it by default (what
  ``solve_zero_sum`` did before it limited its own BLAS threads).

For each it reports the value p^T A q, the difference to nashpy's value and the
exploitability max_i (A q)_i - min_j (p^T A)_j of the returned pair.

The process sets no thread variable and no thread limit: every solver runs as it would
in a plain Python process (numpy's BLAS with its default threads; ``solve_zero_sum``
limits BLAS to one thread for its own work by itself). ``--busy 0 1`` repeats the table
with 0 and then 1 extra process spinning on a core (``while True: pass``), the load under
which multi-threaded OpenBLAS slows down.

Usage:
    python benchmarks/game.py                         # 200, 400, 800; idle and 1 busy core
    python benchmarks/game.py --sizes 200 400 --repeats 3 --busy 0
    python benchmarks/game.py --update benchmarks/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nashpy
import numpy as np
import scipy
from bench_common import header_lines, update_section
from threadpoolctl import threadpool_info

from advgame.game import exploitability, solve_zero_sum

HEADING = "## Game solvers (benchmarks/game.py)"


def timed(fn: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
    start = time.perf_counter()
    p, q = fn()
    return time.perf_counter() - start, p, q


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """Keep ``count`` extra processes spinning on the CPU inside the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(count)]
    try:
        time.sleep(0.5 if procs else 0.0)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def default_blas_threads() -> str:
    """The BLAS thread counts of this process as numpy and scipy set them by default."""
    counts = sorted({str(lib["num_threads"]) for lib in threadpool_info()
                     if lib["user_api"] == "blas"})
    env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ]
    return (f"BLAS threads: process default ({'/'.join(counts) or '?'}; thread variables: "
            f"{', '.join(env) or 'none set'})")


def run(sizes: list[int], repeats: list[int], seed: int, busy: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for size, reps in zip(sizes, repeats, strict=True):
        a = np.random.default_rng(seed).random((size, size))
        solvers: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
            "nashpy": lambda a=a: tuple(nashpy.Game(a).linear_program()),  # type: ignore[misc]
            "advgame": lambda a=a: solve_zero_sum(a)[1:],  # type: ignore[misc]
            "advgame-highs": lambda a=a: solve_zero_sum(a, method="highs")[1:],  # type: ignore[misc]
            # What solve_zero_sum did before it limited its own threads (the caller's).
            "advgame-caller-threads": lambda a=a: solve_zero_sum(  # type: ignore[misc]
                a, blas_threads=os.cpu_count() or 1)[1:],
        }
        best = {name: float("inf") for name in solvers}
        pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for _ in range(reps):  # interleaved, so that load changes hit every solver
            for name, fn in solvers.items():
                t, p, q = timed(fn)
                best[name] = min(best[name], t)
                pairs[name] = (p, q)
        ref_p, ref_q = pairs["nashpy"]
        ref_value = float(ref_p @ a @ ref_q)
        for name in solvers:
            p, q = pairs[name]
            value = float(p @ a @ q)
            rows.append({
                "busy": busy,
                "size": f"{size}x{size}",
                "solver": name,
                "seconds": best[name],
                "speedup": best["nashpy"] / best[name],
                "value": value,
                "value_diff": abs(value - ref_value),
                "exploitability": exploitability(a, p / p.sum(), q / q.sum()),
                "repeats": reps,
            })
            print(
                f"busy {busy} {size}x{size} {name:22s} {best[name]:9.4f} s  "
                f"x{best['nashpy'] / best[name]:6.1f}  value {value:.12f}  "
                f"|dv| {abs(value - ref_value):.1e}",
                file=sys.stderr,
            )
    return rows


def markdown(rows: list[dict[str, object]], command: str, threads: str,
             load: tuple[float, float]) -> str:
    lines = header_lines(HEADING, command, load, threads)
    lines += [
        f"Versions: python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, nashpy {nashpy.__version__}",
        "",
        "Random payoff matrices (uniform [0, 1], seed 0). Time = best of the repeats, run "
        "interleaved in one process; speedup = nashpy time / solver time; |dv| = |value - "
        "nashpy value|; exploitability = max_i (Aq)_i - min_j (p^T A)_j of the returned pair; "
        "busy = extra processes spinning on a core meanwhile (`while True: pass`).",
        "",
        "| busy | size | solver | repeats | time (s) | speedup vs nashpy | value | abs(dv) "
        "| exploitability |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['busy']} | {r['size']} | {r['solver']} | {r['repeats']} | "
            f"{r['seconds']:.3f} | "
            f"{r['speedup']:.1f}x | {r['value']:.10f} | {r['value_diff']:.1e} | "
            f"{r['exploitability']:.1e} |"
        )
    lines += [
        "",
        "`advgame` = `solve_zero_sum(A)` (default `method=\"auto\"`: dense interior point "
        "to locate the supports, exact solve of the square equalizing system, accepted only "
        "with an exploitability certificate on the full matrix, HiGHS fallback); "
        "`advgame-highs` = one HiGHS LP whose duals give the defender's strategy; "
        "`advgame-caller-threads` = the default method with BLAS on every core, as numpy "
        "starts (what `solve_zero_sum` did before it limited its own threads); `nashpy` "
        "= `nashpy.Game(A).linear_program()` (two LPs). No thread variable or limit is set "
        "by the benchmark: `solve_zero_sum` runs its BLAS work on one thread by itself "
        "(min(m, n) <= 2048; `blas_threads=` overrides), because multi-threaded OpenBLAS "
        "makes the many small BLAS calls of the interior point slower, and several times "
        "slower when another process keeps a core busy.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 800])
    parser.add_argument("--repeats", type=int, nargs="+", default=None,
                        help="repeats per size (default: 5 below 500, else 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1],
                        help="extra spinning processes, one table part per value")
    parser.add_argument("--update", type=Path, default=None,
                        help="write the Markdown section into this file (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    repeats = args.repeats or [5 if s < 500 else 2 for s in args.sizes]
    if len(repeats) == 1:
        repeats = repeats * len(args.sizes)
    if len(repeats) != len(args.sizes):
        parser.error("--repeats takes one value or one per size")
    exe = os.path.relpath(sys.executable)
    command = " ".join([exe if not exe.startswith("..") else "python", "benchmarks/game.py",
                        *sys.argv[1:]])
    load_before = os.getloadavg()[0]
    threads = default_blas_threads()
    rows = []
    for busy in args.busy:
        with busy_cores(busy):
            rows += run(args.sizes, repeats, args.seed, busy)
    section = markdown(rows, command, threads, (load_before, os.getloadavg()[0]))
    print(section)
    if args.update is not None:
        update_section(args.update, section)


if __name__ == "__main__":
    main()
