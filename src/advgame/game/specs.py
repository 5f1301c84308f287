"""Specs of the empirical game's pure strategies (SPEC section 3): small frozen dataclasses
(a name and a config) parsed from TOML tables by :func:`parse_strategies`; they hold no
tensors. Built by :mod:`advgame.game.build` into :class:`advgame.defenses.Defense` and
:class:`advgame.attacks.Attack` objects.

Defender kinds: ``clean`` (the trained classifier, or a checkpoint), ``adversarial``
(adversarially trained at eps), ``shift`` (an additive shift v, ||v|| = eps),
``smoothing`` (Gaussian, sigma), ``reformer`` (autoencoder input transform, MagNet),
``preprocess`` (an input-dependent median filter or bit-depth reduction, attacked through
BPDA by default) and ``mixture`` (of other defenders). Attacker kinds: ``fgm`` /
``fgsm`` / ``pgd`` (eps, norm), ``attnet`` (a learned attacker trained against the
defended model, or against a named defender and then fixed), ``transfer`` (examples
crafted on a surrogate model), ``apgd`` / ``square`` / ``fab`` / ``cw`` / ``autoattack``
and adapters ``art`` (Adversarial Robustness Toolbox) and ``torchattacks`` (used when
importable).

Example:
    >>> defenders, attackers = parse_strategies(
    ...     [{"name": "clean", "kind": "clean"}],
    ...     [{"name": "FGSM-0.1", "kind": "fgsm", "eps": 0.1}])
    >>> attackers[0].norm, defenders[0].kind
    ('inf', 'clean')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from advgame.attacks.strategy import LIBRARIES, STRONG_METHODS
from advgame.errors import InputError
from advgame.storage import digest
from advgame.threat import parse_norm
from advgame.validate import check_choice, check_nonnegative, check_positive_int

__all__ = [
    "ATTACKER_KINDS",
    "AdversarialSpec",
    "AttNetSpec",
    "AttackerSpec",
    "CleanSpec",
    "DEFENDER_KINDS",
    "DefenderSpec",
    "GradientSpec",
    "LibrarySpec",
    "MixtureSpec",
    "PreprocessSpec",
    "ReformerSpec",
    "STRONG_KINDS",
    "ShiftSpec",
    "SmoothingSpec",
    "StrategySpec",
    "StrongSpec",
    "TransferSpec",
    "parse_strategies",
    "spec_key",
]


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
        _eps("eps", self.eps, self.norm)
        check_choice("attack", self.attack, ("fgm", "fgsm", "pgd"))
        check_choice("init", self.init, ("clean", "scratch"))
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
        _eps("eps", self.eps, self.norm)
        check_choice("direction", self.direction, ("random", "plus", "minus"))
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
        check_choice("autoencoder", self.autoencoder, ("auto", "cnn", "mlp"))
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs, minimum=0)
        check_nonnegative("noise", self.noise)

    def dependencies(self) -> tuple[str, ...]:
        return (self.base,)


@dataclass(frozen=True, kw_only=True)
class PreprocessSpec(DefenderSpec):
    """Input-dependent preprocessing in front of ``base`` (Xu et al. 2018): ``transform`` =
    ``median`` (a ``size`` x ``size`` median filter) or ``bit-depth`` (quantization to
    ``bits`` bits). Unlike S1's shift it depends on the test point.

    ``bpda`` (default true): the white-box attackers differentiate the transform as the
    identity (BPDA, Athalye et al. 2018), the adaptive attack on a non-differentiable
    transform; false: through the transform as it is, whose gradient is masked (zero for
    the quantizer) -- what the game's masking check and a gradient-free attacker expose.
    An attacker's own ``bpda`` (gradient and strong kinds) overrides it, so that one game
    can pit PGD through the transform and BPDA-PGD against the same defender.
    """

    kind: ClassVar[str] = "preprocess"
    transform: str
    base: str = "clean"
    size: int = 3
    bits: int = 3
    bpda: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("transform", self.transform, ("median", "bit-depth"))
        check_positive_int("size", self.size, minimum=3)
        if self.size % 2 == 0:
            raise InputError("size", f"the median window must be odd, got {self.size}")
        check_positive_int("bits", self.bits)
        if self.bits > 8:
            raise InputError("bits", f"must be in 1..8, got {self.bits}")
        if not isinstance(self.bpda, bool):
            raise InputError("bpda", f"must be true or false, got {self.bpda!r}")

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
        _eps("eps", self.eps, self.norm)


def _bpda(value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise InputError("bpda", f"must be true or false, got {value!r}")


def _without_unset_bpda(d: dict[str, Any]) -> dict[str, Any]:
    """An unset ``bpda`` stays out of the spec's dict (and so of its key and seeds: a
    spec written before the field existed keeps its key)."""
    if d.get("bpda") is None:
        d.pop("bpda", None)
    return d


@dataclass(frozen=True, kw_only=True)
class GradientSpec(AttackerSpec):
    """FGM (one step of length eps; FGSM in L-inf) or PGD (``steps`` steps of
    ``step_size``, default 2.5 eps / steps, random start; per example the first of
    ``restarts`` runs that fools the target). ``bpda``: how it meets a ``preprocess``
    defender's transform: true BPDA (BPDA-PGD), false through the transform as it is,
    unset as the defender's own ``bpda`` says."""

    kind: ClassVar[str] = "pgd"
    method: str = "pgd"
    steps: int = 10
    step_size: float | None = None
    restarts: int = 1
    bpda: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _bpda(self.bpda)
        check_choice("method", self.method, ("fgm", "pgd"))
        check_positive_int("steps", self.steps)
        check_positive_int("restarts", self.restarts)
        if self.step_size is not None:
            check_nonnegative("step_size", self.step_size)

    def as_dict(self) -> dict[str, Any]:
        return _without_unset_bpda({**super().as_dict(), "kind": self.method})


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
        check_choice("arch", self.arch, ("mlp", "cnn"))
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
        check_choice("method", self.method, ("fgm", "pgd"))
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
        check_choice("library", self.library, LIBRARIES)
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
    against the defended model: kind ``apgd`` (``loss`` ce or dlr, default dlr when
    ``targeted`` = APGD-T, else ce; ``targeted``, ``steps``, ``restarts``), ``square``
    (``queries``, gradient-free), ``fab`` (``targeted``, default true = FAB-T,
    ``steps``), ``cw`` (L2 only: Carlini-Wagner, reported at eps) and
    ``autoattack`` (the cascade of ``version``: standard, plus or rand). ``bpda`` as for
    the gradient attacks."""

    kind: ClassVar[str] = "apgd"
    method: str = "apgd"
    loss: str | None = None
    targeted: bool | None = None
    steps: int = 100
    restarts: int = 1
    queries: int = 5000
    version: str = "standard"
    bpda: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _bpda(self.bpda)
        check_choice("method", self.method, STRONG_KINDS)
        if self.loss is None:  # APGD-T's targeted DLR, else cross-entropy
            object.__setattr__(self, "loss", "dlr" if self.targeted else "ce")
        check_choice("loss", self.loss, ("ce", "dlr"))
        for name in ("steps", "restarts", "queries"):
            check_positive_int(name, getattr(self, name))
        from advgame.attacks.cascade import VERSIONS

        if self.version not in VERSIONS:
            raise InputError("version", f"must be one of {sorted(VERSIONS)}, got "
                             f"{self.version!r}")
        if self.method == "cw" and parse_norm(self.norm) != "2":
            raise InputError("norm", "cw is an L2 attack: set norm = 2")

    def as_dict(self) -> dict[str, Any]:
        return _without_unset_bpda({**super().as_dict(), "kind": self.method})


STRONG_KINDS = STRONG_METHODS


#: Defender kind -> spec class.
DEFENDER_KINDS: dict[str, type[DefenderSpec]] = {
    "clean": CleanSpec, "adversarial": AdversarialSpec, "shift": ShiftSpec,
    "smoothing": SmoothingSpec, "reformer": ReformerSpec, "preprocess": PreprocessSpec,
    "mixture": MixtureSpec,
}
#: Attacker kind -> spec class (``fgm``/``fgsm``/``pgd`` share :class:`GradientSpec`).
ATTACKER_KINDS: dict[str, type[AttackerSpec]] = {
    "fgm": GradientSpec, "fgsm": GradientSpec, "pgd": GradientSpec, "attnet": AttNetSpec,
    "transfer": TransferSpec, "art": LibrarySpec, "torchattacks": LibrarySpec,
    **{k: StrongSpec for k in STRONG_KINDS},
}


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
