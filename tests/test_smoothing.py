"""Tests for advgame.smoothing against closed forms on linear base classifiers.

For the binary linear classifier with logits ``[0, w.x + b]`` and Gaussian noise
``N(0, sigma^2 I)``, the margin ``w.(x + eps) + b`` is ``N(w.x + b, sigma^2 ||w||^2)``, so the
top-class probability is ``p_A = Phi(D / sigma)`` with ``D = |w.x + b| / ||w||_2`` the
distance to the decision boundary, and Cohen's radius ``sigma * Phi^-1(p_A)`` equals ``D``
exactly. The certified radius uses the Clopper-Pearson bound of ``n_A ~ Bin(n, p_A)``, so
its distribution is known exactly and the tests compare against it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest, norm
from torch import nn

from advgame.errors import InputError
from advgame.smoothing import (
    ABSTAIN,
    Smooth,
    binomial_pvalue,
    certified_radius,
    certify,
    gaussian_counts,
    lower_confidence_bound,
    mixture_counts,
    mixture_probabilities,
    predict,
    predict_mixture,
)

DTYPE = torch.float64


def linear_binary(w: torch.Tensor, b: float) -> nn.Linear:
    """nn.Linear(d, 2) with logits [0, w.x + b] (class 1 iff w.x + b > 0)."""
    lin = nn.Linear(w.numel(), 2, dtype=DTYPE)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[1] = w
        lin.bias.zero_()
        lin.bias[1] = b
    return lin


def points_at_distances(
    w: torch.Tensor, b: float, dist: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Random points whose signed distance to {w.x + b = 0} is ``dist`` (N,)."""
    x = torch.randn(dist.shape[0], w.numel(), dtype=DTYPE, generator=gen)
    unit = w / w.norm()
    current = (x @ w + b) / w.norm()
    return x + (dist - current)[:, None] * unit


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def radius_of_count(n_a: np.ndarray, n: int, alpha: float, sigma: float) -> np.ndarray:
    return certified_radius(lower_confidence_bound(n_a, n, alpha), sigma)


@pytest.fixture
def setup() -> tuple[torch.Tensor, float]:
    w = torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5], dtype=DTYPE)
    return w, 0.3


# ----------------------------------------------------------------------- statistics


def test_lower_confidence_bound_is_exact_clopper_pearson() -> None:
    n, alpha = 200, 0.01
    k = np.arange(1, n + 1)
    p = lower_confidence_bound(k, n, alpha)
    # P[Bin(n, p_lower) >= k] = alpha defines the one-sided lower bound.
    np.testing.assert_allclose(binom.sf(k - 1, n, p), alpha, rtol=1e-6)
    assert lower_confidence_bound(0, n, alpha) == 0.0
    assert lower_confidence_bound(n, n, alpha) == pytest.approx(alpha ** (1 / n))
    assert np.all(np.diff(p) > 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400))
def test_binomial_pvalue_matches_scipy_binomtest(n_a: int, n_b: int) -> None:
    if n_a + n_b == 0:
        return
    expected = binomtest(n_a, n_a + n_b, 0.5).pvalue
    assert float(binomial_pvalue(n_a, n_b)) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_certified_radius_closed_form() -> None:
    r = certified_radius([0.3, 0.5, norm.cdf(2.0)], 0.25)
    np.testing.assert_allclose(r, [0.0, 0.0, 0.5])


# ----------------------------------------------------------------------- certify


