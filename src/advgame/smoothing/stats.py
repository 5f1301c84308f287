"""The statistics of randomized smoothing (SciPy): Clopper-Pearson lower bounds, the
binomial abstention test, the certified radius sigma Phi^-1(p_lower) and its ceiling."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import beta, binom, norm

from advgame.errors import InputError
from advgame.validate import check_nonnegative, check_positive_int, check_probability

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


def _check_sigma(sigma: object) -> float:
    s = check_nonnegative("sigma", sigma)
    if s <= 0:
        raise InputError("sigma", f"must be > 0, got {sigma}")
    return s
