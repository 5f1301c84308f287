"""Randomized smoothing: Gaussian (Cohen et al. 2019) and finite shift distributions.

A *smoothed classifier* votes over randomly perturbed copies of its input. For a base
classifier ``f(x) = argmax_c model(x)_c`` and a noise distribution ``mu``,

    G(x) = argmax_c  P_{v ~ mu}[ f(x + v) = c ].

Gaussian smoothing (``mu = N(0, sigma^2 I)``) comes with a certificate (Cohen, Rosenfeld &
Kolter, *Certified Adversarial Robustness via Randomized Smoothing*, ICML 2019, Thm. 1):
if the top class ``c_A`` has probability ``p_A >= p_lower > 1/2``, then ``G`` is constant
on the L2 ball of radius

    R = sigma * Phi^-1(p_lower)

around ``x`` (``Phi`` the standard normal CDF). This module implements their PREDICT and
CERTIFY procedures:

- :func:`predict`: draw ``n`` noisy copies, take the two most frequent classes with counts
  ``n_A >= n_B`` and return ``c_A`` unless the two-sided binomial test of
  ``n_A ~ Bin(n_A + n_B, 1/2)`` has p-value ``> alpha`` (then abstain, class ``-1``). The
  probability of returning a class other than ``G(x)`` is at most ``alpha``.
- :func:`certify`: guess ``c_A`` from ``n0`` selection samples, count it in ``n`` fresh
  estimation samples, take the one-sided ``(1 - alpha)`` Clopper-Pearson lower bound
  ``p_lower = Beta^-1(alpha; n_A, n - n_A + 1)``; abstain if ``p_lower < 1/2``, else
  return ``(c_A, sigma * Phi^-1(p_lower))``. With probability ``>= 1 - alpha`` a returned
  radius is a valid certificate.

The S1 "mixed defense" (``SPEC.md`` section 1) smooths with a *finite* distribution over
additive shifts ``v_1..v_k`` with probabilities ``p_1..p_k``: :func:`mixture_probabilities`
computes ``P[f(x + v) = c] = sum_j p_j 1[f(x + v_j) = c]`` exactly, and
:func:`predict_mixture` is the Monte-Carlo majority vote with the same abstention test.

Implementation notes:

- **Shared noise** (``noise="shared"``, the default): the inputs of one call read the
  same stream of noise samples -- sample ``t`` of every input is ``x_i + sigma * eps_t``.
  For each input the samples are still i.i.d. ``N(0, sigma^2 I)`` and the selection and
  estimation samples independent, which is all that PREDICT's and CERTIFY's per-input
  guarantees use (each returned class or radius is wrong with probability ``<= alpha``,
  as with fresh noise). What changes is the joint law across inputs: the per-input errors
  are correlated (common random numbers), so a count of failures over a test set is no
  longer binomial. One noise draw then serves all ``N`` inputs: on a CPU, drawing the
  normals costs as much as a small network's forward pass (``benchmarks/smoothing.py``),
  and an input's result does not depend on the other inputs of the call.
  ``noise="independent"`` gives each input its own stream (seeded from ``generator``),
  like running Cohen et al.'s code one input at a time.
- Everything is batched over inputs *and* noise: the grid of (input, sample) rows is
  evaluated noise block by noise block, input-major within a block, and cut into forward
  batches of exactly ``batch_size`` rows that span inputs, blocks and phases. Memory is
  ``O(batch_size)`` rows plus one noise block, independent of ``n``; class counts stay on
  the input's device; only the ``N`` final counts go to SciPy for the statistics.
- Noise is drawn from the explicit ``generator`` (on ``x``'s device) in blocks whose size
  depends only on the shape of one input and the number of samples, so that the noise --
  and hence every result -- does not depend on ``batch_size`` (up to the base model's own
  floating-point differences between batch sizes). ``generator=None`` uses torch's
  default generator (not reproducible unless the caller seeds it); library code never
  seeds it.
- Inputs are **not clipped** to ``[0, 1]`` after adding noise or shifts, as in Cohen et
  al. (and ART): the base classifier is evaluated on ``x + v`` in ``R^d``. Clipping would
  be a different base classifier ``f(clip(.))`` -- still certifiable, but a different
  smoothed classifier; wrap the model if that is what you want.
- The model runs in eval mode under ``torch.no_grad``; the train/eval mode of every
  submodule is restored afterwards, also on error.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta, binom, norm
from torch import nn

from advgame.errors import InputError
from advgame.progress import ProgressBar, progress_bar
from advgame.validate import (
    check_nonnegative,
    check_positive_int,
    check_probability,
    check_tensor,
)

__all__ = [
    "ABSTAIN",
    "NOISE_MODES",
    "Smooth",
    "binomial_pvalue",
    "certified_radius",
    "certify",
    "gaussian_counts",
    "lower_confidence_bound",
    "mixture_counts",
    "mixture_probabilities",
    "predict",
    "predict_mixture",
    "radius_ceiling",
]

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


# --------------------------------------------------------------------------- statistics


def lower_confidence_bound(successes: ArrayLike, trials: int, alpha: float) -> NDArray[np.float64]:
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower bound on a binomial proportion.

    ``p_lower = Beta^-1(alpha; k, n - k + 1)`` for ``k`` successes out of ``n`` trials
    (``0`` when ``k = 0``); ``P[p_lower <= p] >= 1 - alpha`` for ``k ~ Bin(n, p)``. This is
    ``proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]`` of statsmodels, as
    used by Cohen et al.

    Shape:
        successes: any shape, integers in ``[0, trials]``; returns the same shape.

    Example:
        >>> float(lower_confidence_bound(100, 100, 0.001)) == 0.001 ** (1 / 100)
        True
    """
    k = np.asarray(successes, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, k, trials - k + 1)
    return np.where(k > 0, bound, 0.0).astype(np.float64)