def test_certify_linear_radius_matches_exact_distribution(setup) -> None:
    w, b = setup
    sigma, n0, n, alpha = 0.5, 100, 20_000, 0.001
    signed = torch.linspace(0.3, 1.2, 16, dtype=DTYPE) * torch.tensor([1.0, -1.0] * 8)
    x = points_at_distances(w, b, signed, gen(1))
    model = linear_binary(w, b)
    # Independent noise per point: the mean of the z-scores below needs independent points.
    cls, rad = certify(model, x, sigma, n0, n, alpha, batch_size=4096, generator=gen(2),
                       noise="independent")

    dist = signed.abs().numpy()
    base = (x @ w + b > 0).long()
    assert torch.equal(cls, base)  # the certified class is the base class
    assert rad.dtype == DTYPE and rad.shape == (16,)
    r = rad.numpy()
    assert np.all(r <= dist)  # a valid certificate (fails with prob <= alpha per point)

    # Exact distribution of the radius: R(n_A) with n_A ~ Bin(n, Phi(D / sigma)).
    p_a = norm.cdf(dist / sigma)
    k_lo = binom.ppf(1e-6, n, p_a)
    k_hi = binom.ppf(1 - 1e-6, n, p_a)
    assert np.all(r >= radius_of_count(k_lo, n, alpha, sigma))
    assert np.all(r <= radius_of_count(k_hi, n, alpha, sigma))
    ks = np.arange(n + 1)
    radii_k = radius_of_count(ks, n, alpha, sigma)
    pmf = binom.pmf(ks[None, :], n, p_a[:, None])
    mean = pmf @ radii_k
    sd = np.sqrt(pmf @ radii_k**2 - mean**2)
    z = (r - mean) / sd
    assert abs(z.mean()) < 4 / np.sqrt(len(z))
    # Close to the true distance for large n: the shortfall is ~3 sd of the estimate of
    # p_A times d(sigma Phi^-1)/dp, under 0.06 here for every point.
    assert np.all(dist - mean < 0.06) and np.all(dist - r < 0.07)


def test_certify_abstains_on_and_near_the_boundary(setup) -> None:
    w, b = setup
    sigma = 0.5
    signed = torch.tensor([0.0, 0.0, 1e-3, -1e-3, 0.0, 2e-3], dtype=DTYPE)
    x = points_at_distances(w, b, signed, gen(3))
    cls, rad = certify(linear_binary(w, b), x, sigma, 100, 10_000, 0.001, generator=gen(4))
    assert torch.all(cls == ABSTAIN)
    assert torch.all(rad == 0)


def test_certify_saturates_far_from_the_boundary(setup) -> None:
    w, b = setup
    sigma, n, alpha = 0.25, 5_000, 0.001
    x = points_at_distances(w, b, torch.tensor([5.0, -7.0], dtype=DTYPE), gen(5))
    cls, rad = certify(linear_binary(w, b), x, sigma, 50, n, alpha, generator=gen(6))
    assert cls.tolist() == [1, 0]
    expected = sigma * norm.ppf(alpha ** (1 / n))  # all n samples agree
    np.testing.assert_allclose(rad.numpy(), expected, rtol=1e-12)


# ----------------------------------------------------------------------- predict


def test_predict_agrees_with_base_far_and_abstains_on_boundary(setup) -> None:
    w, b = setup
    sigma = 0.5
    model = linear_binary(w, b)
    far = points_at_distances(w, b, torch.tensor([1.0, -1.0, 2.0, -0.6], dtype=DTYPE), gen(7))
    pred = predict(model, far, sigma, n=2_000, alpha=0.001, generator=gen(8))
    assert pred.tolist() == [1, 0, 1, 0]
    # On the boundary p_A = 1/2: the test rejects (no abstention) with prob. <= alpha.
    on = points_at_distances(w, b, torch.zeros(400, dtype=DTYPE), gen(9))
    # Independent noise: with shared noise these 400 points would see the same margins
    # w.eps_t, so all or none of them would abstain.
    pred = predict(model, on, sigma, n=1_000, alpha=0.01, generator=gen(10),
                   noise="independent")
    rate = float((pred != ABSTAIN).double().mean())
    assert rate <= 0.01 + 4 * (0.01 * 0.99 / 400) ** 0.5


