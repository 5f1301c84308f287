"""The cat-and-mouse of S2: FGSM attacks against the previous model and retraining
against them, the error matrix E[k][j], and a data-driven oscillation test."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from advgame.attacks.gradient import fgm
from advgame.errors import InputError
from advgame.models.training import TrainConfig, predict, train
from advgame.validate import check_images, check_labels, check_nonnegative, check_positive_int

__all__ = [
    "CatMouseErrors",
    "Oscillation",
    "cat_and_mouse",
    "cat_and_mouse_errors",
    "cat_and_mouse_round",
    "detect_oscillation",
    "error_rate",
    "fgsm_examples",
]


# --------------------------------------------------------------------------- cat-and-mouse


def fgsm_examples(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, batch_size: int = 1000
) -> torch.Tensor:
    """FGSM examples clip(x + eps sign grad_x l(h(x), y), 0, 1) against a fixed model, batched.

    Shape: x (N, ...) in [0, 1], y (N,) -> (N, ...), detached, same device and dtype.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(5, 1, 2, 2); y = torch.randint(0, 2, (5,))
        >>> bool(((fgsm_examples(model, x, y, 0.1) - x).abs() <= 0.1 + 1e-6).all())
        True
    """
    check_positive_int("batch_size", batch_size)
    parts = [fgm(model, x[i:i + batch_size], y[i:i + batch_size], eps, "inf")
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts) if parts else x.clone()


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x misclassified by ``model`` (1 - accuracy)."""
    return float((predict(model, x) != y).float().mean())


def cat_and_mouse_round(
    previous: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, config: TrainConfig,
    warm_start: bool = True, with_clean: bool = False,
    make_model: Callable[[], nn.Module] | None = None, generator: torch.Generator,
) -> nn.Module:
    """One round of the cat-and-mouse: u_k trained on FGSM examples against u_(k-1).

    FGSM-k = clip(x + eps sign grad_x l(h(x; u_(k-1)), y), 0, 1) is computed once against
    the fixed ``previous`` model (the attacker of round k); u_k starts as a copy of
    u_(k-1) (``warm_start``) or as ``make_model()`` and is trained on FGSM-k (plus the
    clean (x, y) when ``with_clean``) with :func:`advgame.models.train`.

    Args:
        previous: u_(k-1), left unchanged.
        x: (N, ...) training inputs in [0, 1]. y: (N,) labels.
        eps: L-inf budget. config: training settings for u_k.
        warm_start: start from u_(k-1) instead of a fresh model.
        with_clean: train on clean and FGSM-k examples together.
        make_model: builds a fresh model (needed when not ``warm_start``).
        generator: CPU generator shuffling the batches.

    Returns:
        u_k, in eval mode.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> u1 = cat_and_mouse_round(model, x, y, eps=0.1, config=TrainConfig(epochs=1),
        ...                          generator=torch.Generator())
        >>> u1 is model
        False
    """
    eps = check_nonnegative("eps", eps)
    x_adv = fgsm_examples(previous, x, y, eps)
    if warm_start:
        model = copy.deepcopy(previous)
    else:
        if make_model is None:
            raise InputError("make_model", "is required when warm_start is False")
        model = make_model().to(x.device)
    xs, ys = (torch.cat([x, x_adv]), torch.cat([y, y])) if with_clean else (x_adv, y)
    train(model, xs, ys, config, generator=generator)
    return model


def cat_and_mouse(
    u0: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, rounds: int,
    config: TrainConfig, warm_start: bool = True, with_clean: bool = False,
    make_model: Callable[[], nn.Module] | None = None, generator: torch.Generator,
) -> Iterator[nn.Module]:
    """Yield u_1, ..., u_K of the cat-and-mouse started from the clean model u_0.

    See :func:`cat_and_mouse_round`; u_0 is not modified.

    Example:
        >>> u0 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> us = list(cat_and_mouse(u0, x, y, eps=0.1, rounds=2, config=TrainConfig(epochs=1),
        ...                         generator=torch.Generator()))
        >>> len(us)
        2
    """
    check_positive_int("rounds", rounds, minimum=0)
    prev = u0
    for _ in range(rounds):
        prev = cat_and_mouse_round(prev, x, y, eps=eps, config=config, warm_start=warm_start,
                                   with_clean=with_clean, make_model=make_model,
                                   generator=generator)
        yield prev


