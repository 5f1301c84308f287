"""Speedup of 2 torchrun processes over 1 on certification (issue 7).

Runs ``advgame certify`` on the same model and inputs with 1 process and with N processes
(gloo, one thread each) and prints wall times, the speedup, and whether results agree.
Run: .venv/bin/python benchmarks/distributed.py [--nproc 2] [--n 20000] [--n-test 40]
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
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--n-test", type=int, default=40)
    args = ap.parse_args()
    exe = str(Path(sys.executable).parent / "advgame")
    with tempfile.TemporaryDirectory() as tmp:
        base = ["--dataset", "mnist-5k", "--classes", "0", "1", "--epochs", "2"]
        subprocess.run([exe, "train", *base, "--out", f"{tmp}/m"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        common = ["certify", "--model", f"{tmp}/m/model.pt", *base, "--num-samples",
                  str(args.n), f"--n-test={args.n_test}"]
        t1 = run([exe, *common, "--out", f"{tmp}/one"])
        tn = run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                  f"--nproc_per_node={args.nproc}", exe, *common, "--out", f"{tmp}/many"])
        a = json.loads(Path(f"{tmp}/one/results.json").read_text())["data"]
        b = json.loads(Path(f"{tmp}/many/results.json").read_text())["data"]
    same = a["radius"] == b["radius"] and a["class"] == b["class"]
    print(f"certify {args.n_test} inputs x n={args.n}: 1 process {t1:.1f} s, {args.nproc} "
          f"processes {tn:.1f} s, speedup {t1 / tn:.2f}x (incl. start-up), identical "
          f"results: {same}")


if __name__ == "__main__":
    main()
