"""Gaussian smoothing (Cohen et al. 2019): class counts under N(0, sigma^2 I), PREDICT,
CERTIFY and the :class:`Smooth` object over them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advgame.smoothing.sampling import (
    ABSTAIN,
    Model,
    _check_common,
    _check_model,
    _check_noise,
    _evaluation,
    _noise_counts,
    _samples_bar,
    _vote,
)
from advgame.smoothing.stats import _check_sigma, certified_radius, lower_confidence_bound
from advgame.validate import check_positive_int

# --------------------------------------------------------------------------- Gaussian


def gaussian_counts(
    model: Model, x: torch.Tensor, sigma: float,
    n: int,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *, num_classes: int | None = None, noise: str = "shared", progress: bool = False,
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
    model: Model, x: torch.Tensor, sigma: float,
    n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *, num_classes: int | None = None, noise: str = "shared", progress: bool = False,
) -> torch.Tensor:
    """Monte-Carlo prediction of the Gaussian-smoothed classifier (Cohen et al.'s PREDICT).

    Counts classes over ``n`` noisy copies ``x_i + N(0, sigma^2 I)``; with the two largest
    counts ``n_A >= n_B`` it returns the top class ``c_A`` if the two-sided binomial test
    ``n_A ~ Bin(n_A + n_B, 1/2)`` rejects at level ``alpha`` (p-value ``<= alpha``), and
    ``-1`` (abstain) otherwise. A returned class differs from the smoothed classifier's
    ``G(x)`` with probability at most ``alpha``. Inputs are not clipped.

    Args:
        model, x, sigma, n, batch_size, generator, num_classes, noise, progress: as in
            :func:`gaussian_counts` (``x`` must be finite; the progress counts ``N * n``).
        alpha: test level in (0, 1).

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
    model: Model, x: torch.Tensor, sigma: float,
    n0: int = 100,
    n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000,
    generator: torch.Generator | None = None,
    *, num_classes: int | None = None, noise: str = "shared", progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Certify the Gaussian-smoothed classifier (Cohen et al.'s CERTIFY), batched.

    For each input: ``c_A = argmax counts0`` over ``n0`` selection samples; ``n_A`` = count
    of ``c_A`` over ``n`` fresh estimation samples; ``p_lower = Beta^-1(alpha; n_A,
    n - n_A + 1)`` (one-sided Clopper-Pearson). If ``p_lower < 1/2`` abstain (class ``-1``,
    radius 0), else return ``c_A`` and radius ``sigma * Phi^-1(p_lower)``. With probability
    at least ``1 - alpha`` (per input) a returned class is ``G(x)`` and ``G`` is constant on
    the L2 ball of that radius. Inputs are not clipped.

    Args:
        model, x, sigma, batch_size, generator, num_classes, noise, progress: as in
            :func:`gaussian_counts` (``x`` must be finite; the progress counts
            ``N * (n0 + n)``).
        n0: selection samples per input, >= 1.
        n: estimation samples per input, >= 1.
        alpha: failure probability in (0, 1).

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
        self, x: torch.Tensor,
        n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Classes (N,) of the smoothed classifier, -1 = abstain (see :func:`predict`)."""
        return predict(
            self.model, x, self.sigma, n, alpha, batch_size, generator,
            num_classes=self.num_classes, noise=self.noise,
        )

    def certify(
        self, x: torch.Tensor,
        n0: int = 100,
        n: int = 100_000, alpha: float = 0.001, batch_size: int = 1000,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(classes, radii), each (N,), -1 / 0 where abstaining (see :func:`certify`)."""
        return certify(
            self.model, x, self.sigma, n0, n, alpha, batch_size, generator,
            num_classes=self.num_classes, noise=self.noise,
        )
