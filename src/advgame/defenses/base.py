"""The Defense protocol: a defender strategy built into the module that is deployed.

A :class:`Defense` is an ``nn.Module`` whose ``forward`` gives the scores a white-box
attacker differentiates (for a randomized defense, the expectation over its randomness:
log E softmax, "expectation over transformation") and whose ``predict(x, generator)`` is
the deployed decision (random for randomized defenses). Implementations: a trained
classifier as it is, an additive shift, Gaussian smoothing, an input transform (the
reformer, median filter, bit-depth reduction) and :class:`MixedDefense`, the deployable
mixed strategy that samples one component per query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from advgame import smoothing
from advgame.defenses.preprocessing import bpda
from advgame.defenses.transforms import ReformedClassifier
from advgame.errors import InputError
from advgame.models import predict as model_predict
from advgame.storage import digest
from advgame.threat import clip_box
from advgame.validate import check_choice

__all__ = [
    "clip_straight_through",
    "ClassifierDefense",
    "Defense",
    "ExpectedMixture",
    "MixedDefense",
    "ShiftDefense",
    "SmoothingDefense",
    "TransformDefense",
]


# ----------------------------------------------------------------------------- defenses


class Defense(nn.Module):
    """A built defender strategy.

    ``forward(x)`` -> (N, K) scores that a white-box attacker differentiates (logits, or
    log-probabilities for randomized defenses: the EOT expectation); ``predict(x,
    generator)`` -> (N,) deployed decisions. ``attack_model(bpda=None)`` is the module
    attacks are computed against (``self`` unless overridden; ``bpda`` matters to defenses
    with an input transform, :class:`TransformDefense`). Randomized defenses draw the noise of
    ``forward`` from ``self.generator`` (set with :meth:`set_generator`).

    Attributes:
        name: strategy name. key: name plus a hash of its config (for stored results).
        randomized: whether ``predict`` is random.
    """

    randomized: bool = False

    def __init__(self, name: str, key: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.key = key or name
        self.generator: torch.Generator | None = None

    def set_generator(self, generator: torch.Generator | None) -> None:
        """Source of the randomness of ``forward`` (and of components, for mixtures)."""
        self.generator = generator

    def attack_model(self, bpda: bool | None = None) -> nn.Module:
        """The module white-box attacks differentiate (EOT for randomized defenses).

        ``bpda``: the attacker's choice for an input transform in the defense: True
        differentiates it as the identity (BPDA), False through it as it is, None as the
        defense was built to be attacked. Defenses without a transform ignore it.
        """
        return self

    @torch.no_grad()
    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None,
                batch_size: int = 1000) -> torch.Tensor:
        """Deployed predictions (N,) for inputs (N, ...): argmax of ``forward``."""
        return model_predict(self, x, batch_size)


class ClassifierDefense(Defense):
    """A trained classifier as it is: scores = model(x).

    Example:
        >>> d = ClassifierDefense("lin", nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> d.predict(torch.rand(5, 1, 2, 2)).shape
        torch.Size([5])
    """

    def __init__(self, name: str, model: nn.Module, key: str | None = None) -> None:
        super().__init__(name, key)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def clip_straight_through(z: torch.Tensor) -> torch.Tensor:
    """clip(z, 0, 1) forward, identity backward (BPDA with the identity, Athalye et al.
    2018): clamp's own gradient is 0 on every pixel it clips, which would mask the gradient
    of the pixels a shift pushes out of the box.

    Example:
        >>> z = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
        >>> out = clip_straight_through(z); out.sum().backward()
        >>> out.tolist(), z.grad.tolist()
        ([0.0, 0.5, 1.0], [1.0, 1.0, 1.0])
    """
    return z + (clip_box(z) - z).detach()


class ShiftDefense(Defense):
    """An additive shift: scores = model(x + v), v shaped like one input; with ``clip``,
    model(clip(x + v, 0, 1)), the clip differentiated straight through
    (:func:`clip_straight_through`).

    Example:
        >>> d = ShiftDefense("s", nn.Flatten(), torch.full((1, 2), 0.5))
        >>> d(torch.zeros(1, 1, 2)).tolist()
        [[0.5, 0.5]]
    """

    def __init__(self, name: str, model: nn.Module, v: torch.Tensor,
                 key: str | None = None, *, clip: bool = False) -> None:
        super().__init__(name, key)
        self.model = model
        self.clip = clip
        self.v: torch.Tensor
        self.register_buffer("v", v.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x + self.v
        return self.model(clip_straight_through(z) if self.clip else z)


class SmoothingDefense(Defense):
    """Gaussian smoothing (Cohen et al. 2019) of ``model`` at noise level sigma.

    predict(x) = argmax_c #{t <= votes: argmax model(x + sigma eps_t) = c} (ties to the
    lowest class, no abstention); forward(x) = log (1/k) sum_t softmax(model(x + sigma
    eps_t)), k = ``eot`` fresh draws from ``self.generator`` per call — the soft smoothed
    classifier an EOT attacker differentiates (Salman et al. 2019).

    Example:
        >>> d = SmoothingDefense("s", nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), 0.25)
        >>> d.set_generator(torch.Generator().manual_seed(0))
        >>> d(torch.rand(2, 1, 2, 2)).exp().sum(1).round().tolist()
        [1.0, 1.0]
    """

    randomized = True

    def __init__(self, name: str, model: nn.Module, sigma: float, votes: int = 100,
                 eot: int = 8, key: str | None = None, *, noise: str = "independent") -> None:
        super().__init__(name, key)
        self.model = model
        self.sigma = float(sigma)
        self.votes = int(votes)
        self.eot = int(eot)
        self.noise = check_choice("noise", noise, ("independent", "shared"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """EOT scores (N, K); ``noise="shared"`` adds the same ``eot`` draws to every input
        of the batch (as :func:`advgame.smoothing.predict`'s shared stream), ``"independent"``
        draws ``eot`` per input."""
        shape = (self.eot, *x.shape) if self.noise == "independent" else (self.eot, *x.shape[1:])
        noise = torch.randn(shape, generator=self.generator, device=x.device, dtype=x.dtype)
        if self.noise == "shared":
            noise = noise.unsqueeze(1)
        z = (x.unsqueeze(0) + self.sigma * noise).reshape(self.eot * x.shape[0], *x.shape[1:])
        logp = F.log_softmax(self.model(z), dim=1).reshape(self.eot, x.shape[0], -1)
        return torch.logsumexp(logp, dim=0) - math.log(self.eot)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None,
                batch_size: int = 1000) -> torch.Tensor:
        counts = smoothing.gaussian_counts(self.model, x, self.sigma, self.votes,
                                           batch_size=batch_size, generator=generator)
        return counts.argmax(dim=1)


class TransformDefense(Defense):
    """An input transform in front of a classifier: scores = model(transform(x)) (MagNet's
    reformer when ``transform`` is an autoencoder); attacks differentiate through both, or,
    with ``bpda``, through the transform's BPDA version (:meth:`with_bpda`: identity
    backward) -- the adaptive white-box attack on a non-differentiable transform.

    Example:
        >>> d = TransformDefense("t", nn.Identity(), nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> d(torch.rand(3, 1, 2, 2)).shape
        torch.Size([3, 2])
    """

    def __init__(self, name: str, transform: nn.Module, model: nn.Module,
                 key: str | None = None, *, bpda: bool = False) -> None:
        super().__init__(name, key)
        self.reformed = ReformedClassifier(transform, model)
        self.bpda = bool(bpda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reformed(x)

    def attack_model(self, bpda: bool | None = None) -> nn.Module:
        """``self``, or with BPDA (``bpda``, or the defense's own ``self.bpda`` when None)
        the same forward pass with the identity's backward."""
        return self.with_bpda() if (self.bpda if bpda is None else bpda) else self

    def with_bpda(self) -> TransformDefense:
        """The same defense as a BPDA attacker differentiates it (Athalye et al. 2018): the
        transform's backward pass replaced by the identity's, forward unchanged
        (:func:`advgame.defenses.preprocessing.bpda`)."""
        return TransformDefense(self.name, bpda(self.reformed.autoencoder),
                                self.reformed.classifier, key=f"{self.key}-bpda")


class ExpectedMixture(nn.Module):
    """log sum_i p_i softmax(f_i(x)): the expected prediction of a finite mixture, exact
    over its components (each f_i may itself be an EOT module). Shape (N, ...) -> (N, K).

    Example:
        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> m = ExpectedMixture([f, f], torch.tensor([0.5, 0.5]))
        >>> torch.allclose(m(torch.ones(1, 4)), F.log_softmax(f(torch.ones(1, 4)), 1))
        True
    """

    def __init__(self, components: Sequence[nn.Module], probs: torch.Tensor) -> None:
        super().__init__()
        keep = [i for i, p in enumerate(probs.tolist()) if p > 0]
        self.components = nn.ModuleList([components[i] for i in keep])
        self.log_probs: torch.Tensor
        self.register_buffer("log_probs", torch.log(probs[keep].to(torch.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [lp + F.log_softmax(f(x), dim=1)
                 for lp, f in zip(self.log_probs.to(x.dtype), self.components, strict=True)]
        return torch.logsumexp(torch.stack(parts), dim=0)


class MixedDefense(Defense):
    """The deployable mixed strategy: each query is answered by one component drawn from
    p (a moving-target defense).

    - ``forward(x)``: scores of one component drawn per input from ``self.generator`` —
      what a naive attacker differentiating the deployed module sees.
    - ``predict(x, generator)``: the deployed decision, component i ~ p per input.
    - ``attack_model()``: :class:`ExpectedMixture` of the components' attack models, the
      exact expectation over the mixture an EOT attacker differentiates.

    Its accuracy against a fixed set of inputs is, in expectation, sum_i p_i acc_i (the
    mixed strategy's expected payoff). Components with p_i = 0 are dropped. Without a
    ``key``, the key is a hash of the components' keys and probabilities.

    Example:
        >>> f = ClassifierDefense("f", nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> g = ClassifierDefense("g", nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> mix = MixedDefense("mix", [f, g], [0.25, 0.75])
        >>> mix.predict(torch.rand(6, 1, 2, 2), torch.Generator().manual_seed(0)).shape
        torch.Size([6])
    """

    randomized = True

    def __init__(self, name: str, components: Sequence[Defense],
                 probs: Sequence[float] | torch.Tensor, key: str | None = None) -> None:
        super().__init__(name, key)
        p = torch.as_tensor(probs, dtype=torch.float64).flatten()
        if len(components) == 0 or p.numel() != len(components):
            raise InputError("probs", f"needs one probability per component ({len(components)}),"
                             f" got {p.numel()}")
        if bool((p < -1e-9).any()) or abs(float(p.sum()) - 1.0) > 1e-6:
            raise InputError("probs", f"must be a probability vector, got {p.tolist()}")
        keep = [i for i, v in enumerate(p.tolist()) if v > 0]
        self.parts = nn.ModuleList([components[i] for i in keep])
        self.probs: torch.Tensor
        self.register_buffer("probs", (p[keep] / p[keep].sum()).clamp_min(0))
        if key is None:  # the same mixture of the same strategies has the same key
            mix = sorted((components[i].key, round(float(p[i]), 9)) for i in keep)
            self.key = "mix-" + digest(mix)

    @property
    def components(self) -> list[Defense]:
        return list(self.parts)  # type: ignore[arg-type]

    def set_generator(self, generator: torch.Generator | None) -> None:
        self.generator = generator
        for c in self.parts:
            c.set_generator(generator)  # type: ignore[operator]

    def attack_model(self, bpda: bool | None = None) -> nn.Module:
        return ExpectedMixture([c.attack_model(bpda) for c in self.parts],  # type: ignore[operator]
                               self.probs)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | None = None) -> torch.Tensor:
        """Component indices (n,) drawn i.i.d. from p (CPU generator unless ``device``)."""
        dev = device or torch.device("cpu")
        w = self.probs.to(dev)
        return torch.multinomial(w, n, replacement=True, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        which = self.sample(x.shape[0], self.generator, x.device)
        out: torch.Tensor | None = None
        for i, c in enumerate(self.parts):
            mask = which == i
            if not bool(mask.any()):
                continue
            s = c(x[mask])
            if out is None:
                out = x.new_zeros((x.shape[0], s.shape[1]))
            out = out.index_put((mask.nonzero(as_tuple=True)[0],), s)
        assert out is not None
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor, generator: torch.Generator | None = None,
                batch_size: int = 1000) -> torch.Tensor:
        which = self.sample(x.shape[0], generator, x.device)
        out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        for i, c in enumerate(self.parts):
            mask = which == i
            if bool(mask.any()):
                out[mask] = c.predict(x[mask], generator, batch_size)  # type: ignore[operator]
        return out
