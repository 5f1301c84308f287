"""Sharding work across processes with torch.distributed (launched by ``torchrun``).

advgame's long loops (certification, attack evaluation, payoff cells) are sums over
independent units — inputs or blocks of inputs. Each unit draws its randomness from a
generator seeded by (seed, unit index), so the result of a unit does not depend on which
process computed it: N processes give exactly the results of one. Rank r takes units
r, r + N, r + 2N, ... and rank 0 gathers them.

Launch, for example, on one node with two processes::

    torchrun --standalone --nproc_per_node 2 $(which advgame) certify --model m.pt --out runs/cert

and on two nodes (run on each, with the address of node 0)::

    torchrun --nnodes 2 --node_rank R --nproc_per_node 8 \\
        --rdzv_backend c10d --rdzv_endpoint HOST:29500 $(which advgame) certify ...

(Give the ``advgame`` script's path rather than ``-m advgame.cli``: with ``-m``, torchrun's
own parser mistakes abbreviations such as ``--n`` for its options.) ``--out`` must be a
directory all processes see (a shared filesystem across nodes).

Outside torchrun everything runs in one process and these helpers are no-ops.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def init_from_env() -> bool:
    """Initialize the default process group when launched by torchrun (gloo on CPU,
    nccl on CUDA). Returns whether a multi-process group is active."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() and os.environ.get(
        "ADVGAME_BACKEND", "") != "gloo" else "gloo"
    # Rank 0 may train a model alone (minutes to hours) while the others wait at a
    # barrier: allow long waits (ADVGAME_DIST_TIMEOUT_S, default 6 h).
    timeout = datetime.timedelta(seconds=float(os.environ.get("ADVGAME_DIST_TIMEOUT_S",
                                                              6 * 3600)))
    dist.init_process_group(backend=backend, timeout=timeout)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return True


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def label(desc: str) -> str:
    """A progress-bar label: ``desc`` in one process, ``"desc (rank r)"`` under torchrun.

    Example:
        >>> label("certify")
        'certify'
    """
    return f"{desc} (rank {rank()})" if world_size() > 1 else desc


def my_units(units: Sequence[T]) -> list[T]:
    """The units this rank computes: units[rank::world_size]."""
    return list(units[rank()::world_size()])


def gather_units(local: dict[Any, Any]) -> dict[Any, Any]:
    """Merge every rank's {unit key: result} dict; all ranks get the union."""
    if world_size() == 1:
        return dict(local)
    parts: list[Any] = [None] * world_size()
    dist.all_gather_object(parts, local)
    merged: dict[Any, Any] = {}
    for p in parts:
        merged.update(p)
    return merged


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


_LEFT_GROUP = False


def shutdown() -> None:
    """Wait for every rank, then tear the process group down (a rank that exits while
    another still holds a gloo connection can abort with SIGABRT)."""
    global _LEFT_GROUP
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
            _LEFT_GROUP = True
        dist.destroy_process_group()


def exit_now_if_distributed(code: int) -> None:
    """End a torchrun worker at once with ``code`` (flushing stdout and stderr first) once
    it has left a multi-process group; return otherwise.

    Measured (tests/experiments/test_distributed.py, 20 runs with the other core busy): in
    1 of 20 runs a rank that had passed the final barrier and destroyed the gloo group still aborted
    during interpreter finalization ("terminate called without an active exception",
    SIGABRT): C++ worker threads of the process group are torn down by static destructors
    while joinable. Every result is written before the barrier, so skipping finalization
    (``os._exit``) loses nothing and removes the race.
    """
    if not _LEFT_GROUP:
        return
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # pragma: no cover - a closed stream
            pass
    os._exit(code)


def all_reduce_mean_(tensors: Iterable[torch.Tensor]) -> None:
    """Average tensors in place over ranks (gradients in data-parallel training)."""
    if world_size() == 1:
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world_size()