def binomial_pvalue(n_a: ArrayLike, n_b: ArrayLike) -> NDArray[np.float64]:
    """Two-sided p-value of ``H0: n_a ~ Bin(n_a + n_b, 1/2)`` (the PREDICT abstention test).

    For ``p = 1/2`` the binomial is symmetric and the exact two-sided test of
    ``scipy.stats.binomtest`` reduces to ``min(1, 2 * P[X <= min(n_a, n_b)])``; this
    vectorized form avoids one SciPy call per input.

    Shape:
        n_a, n_b: broadcastable integer arrays; returns their broadcast shape.

    Example:
        >>> float(binomial_pvalue(5, 5)), round(float(binomial_pvalue(10, 0)), 6)
        (1.0, 0.001953)
    """
    a = np.asarray(n_a, dtype=np.float64)
    b = np.asarray(n_b, dtype=np.float64)
    p = 2.0 * binom.cdf(np.minimum(a, b), a + b, 0.5)
    return np.minimum(1.0, p).astype(np.float64)


def certified_radius(p_lower: ArrayLike, sigma: float) -> NDArray[np.float64]:
    """Certified L2 radius ``sigma * Phi^-1(p_lower)``, and ``0`` where ``p_lower < 1/2``.

    Cohen et al. 2019, Theorem 1 (with ``p_B = 1 - p_A``).

    Example:
        >>> [round(float(r), 4) for r in certified_radius([0.4, 0.5, 0.975], 0.5)]
        [0.0, 0.0, 0.98]
    """
    p = np.asarray(p_lower, dtype=np.float64)
    radius = sigma * norm.ppf(np.clip(p, 0.5, 1.0))
    return np.where(p >= 0.5, radius, 0.0).astype(np.float64)


def radius_ceiling(sigma: float, n: int, alpha: float) -> float:
    """The largest radius CERTIFY can return with ``n`` samples: ``sigma * Phi^-1(alpha^(1/n))``.

    When all ``n`` samples vote for the top class, the one-sided Clopper-Pearson lower
    bound on p_A is ``alpha^(1/n)``; no input can be certified further than this, however
    robust the smoothed classifier is. The ceiling grows like ``sigma * sqrt(2 ln(n/ln(1/alpha)))``.

    Example:
        >>> [round(radius_ceiling(0.25, n, 0.001), 4) for n in (100, 100_000)]
        [0.3751, 0.9529]
    """
    check_positive_int("n", n)
    a = check_probability("alpha", alpha)
    return float(_check_sigma(sigma) * norm.ppf(a ** (1.0 / n)))


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


def _check_sigma(sigma: object) -> float:
    s = check_nonnegative("sigma", sigma)
    if s <= 0:
        raise InputError("sigma", f"must be > 0, got {sigma}")
    return s


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
    """Eval mode and no_grad for the duration; restore every submodule's mode afterwards."""
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training


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
    model: Model,
    x: torch.Tensor,
    sigma: float,
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
    model: Model,
    x: torch.Tensor,
    sigma: float,
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


