"""Speedup of N torchrun processes over 1 on ``advgame certify`` and ``advgame paper1``.

Runs the same command on the same data with 1 process and with N processes (gloo, one
thread each) and prints wall times (including start-up), the speedup, and whether the
results agree (certify: classes and radii; paper1: every table).
Run: .venv/bin/python benchmarks/distributed.py [--command certify|paper1] [--nproc 2]
     [--n 100000] [--n-test 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str]) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVGAME_BACKEND": "gloo"}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--command", choices=("certify", "paper1"), default="certify")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--n", type=int, default=100_000, help="certify: samples per input")
    ap.add_argument("--n-test", type=int, default=40, help="certify: inputs")
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "advgame")
    with tempfile.TemporaryDirectory() as tmp:
        base = ["--dataset", "mnist-5k", "--classes", "0", "1"]
        if args.command == "certify":
            subprocess.run([exe, "train", *base, "--epochs", "2", "--out", f"{tmp}/m"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            common = ["certify", "--model", f"{tmp}/m/model.pt", *base, "--num-samples",
                      str(args.n), f"--n-test={args.n_test}"]
            what = f"certify {args.n_test} inputs x n={args.n:,}"
        else:
            common = ["paper1", "--quick"]
            what = "paper1 --quick (mnist-5k 0 vs 1 and the quick pair 3 vs 8)"
        t1 = run([exe, *common, "--out", f"{tmp}/one"])
        tn = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                  f"--nproc_per_node={args.nproc}", exe, *common, "--out", f"{tmp}/many"])
        a = json.loads(Path(f"{tmp}/one/results.json").read_text())
        b = json.loads(Path(f"{tmp}/many/results.json").read_text())
    if args.command == "certify":
        same = (a["data"]["radius"] == b["data"]["radius"]
                and a["data"]["class"] == b["data"]["class"])
        note = ""
    else:  # table rows; captions quote the exact MILP's bound, which a time limit decides
        same = [t["rows"] for t in a["tables"]] == [t["rows"] for t in b["tables"]]
        captions = sum(x["caption"] != y["caption"] for x, y in zip(a["tables"], b["tables"],
                                                                     strict=True))
        note = f" (table rows; {captions} caption(s) differ)" if captions else " (tables)"
    print(f"{what}: 1 process {t1:.1f} s, {args.nproc} processes {tn:.1f} s, speedup "
          f"{t1 / tn:.2f}x (incl. start-up), identical results{note}: {same}, load average "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
