"""Input checks shared by every public function.

Each check raises :class:`advgame.errors.InputError` naming the argument, so that bad input
fails early with a message a user can act on (and the CLI can print as one line).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from advgame.errors import InputError


def check_tensor(
    name: str,
    value: object,
    *,
    ndim: int | Sequence[int] | None = None,
    min_ndim: int | None = None,
    finite: bool = True,
    nonempty: bool = True,
) -> torch.Tensor:
    """Check that ``value`` is a tensor with the given rank, finite and non-empty.

    Args:
        name: argument name used in the error message.
        value: the object to check.
        ndim: allowed rank(s), or None for any.
        min_ndim: minimal rank, or None.
        finite: reject NaN/inf entries (floating tensors only).
        nonempty: reject tensors with zero elements or zero rows.

    Returns:
        ``value`` itself (typed as a tensor).
    """
    if not isinstance(value, torch.Tensor):
        raise InputError(name, f"must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            raise InputError(
                name, f"must have {' or '.join(map(str, allowed))} dimensions, got shape "
                f"{tuple(value.shape)}"
            )
    if min_ndim is not None and value.ndim < min_ndim:
        raise InputError(
            name, f"must have at least {min_ndim} dimensions, got shape {tuple(value.shape)}"
        )
    if nonempty and (value.numel() == 0 or (value.ndim > 0 and value.shape[0] == 0)):
        raise InputError(name, f"must not be empty, got shape {tuple(value.shape)}")
    # one reduction instead of an elementwise mask: any NaN/inf makes the sum non-finite
    # (a false alarm needs finite entries summing past the float range: absurd inputs)
    if finite and value.is_floating_point() and not bool(torch.isfinite(value.sum())):
        raise InputError(name, "contains NaN or inf values")
    return value


def check_images(name: str, x: object) -> torch.Tensor:
    """Check a batch of inputs in the box [0, 1]: floating, finite, shape (N, ...).

    One ``aminmax`` pass checks both: NaN and inf propagate into the min or max.
    """
    t = check_tensor(name, x, min_ndim=2, finite=False)
    if not t.is_floating_point():
        raise InputError(name, f"must be a floating tensor, got dtype {t.dtype}")
    lo_t, hi_t = torch.aminmax(t)
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(name, "contains NaN or inf values")
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InputError(name, f"values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return t


def check_labels(
    name: str, y: object, n: int, num_classes: int | None = None
) -> torch.Tensor:
    """Check integer class labels of shape (n,) in [0, num_classes)."""
    t = check_tensor(name, y, ndim=1)
    if t.is_floating_point() or t.dtype == torch.bool:
        raise InputError(name, f"must be an integer tensor of class indices, got {t.dtype}")
    if t.shape[0] != n:
        raise InputError(name, f"must have {n} entries (one per input), got {t.shape[0]}")
    lo, hi = int(t.min()), int(t.max())
    if lo < 0 or (num_classes is not None and hi >= num_classes):
        bound = f"[0, {num_classes - 1}]" if num_classes is not None else ">= 0"
        raise InputError(name, f"labels must be in {bound}, got range [{lo}, {hi}]")
    return t


def check_signed_labels(name: str, y: object, n: int) -> torch.Tensor:
    """Check binary labels of shape (n,) with values in {-1, +1}."""
    t = check_tensor(name, y, ndim=1)
    if t.shape[0] != n:
        raise InputError(name, f"must have {n} entries (one per input), got {t.shape[0]}")
    bad = ~((t == 1) | (t == -1))
    if bool(bad.any()):
        vals = sorted({float(v) for v in t[bad].unique()[:5].tolist()})
        raise InputError(name, f"must contain only -1 and +1 (two classes), found {vals}")
    return t


def check_nonnegative(name: str, value: object, *, upper: float | None = None) -> float:
    """Check a finite real number >= 0 (and <= upper when given); return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(name, f"must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise InputError(name, f"must be a finite number >= 0, got {value}")
    if upper is not None and v > upper:
        raise InputError(name, f"must be <= {upper}, got {value}")
    return v


def check_positive(name: str, value: object) -> float:
    """Check a finite real number > 0; return it as float.

    Example:
        >>> check_positive("lr", 0.01)
        0.01
    """
    v = check_nonnegative(name, value)
    if v == 0:
        raise InputError(name, f"must be > 0, got {value}")
    return v


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Check an integer >= minimum; return it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(name, f"must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise InputError(name, f"must be >= {minimum}, got {value}")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``; return it.

    Example:
        >>> check_choice("norm", "inf", ("inf", "2"))
        'inf'
    """
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        said = ", ".join(options[:-1]) + (" or " if len(options) > 1 else "") + options[-1]
        raise InputError(name, f"must be {said}, got {value!r}")
    return value


def check_probability(name: str, value: object, *, open_interval: bool = True) -> float:
    """Check a number in (0, 1) (or [0, 1] when ``open_interval`` is False)."""
    v = check_nonnegative(name, value, upper=1.0)
    if open_interval and not 0.0 < v < 1.0:
        raise InputError(name, f"must be strictly between 0 and 1, got {value}")
    return v