# --------------------------------------------------------------------------- Gaussian


def gaussian_counts(
    model: Model,
    x: torch.Tensor,
    sigma: float,
    n: int,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *,
    num_classes: int | None = None,
    noise: str = "shared",
    progress: bool = False,
) -> torch.Tensor:
    """Class counts of the base classifier under isotropic Gaussian noise.

    ``counts[i, c] = #{ t <= n : argmax_k model(x_i + sigma * eps_t)_k = c }`` with
    ``eps_t ~ N(0, I)`` i.i.d. (Cohen et al.'s ``_sample_noise``), no clipping.

    Args:
        model: base classifier returning logits (B, K) for inputs (B, ...).
        x: inputs (N, ...), floating.
        sigma: noise standard deviation, > 0.
        n: noise samples per input, >= 1.
        batch_size: rows per forward pass (memory is O(batch_size), independent of n).
        generator: source of the noise, on ``x``'s device (None: torch's default).
        num_classes: if given, the model must return exactly this many logits.
        noise: ``"shared"`` (one noise stream read by every input; per input the samples
            are i.i.d.) or ``"independent"`` (a stream per input); see the module notes.
        progress: report the noisy samples evaluated, ``N * n`` in all, on stderr
            (:func:`advgame.progress.progress_bar`: a tqdm bar on a terminal, a plain line
            every 10% in a log file). Off by default.

    Returns:
        counts (N, K), ``torch.long``, on ``x``'s device; each row sums to ``n``.

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> g = torch.Generator().manual_seed(0)
        >>> gaussian_counts(lin, torch.zeros(3, 2), 0.5, 100, generator=g).sum(dim=1)
        tensor([100, 100, 100])
    """
    x_t, s, _, b, g = _check_common(model, x, sigma, 0.5, batch_size, generator)
    num = check_positive_int("n", n)
    nz = _check_noise(noise)
    with _evaluation(model), _samples_bar(progress, "counts", x_t, num) as bar:
        return _noise_counts(model, x_t, s, (num,), b, g, num_classes, nz, bar)[0]


def predict(
    model: Model,
    x: torch.Tensor,
    sigma: float,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *,
    num_classes: int | None = None,
    noise: str = "shared",
    progress: bool = False,
) -> torch.Tensor:
    """Monte-Carlo prediction of the Gaussian-smoothed classifier (Cohen et al.'s PREDICT).

    Counts classes over ``n`` noisy copies ``x_i + N(0, sigma^2 I)``; with the two largest
    counts ``n_A >= n_B`` it returns the top class ``c_A`` if the two-sided binomial test
    ``n_A ~ Bin(n_A + n_B, 1/2)`` rejects at level ``alpha`` (p-value ``<= alpha``), and
    ``-1`` (abstain) otherwise. A returned class differs from the smoothed classifier's
    ``G(x)`` with probability at most ``alpha``. Inputs are not clipped.

    Args:
        model: base classifier returning logits (B, K) for inputs (B, ...).
        x: inputs (N, C, H, W) or (N, d), floating, finite.
        sigma: noise standard deviation, > 0.
        n: noise samples per input, >= 1.
        alpha: test level in (0, 1).
        batch_size: rows per forward pass; noise and inputs share batches.
        generator: source of the noise, on ``x``'s device (None: torch's default).
        num_classes: if given, the model must return exactly this many logits.
        noise: ``"shared"`` (one noise stream read by every input; per input the samples
            are i.i.d.) or ``"independent"`` (a stream per input); see the module notes.
        progress: report the noisy samples evaluated, ``N * n`` in all, on stderr
            (:func:`advgame.progress.progress_bar`: a tqdm bar on a terminal, a plain line
            every 10% in a log file). Off by default.

    Returns:
        classes (N,), ``torch.long`` on ``x``'s device, ``-1`` where it abstains.

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
        ...     _ = lin.bias.zero_()
        >>> x = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 0.0]])
        >>> predict(lin, x, sigma=1.0, n=1000, generator=torch.Generator().manual_seed(0))
        tensor([ 1,  0, -1])
    """
    x_t, s, a, b, g = _check_common(model, x, sigma, alpha, batch_size, generator)
    num = check_positive_int("n", n)
    nz = _check_noise(noise)
    with _evaluation(model), _samples_bar(progress, "predict", x_t, num) as bar:
        (counts,) = _noise_counts(model, x_t, s, (num,), b, g, num_classes, nz, bar)
    return _vote(counts, a)