def test_predict_is_the_vote_of_gaussian_counts(setup) -> None:
    w, b = setup
    x = points_at_distances(w, b, torch.linspace(-0.2, 0.2, 9, dtype=DTYPE), gen(9))
    model = linear_binary(w, b)
    counts = gaussian_counts(model, x, 0.5, 300, generator=gen(10))
    pred = predict(model, x, 0.5, 300, 0.05, generator=gen(10))
    assert torch.all(counts.sum(dim=1) == 300)
    top = counts.argmax(dim=1)
    pv = binomial_pvalue(counts.max(dim=1).values.numpy(), counts.min(dim=1).values.numpy())
    expected = torch.where(torch.as_tensor(pv > 0.05), torch.full_like(top, -1), top)
    assert torch.equal(pred, expected)


def test_gaussian_counts_estimate_phi(setup) -> None:
    w, b = setup
    sigma, n = 0.4, 4_000
    signed = torch.linspace(-0.5, 0.5, 11, dtype=DTYPE)
    x = points_at_distances(w, b, signed, gen(11))
    counts = gaussian_counts(linear_binary(w, b), x, sigma, n, generator=gen(12))
    p1 = norm.cdf(signed.numpy() / sigma)  # P[class 1]
    z = (counts[:, 1].numpy() - n * p1) / np.sqrt(n * p1 * (1 - p1))
    assert np.all(np.abs(z) < 5)


# ----------------------------------------------------------------------- randomness, batching


def test_same_seed_same_result_different_seed_differs(setup) -> None:
    w, b = setup
    x = points_at_distances(w, b, torch.tensor([0.3, -0.5, 0.8], dtype=DTYPE), gen(13))
    model = linear_binary(w, b)
    c1, r1 = certify(model, x, 0.5, 50, 2_000, 0.001, generator=gen(0))
    c2, r2 = certify(model, x, 0.5, 50, 2_000, 0.001, generator=gen(0))
    c3, r3 = certify(model, x, 0.5, 50, 2_000, 0.001, generator=gen(1))
    assert torch.equal(c1, c2) and torch.equal(r1, r2)
    assert not torch.equal(r1, r3)


@pytest.mark.parametrize("noise", ["shared", "independent"])
@pytest.mark.parametrize("batch_size", [1, 7, 130, 333, 10**6])
def test_results_do_not_depend_on_batch_size(setup, batch_size: int, noise: str) -> None:
    w, b = setup
    signed = torch.tensor([-1.0, 1.0, 0.05, 0.4], dtype=DTYPE)
    x = points_at_distances(w, b, signed, gen(14))
    # batch_size 130 makes the first batch start and end on input 0 (120 selection rows,
    # then 10 estimation rows) while holding the other inputs in between.
    model = linear_binary(w, b)
    ref = gaussian_counts(model, x, 0.5, 700, batch_size=64, generator=gen(15), noise=noise)
    got = gaussian_counts(model, x, 0.5, 700, batch_size=batch_size, generator=gen(15),
                          noise=noise)
    assert torch.equal(ref, got)
    c_ref, r_ref = certify(model, x, 0.5, 30, 500, 0.01, batch_size=64, generator=gen(16),
                           noise=noise)
    c, r = certify(model, x, 0.5, 30, 500, 0.01, batch_size=batch_size, generator=gen(16),
                   noise=noise)
    assert torch.equal(c, c_ref) and torch.equal(r, r_ref)


def test_shared_noise_result_of_an_input_does_not_depend_on_the_others(setup) -> None:
    w, b = setup
    signed = torch.tensor([0.2, -0.1, 0.0, 0.6, -0.3], dtype=DTYPE)
    x = points_at_distances(w, b, signed, gen(40))
    model = linear_binary(w, b)
    # Noise blocks hold 8,192 rows of 5 values: n = 9,000 makes a stream of two blocks,
    # and batches of 777 rows cut blocks and inputs at arbitrary places.
    counts = gaussian_counts(model, x, 0.5, 9_000, batch_size=777, generator=gen(41))
    cls, rad = certify(model, x, 0.5, 40, 9_000, 0.01, batch_size=777, generator=gen(42))
    for i in range(5):
        alone = gaussian_counts(model, x[i : i + 1], 0.5, 9_000, generator=gen(41))
        assert torch.equal(counts[i : i + 1], alone)
        c1, r1 = certify(model, x[i : i + 1], 0.5, 40, 9_000, 0.01, generator=gen(42))
        assert int(c1) == int(cls[i]) and float(r1) == float(rad[i])


