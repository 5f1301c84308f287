"""Pure strategies of the empirical game (SPEC section 3): specs, defenses and attacks.

Two layers:

- **Specs** are small frozen dataclasses (a name and a config) parsed from TOML tables
  (:func:`parse_strategies`); they hold no tensors. Defender kinds: ``clean`` (the trained
  classifier, or a checkpoint), ``adversarial`` (adversarially trained at eps),
  ``shift`` (an additive shift v, ||v|| = eps), ``smoothing`` (Gaussian, sigma),
  ``reformer`` (autoencoder input transform, MagNet) and ``mixture`` (of other
  defenders). Attacker kinds: ``fgm`` / ``fgsm`` / ``pgd`` (eps, norm), ``attnet`` (a
  learned attacker trained against the defended model, or against a named defender and
  then fixed), ``transfer`` (examples crafted on a surrogate model) and adapters ``art``
  (Adversarial Robustness Toolbox) and ``torchattacks`` (used when importable).
- **Built strategies**: a :class:`Defense` is an ``nn.Module`` whose ``forward`` gives the
  scores a white-box attacker differentiates (for a randomized defense, the expectation
  over its randomness: log E softmax, "expectation over transformation") and whose
  ``predict(x, generator)`` is the deployed decision (random for randomized defenses).
  An :class:`Attack` crafts adversarial examples against a target module
  (``craft(target, x, y, generator=...)``); an *adaptive* attack depends on the target
  (white box), a fixed one (transfer, a trained AttNet) is the same map for every
  defender. :class:`MixedDefense` is the deployable mixed strategy: it samples one
  component per query.

Every random draw comes from an explicit ``torch.Generator``; parameters of fresh
networks are initialized from one (:func:`init_parameters`), never from the global RNG.
Trained parts are obtained through a ``fit(key, module, train_fn)`` callback so that the
caller decides where weights are cached (``advgame.experiments.game`` stores them on disk).

Example:
    >>> defenders, attackers = parse_strategies(
    ...     [{"name": "clean", "kind": "clean"}],
    ...     [{"name": "FGSM-0.1", "kind": "fgsm", "eps": 0.1}])
    >>> attackers[0].norm, defenders[0].kind
    ('inf', 'clean')
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from advgame import smoothing
from advgame.attacks.gradient import attack_loop
from advgame.attacks.learned import attnet_attack, attnet_examples, build_attnet, train_attnet
from advgame.data import stratified_indices
from advgame.defenses.transforms import ReformedClassifier, build_autoencoder, train_autoencoder
from advgame.errors import InputError
from advgame.models import TrainConfig, build_model, train
from advgame.models import predict as model_predict
from advgame.rng import init_parameters, unit_generator
from advgame.storage import digest
from advgame.threat import Norm, clip_box, parse_norm, project
from advgame.validate import check_nonnegative, check_positive_int

__all__ = [
    "ATTACKER_KINDS",
    "DEFENDER_KINDS",
    "Attack",
    "AttNetAttack",
    "AttackerSpec",
    "BuildContext",
    "ClassifierDefense",
    "Defense",
    "DefenderSpec",
    "ExpectedMixture",
    "Fit",
    "GradientAttack",
    "LibraryAttack",
    "MixedDefense",
    "ShiftDefense",
    "SmoothingDefense",
    "TransferAttack",
    "TransformDefense",
    "build_attackers",
    "build_defenders",
    "fit_in_memory",
    "library_available",
    "parse_strategies",
    "train_against_mixture",
]

# ----------------------------------------------------------------------------- helpers


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True, kw_only=True)
class StrategySpec:
    """A named pure strategy and its configuration (no tensors). ``kind`` names the type."""

    kind: ClassVar[str] = ""
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("name", f"a strategy needs a non-empty name, got {self.name!r}")

    def as_dict(self) -> dict[str, Any]:
        """The spec as a JSON-able dict, ``kind`` first."""
        d = dataclasses.asdict(self)
        return {"kind": self.kind, **{k: list(v) if isinstance(v, tuple) else v
                                      for k, v in d.items()}}

    def dependencies(self) -> tuple[str, ...]:
        """Names of the defenders this strategy is built from."""
        return ()


def _eps(name: str, value: float, norm: str = "inf") -> None:
    """eps >= 0; an L-inf budget is at most 1 (inputs live in [0, 1])."""
    check_nonnegative(name, value, upper=1.0 if parse_norm(norm) == "inf" else None)


# ---- defenders


@dataclass(frozen=True, kw_only=True)
class DefenderSpec(StrategySpec):
    """Base of defender specs."""


@dataclass(frozen=True, kw_only=True)
class CleanSpec(DefenderSpec):
    """The classifier trained on clean data (the run's model), or a checkpoint at ``path``."""

    kind: ClassVar[str] = "clean"
    path: str | None = None


@dataclass(frozen=True, kw_only=True)
class AdversarialSpec(DefenderSpec):
    """A classifier adversarially trained on ``attack`` examples at budget ``eps``.

    ``attack``: ``fgm`` / ``fgsm`` (one step in ``norm``; FGSM in L-inf, Goodfellow et al.
    2015) or ``pgd`` (Madry et al.
    2018, ``steps`` steps); examples are recomputed per batch against the model being
    trained. ``init``: fine-tune the clean model or start from scratch; ``epochs`` None =
    the run's epochs; ``with_clean``: train on clean and adversarial batches together.
    """

    kind: ClassVar[str] = "adversarial"
    eps: float
    attack: str = "fgsm"
    norm: str = "inf"
    steps: int = 10
    epochs: int | None = None
    with_clean: bool = True
    init: str = "clean"

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_norm(self.norm)
        _eps("eps", self.eps, self.norm)
        if self.attack not in ("fgsm", "fgm", "pgd"):
            raise InputError("attack", f"must be 'fgm' ('fgsm') or 'pgd', got "
                             f"{self.attack!r}")
        if self.init not in ("clean", "scratch"):
            raise InputError("init", f"must be 'clean' or 'scratch', got {self.init!r}")
        check_positive_int("steps", self.steps)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs, minimum=0)