def certify(
    model: Model,
    x: torch.Tensor,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *,
    num_classes: int | None = None,
    noise: str = "shared",
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Certify the Gaussian-smoothed classifier (Cohen et al.'s CERTIFY), batched.

    For each input: ``c_A = argmax counts0`` over ``n0`` selection samples; ``n_A`` = count
    of ``c_A`` over ``n`` fresh estimation samples; ``p_lower = Beta^-1(alpha; n_A,
    n - n_A + 1)`` (one-sided Clopper-Pearson). If ``p_lower < 1/2`` abstain (class ``-1``,
    radius 0), else return ``c_A`` and radius ``sigma * Phi^-1(p_lower)``. With probability
    at least ``1 - alpha`` (per input) a returned class is ``G(x)`` and ``G`` is constant on
    the L2 ball of that radius. Inputs are not clipped.

    Args:
        model: base classifier returning logits (B, K) for inputs (B, ...).
        x: inputs (N, C, H, W) or (N, d), floating, finite.
        sigma: noise standard deviation, > 0.
        n0: selection samples per input, >= 1.
        n: estimation samples per input, >= 1.
        alpha: failure probability in (0, 1).
        batch_size: rows per forward pass (memory independent of ``n``).
        generator: source of the noise, on ``x``'s device (None: torch's default).
        num_classes: if given, the model must return exactly this many logits.
        noise: ``"shared"`` (one noise stream read by every input; per input the samples
            are i.i.d.) or ``"independent"`` (a stream per input); see the module notes.
        progress: report the noisy samples evaluated, ``N * (n0 + n)`` in all, on stderr
            (:func:`advgame.progress.progress_bar`: a tqdm bar on a terminal, a plain line
            every 10% in a log file). Off by default.

    Returns:
        (classes, radii): classes (N,) ``torch.long`` with ``-1`` = abstain; radii (N,)
        floating (``x``'s dtype, at least float32) with 0 where abstaining; both on ``x``'s
        device.

    Example:
        >>> lin = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
        ...     _ = lin.bias.zero_()
        >>> x = torch.tensor([[0.5, 0.0], [0.0, 0.0]])  # distances 0.5 and 0 to the boundary
        >>> cls, rad = certify(lin, x, 0.5, 100, 10_000, 0.001,
        ...                    generator=torch.Generator().manual_seed(0))
        >>> cls.tolist(), [round(r, 1) for r in rad.tolist()]
        ([1, -1], [0.5, 0.0])
    """
    x_t, s, a, b, g = _check_common(model, x, sigma, alpha, batch_size, generator)
    num0 = check_positive_int("n0", n0)
    num = check_positive_int("n", n)
    nz = _check_noise(noise)
    with _evaluation(model), _samples_bar(progress, "certify", x_t, num0 + num) as bar:
        counts0, counts = _noise_counts(model, x_t, s, (num0, num), b, g, num_classes, nz,
                                        bar)
    guess = counts0.argmax(dim=1)
    n_a = counts.gather(1, guess[:, None]).squeeze(1)
    p_lower = lower_confidence_bound(n_a.cpu().numpy(), num, a)
    abstain_np = p_lower < 0.5
    out_dtype = x_t.dtype if x_t.dtype in (torch.float32, torch.float64) else torch.float32
    radii = torch.as_tensor(certified_radius(p_lower, s), dtype=out_dtype, device=x_t.device)
    abstain = torch.as_tensor(abstain_np, device=x_t.device)
    classes = torch.where(abstain, torch.full_like(guess, ABSTAIN), guess)
    return classes, radii


# --------------------------------------------------------------------------- mixtures


def _shift_predictions(
    model: Model,
    x: torch.Tensor,
    shifts: torch.Tensor,
    owner: torch.Tensor,
    which: torch.Tensor,
    batch_size: int,
    num_classes: int | None,
) -> tuple[torch.Tensor, int]:
    """``argmax model(x[owner[r]] + shifts[which[r]])`` for every pair r, batched."""
    preds = torch.empty(owner.shape[0], dtype=torch.long, device=x.device)
    k = num_classes
    for start in range(0, owner.shape[0], batch_size):
        i = owner[start : start + batch_size]
        j = which[start : start + batch_size]
        rows = x.index_select(0, i).add_(shifts.index_select(0, j).to(x.dtype))
        logits = _check_logits(model(rows), rows.shape[0], k)
        k = logits.shape[1]
        preds[start : start + rows.shape[0]] = logits.argmax(dim=1)
    if k is None:  # pragma: no cover - at least one pair exists
        raise RuntimeError("no rows evaluated")
    return preds, k


def _shift_draw_counts(
    probs: torch.Tensor, n_inputs: int, n: int, generator: torch.Generator | None
) -> torch.Tensor:
    """(N, k) multinomial counts: for each input, ``n`` i.i.d. draws of a shift index."""
    k = probs.shape[0]
    counts = torch.zeros((n_inputs, k), dtype=torch.long, device=probs.device)
    weights = probs.to(torch.float64) if probs.device.type == "cpu" else probs
    total = n_inputs * n
    for start in range(0, total, _DRAW_BLOCK):
        b = min(_DRAW_BLOCK, total - start)
        draws = torch.multinomial(weights, b, replacement=True, generator=generator)
        owner = torch.arange(start, start + b, device=probs.device) // n
        key = (owner - int(owner[0])) * k + draws
        add = torch.bincount(key, minlength=(int(owner[-1]) - int(owner[0]) + 1) * k)
        counts[int(owner[0]) : int(owner[-1]) + 1] += add.view(-1, k)
    return counts


def mixture_probabilities(
    model: Model,
    x: torch.Tensor,
    shifts: torch.Tensor,
    probs: torch.Tensor,
    batch_size: int = 1000,
    *,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Exact class probabilities of a model smoothed by a finite distribution of shifts.

    ``P[i, c] = sum_j p_j 1[argmax model(x_i + v_j) = c]`` -- the S1 mixed defense
    ``mu = sum_j p_j delta_{v_j}`` evaluated by one forward pass per (input, shift) pair.
    No clipping of ``x + v``.

    Shape:
        x: (N, ...); shifts: (k, ...) shaped like one input; probs: (k,), >= 0, sum 1.
        Returns (N, K) in ``probs``' dtype; each row sums to 1.

    Example:
        >>> lin = nn.Linear(1, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[0.0], [1.0]]))
        ...     _ = lin.bias.zero_()
        >>> v = torch.tensor([[-1.0], [1.0], [2.0]])
        >>> p = torch.tensor([0.5, 0.25, 0.25])
        >>> mixture_probabilities(lin, torch.tensor([[0.5]]), v, p)
        tensor([[0.5000, 0.5000]])
    """
    _check_model(model)
    x_t = _check_inputs(x)
    v, p = _check_mixture(x_t, shifts, probs)
    b = check_positive_int("batch_size", batch_size)
    n_inputs, k = x_t.shape[0], v.shape[0]
    owner = torch.arange(n_inputs, device=x_t.device).repeat_interleave(k)
    which = torch.arange(k, device=x_t.device).repeat(n_inputs)
    with _evaluation(model):
        preds, n_classes = _shift_predictions(model, x_t, v, owner, which, b, num_classes)
    out = torch.zeros((n_inputs, n_classes), dtype=p.dtype, device=x_t.device)
    out.index_put_((owner, preds), p[which], accumulate=True)
    return out


def mixture_counts(
    model: Model,
    x: torch.Tensor,
    shifts: torch.Tensor,
    probs: torch.Tensor,
    n: int,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Class counts over ``n`` i.i.d. shifts ``v ~ p`` per input (the Monte-Carlo vote).

    ``counts[i, c] = #{ t <= n : argmax model(x_i + v_{J_t}) = c }``, ``J_t ~ p`` i.i.d.
    Equivalent in distribution to ``n`` forward passes per input, but computed as
    ``sum_j M_ij 1[f(x_i + v_j) = c]`` with ``M_i ~ Multinomial(n, p)``: only the pairs
    ``(i, j)`` drawn at least once are evaluated (at most ``min(n, k)`` per input). Draws
    come in fixed blocks from ``generator`` (on ``x``'s device), so memory is independent
    of ``n`` and results do not depend on ``batch_size``.

    Shape:
        x: (N, ...); shifts: (k, ...); probs: (k,). Returns (N, K) ``torch.long``.

    Example:
        >>> lin = nn.Linear(1, 2)
        >>> v, p = torch.tensor([[-1.0], [1.0]]), torch.tensor([0.5, 0.5])
        >>> g = torch.Generator().manual_seed(0)
        >>> mixture_counts(lin, torch.zeros(4, 1), v, p, 50, generator=g).sum(dim=1)
        tensor([50, 50, 50, 50])
    """
    _check_model(model)
    x_t = _check_inputs(x)
    v, p = _check_mixture(x_t, shifts, probs)
    num = check_positive_int("n", n)
    b = check_positive_int("batch_size", batch_size)
    g = _check_generator(generator, x_t.device)
    draws = _shift_draw_counts(p, x_t.shape[0], num, g)  # (N, k)
    owner, which = draws.nonzero(as_tuple=True)  # input-major order
    with _evaluation(model):
        preds, n_classes = _shift_predictions(model, x_t, v, owner, which, b, num_classes)
    counts = torch.zeros((x_t.shape[0], n_classes), dtype=torch.long, device=x_t.device)
    counts.index_put_((owner, preds), draws[owner, which], accumulate=True)
    return counts


def predict_mixture(
    model: Model,
    x: torch.Tensor,
    shifts: torch.Tensor,
    probs: torch.Tensor,
    n: int = 10_000,
    alpha: float = 0.001,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *,
    num_classes: int | None = None,
) -> torch.Tensor:
    """Majority vote of ``model(x + v)``, ``v ~ sum_j p_j delta_{v_j}``, with abstention.

    The S1 mixed defense as deployed: :func:`mixture_counts` over ``n`` draws, then the
    PREDICT decision of Cohen et al. (top class unless the two-sided binomial test of the
    two largest counts has p-value ``> alpha``, then ``-1``). For the exact smoothed
    probabilities use :func:`mixture_probabilities`. No clipping of ``x + v``.

    Shape:
        x: (N, ...); shifts: (k, ...); probs: (k,). Returns classes (N,) ``torch.long``.

    Example:
        >>> lin = nn.Linear(1, 2)
        >>> with torch.no_grad():
        ...     _ = lin.weight.copy_(torch.tensor([[0.0], [1.0]]))
        ...     _ = lin.bias.zero_()
        >>> v, p = torch.tensor([[-1.0], [1.0]]), torch.tensor([0.1, 0.9])
        >>> g = torch.Generator().manual_seed(0)
        >>> predict_mixture(lin, torch.tensor([[0.5], [5.0]]), v, p, 1000, generator=g)
        tensor([1, 1])
    """
    a = check_probability("alpha", alpha)
    counts = mixture_counts(
        model, x, shifts, probs, n, batch_size, generator, num_classes=num_classes
    )
    return _vote(counts, a)


# --------------------------------------------------------------------------- object


@dataclass(frozen=True, eq=False)
class Smooth:
    """A Gaussian-smoothed classifier: thin object over :func:`predict` and :func:`certify`.

    Args:
        model: base classifier returning logits (B, K).
        sigma: noise standard deviation, > 0.
        num_classes: if given, the model must return exactly this many logits.
        noise: ``"shared"`` or ``"independent"`` noise across the inputs of one call.

    Example:
        >>> smooth = Smooth(nn.Linear(4, 3), sigma=0.25, num_classes=3)
        >>> g = torch.Generator().manual_seed(0)
        >>> cls, rad = smooth.certify(torch.zeros(2, 4), n0=10, n=100, generator=g)
        >>> cls.shape, rad.shape
        (torch.Size([2]), torch.Size([2]))
    """

    model: Model
    sigma: float
    num_classes: int | None = None
    noise: str = "shared"

    def __post_init__(self) -> None:
        _check_model(self.model)
        _check_sigma(self.sigma)
        _check_noise(self.noise)
        if self.num_classes is not None:
            check_positive_int("num_classes", self.num_classes)

    def predict(
        self,
        x: torch.Tensor,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: int = 1000,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Classes (N,) of the smoothed classifier, -1 = abstain (see :func:`predict`)."""
        return predict(
            self.model, x, self.sigma, n, alpha, batch_size, generator,
            num_classes=self.num_classes, noise=self.noise,
        )

    def certify(
        self,
        x: torch.Tensor,
        n0: int = 100,
        n: int = 100_000,
        alpha: float = 0.001,
        batch_size: int = 1000,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(classes, radii), each (N,), -1 / 0 where abstaining (see :func:`certify`)."""
        return certify(
            self.model, x, self.sigma, n0, n, alpha, batch_size, generator,
            num_classes=self.num_classes, noise=self.noise,
        )
