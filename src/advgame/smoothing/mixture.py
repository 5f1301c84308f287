"""Smoothing with a finite distribution over additive shifts (the S1 mixed defense): exact
class probabilities, counts and the Monte-Carlo majority vote."""

from __future__ import annotations

import torch

from advgame.smoothing.sampling import (
    _DRAW_BLOCK,
    Model,
    _check_generator,
    _check_inputs,
    _check_logits,
    _check_mixture,
    _check_model,
    _evaluation,
    _vote,
)
from advgame.validate import check_positive_int, check_probability

# --------------------------------------------------------------------------- mixtures


def _shift_predictions(
    model: Model, x: torch.Tensor,
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
    model: Model, x: torch.Tensor, shifts: torch.Tensor, probs: torch.Tensor,
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
    model: Model, x: torch.Tensor, shifts: torch.Tensor, probs: torch.Tensor,
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
    model: Model, x: torch.Tensor, shifts: torch.Tensor, probs: torch.Tensor,
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