def test_shared_noise_is_common_to_the_inputs_and_independent_noise_is_not(setup) -> None:
    w, b = setup
    x = points_at_distances(w, b, torch.zeros(1, dtype=DTYPE), gen(43)).repeat(4, 1)
    model = linear_binary(w, b)
    shared = gaussian_counts(model, x, 0.5, 2_000, batch_size=300, generator=gen(44))
    assert all(torch.equal(shared[0], shared[i]) for i in range(1, 4))
    indep = gaussian_counts(model, x, 0.5, 2_000, batch_size=300, generator=gen(44),
                            noise="independent")
    assert len({int(c) for c in indep[:, 1]}) > 1  # equal counts with prob. ~ 1e-4 per pair
    # On the boundary each count is Bin(2000, 1/2) in both modes.
    for counts in (shared, indep):
        z = (counts[:, 1].double() - 1_000) / (2_000 * 0.25) ** 0.5
        assert torch.all(z.abs() < 5)


def test_results_do_not_depend_on_thread_count(setup) -> None:
    w, b = setup
    x = points_at_distances(w, b, torch.tensor([0.0, 0.1, -0.1], dtype=DTYPE), gen(31))
    model = linear_binary(w, b)
    threads = torch.get_num_threads()
    try:
        results = []
        for t in (1, 2, 3):  # noise parts are filled by up to t threads
            torch.set_num_threads(t)
            results.append(gaussian_counts(model, x, 0.5, 6_000, 500, gen(32)))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])