@dataclass(frozen=True)
class CatMouseErrors:
    """Test errors of the cat-and-mouse models u_0..u_K.

    Attributes:
        error: (K+1) x (K+1) list, ``error[k][j-1]`` = error of u_k on FGSM-j, j = 1..K+1,
            where FGSM-j is computed against u_(j-1). Column K+1 is FGSM against u_K.
        clean: K+1 clean errors.
        fgsm_curr: K+1 errors of u_k on FGSM computed against u_k itself
            (= ``error[k][k]``).
    """

    error: list[list[float]]
    clean: list[float]
    fgsm_curr: list[float]


def cat_and_mouse_errors(
    models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, eps: float
) -> CatMouseErrors:
    """The error matrix E[k][j] of the cat-and-mouse, clean errors and FGSM-curr.

    Args:
        models: u_0, ..., u_K.
        x: (N, ...) test inputs in [0, 1]. y: (N,) labels.
        eps: the FGSM budget.

    Example:
        >>> us = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        ...       for _ in range(3)]
        >>> e = cat_and_mouse_errors(us, torch.rand(6, 1, 2, 2), torch.zeros(6, dtype=int), 0.1)
        >>> len(e.error), len(e.error[0]), e.fgsm_curr[1] == e.error[1][1]
        (3, 3, True)
    """
    if not models:
        raise InputError("models", "give at least u_0")
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    attacks = [fgsm_examples(m, x, y, eps) for m in models]  # FGSM-1 .. FGSM-(K+1)
    err = [[error_rate(m, xa, y) for xa in attacks] for m in models]
    clean = [error_rate(m, x, y) for m in models]
    return CatMouseErrors(error=err, clean=clean,
                          fgsm_curr=[err[k][k] for k in range(len(models))])


@dataclass(frozen=True)
class Oscillation:
    """Whether a series (e.g. FGSM-curr error over rounds) oscillates, decided from data.

    Attributes:
        oscillates: at least two sign changes among the significant successive differences
            and at least half of the possible ones.
        sign_changes: sign changes between consecutive significant differences.
        significant: number of differences |s_(k+1) - s_k| > tol.
        amplitude: mean |difference| over the significant ones (0 if none).
        period: estimated period in rounds, 2 x the mean spacing of the sign changes
            (None with fewer than two changes; 2.0 is the up-down-up-down pattern).
        changes_at: indices k at which the direction turns.
    """

    oscillates: bool
    sign_changes: int
    significant: int
    amplitude: float
    period: float | None
    changes_at: list[int] = field(default_factory=list)


def detect_oscillation(series: Sequence[float], tol: float = 0.0) -> Oscillation:
    """Sign changes of successive differences d_k = s_(k+1) - s_k with |d_k| > tol.

    A difference within ``tol`` (e.g. two binomial standard errors of an error rate) is
    treated as noise and skipped. The series oscillates when its direction turns at least
    twice and at least at half of the opportunities.

    Example:
        >>> detect_oscillation([0.9, 0.2, 0.8, 0.3, 0.7]).period
        2.0
        >>> detect_oscillation([0.9, 0.5, 0.3, 0.2], tol=0.01).oscillates
        False
    """
    tol = check_nonnegative("tol", tol)
    s = [float(v) for v in series]
    if any(not math.isfinite(v) for v in s):
        raise InputError("series", "must be finite numbers")
    diffs = [(k, s[k + 1] - s[k]) for k in range(len(s) - 1)]
    sig = [(k, d) for k, d in diffs if abs(d) > tol]
    changes = [sig[i + 1][0] for i in range(len(sig) - 1)
               if (sig[i][1] > 0) != (sig[i + 1][1] > 0)]
    n_changes = len(changes)
    amplitude = sum(abs(d) for _, d in sig) / len(sig) if sig else 0.0
    period = None
    if n_changes >= 2:
        spacing = (changes[-1] - changes[0]) / (n_changes - 1)
        period = 2.0 * spacing
    oscillates = n_changes >= 2 and n_changes >= (len(sig) - 1) / 2
    return Oscillation(oscillates=oscillates, sign_changes=n_changes, significant=len(sig),
                       amplitude=amplitude, period=period, changes_at=changes)