@dataclass(frozen=True, kw_only=True)
class ShiftSpec(DefenderSpec):
    """An input-agnostic additive shift v added to every input of ``base`` (S1's defense).

    v = eps * d with d = a uniformly random sign vector (``direction="random"``, L-inf;
    drawn from ``seed``), the all-ones vector (``"plus"``) or its negative (``"minus"``);
    for ``norm="2"`` d is normalized to unit L2 norm.
    """

    kind: ClassVar[str] = "shift"
    eps: float
    base: str = "clean"
    norm: str = "inf"
    direction: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_norm(self.norm)
        _eps("eps", self.eps, self.norm)
        if self.direction not in ("random", "plus", "minus"):
            raise InputError("direction", f"must be random, plus or minus, got "
                             f"{self.direction!r}")
        check_positive_int("seed", self.seed, minimum=0)

    def dependencies(self) -> tuple[str, ...]:
        return (self.base,)


@dataclass(frozen=True, kw_only=True)
class SmoothingSpec(DefenderSpec):
    """Gaussian smoothing of ``base`` (Cohen et al. 2019): predict = majority vote over
    ``votes`` noisy copies x + N(0, sigma^2 I); attacked through log E softmax over ``eot``
    draws per forward pass (expectation over transformation).

    ``train_epochs`` > 0 first fine-tunes a copy of ``base`` on noisy inputs
    x + N(0, sigma^2 I) (Cohen et al.'s training; the base classifier then works under
    noise); 0 smooths ``base`` as it is.
    """

    kind: ClassVar[str] = "smoothing"
    sigma: float
    base: str = "clean"
    votes: int = 100
    eot: int = 8
    train_epochs: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if check_nonnegative("sigma", self.sigma) == 0:
            raise InputError("sigma", "must be > 0")
        check_positive_int("votes", self.votes)
        check_positive_int("eot", self.eot)
        check_positive_int("train_epochs", self.train_epochs, minimum=0)

    def dependencies(self) -> tuple[str, ...]:
        return (self.base,)


@dataclass(frozen=True, kw_only=True)
class ReformerSpec(DefenderSpec):
    """MagNet's reformer: an autoencoder trained on clean data in front of ``base``.

    ``autoencoder``: ``cnn``, ``mlp`` or ``auto`` (cnn for even image sides); ``epochs``
    None = the run's epochs for trained defenders; ``noise``: denoising noise std.
    """

    kind: ClassVar[str] = "reformer"
    base: str = "clean"
    autoencoder: str = "auto"
    epochs: int | None = None
    noise: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.autoencoder not in ("auto", "cnn", "mlp"):
            raise InputError("autoencoder", f"must be auto, cnn or mlp, got "
                             f"{self.autoencoder!r}")
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs, minimum=0)
        check_nonnegative("noise", self.noise)

    def dependencies(self) -> tuple[str, ...]:
        return (self.base,)


@dataclass(frozen=True, kw_only=True)
class MixtureSpec(DefenderSpec):
    """A randomized defender: one of ``components`` (defender names) drawn per query with
    probabilities ``probs`` (default uniform)."""

    kind: ClassVar[str] = "mixture"
    components: tuple[str, ...]
    probs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.components or not all(isinstance(c, str) for c in self.components):
            raise InputError("components", "give at least one defender name")
        if self.probs is not None:
            if len(self.probs) != len(self.components):
                raise InputError("probs", f"needs {len(self.components)} entries, got "
                                 f"{len(self.probs)}")
            for p in self.probs:
                check_nonnegative("probs", p)
            if abs(sum(self.probs) - 1.0) > 1e-6:
                raise InputError("probs", f"must sum to 1, got {sum(self.probs)}")

    def dependencies(self) -> tuple[str, ...]:
        return tuple(self.components)


# ---- attackers


@dataclass(frozen=True, kw_only=True)
class AttackerSpec(StrategySpec):
    """Base of attacker specs: every attack has a budget ``eps`` in ``norm``."""

    eps: float
    norm: str = "inf"

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_norm(self.norm)
        _eps("eps", self.eps, self.norm)


@dataclass(frozen=True, kw_only=True)
class GradientSpec(AttackerSpec):
    """FGM (one step of length eps; FGSM in L-inf) or PGD (``steps`` steps of
    ``step_size``, default 2.5 eps / steps, random start; per example the first of
    ``restarts`` runs that fools the target)."""

    kind: ClassVar[str] = "pgd"
    method: str = "pgd"
    steps: int = 10
    step_size: float | None = None
    restarts: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in ("fgm", "pgd"):
            raise InputError("method", f"must be fgm or pgd, got {self.method!r}")
        check_positive_int("steps", self.steps)
        check_positive_int("restarts", self.restarts)
        if self.step_size is not None:
            check_nonnegative("step_size", self.step_size)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "kind": self.method}


@dataclass(frozen=True, kw_only=True)
class AttNetSpec(AttackerSpec):
    """A learned attacker z = clip(x + eps tanh(a(x; v)), 0, 1) (L-inf only).

    ``against="self"``: a fresh AttNet is trained against each defended model it meets
    (white box, adaptive). Otherwise ``against`` names a defender: one AttNet is trained
    against it and then applied unchanged to every defender (a fixed map). ``path``: load
    trained weights (a state dict of the ``arch`` / ``hidden`` network, e.g. saved by
    ``advgame paper2``) instead; the AttNet is then a fixed map (its stored cells are keyed
    by the path, so give changed weights a new file name).
    """

    kind: ClassVar[str] = "attnet"
    arch: str = "mlp"
    hidden: tuple[int, ...] = (300, 300, 300)
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    against: str = "self"
    train_size: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if parse_norm(self.norm) != "inf":
            raise InputError("norm", "an AttNet's budget is an L-inf budget (norm = 'inf')")
        if self.arch not in ("mlp", "cnn"):
            raise InputError("arch", f"must be mlp or cnn, got {self.arch!r}")
        check_positive_int("epochs", self.epochs, minimum=0)
        check_positive_int("batch_size", self.batch_size)
        if check_nonnegative("lr", self.lr) == 0:
            raise InputError("lr", "must be > 0")
        if self.train_size is not None:
            check_positive_int("train_size", self.train_size)
        if not self.hidden:
            raise InputError("hidden", "give at least one width")

    def dependencies(self) -> tuple[str, ...]:
        return () if self.against == "self" or self.path is not None else (self.against,)


@dataclass(frozen=True, kw_only=True)
class TransferSpec(AttackerSpec):
    """Examples crafted by FGM / PGD on a ``surrogate`` and replayed against every defender:
    ``"independent"`` = a classifier trained on the same data from another initialization,
    else the name of a defender."""

    kind: ClassVar[str] = "transfer"
    method: str = "pgd"
    steps: int = 10
    surrogate: str = "independent"
    epochs: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in ("fgm", "pgd"):
            raise InputError("method", f"must be fgm or pgd, got {self.method!r}")
        check_positive_int("steps", self.steps)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs, minimum=0)

    def dependencies(self) -> tuple[str, ...]:
        return () if self.surrogate == "independent" else (self.surrogate,)