class Recorder(nn.Module):
    """Wraps a model and records the batch sizes it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(x.shape[0])
        return self.inner(x)


def test_forward_batches_are_bounded_and_span_inputs(setup) -> None:
    w, b = setup
    x = points_at_distances(w, b, torch.zeros(10, dtype=DTYPE), gen(17))
    rec = Recorder(linear_binary(w, b))
    certify(rec, x, 0.5, 7, 23, 0.01, batch_size=50, generator=gen(18))
    # Selection and estimation rows of all inputs share one stream of full batches.
    assert sum(rec.rows) == 10 * (7 + 23)
    assert rec.rows == [50] * 6


def test_image_inputs_multiclass_and_mode_restored() -> None:
    torch.manual_seed(0)  # test-only: initial weights of a throwaway model
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )
    model.train()
    model[2].eval()  # a mixed state that must come back exactly
    modes = [m.training for m in model.modules()]
    x = torch.rand(4, 1, 6, 6, generator=gen(19))
    cls, rad = certify(model, x, 0.1, 20, 200, 0.01, batch_size=64, generator=gen(20))
    assert [m.training for m in model.modules()] == modes
    assert cls.shape == (4,) and rad.shape == (4,) and rad.dtype == torch.float32
    assert torch.all((cls >= -1) & (cls < 3))
    assert torch.all((rad >= 0) & ((cls == -1) <= (rad == 0)))
    counts = gaussian_counts(model, x, 0.1, 50, generator=gen(21), num_classes=3)
    assert counts.shape == (4, 3) and torch.all(counts.sum(1) == 50)
    # The model runs without grad and in eval mode (dropout off => deterministic logits).
    c1 = gaussian_counts(model, x, 1e-6, 5, generator=gen(22))
    base = model.eval()(x).argmax(1)
    assert torch.all(c1[torch.arange(4), base] == 5)


def test_mode_restored_on_error() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(dim=1)  # (N,) instead of (N, K)

    model = Broken().train()
    with pytest.raises(InputError, match="model"):
        predict(model, torch.zeros(2, 3), 0.5, 10, generator=gen(0))
    assert model.training


def test_smooth_object_matches_functions(setup) -> None:
    w, b = setup
    x = points_at_distances(w, b, torch.tensor([0.4, -0.4], dtype=DTYPE), gen(23))
    model = linear_binary(w, b)
    smooth = Smooth(model, 0.5, num_classes=2)
    c, r = smooth.certify(x, 20, 500, 0.01, 100, gen(24))
    c2, r2 = certify(model, x, 0.5, 20, 500, 0.01, 100, gen(24))
    assert torch.equal(c, c2) and torch.equal(r, r2)
    assert torch.equal(smooth.predict(x, 500, 0.01, 100, gen(25)),
                       predict(model, x, 0.5, 500, 0.01, 100, gen(25)))
    indep = Smooth(model, 0.5, noise="independent")
    c3, r3 = indep.certify(x, 20, 500, 0.01, 100, gen(24))
    c4, r4 = certify(model, x, 0.5, 20, 500, 0.01, 100, gen(24), noise="independent")
    assert torch.equal(c3, c4) and torch.equal(r3, r4)
    with pytest.raises(InputError, match="^noise:"):
        Smooth(model, 0.5, noise="per-batch")
    with pytest.raises(InputError, match="num_classes"):
        Smooth(model, 0.5, num_classes=3).predict(x, 10, generator=gen(0))
    with pytest.raises(InputError, match="sigma"):
        Smooth(model, 0.0)


# ----------------------------------------------------------------------- mixtures


@pytest.fixture
def mixture(setup):
    w, b = setup
    g = gen(26)
    shifts = 0.8 * torch.randn(6, 5, dtype=DTYPE, generator=g)
    probs = torch.tensor([0.3, 0.1, 0.2, 0.05, 0.25, 0.1], dtype=DTYPE)
    x = points_at_distances(w, b, torch.linspace(-1.0, 1.0, 12, dtype=DTYPE), g)
    return linear_binary(w, b), x, shifts, probs


def test_mixture_probabilities_brute_force(mixture) -> None:
    model, x, shifts, probs = mixture
    got = mixture_probabilities(model, x, shifts, probs, batch_size=5)
    expected = torch.zeros(12, 2, dtype=DTYPE)
    with torch.no_grad():
        for i in range(12):
            for j in range(6):
                c = int(model(x[i : i + 1] + shifts[j : j + 1]).argmax())
                expected[i, c] += probs[j]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.sum(1), torch.ones(12, dtype=DTYPE))


def test_mixture_counts_match_exact_probabilities(mixture) -> None:
    model, x, shifts, probs = mixture
    n = 20_000
    exact = mixture_probabilities(model, x, shifts, probs).numpy()
    counts = mixture_counts(model, x, shifts, probs, n, generator=gen(27))
    assert torch.all(counts.sum(1) == n)
    freq = counts.numpy() / n
    sd = np.sqrt(np.clip(exact * (1 - exact), 0, None) / n)
    assert np.all(np.abs(freq - exact) <= 5 * sd + 1e-9)
    # Independent of batch_size (the draws come in fixed blocks).
    assert torch.equal(counts, mixture_counts(model, x, shifts, probs, n, 3, gen(27)))


def test_predict_mixture_follows_exact_probabilities(mixture) -> None:
    model, x, shifts, probs = mixture
    exact = mixture_probabilities(model, x, shifts, probs)
    pred = predict_mixture(model, x, shifts, probs, 5_000, 0.001, generator=gen(28))
    clear = (exact.max(1).values - 0.5).abs() > 0.1  # p_A >= 0.6: a vote of 5,000 decides
    assert torch.equal(pred[clear], exact.argmax(1)[clear])
    # A 50/50 mixture is a tie: abstain.
    tie = predict_mixture(model, x[:3], shifts[:1].repeat(2, 1) * torch.tensor([[1.0], [-1.0]]),
                          torch.tensor([0.5, 0.5], dtype=DTYPE), 2_000, 0.001,
                          generator=gen(29))
    half = mixture_probabilities(model, x[:3], shifts[:1].repeat(2, 1) * torch.tensor(
        [[1.0], [-1.0]]), torch.tensor([0.5, 0.5], dtype=DTYPE))
    assert torch.all((tie == ABSTAIN) == (half.max(1).values == 0.5))


def test_point_mass_mixture_is_the_shifted_base_classifier(mixture) -> None:
    model, x, shifts, _ = mixture
    p = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0], dtype=DTYPE)
    pred = predict_mixture(model, x, shifts, p, 100, generator=gen(30))
    with torch.no_grad():
        assert torch.equal(pred, model(x + shifts[1]).argmax(1))


# ----------------------------------------------------------------------- bad input


def test_bad_inputs_raise_input_error(setup) -> None:
    w, b = setup
    model = linear_binary(w, b)
    x = torch.zeros(2, 5, dtype=DTYPE)
    ok = dict(sigma=0.5, n0=10, n=10, alpha=0.01, batch_size=8, generator=gen(0))
    cases = [
        ("sigma", dict(sigma=0.0)),
        ("sigma", dict(sigma=-1.0)),
        ("sigma", dict(sigma=float("nan"))),
        ("n0", dict(n0=0)),
        ("n", dict(n=0)),
        ("n", dict(n=2.5)),
        ("alpha", dict(alpha=0.0)),
        ("alpha", dict(alpha=1.0)),
        ("batch_size", dict(batch_size=0)),
        ("generator", dict(generator=0)),
        ("noise", dict(noise="fresh")),
        ("noise", dict(noise=None)),
    ]
    for name, bad in cases:
        with pytest.raises(InputError, match=f"^{name}:"):
            certify(model, x, **{**ok, **bad})
    for bad_x in [x.new_full((2, 5), float("nan")), x[:0], torch.zeros(2, 5, dtype=torch.long),
                  torch.zeros(3), [[0.0] * 5]]:
        with pytest.raises(InputError, match="^x:"):
            certify(model, bad_x, 0.5, 10, 10, 0.01, generator=gen(0))
    with pytest.raises(InputError, match="^model:"):
        predict(lambda t: t[:, 0], x, 0.5, 10, generator=gen(0))
    with pytest.raises(InputError, match="^model:"):
        predict(lambda t: t[:1, :2], x, 0.5, 10, generator=gen(0))
    with pytest.raises(InputError, match="^model:"):
        predict(object(), x, 0.5, 10, generator=gen(0))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="^model:"):
        certify(model, x, 0.5, 10, 10, 0.01, generator=gen(0), num_classes=3)


def test_bad_mixture_inputs_raise_input_error(mixture) -> None:
    model, x, shifts, probs = mixture
    with pytest.raises(InputError, match="^shifts:"):
        mixture_probabilities(model, x, shifts[:, :3], probs)
    with pytest.raises(InputError, match="^probs:"):
        mixture_probabilities(model, x, shifts, probs[:5])
    with pytest.raises(InputError, match="^probs:"):
        mixture_probabilities(model, x, shifts, probs * 2)
    with pytest.raises(InputError, match="^probs:"):
        negative = torch.tensor([1.2, -0.2, 0.0, 0.0, 0.0, 0.0], dtype=DTYPE)
        mixture_probabilities(model, x, shifts, negative)
    with pytest.raises(InputError, match="^shifts:"):
        mixture_probabilities(model, x, shifts.clone().fill_(float("inf")), probs)
    with pytest.raises(InputError, match="^n:"):
        predict_mixture(model, x, shifts, probs, 0, generator=gen(0))
    with pytest.raises(InputError, match="^alpha:"):
        predict_mixture(model, x, shifts, probs, 10, 1.5, generator=gen(0))
