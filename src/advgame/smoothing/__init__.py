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

Modules: ``stats`` (bounds, tests, radii), ``sampling`` (the noise engine and the vote),
``gaussian`` (PREDICT, CERTIFY, :class:`Smooth`), ``mixture`` (finite shift distributions).
"""

from __future__ import annotations

from advgame.smoothing.gaussian import Smooth, certify, gaussian_counts, predict
from advgame.smoothing.mixture import mixture_counts, mixture_probabilities, predict_mixture
from advgame.smoothing.sampling import ABSTAIN, NOISE_MODES
from advgame.smoothing.stats import (
    binomial_pvalue,
    certified_radius,
    lower_confidence_bound,
    radius_ceiling,
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