@dataclass(frozen=True, kw_only=True)
class LibrarySpec(AttackerSpec):
    """An attack of another library run white box against the defended model: ``attack`` is
    a class name of ``art.attacks.evasion`` (kind ``art``) or ``torchattacks`` (kind
    ``torchattacks``); ``params`` are extra constructor arguments. Results are projected
    onto the eps ball and the box. Skipped (with a note) when the library is missing."""

    kind: ClassVar[str] = "art"
    library: str = "art"
    attack: str = ""
    params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.library not in LIBRARIES:
            raise InputError("library", f"must be one of {list(LIBRARIES)}, got "
                             f"{self.library!r}")
        if not isinstance(self.attack, str) or not self.attack.isidentifier():
            raise InputError("attack", f"give the attack's class name, got {self.attack!r}")

    def as_dict(self) -> dict[str, Any]:
        d = super().as_dict()
        d["kind"] = self.library
        d.pop("library")
        d["params"] = dict(self.params)
        return d


@dataclass(frozen=True, kw_only=True)
class StrongSpec(AttackerSpec):
    """The evaluation-grade attacks of :mod:`advgame.attacks.cascade`, run white box
    against the defended model: kind ``apgd`` (``loss`` ce or dlr, ``targeted``, ``steps``,
    ``restarts``), ``square`` (``queries``, gradient-free), ``fab`` (``targeted``, default
    true = FAB-T, ``steps``), ``cw`` (L2 only: Carlini-Wagner, reported at eps) and
    ``autoattack`` (the cascade of ``version``: standard, plus or rand)."""

    kind: ClassVar[str] = "apgd"
    method: str = "apgd"
    loss: str = "ce"
    targeted: bool | None = None
    steps: int = 100
    restarts: int = 1
    queries: int = 5000
    version: str = "standard"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in STRONG_KINDS:
            raise InputError("method", f"must be one of {STRONG_KINDS}, got {self.method!r}")
        if self.loss not in ("ce", "dlr"):
            raise InputError("loss", f"must be ce or dlr, got {self.loss!r}")
        for name in ("steps", "restarts", "queries"):
            check_positive_int(name, getattr(self, name))
        from advgame.attacks.cascade import VERSIONS

        if self.version not in VERSIONS:
            raise InputError("version", f"must be one of {sorted(VERSIONS)}, got "
                             f"{self.version!r}")
        if self.method == "cw" and parse_norm(self.norm) != "2":
            raise InputError("norm", "cw is an L2 attack: set norm = 2")

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "kind": self.method}


STRONG_KINDS = ("apgd", "square", "fab", "cw", "autoattack")


#: Modules of the attack libraries the adapters wrap.
LIBRARIES: dict[str, str] = {"art": "art.attacks.evasion", "torchattacks": "torchattacks"}

#: Defender kind -> spec class.
DEFENDER_KINDS: dict[str, type[DefenderSpec]] = {
    "clean": CleanSpec, "adversarial": AdversarialSpec, "shift": ShiftSpec,
    "smoothing": SmoothingSpec, "reformer": ReformerSpec, "mixture": MixtureSpec,
}
#: Attacker kind -> spec class (``fgm``/``fgsm``/``pgd`` share :class:`GradientSpec`).
ATTACKER_KINDS: dict[str, type[AttackerSpec]] = {
    "fgm": GradientSpec, "fgsm": GradientSpec, "pgd": GradientSpec, "attnet": AttNetSpec,
    "transfer": TransferSpec, "art": LibrarySpec, "torchattacks": LibrarySpec,
    **{k: StrongSpec for k in STRONG_KINDS},
}


def library_available(library: str) -> bool:
    """Whether the attack library (``art`` or ``torchattacks``) can be imported."""
    return importlib.util.find_spec(library) is not None


def _parse_one(entry: object, where: str, kinds: Mapping[str, type[StrategySpec]]
               ) -> StrategySpec:
    if not isinstance(entry, Mapping):
        raise InputError(where, f"must be a table with 'name' and 'kind', got {entry!r}")
    data = dict(entry)
    kind = data.pop("kind", None)
    if kind not in kinds:
        raise InputError(where, f"unknown strategy kind {kind!r}; choose from "
                         f"{', '.join(kinds)}")
    cls = kinds[kind]
    if cls is GradientSpec:
        data["method"] = "fgm" if kind in ("fgm", "fgsm") else "pgd"
        if kind == "fgsm":
            if parse_norm(data.get("norm", "inf")) != "inf":
                raise InputError(where, "fgsm is the L-inf FGM; use kind = 'fgm' for L2")
    elif cls is StrongSpec:
        data["method"] = kind
    elif cls is LibrarySpec:
        data["library"] = kind
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise InputError(where, f"params must be a table, got {params!r}")
        data["params"] = tuple(sorted(params.items()))
    allowed = {f.name for f in dataclasses.fields(cls)} - {"method", "library"}
    unknown = sorted(set(data) - allowed - {"method", "library"})
    if unknown:
        raise InputError(where, f"unknown key(s) {unknown} for kind {kind!r}; allowed: "
                         f"{sorted(allowed | {'kind'})}")
    for k, v in data.items():
        if isinstance(v, list):
            data[k] = tuple(v)
    name = data.get("name")
    try:
        return cls(**data)
    except InputError as e:
        raise InputError(f"{where} ({name})", str(e)) from None
    except TypeError as e:
        raise InputError(where, str(e)) from None


