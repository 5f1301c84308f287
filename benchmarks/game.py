"""Benchmark: zero-sum matrix game solvers, advgame against nashpy.

On seeded random payoff matrices (uniform entries in [0, 1], rows = defender) it times,
in one process, interleaved, best of ``--repeats``:

- ``nashpy``: ``nashpy.Game(A).linear_program()`` (two HiGHS LPs through
  ``scipy.optimize.linprog``, one per player);
- ``advgame``: :func:`advgame.game.solve_zero_sum` with its default ``method="auto"``
  (interior point -> support -> certified exact solve for min(m, n) >= 64);
- ``advgame-highs``: ``solve_zero_sum(A, method="highs")`` (one HiGHS LP in the standard
  positive form; the attacker's strategy from its duals).

For each it reports the value p^T A q, the difference to nashpy's value and the
exploitability max_i (A q)_i - min_j (p^T A)_j of the returned pair.

HiGHS is single-threaded; numpy's BLAS is limited to ``--blas-threads`` (default 1, via
threadpoolctl when installed) so that every solver gets the same CPU, and because
multi-threaded OpenBLAS slows down by orders of magnitude on an oversubscribed machine.

Usage:
    python benchmarks/game.py                         # 200x200 and 800x800, prints Markdown
    python benchmarks/game.py --sizes 200 400 --repeats 3
    python benchmarks/game.py --update benchmarks/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nashpy
import numpy as np
import scipy
from bench_common import blas_threads, header_lines, update_section

from advgame.game import exploitability, solve_zero_sum

HEADING = "## Game solvers (benchmarks/game.py)"


def timed(fn: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
    start = time.perf_counter()
    p, q = fn()
    return time.perf_counter() - start, p, q


def run(sizes: list[int], repeats: list[int], seed: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for size, reps in zip(sizes, repeats, strict=True):
        a = np.random.default_rng(seed).random((size, size))
        solvers: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
            "nashpy": lambda a=a: tuple(nashpy.Game(a).linear_program()),  # type: ignore[misc]
            "advgame": lambda a=a: solve_zero_sum(a)[1:],  # type: ignore[misc]
            "advgame-highs": lambda a=a: solve_zero_sum(a, method="highs")[1:],  # type: ignore[misc]
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
                f"{size}x{size} {name:14s} {best[name]:9.4f} s  "
                f"x{best['nashpy'] / best[name]:6.1f}  value {value:.12f}  "
                f"|dv| {abs(value - ref_value):.1e}",
                file=sys.stderr,
            )
    return rows


def markdown(rows: list[dict[str, object]], command: str, threads: str,
             load: tuple[float, float]) -> str:
    lines = header_lines(HEADING, command, load, f"BLAS threads: {threads}")
    lines += [
        f"Versions: python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, nashpy {nashpy.__version__}",
        "",
        "Random payoff matrices (uniform [0, 1], seed 0). Time = best of the repeats, run "
        "interleaved in one process; speedup = nashpy time / solver time; |dv| = |value - "
        "nashpy value|; exploitability = max_i (Aq)_i - min_j (p^T A)_j of the returned pair.",
        "",
        "| size | solver | repeats | time (s) | speedup vs nashpy | value | abs(dv) "
        "| exploitability |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['solver']} | {r['repeats']} | {r['seconds']:.3f} | "
            f"{r['speedup']:.1f}x | {r['value']:.10f} | {r['value_diff']:.1e} | "
            f"{r['exploitability']:.1e} |"
        )
    lines += [
        "",
        "`advgame` = `solve_zero_sum(A)` (default `method=\"auto\"`: dense interior point "
        "to locate the supports, exact solve of the square equalizing system, accepted only "
        "with an exploitability certificate on the full matrix, HiGHS fallback); "
        "`advgame-highs` = one HiGHS LP whose duals give the defender's strategy; `nashpy` "
        "= `nashpy.Game(A).linear_program()` (two LPs). numpy's BLAS is limited to one "
        "thread (HiGHS uses one): on this shared, oversubscribed 2-core VM multi-threaded "
        "OpenBLAS makes the many small BLAS calls of the interior point 10-100x slower "
        "(`--blas-threads default` to measure it).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--repeats", type=int, nargs="+", default=None,
                        help="repeats per size (default: 5 below 500, else 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", default="1", help='an integer or "default"')
    parser.add_argument("--update", type=Path, default=None,
                        help="write the Markdown section into this file (e.g. BENCHMARKS.md)")
    args = parser.parse_args()
    repeats = args.repeats or [5 if s < 500 else 2 for s in args.sizes]
    if len(repeats) == 1:
        repeats = repeats * len(args.sizes)
    if len(repeats) != len(args.sizes):
        parser.error("--repeats takes one value or one per size")
    command = "python " + " ".join(["benchmarks/game.py", *sys.argv[1:]])
    load_before = os.getloadavg()[0]
    with blas_threads(args.blas_threads) as threads:
        rows = run(args.sizes, repeats, args.seed)
    section = markdown(rows, command, threads, (load_before, os.getloadavg()[0]))
    print(section)
    if args.update is not None:
        update_section(args.update, section)


if __name__ == "__main__":
    main()
