"""The noise engine of randomized smoothing: argument checks, the noise stream (shared or
independent, drawn in blocks independent of ``batch_size``), the (input, sample) grid cut
into forward batches, class counts and the majority vote with abstention."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from advgame.errors import InputError
from advgame.models.training import eval_mode
from advgame.progress import ProgressBar, progress_bar
from advgame.smoothing.stats import _check_sigma, binomial_pvalue
from advgame.validate import check_positive_int, check_probability, check_tensor

Model = nn.Module | Callable[[torch.Tensor], torch.Tensor]

ABSTAIN = -1
"""Class returned when the smoothed classifier abstains."""

NOISE_MODES = ("shared", "independent")
"""How noise is drawn for the inputs of one call (the ``noise`` argument): ``shared``
(default) -- every input reads the same stream of i.i.d. samples; ``independent`` -- each
input its own stream."""

# Standard normal values per generated noise block, and the most rows per block. The
# block size depends only on the device type and the shape of one input, never on
# batch_size. On a CPU a block (1 MiB in float32) stays in the L2 cache while every input
# of the call reads it; accelerators get larger blocks (fewer kernel launches).
_NOISE_BLOCK_ELEMENTS = {"cpu": 1 << 18}
_NOISE_BLOCK_ELEMENTS_ACCELERATOR = 1 << 22
_NOISE_BLOCK_MAX_ROWS = 8192
# Independently seeded parts per noise block on the CPU (filled by parallel threads).
_NOISE_PARTS = 8
# Categorical draws per block in predict_mixture (independent of batch_size and n).
_DRAW_BLOCK = 1 << 16


# --------------------------------------------------------------------------- validation


def _check_model(model: object) -> None:
    if not callable(model):
        raise InputError(
            "model", f"must be a torch.nn.Module or callable, got {type(model).__name__}"
        )


def _check_inputs(x: object) -> torch.Tensor:
    t = check_tensor("x", x, min_ndim=2)
    if not t.is_floating_point():
        raise InputError("x", f"must be a floating tensor, got dtype {t.dtype}")
    return t


def _check_generator(generator: object, device: torch.device) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise InputError("generator", f"must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != device.type:
        raise InputError(
            "generator", f"must live on the inputs' device ({device}), got {generator.device}"
        )
    return generator


def _check_logits(logits: object, rows: int, num_classes: int | None) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise InputError(
            "model", f"must return a tensor of logits (N, K), got {type(logits).__name__}"
        )
    if logits.ndim != 2 or logits.shape[0] != rows or logits.shape[1] < 1:
        raise InputError(
            "model",
            f"must return logits of shape (N, K) = ({rows}, K) for {rows} inputs, got shape "
            f"{tuple(logits.shape)}",
        )
    if num_classes is not None and logits.shape[1] != num_classes:
        raise InputError(
            "model", f"returned {logits.shape[1]} classes, expected num_classes={num_classes}"
        )
    return logits


def _check_mixture(
    x: torch.Tensor, shifts: object, probs: object
) -> tuple[torch.Tensor, torch.Tensor]:
    v = check_tensor("shifts", shifts, min_ndim=1)
    if tuple(v.shape[1:]) != tuple(x.shape[1:]):
        raise InputError(
            "shifts",
            f"must have shape (k, {', '.join(map(str, x.shape[1:]))}) (one shift per row, each "
            f"shaped like one input), got {tuple(v.shape)}",
        )
    if v.device != x.device:
        raise InputError("shifts", f"must be on the inputs' device {x.device}, got {v.device}")
    p = check_tensor("probs", probs, ndim=1)
    if not p.is_floating_point():
        raise InputError("probs", f"must be a floating tensor, got dtype {p.dtype}")
    if p.shape[0] != v.shape[0]:
        raise InputError(
            "probs", f"must have {v.shape[0]} entries (one per shift), got {p.shape[0]}"
        )
    if p.device != x.device:
        raise InputError("probs", f"must be on the inputs' device {x.device}, got {p.device}")
    if bool((p < 0).any()):
        raise InputError("probs", "must be >= 0")
    total = float(p.sum())
    if abs(total - 1.0) > 1e-5:
        raise InputError("probs", f"must sum to 1, got {total:.6g}")
    return v, p


def _check_noise(noise: object) -> str:
    if noise not in NOISE_MODES:
        raise InputError("noise", f"must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    return str(noise)


def _check_common(
    model: object, x: object, sigma: object, alpha: object, batch_size: object, generator: object
) -> tuple[torch.Tensor, float, float, int, torch.Generator | None]:
    _check_model(model)
    t = _check_inputs(x)
    s = _check_sigma(sigma)
    a = check_probability("alpha", alpha)
    b = check_positive_int("batch_size", batch_size)
    g = _check_generator(generator, t.device)
    return t, s, a, b, g


# --------------------------------------------------------------------------- sampling


@contextmanager
def _evaluation(model: Model) -> Iterator[None]:
    """Eval mode (:func:`advgame.models.training.eval_mode`: every submodule's mode restored
    afterwards) and no_grad for the duration."""
    with eval_mode(model) if isinstance(model, nn.Module) else nullcontext(), torch.no_grad():
        yield


class _NoiseStream:
    """Standard normal rows in a canonical order, generated block by block.

    :meth:`blocks` cuts a stream of ``total_rows`` rows into blocks whose boundaries depend
    only on the shape of one row and on ``total_rows`` -- never on how the consumer batches
    its forward passes -- so every consumer sees the same values for the same generator.
    One storage is reused for every block: a block is valid until the next one is
    requested.

    On the CPU, torch's sampler is serial (one Mersenne Twister), so each block is cut
    into ``_NOISE_PARTS`` row ranges, each filled from its own ``torch.Generator`` seeded
    from the stream's generator; the parts are filled in parallel threads when torch uses
    several threads. The values depend on the seed only, not on the number of threads. On
    an accelerator the whole block is filled from the generator directly.
    """

    def __init__(
        self, row_shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> None:
        numel = max(1, math.prod(row_shape))
        elements = _NOISE_BLOCK_ELEMENTS.get(device.type, _NOISE_BLOCK_ELEMENTS_ACCELERATOR)
        self.max_rows = max(1, min(_NOISE_BLOCK_MAX_ROWS, elements // numel))
        self._row_shape = row_shape
        self._dtype = dtype
        self._device = device
        self._storage: torch.Tensor | None = None  # reused: no fresh pages per block
        workers = min(_NOISE_PARTS, torch.get_num_threads())
        self._pool = (
            ThreadPoolExecutor(workers, thread_name_prefix="advgame-noise")
            if device.type == "cpu" and workers > 1
            else None
        )

    def close(self) -> None:
        """Stop the worker threads (if any)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _fill(self, block: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if block.device.type != "cpu":
            return block.normal_(generator=generator)
        parts = block.chunk(min(_NOISE_PARTS, block.shape[0]))
        seeds = torch.randint(0, 2**62, (len(parts),), generator=generator).tolist()

        def fill(part: torch.Tensor, seed: int) -> None:
            part.normal_(generator=torch.Generator().manual_seed(seed))

        if self._pool is None or len(parts) == 1:
            for part, seed in zip(parts, seeds, strict=True):
                fill(part, seed)
        else:
            list(self._pool.map(fill, parts, seeds))
        return block

    def blocks(
        self, total_rows: int, generator: torch.Generator | None
    ) -> Iterator[torch.Tensor]:
        """Yield the stream's blocks in order (views of one reused storage)."""
        remaining = total_rows
        while remaining > 0:
            size = min(self.max_rows, remaining)
            if self._storage is None or self._storage.shape[0] < size:
                self._storage = torch.empty(
                    (size, *self._row_shape), dtype=self._dtype, device=self._device
                )
            # The consumer is done with the previous block when it asks for the next one,
            # so the storage is refilled in place (in stream order on an accelerator).
            yield self._fill(self._storage[:size], generator)
            remaining -= size


@dataclass(frozen=True)
class _Piece:
    """Rows ``x[i] + sigma * block[a:b]`` for the inputs ``i0 <= i < i1`` (input-major).

    ``start`` is the stream index of ``block[0]``: it tells each row's sample phase.
    """

    block: torch.Tensor
    start: int
    i0: int
    i1: int
    a: int
    b: int

    @property
    def size(self) -> int:
        return (self.i1 - self.i0) * (self.b - self.a)

    def split(self, cap: int) -> tuple[_Piece, list[_Piece]]:
        """The first ``<= cap`` rows (``cap >= 1``) and the rest, in order."""
        if self.size <= cap:
            return self, []
        width = self.b - self.a
        if self.i1 - self.i0 > 1 and cap >= width:  # whole inputs
            k = cap // width
            return replace(self, i1=self.i0 + k), [replace(self, i0=self.i0 + k)]
        head = replace(self, i1=self.i0 + 1, b=self.a + cap)
        rest = [replace(self, i1=self.i0 + 1, a=self.a + cap)]
        if self.i1 - self.i0 > 1:
            rest.append(replace(self, i0=self.i0 + 1))
        return head, rest


def _pieces(
    stream: _NoiseStream,
    n_inputs: int,
    total_rows: int,
    noise: str,
    generator: torch.Generator | None,
    device: torch.device,
) -> Iterator[_Piece]:
    """The (input, noise row) grid of the requested noise mode, as pieces in stream order.

    ``shared``: one stream of ``total_rows`` rows; each block serves every input in turn.
    ``independent``: input ``i`` has its own stream, from a seed drawn from ``generator``.
    """
    if noise == "shared":
        start = 0
        for block in stream.blocks(total_rows, generator):
            yield _Piece(block, start, 0, n_inputs, 0, block.shape[0])
            start += block.shape[0]
        return
    seeds = torch.randint(0, 2**62, (n_inputs,), generator=generator, device=device).tolist()
    for i, seed in enumerate(seeds):
        own = torch.Generator(device=device).manual_seed(seed)
        start = 0
        for block in stream.blocks(total_rows, own):
            yield _Piece(block, start, i, i + 1, 0, block.shape[0])
            start += block.shape[0]


def _samples_bar(enabled: object, desc: str, x: torch.Tensor, per_input: int) -> ProgressBar:
    """The progress reporter of a call: ``N * per_input`` noisy samples (or nothing)."""
    if not isinstance(enabled, bool):
        raise InputError("progress", f"must be True or False, got {enabled!r}")
    return progress_bar(x.shape[0] * per_input, desc, unit="samples", enabled=enabled)


def _phase_of(sample: int, ends: list[int]) -> int:
    """Phase of stream row ``sample``: the number of phase ends at or before it."""
    return bisect.bisect_right(ends, sample)


def _noise_counts(
    model: Model, x: torch.Tensor, sigma: float,
    nums: tuple[int, ...],
    batch_size: int,
    generator: torch.Generator | None,
    num_classes: int | None,
    noise: str,
    bar: ProgressBar | None = None,
) -> list[torch.Tensor]:
    """Class counts of ``argmax model(x_i + sigma * eps)`` for independent sample phases.

    Phase ``p`` draws ``nums[p]`` fresh noise samples per input and returns its own counts
    (N, K). The ``sum(nums)`` samples of an input are the rows of a noise stream (phase
    after phase), so the phases are independent. With ``noise="shared"`` every input
    reads the same stream (sample ``t`` of input ``i`` is ``x_i + sigma * eps_t``): the
    samples of each input are i.i.d. ``N(0, sigma^2 I)`` as CERTIFY requires, one noise
    draw serves all inputs, and an input's counts do not depend on the other inputs of
    the call. With ``"independent"`` each input has its own stream.

    The grid of (input, sample) rows is evaluated block of noise by block, input-major
    within a block, and cut into forward batches of exactly ``batch_size`` rows (the last
    one may be shorter) that span inputs, blocks and phases. ``bar`` (if given) counts the
    rows evaluated, ``N * sum(nums)`` in all.
    """
    n_inputs = x.shape[0]
    total = sum(nums)
    bounds = torch.tensor(np.cumsum(nums)[:-1].tolist(), dtype=torch.long, device=x.device)
    stream = _NoiseStream(tuple(x.shape[1:]), x.dtype, x.device)
    try:
        pieces = _pieces(stream, n_inputs, total, noise, generator, x.device)
        counts = _grid_counts(model, x, sigma, pieces, bounds, len(nums),
                              min(batch_size, n_inputs * total), num_classes, bar)
    finally:
        stream.close()
    return list(counts.split(n_inputs))


def _grid_counts(
    model: Model, x: torch.Tensor, sigma: float,
    pieces: Iterator[_Piece],
    bounds: torch.Tensor,
    phases: int,
    batch_size: int,
    num_classes: int | None,
    bar: ProgressBar | None = None,
) -> torch.Tensor:
    """The batch loop of :func:`_noise_counts`: counts (phases * N, K).

    Each piece is written into the batch buffer as soon as it is taken (one fused
    ``x + sigma * eps`` pass), before the next noise block may overwrite its noise.
    """
    n_inputs = x.shape[0]
    row_shape = tuple(x.shape[1:])
    ends = bounds.tolist()  # stream index where each phase but the last ends
    buf = torch.empty((batch_size, *row_shape), dtype=x.dtype, device=x.device)
    flat: torch.Tensor | None = None  # counts (phases * N * K,), allocated once K is known
    k = num_classes
    pending: list[_Piece] = []  # leftovers of a split piece, next one last
    owners: list[torch.Tensor] = []
    size = 0

    def flush() -> None:
        nonlocal flat, k, size, owners
        logits = _check_logits(model(buf[:size]), size, k)
        k = logits.shape[1]
        if flat is None:
            flat = torch.zeros(phases * n_inputs * k, dtype=torch.long, device=x.device)
        owner = owners[0] if len(owners) == 1 else torch.cat(owners)
        keys = owner * k + logits.argmax(dim=1)
        flat.index_add_(0, keys, torch.ones_like(keys))
        if bar is not None:
            bar.update(size)
        owners, size = [], 0

    while True:
        piece = pending.pop() if pending else next(pieces, None)
        if piece is None:
            break
        head, rest = piece.split(batch_size - size)
        pending.extend(reversed(rest))
        rows = buf[size : size + head.size]
        noise = head.block[head.a : head.b]
        if head.i1 - head.i0 == 1:  # x_i + sigma * eps in one pass (same kernel, same bits)
            torch.add(x[head.i0], noise, alpha=sigma, out=rows)
        else:
            torch.add(x[head.i0 : head.i1].unsqueeze(1), noise.unsqueeze(0), alpha=sigma,
                      out=rows.view(head.i1 - head.i0, head.b - head.a, *row_shape))
        inputs = torch.arange(head.i0, head.i1, device=x.device)
        first, last = _phase_of(head.start + head.a, ends), _phase_of(head.start + head.b - 1, ends)
        if first == last:  # one phase: owner = phase * N + input, each input b - a times
            owners.append((inputs + first * n_inputs).repeat_interleave(head.b - head.a))
        else:
            sample = torch.arange(head.start + head.a, head.start + head.b, device=x.device)
            phase = torch.bucketize(sample, bounds, right=True)
            owners.append((phase.unsqueeze(0) * n_inputs + inputs.unsqueeze(1)).reshape(-1))
        size += head.size
        if size == batch_size:
            flush()
    if size:
        flush()
    if flat is None or k is None:  # pragma: no cover - at least one row is validated
        raise RuntimeError("no samples drawn")
    return flat.view(phases * n_inputs, k)


def _vote(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """PREDICT's decision from class counts (N, K): top class, or -1 if the test fails."""
    top = counts.argmax(dim=1)
    n_a = counts.gather(1, top[:, None]).squeeze(1)
    if counts.shape[1] > 1:
        rest = counts.scatter(1, top[:, None], -1)
        n_b = rest.max(dim=1).values.clamp_min(0)
    else:
        n_b = torch.zeros_like(n_a)
    pvalue = binomial_pvalue(n_a.cpu().numpy(), n_b.cpu().numpy())
    abstain = torch.as_tensor(pvalue > alpha, device=counts.device)
    return torch.where(abstain, torch.full_like(top, ABSTAIN), top)