def parse_strategies(
    defenders: Sequence[object], attackers: Sequence[object]
) -> tuple[list[DefenderSpec], list[AttackerSpec]]:
    """Parse defender and attacker tables (TOML ``[[defenders]]`` / ``[[attackers]]``).

    Checks kinds, keys and values, unique names per player, and that every referenced
    defender (``base``, ``components``, ``against``, ``surrogate``) is defined (bases must
    be ``clean`` or ``adversarial`` classifiers).

    Raises:
        InputError: naming ``defenders[i]`` / ``attackers[j]`` and the problem.

    Example:
        >>> d, a = parse_strategies(
        ...     [{"name": "clean", "kind": "clean"},
        ...      {"name": "smooth", "kind": "smoothing", "sigma": 0.25}],
        ...     [{"name": "PGD", "kind": "pgd", "eps": 0.1, "steps": 5}])
        >>> [s.kind for s in d], a[0].steps
        (['clean', 'smoothing'], 5)
    """
    if not defenders:
        raise InputError("defenders", "give at least one defender strategy")
    if not attackers:
        raise InputError("attackers", "give at least one attacker strategy")
    ds = [_parse_one(e, f"defenders[{i}]", DEFENDER_KINDS) for i, e in enumerate(defenders)]
    at = [_parse_one(e, f"attackers[{j}]", ATTACKER_KINDS) for j, e in enumerate(attackers)]
    for who, specs in (("defenders", ds), ("attackers", at)):
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(who, f"strategy names must be unique, repeated: {dup}")
    kinds = {s.name: s.kind for s in ds}
    for i, s in enumerate(ds):
        for dep in s.dependencies():
            if dep not in kinds:
                raise InputError(f"defenders[{i}] ({s.name})", f"refers to unknown defender "
                                 f"{dep!r}; defined: {sorted(kinds)}")
            if s.kind != "mixture" and kinds[dep] not in ("clean", "adversarial"):
                raise InputError(f"defenders[{i}] ({s.name})", f"base {dep!r} must be a "
                                 "clean or adversarial classifier")
            if s.kind == "mixture" and dep == s.name:
                raise InputError(f"defenders[{i}] ({s.name})", "a mixture cannot contain "
                                 "itself")
    _check_acyclic(ds)
    for j, a in enumerate(at):
        for dep in a.dependencies():
            if dep not in kinds:
                raise InputError(f"attackers[{j}] ({a.name})", f"refers to unknown defender "
                                 f"{dep!r}; defined: {sorted(kinds)}")
    return ds, at  # type: ignore[return-value]


def _check_acyclic(specs: Sequence[StrategySpec]) -> None:
    deps = {s.name: s.dependencies() for s in specs}
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        if state.get(n) == 1:
            raise InputError("defenders", f"mixtures refer to each other in a cycle through "
                             f"{n!r}")
        if state.get(n) == 2:
            return
        state[n] = 1
        for d in deps.get(n, ()):
            visit(d)
        state[n] = 2

    for s in specs:
        visit(s.name)


def spec_key(spec: StrategySpec, dependency_keys: Sequence[str] = ()) -> str:
    """``name-<hash>`` of the spec's config and the keys of what it is built from, so that a
    stored cell or model is reused only for the same strategy.

    Example:
        >>> spec_key(CleanSpec(name="clean")).startswith("clean-")
        True
    """
    return f"{spec.name}-{digest([spec.as_dict(), list(dependency_keys)])}"


# ----------------------------------------------------------------------------- defenses


