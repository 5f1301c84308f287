"""Closed form: the population equilibrium of a linear classifier on two Gaussian
classes (an oracle for the solvers)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm as normal_dist

from advgame.defenses.additive.problem import FloatArray, _dual_norm_rows
from advgame.errors import InputError
from advgame.threat import Norm, parse_norm
from advgame.validate import check_nonnegative


@dataclass(frozen=True)
class GaussianEquilibrium:
    """Population equilibrium of the additive game for a linear classifier (closed form).

    Attributes:
        t: optimal w . v* in [-t_max, t_max].
        t_max: eps_d ||w||_{q*}, the largest w . v over the defender's ball.
        v: (d,) a shift achieving t with ||v||_q <= eps_d (t / ||w||_{q*} times the
            steepest q-direction of w).
        value: accuracy under FGM at v* (the game's value).
        value_no_defense: accuracy under FGM at v = 0.
        clean_accuracy: accuracy at v* without attack.
        clean_accuracy_no_defense: accuracy at v = 0 without attack.
    """

    t: float
    t_max: float
    v: FloatArray
    value: float
    value_no_defense: float
    clean_accuracy: float
    clean_accuracy_no_defense: float


def _gaussian_terms(
    w: FloatArray, b: float, mu_pos: FloatArray, mu_neg: FloatArray, sigma: float,
    eps_a: float, norm_a: Norm,
) -> tuple[float, float, float]:
    """(A, B, s): the class +1 / -1 margins after FGM in units of s = sigma ||w||_2."""
    s = sigma * float(np.linalg.norm(w))
    e = eps_a * float(_dual_norm_rows(w[None, :], norm_a)[0])
    return (float(w @ mu_pos) + b - e) / s, (-(float(w @ mu_neg) + b) - e) / s, s


def gaussian_accuracy(
    w: ArrayLike, b: float, mu_pos: ArrayLike, mu_neg: ArrayLike, sigma: float,
    eps_a: float, norm_a: object, t: float, prior_pos: float = 0.5,
) -> float:
    """Population accuracy of sign(w . z + b) under FGM when the defense adds w . v = t.

    Classes y = +1 / -1 with probabilities prior_pos / 1 - prior_pos and
    x | y ~ N(mu_y, sigma^2 I). The margin y (w . x + b) is Gaussian with sd
    s = sigma ||w||_2; FGM lowers it by e = eps_a ||w||_{p*}; the shift adds y t:

        acc(t) = P_+ Phi((w . mu_+ + b - e + t) / s) + P_- Phi((-(w . mu_- + b) - e - t) / s)

    Example:
        >>> round(gaussian_accuracy([1.0], 0.0, [1.0], [-1.0], 1.0, 0.0, "inf", 0.0), 4)
        0.8413
    """
    wv, mp, mn = (np.asarray(z, dtype=np.float64).ravel() for z in (w, mu_pos, mu_neg))
    big_a, big_b, s = _gaussian_terms(wv, float(b), mp, mn, float(sigma), float(eps_a),
                                      parse_norm(norm_a, "norm_a"))
    tau = float(t) / s
    return float(prior_pos * normal_dist.cdf(big_a + tau)
                 + (1.0 - prior_pos) * normal_dist.cdf(big_b - tau))


def gaussian_equilibrium(
    w: ArrayLike,
    b: float,
    mu_pos: ArrayLike,
    mu_neg: ArrayLike,
    sigma: float,
    eps_a: float,
    eps_d: float,
    norm_a: object = "inf",
    norm_d: object = "inf",
    prior_pos: float = 0.5,
) -> GaussianEquilibrium:
    """Exact population equilibrium for a linear classifier on two Gaussian classes.

    For one w shared by all points, a_i . v = y_i t with t = w . v, and t ranges over
    [-t_max, t_max], t_max = eps_d ||w||_{q*}. With tau = t / s and A, B the classes'
    attacked margins in units of s = sigma ||w||_2 (see :func:`gaussian_accuracy`), the
    payoff f(tau) = P_+ Phi(A + tau) + P_- Phi(B - tau) has f'(tau) = 0 iff
    P_+ phi(A + tau) = P_- phi(B - tau), i.e. (for A + B != 0) the single point

        tau* = (B^2 - A^2 - 2 log(P_- / P_+)) / (2 (A + B))

    (for A + B = 0, f is monotone). The maximum over the interval is therefore at an end
    point or at tau* when it lies inside: evaluated exactly, ties going to the smallest
    |t|. Attacker: FGM (its best response to any defense in the linear model).

    Args:
        w: (d,) weights; b: bias. mu_pos, mu_neg: (d,) class means; sigma > 0: the
        per-coordinate standard deviation; prior_pos in (0, 1): P(y = +1).

    Example:
        >>> g = gaussian_equilibrium([1.0, 0.0], 0.5, [1.0, 0.0], [-1.0, 0.0], 1.0,
        ...                          0.2, 1.0, "inf", "inf")
        >>> round(g.t, 4), g.value > g.value_no_defense
        (-0.5, True)
    """
    wv, mp, mn = (np.asarray(z, dtype=np.float64).ravel() for z in (w, mu_pos, mu_neg))
    if wv.size == 0 or not np.all(np.isfinite(wv)) or not np.any(wv):
        raise InputError("w", "must be a non-zero finite vector")
    if mp.shape != wv.shape:
        raise InputError("mu_pos", f"must have shape {wv.shape}, got {mp.shape}")
    if mn.shape != wv.shape:
        raise InputError("mu_neg", f"must have shape {wv.shape}, got {mn.shape}")
    sig = check_nonnegative("sigma", sigma)
    if sig == 0:
        raise InputError("sigma", "must be > 0")
    ea = check_nonnegative("eps_a", eps_a)
    ed = check_nonnegative("eps_d", eps_d)
    na = parse_norm(norm_a, "norm_a")
    nd = parse_norm(norm_d, "norm_d")
    pp = check_nonnegative("prior_pos", prior_pos, upper=1.0)
    if not 0 < pp < 1:
        raise InputError("prior_pos", f"must be strictly between 0 and 1, got {prior_pos}")

    big_a, big_b, s = _gaussian_terms(wv, float(b), mp, mn, sig, ea, na)
    t_max = ed * float(_dual_norm_rows(wv[None, :], nd)[0])

    def payoff(tau: float) -> float:
        return float(pp * normal_dist.cdf(big_a + tau) + (1 - pp) * normal_dist.cdf(big_b - tau))

    taus = [0.0, -t_max / s, t_max / s]
    if big_a + big_b != 0:
        crit = (big_b**2 - big_a**2 - 2.0 * math.log((1 - pp) / pp)) / (2.0 * (big_a + big_b))
        if abs(crit) <= t_max / s:
            taus.append(crit)
    vals = [payoff(tau) for tau in taus]
    best = max(vals)
    tau_best = min((tau for tau, val in zip(taus, vals, strict=True) if val >= best - 1e-15),
                   key=abs)
    t = tau_best * s
    direction = np.sign(wv) if nd == "inf" else wv / np.linalg.norm(wv)
    v = (t / float(_dual_norm_rows(wv[None, :], nd)[0])) * direction

    def clean(tt: float) -> float:
        return gaussian_accuracy(wv, b, mp, mn, sig, 0.0, na, tt, pp)

    return GaussianEquilibrium(
        t=t, t_max=t_max, v=v, value=payoff(tau_best), value_no_defense=payoff(0.0),
        clean_accuracy=clean(t), clean_accuracy_no_defense=clean(0.0),
    )