class Defense(nn.Module):
    """A built defender strategy.

    ``forward(x)`` -> (N, K) scores that a white-box attacker differentiates (logits, or
    log-probabilities for randomized defenses: the EOT expectation); ``predict(x,
    generator)`` -> (N,) deployed decisions. ``attack_model()`` is the module attacks are
    computed against (``self`` unless overridden). Randomized defenses draw the noise of
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

    def attack_model(self) -> nn.Module:
        """The module white-box attacks differentiate (EOT for randomized defenses)."""
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


class ShiftDefense(Defense):
    """An additive shift: scores = model(x + v), v shaped like one input (not clipped).

    Example:
        >>> d = ShiftDefense("s", nn.Flatten(), torch.full((1, 2), 0.5))
        >>> d(torch.zeros(1, 1, 2)).tolist()
        [[0.5, 0.5]]
    """

    def __init__(self, name: str, model: nn.Module, v: torch.Tensor,
                 key: str | None = None) -> None:
        super().__init__(name, key)
        self.model = model
        self.v: torch.Tensor
        self.register_buffer("v", v.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x + self.v)


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
                 eot: int = 8, key: str | None = None) -> None:
        super().__init__(name, key)
        self.model = model
        self.sigma = float(sigma)
        self.votes = int(votes)
        self.eot = int(eot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn((self.eot, *x.shape), generator=self.generator, device=x.device,
                            dtype=x.dtype)
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
    reformer when ``transform`` is an autoencoder); attacks differentiate through both.

    Example:
        >>> d = TransformDefense("t", nn.Identity(), nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> d(torch.rand(3, 1, 2, 2)).shape
        torch.Size([3, 2])
    """

    def __init__(self, name: str, transform: nn.Module, model: nn.Module,
                 key: str | None = None) -> None:
        super().__init__(name, key)
        self.reformed = ReformedClassifier(transform, model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reformed(x)


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

    def attack_model(self) -> nn.Module:
        return ExpectedMixture([c.attack_model() for c in self.parts],  # type: ignore[operator]
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


# ----------------------------------------------------------------------------- attacks

Perturber = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class Attack:
    """A built attacker strategy (holds no defender).

    ``craft(target, x, y, generator=g)`` -> adversarial inputs (N, ...) in the box and the
    eps ball around x; ``adaptive`` attacks depend on ``target`` (white box), fixed ones
    ignore it. ``perturber(generator)`` gives the map used when a defender trains against
    this attack: ``perturb(model, xb, yb)`` on training batches.

    Attributes:
        name, key: strategy name; name plus a hash of its config.
        eps, norm: the threat model.
        adaptive: whether ``craft`` depends on the target.
    """

    adaptive: bool = True

    def __init__(self, name: str, eps: float, norm: Norm | str, key: str | None = None
                 ) -> None:
        self.name = name
        self.key = key or name
        self.eps = float(eps)
        self.norm: Norm = parse_norm(norm)

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def perturber(self, generator: torch.Generator | None = None) -> Perturber:
        """A map of training batches to the examples a defender trains against.

        Adaptive attacks are computed against the model passed at each call (the one being
        trained); random draws come from ``generator`` (or one seeded from it on the
        batch's device).
        """
        cache: dict[str, torch.Generator | None] = {}

        def perturb(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            return self.craft(model, xb, yb, generator=_on_device(generator, xb.device, cache))
        return perturb

    def _in_ball(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        return clip_box(x + project(x_adv.detach() - x, self.eps, self.norm)).detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _cpu_generator(generator: torch.Generator | None) -> torch.Generator:
    """``generator`` itself if it is a CPU generator, else a CPU one seeded from it."""
    if generator is not None and generator.device.type == "cpu":
        return generator
    seed = int(torch.randint(2 ** 62, (1,), generator=generator,
                             device=generator.device if generator is not None else "cpu"))
    return torch.Generator().manual_seed(seed)


def _on_device(generator: torch.Generator | None, device: torch.device,
               cache: dict[str, torch.Generator | None] | None = None
               ) -> torch.Generator | None:
    """``generator`` if it lives on ``device``'s type, else one there seeded from it (kept
    in ``cache`` so that successive calls continue one stream)."""
    if generator is None or generator.device.type == device.type:
        return generator
    if cache is not None and "g" in cache:
        return cache["g"]
    seed = int(torch.randint(2 ** 62, (1,), generator=generator, device=generator.device))
    g = torch.Generator(device=device).manual_seed(seed)
    if cache is not None:
        cache["g"] = g
    return g


def _batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
             y: torch.Tensor, batch_size: int) -> torch.Tensor:
    parts = [fn(x[i:i + batch_size], y[i:i + batch_size])
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts) if parts else x.clone()


class GradientAttack(Attack):
    """FGM / PGD (the one loop of :mod:`advgame.attacks.gradient`) against the target.

    PGD with ``restarts`` > 1 keeps, per example, the first run that fools the target.

    Example:
        >>> atk = GradientAttack("FGSM", "fgm", 0.1, "inf")
        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.rand(3, 1, 2, 2)
        >>> bool(((atk.craft(f, x, torch.tensor([0, 1, 0])) - x).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(self, name: str, method: str, eps: float, norm: Norm | str = "inf", *,
                 steps: int = 10, step_size: float | None = None, restarts: int = 1,
                 batch_size: int = 500, key: str | None = None) -> None:
        super().__init__(name, eps, norm, key)
        if method not in ("fgm", "pgd"):
            raise InputError("method", f"must be fgm or pgd, got {method!r}")
        self.method = method
        self.steps = 1 if method == "fgm" else int(steps)
        self.step_size = (self.eps if method == "fgm" else
                          (2.5 * self.eps / self.steps if step_size is None else step_size))
        self.restarts = 1 if method == "fgm" else int(restarts)
        self.batch_size = batch_size

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        def one(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            best = None
            fooled = None
            for _ in range(self.restarts):
                xa = attack_loop(target, xb, yb, eps=self.eps, norm=self.norm,
                                 steps=self.steps, step_size=self.step_size,
                                 random_start=self.method == "pgd", generator=generator)
                if self.restarts == 1:
                    return xa
                with torch.no_grad():
                    ok = target(xa).argmax(1) != yb
                if best is None or fooled is None:
                    best, fooled = xa, ok
                else:
                    take = ok & ~fooled
                    best = torch.where(take.view(-1, *([1] * (xb.ndim - 1))), xa, best)
                    fooled = fooled | ok
            assert best is not None
            return best
        return _batched(one, x, y, self.batch_size)


class StrongAttack(Attack):
    """APGD, Square, FAB, CW or the AutoAttack cascade (:class:`StrongSpec`) against the
    target, white box; the generator drives their random starts and searches.

    Example:
        >>> atk = StrongAttack("APGD", StrongSpec(name="APGD", eps=0.1, steps=5))
        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(3, 1, 2, 2)
        >>> bool(((atk.craft(f, x, f(x).argmax(1)) - x).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(self, name: str, spec: StrongSpec, *, batch_size: int = 500,
                 key: str | None = None) -> None:
        super().__init__(name, spec.eps, spec.norm, key)
        self.spec = spec
        self.batch_size = batch_size

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        from advgame.attacks import apgd, auto_attack, cw_l2, fab, square

        s, e, p = self.spec, self.eps, self.norm

        def one(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            if s.method == "apgd":
                return apgd(target, xb, yb, e, p, steps=s.steps, loss=s.loss,
                            targeted=bool(s.targeted), restarts=s.restarts, generator=generator)
            if s.method == "square":
                return square(target, xb, yb, e, p, queries=s.queries, generator=generator)
            if s.method == "fab":
                return fab(target, xb, yb, e, p, steps=s.steps, restarts=s.restarts,
                           targeted=s.targeted is not False, generator=generator)
            if s.method == "cw":
                return cw_l2(target, xb, yb, steps=s.steps).at(xb, e)
            return auto_attack(target, xb, yb, e, p, version=s.version, generator=generator)
        return _batched(one, x, y, self.batch_size)


class AttNetAttack(Attack):
    """A learned attacker (Hamm & Mehra's AttNet), z = clip(x + eps tanh(a(x; v)), 0, 1).

    Adaptive (``net`` None): ``craft`` trains a fresh network against the target on the
    training data (``x_train``, ``y_train``) for ``epochs`` epochs, then applies it.
    Fixed (``net`` given): ``craft`` applies the trained network to any target.
    ``perturber`` of an adaptive AttNet is online: one ascent step on every training batch
    against the model being trained (the attacker follows the defender), then the batch's
    examples.
    """

    def __init__(self, name: str, eps: float, *, net: nn.Module | None = None,
                 arch: str = "mlp", hidden: Sequence[int] = (300, 300, 300),
                 epochs: int = 3, lr: float = 1e-3, batch_size: int = 64,
                 x_train: torch.Tensor | None = None, y_train: torch.Tensor | None = None,
                 key: str | None = None) -> None:
        super().__init__(name, eps, "inf", key)
        self.net = _freeze(net) if net is not None else None
        self.adaptive = net is None
        self.arch, self.hidden = arch, tuple(int(h) for h in hidden)
        self.epochs, self.lr, self.batch_size = int(epochs), float(lr), int(batch_size)
        self.x_train, self.y_train = x_train, y_train
        if self.adaptive and (x_train is None or y_train is None):
            raise InputError("x_train", "an adaptive AttNet needs training data")

    def fresh_net(self, input_shape: Sequence[int], generator: torch.Generator,
                  device: torch.device) -> nn.Module:
        """A new attack network initialized from ``generator`` (CPU), moved to ``device``."""
        kw: dict[str, Any] = {"hidden": self.hidden} if self.arch == "mlp" else {}
        net = build_attnet(self.arch, tuple(input_shape), **kw)
        return init_parameters(net, generator).to(device)

    def train_against(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> nn.Module:
        """A fresh AttNet trained to maximize the target's cross-entropy on (x, y)."""
        net = self.fresh_net(x.shape[1:], generator, x.device)
        train_attnet(net, target, x, y, self.eps, epochs=self.epochs,
                     batch_size=self.batch_size, lr=self.lr, generator=generator)
        return _freeze(net)

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        net = self.net
        if net is None:
            assert self.x_train is not None and self.y_train is not None
            net = self.train_against(target, self.x_train, self.y_train,
                                     _cpu_generator(generator))
        return attnet_examples(net, x, self.eps)

    def perturber(self, generator: torch.Generator | None = None) -> Perturber:
        if self.net is not None:
            net = self.net
            return lambda _m, xb, _yb: attnet_examples(net, xb, self.eps)
        g = _cpu_generator(generator)
        state: dict[str, Any] = {}

        def perturb(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            if "net" not in state:
                net = self.fresh_net(xb.shape[1:], g, xb.device)
                state["net"] = net
                state["opt"] = torch.optim.Adam(net.parameters(), lr=self.lr, maximize=True)
            net, opt = state["net"], state["opt"]
            was = model.training
            model.eval()
            try:
                net.train()
                loss = F.cross_entropy(model(attnet_attack(net, xb, self.eps)), yb)
                params = [p for p in net.parameters()]
                grads = torch.autograd.grad(loss, params)
                for p, gr in zip(params, grads, strict=True):
                    p.grad = gr
                opt.step()
            finally:
                model.train(was)
            return attnet_examples(net, xb, self.eps)
        return perturb


class TransferAttack(Attack):
    """Examples crafted by a gradient attack on a fixed ``surrogate`` module and replayed
    against every defender (black box for the defender; a fixed map).

    Example:
        >>> sur = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> atk = TransferAttack("T", sur, GradientAttack("F", "fgm", 0.1))
        >>> atk.adaptive
        False
    """

    adaptive = False

    def __init__(self, name: str, surrogate: nn.Module, inner: GradientAttack,
                 key: str | None = None) -> None:
        super().__init__(name, inner.eps, inner.norm, key)
        self.surrogate = surrogate
        self.inner = inner

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        sur = self.surrogate
        g = _on_device(generator, x.device)
        if isinstance(sur, Defense):  # a (possibly randomized) defense: attack its EOT model
            sur.set_generator(g)
            sur = sur.attack_model()
        return self.inner.craft(sur, x, y, generator=g)


class LibraryAttack(Attack):
    """Adapter for an attack of ART (``art.attacks.evasion.<attack>``) or torchattacks
    (``torchattacks.<attack>``), run white box against the target module.

    The target is wrapped in ART's ``PyTorchClassifier`` (cross-entropy on its scores, clip
    values (0, 1)) or passed to the torchattacks constructor; ``eps`` / ``norm`` /
    ``eps_step`` / ``verbose`` are passed when the constructor takes them, then
    ``params``. The result is projected onto the eps ball and the box (so a library attack
    never exceeds the game's budget). These libraries draw their random starts from their
    own global RNGs (numpy's for ART), so their cells are reproducible only up to that.
    """

    def __init__(self, name: str, library: str, attack: str, eps: float,
                 norm: Norm | str = "inf", *, params: Mapping[str, Any] | None = None,
                 num_classes: int, key: str | None = None) -> None:
        super().__init__(name, eps, norm, key)
        if library not in LIBRARIES:
            raise InputError("library", f"must be one of {list(LIBRARIES)}, got {library!r}")
        self.library, self.attack = library, attack
        self.params = dict(params or {})
        self.num_classes = int(num_classes)
        module = importlib.import_module(LIBRARIES[library])
        cls = getattr(module, attack, None)
        if cls is None or not isinstance(cls, type):
            raise InputError("attack", f"{LIBRARIES[library]} has no attack {attack!r}")
        self._cls: type = cls

    def _kwargs(self) -> dict[str, Any]:
        sig = inspect.signature(self._cls).parameters
        kw: dict[str, Any] = {}
        if "eps" in sig:
            kw["eps"] = self.eps
        if "norm" in sig and self.library == "art":
            kw["norm"] = np.inf if self.norm == "inf" else 2
        if "eps_step" in sig:
            kw["eps_step"] = self.eps / 4
        if "alpha" in sig and self.library == "torchattacks":
            kw["alpha"] = self.eps / 4
        if "verbose" in sig:
            kw["verbose"] = False
        kw.update(self.params)
        return kw

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        was = target.training
        target.eval()
        try:
            if self.library == "art":
                from art.estimators.classification import PyTorchClassifier

                clf = PyTorchClassifier(
                    model=target, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                    nb_classes=self.num_classes, clip_values=(0.0, 1.0),
                    device_type="gpu" if x.is_cuda else "cpu")
                atk = self._cls(clf, **self._kwargs())
                out = atk.generate(x.detach().cpu().numpy(), y=y.detach().cpu().numpy())
                x_adv = torch.as_tensor(out, dtype=x.dtype, device=x.device)
            else:
                atk = self._cls(target, **self._kwargs())
                x_adv = atk(x.detach(), y)
        finally:
            target.train(was)
        return self._in_ball(x, x_adv)


# ----------------------------------------------------------------------------- building

Fit = Callable[[str, nn.Module, Callable[[nn.Module], None]], nn.Module]


def fit_in_memory() -> Fit:
    """A ``fit(key, module, train_fn)`` that trains once per key and keeps the weights in
    memory (the default; ``advgame.experiments.game`` stores them on disk instead)."""
    states: dict[str, dict[str, torch.Tensor]] = {}

    def fit(key: str, module: nn.Module, train_fn: Callable[[nn.Module], None]) -> nn.Module:
        if key in states:
            module.load_state_dict(states[key])
        else:
            train_fn(module)
            states[key] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return module.eval()
    return fit


@dataclass(eq=False)
class BuildContext:
    """What building strategies needs: data, the clean classifier and how to make/fit models.

    Attributes:
        x_train, y_train: (N, ...) training inputs in [0, 1], (N,) labels.
        num_classes: K.
        base_model: the classifier trained on clean data (defender ``clean``).
        arch, arch_kwargs: architecture of new classifiers (``advgame.models.build_model``).
        train_config: epochs / batch size / learning rate of trained defenders.
        seed: run seed; every unit draws from ``unit_generator(seed, key)``.
        fit: ``fit(key, module, train_fn)`` -> module with trained weights (cached by key).
        load_classifier: loads a checkpoint path (defender ``clean`` with ``path``).
        load_state: ``load_state(path, module)`` loads weights into a module (an AttNet
            with ``path``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    num_classes: int
    base_model: nn.Module
    arch: str = "mlp"
    arch_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_config: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    seed: int = 0
    fit: Fit = dataclasses.field(default_factory=fit_in_memory)
    load_classifier: Callable[[str], nn.Module] | None = None
    load_state: Callable[[str, nn.Module], nn.Module] | None = None

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def new_classifier(self, key: str) -> nn.Module:
        """A fresh classifier of the run's architecture, initialized from ``key``."""
        m = build_model(self.arch, self.input_shape, self.num_classes, **dict(self.arch_kwargs))
        return init_parameters(m, unit_generator(self.seed, "init-" + key)).to(self.device)

    def generator(self, key: str) -> torch.Generator:
        """The CPU generator of a unit (batch order, noise of training)."""
        return unit_generator(self.seed, key)

    def train_subset(self, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` training points (all when None or >= N): a stratified sample
        (:func:`advgame.data.stratified_indices`) seeded by (seed, n), so every strategy
        that asks for ``n`` points trains on the same ones."""
        if n is None or n >= self.x_train.shape[0]:
            return self.x_train, self.y_train
        idx = stratified_indices(self.y_train, n, generator=self.generator(f"train-subset-{n}"))
        return self.x_train[idx], self.y_train[idx]


def train_against_mixture(
    model: nn.Module,
    attacks: Sequence[Attack],
    probs: Sequence[float] | torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    *,
    with_clean: bool = True,
    generator: torch.Generator,
) -> list[float]:
    """Adversarial training against a mixed attacker (the defender's best-response oracle).

    min_u E_(x,y) E_(j~q) l(h(A_j(x); u), y): each training batch is perturbed by one
    attacker strategy j drawn from q (``generator``), adaptive ones computed against the
    current model u; with ``with_clean`` the clean batch is trained on as well. Trains
    ``model`` in place (Adam, :func:`advgame.models.train`) and returns the loss curve.

    Example:
        >>> m = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> atk = GradientAttack("F", "fgm", 0.1)
        >>> x, y = torch.rand(8, 1, 2, 2), torch.randint(0, 2, (8,))
        >>> len(train_against_mixture(m, [atk], [1.0], x, y, TrainConfig(epochs=2),
        ...                           generator=torch.Generator().manual_seed(0)))
        2
    """
    q = torch.as_tensor(probs, dtype=torch.float64)
    if q.numel() != len(attacks) or len(attacks) == 0:
        raise InputError("probs", f"needs one probability per attack ({len(attacks)})")
    perturbers = [a.perturber(generator) for a in attacks]

    def perturb(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        j = int(torch.multinomial(q, 1, generator=generator).item())
        return perturbers[j](m, xb, yb)

    hist = train(model, x, y, config, generator=generator, perturb=perturb,
                 keep_clean=with_clean)
    return hist.loss


def _shift_vector(spec: ShiftSpec, input_shape: tuple[int, ...], seed: int) -> torch.Tensor:
    if spec.direction == "random":
        g = unit_generator(seed + spec.seed, "shift-" + spec.name)
        d = torch.randint(0, 2, input_shape, generator=g).float() * 2 - 1
    else:
        d = torch.ones(input_shape) * (1.0 if spec.direction == "plus" else -1.0)
    if parse_norm(spec.norm) == "2":
        d = d / d.norm()
    return spec.eps * d


def _resolve_order(specs: Sequence[DefenderSpec]) -> list[DefenderSpec]:
    done: set[str] = set()
    order: list[DefenderSpec] = []
    pending = list(specs)
    while pending:
        rest = []
        for s in pending:
            if all(d in done for d in s.dependencies()):
                order.append(s)
                done.add(s.name)
            else:
                rest.append(s)
        if len(rest) == len(pending):
            raise InputError("defenders", "unresolvable references among "
                             f"{[s.name for s in rest]}")
        pending = rest
    return order


def build_defenders(specs: Sequence[DefenderSpec], ctx: BuildContext) -> dict[str, Defense]:
    """Build (train or load) every defender spec, in dependency order.

    Returns ``{name: Defense}`` in the order of ``specs``; parameters are frozen and every
    defense is in eval mode. Training draws from ``ctx.generator(key)`` and goes through
    ``ctx.fit`` (cached by key).

    Example:
        >>> from advgame.models import build_model
        >>> x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 2, (16,))
        >>> ctx = BuildContext(x, y, 2, build_model("mlp", (1, 4, 4), 2, hidden=(8,)))
        >>> ds, _ = parse_strategies([{"name": "clean", "kind": "clean"},
        ...                           {"name": "s", "kind": "smoothing", "sigma": 0.1}],
        ...                          [{"name": "F", "kind": "fgm", "eps": 0.1}])
        >>> sorted(build_defenders(ds, ctx))
        ['clean', 's']
    """
    built: dict[str, Defense] = {}
    models: dict[str, nn.Module] = {}
    keys: dict[str, str] = {}
    for spec in _resolve_order(specs):
        key = spec_key(spec, [keys[d] for d in spec.dependencies()])
        keys[spec.name] = key
        d: Defense
        if isinstance(spec, CleanSpec):
            if spec.path is not None:
                if ctx.load_classifier is None:
                    raise InputError("path", "loading checkpoints is not available here")
                model = ctx.load_classifier(spec.path)
            else:
                model = ctx.base_model
            models[spec.name] = _freeze(model)
            d = ClassifierDefense(spec.name, model, key)
        elif isinstance(spec, AdversarialSpec):
            model = _adversarial_model(spec, key, ctx)
            models[spec.name] = _freeze(model)
            d = ClassifierDefense(spec.name, model, key)
        elif isinstance(spec, ShiftSpec):
            v = _shift_vector(spec, ctx.input_shape, ctx.seed).to(ctx.device)
            d = ShiftDefense(spec.name, models[spec.base], v, key)
        elif isinstance(spec, SmoothingSpec):
            base = models[spec.base]
            if spec.train_epochs > 0:
                base = _noise_trained(spec, key, base, ctx)
            d = SmoothingDefense(spec.name, base, spec.sigma, spec.votes, spec.eot, key)
        elif isinstance(spec, ReformerSpec):
            d = TransformDefense(spec.name, _reformer(spec, key, ctx), models[spec.base], key)
        elif isinstance(spec, MixtureSpec):
            comps = [built[c] for c in spec.components]
            probs = spec.probs or tuple(1.0 / len(comps) for _ in comps)
            d = MixedDefense(spec.name, comps, probs, key)
        else:  # pragma: no cover - parse_strategies only makes the kinds above
            raise InputError("defenders", f"unknown kind {spec.kind!r}")
        built[spec.name] = _freeze(d)  # type: ignore[assignment]
    return {s.name: built[s.name] for s in specs}


def _adversarial_model(spec: AdversarialSpec, key: str, ctx: BuildContext) -> nn.Module:
    model = copy.deepcopy(ctx.base_model) if spec.init == "clean" else ctx.new_classifier(key)
    for p in model.parameters():
        p.requires_grad_(True)
    cfg = ctx.train_config if spec.epochs is None else \
        dataclasses.replace(ctx.train_config, epochs=spec.epochs)
    atk = GradientAttack(spec.name, "pgd" if spec.attack == "pgd" else "fgm", spec.eps,
                         spec.norm, steps=spec.steps)

    def fit(m: nn.Module) -> None:
        g = ctx.generator(key)
        train_against_mixture(m, [atk], [1.0], ctx.x_train, ctx.y_train, cfg,
                              with_clean=spec.with_clean, generator=g)
    return ctx.fit(key, model, fit)


def _noise_trained(spec: SmoothingSpec, key: str, base: nn.Module, ctx: BuildContext
                   ) -> nn.Module:
    """A copy of ``base`` fine-tuned on x + N(0, sigma^2 I) (Cohen et al. 2019, sec. 4)."""
    model = copy.deepcopy(base)
    for p in model.parameters():
        p.requires_grad_(True)
    cfg = dataclasses.replace(ctx.train_config, epochs=spec.train_epochs)

    def fit(m: nn.Module) -> None:
        g = ctx.generator(key)

        def noisy(_m: nn.Module, xb: torch.Tensor, _yb: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(xb.shape, generator=g, dtype=xb.dtype).to(xb.device)
            return xb + spec.sigma * noise
        train(m, ctx.x_train, ctx.y_train, cfg, generator=g, perturb=noisy)
    return _freeze(ctx.fit(key, model, fit))


def _reformer(spec: ReformerSpec, key: str, ctx: BuildContext) -> nn.Module:
    shape = ctx.input_shape
    kind = spec.autoencoder
    if kind == "auto":
        kind = "cnn" if len(shape) == 3 and shape[1] % 2 == 0 and shape[2] % 2 == 0 else "mlp"
    ae = init_parameters(build_autoencoder(kind, shape), ctx.generator("init-" + key))
    ae = ae.to(ctx.device)

    def fit(m: nn.Module) -> None:
        epochs = ctx.train_config.epochs if spec.epochs is None else spec.epochs
        train_autoencoder(m, ctx.x_train, epochs=epochs,
                          batch_size=ctx.train_config.batch_size, lr=ctx.train_config.lr,
                          noise_std=spec.noise, generator=ctx.generator(key))
    return _freeze(ctx.fit(key, ae, fit))


def build_attackers(
    specs: Sequence[AttackerSpec], ctx: BuildContext, defenders: Mapping[str, Defense],
) -> tuple[dict[str, Attack], dict[str, str]]:
    """Build every attacker spec.

    Returns ``({name: Attack}, {name: reason})`` — the second lists the strategies skipped
    because their library (ART, torchattacks) cannot be imported.

    Example:
        >>> from advgame.models import build_model
        >>> x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 2, (16,))
        >>> ctx = BuildContext(x, y, 2, build_model("mlp", (1, 4, 4), 2, hidden=(8,)))
        >>> _, at = parse_strategies([{"name": "clean", "kind": "clean"}],
        ...                          [{"name": "PGD", "kind": "pgd", "eps": 0.1}])
        >>> atks, skipped = build_attackers(at, ctx, {})
        >>> atks["PGD"].adaptive, skipped
        (True, {})
    """
    out: dict[str, Attack] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        deps = [defenders[d].key for d in spec.dependencies()]
        key = spec_key(spec, deps)
        a: Attack
        if isinstance(spec, GradientSpec):
            a = GradientAttack(spec.name, spec.method, spec.eps, spec.norm, steps=spec.steps,
                               step_size=spec.step_size, restarts=spec.restarts, key=key)
        elif isinstance(spec, AttNetSpec):
            xa, ya = ctx.train_subset(spec.train_size)
            a = AttNetAttack(spec.name, spec.eps, arch=spec.arch, hidden=spec.hidden,
                             epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                             x_train=xa, y_train=ya, key=key)
            if spec.path is not None:
                assert isinstance(a, AttNetAttack)
                if ctx.load_state is None:
                    raise InputError("path", "loading AttNet weights is not available here")
                net = a.fresh_net(ctx.input_shape, ctx.generator("init-" + key), ctx.device)
                a = AttNetAttack(spec.name, spec.eps, net=ctx.load_state(spec.path, net),
                                 key=key)
            elif spec.against != "self":
                assert isinstance(a, AttNetAttack)
                target = defenders[spec.against].attack_model()
                net = a.fresh_net(ctx.input_shape, ctx.generator("init-" + key), ctx.device)

                def fit(m: nn.Module, target: nn.Module = target, key: str = key,
                        xa: torch.Tensor = xa, ya: torch.Tensor = ya,
                        spec: AttNetSpec = spec) -> None:
                    defenders[spec.against].set_generator(
                        unit_generator(ctx.seed, "eot-" + key, ctx.device))
                    train_attnet(m, target, xa, ya, spec.eps, epochs=spec.epochs,
                                 batch_size=spec.batch_size, lr=spec.lr,
                                 generator=ctx.generator(key))
                net = ctx.fit(key, net, fit)
                a = AttNetAttack(spec.name, spec.eps, net=net, key=key)
        elif isinstance(spec, TransferSpec):
            inner = GradientAttack(spec.name, spec.method, spec.eps, spec.norm,
                                   steps=spec.steps)
            if spec.surrogate == "independent":
                sur = ctx.new_classifier(key)
                cfg = ctx.train_config if spec.epochs is None else \
                    dataclasses.replace(ctx.train_config, epochs=spec.epochs)

                def fit_sur(m: nn.Module, cfg: TrainConfig = cfg, key: str = key) -> None:
                    train(m, ctx.x_train, ctx.y_train, cfg, generator=ctx.generator(key))
                surrogate: nn.Module = _freeze(ctx.fit(key, sur, fit_sur))
            else:
                surrogate = defenders[spec.surrogate]
            a = TransferAttack(spec.name, surrogate, inner, key=key)
        elif isinstance(spec, StrongSpec):
            a = StrongAttack(spec.name, spec, key=key)
        elif isinstance(spec, LibrarySpec):
            if not library_available(spec.library):
                skipped[spec.name] = f"{spec.library} is not installed"
                continue
            a = LibraryAttack(spec.name, spec.library, spec.attack, spec.eps, spec.norm,
                              params=dict(spec.params), num_classes=ctx.num_classes, key=key)
        else:  # pragma: no cover
            raise InputError("attackers", f"unknown kind {spec.kind!r}")
        out[spec.name] = a
    return out, skipped
