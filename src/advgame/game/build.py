"""Building the game's strategies from specs: :func:`build_defenders` and
:func:`build_attackers` turn :mod:`advgame.game.specs` into :class:`advgame.defenses.
Defense` and :class:`advgame.attacks.Attack` objects, training what must be trained.

Parameters of fresh networks are initialized from an explicit generator
(:func:`advgame.rng.init_parameters`), never from the global RNG. Trained parts are
obtained through a ``fit(key, module, train_fn)`` callback so that the caller decides where
weights are cached (``advgame.experiments.game`` stores them on disk).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advgame.attacks import strategy
from advgame.attacks.learned import train_attnet
from advgame.data import stratified_indices
from advgame.defenses.base import (
    ClassifierDefense,
    Defense,
    MixedDefense,
    ShiftDefense,
    SmoothingDefense,
    TransformDefense,
)
from advgame.defenses.preprocessing import preprocessing
from advgame.defenses.transforms import build_autoencoder, train_autoencoder
from advgame.errors import InputError
from advgame.game.specs import (
    AdversarialSpec,
    AttackerSpec,
    AttNetSpec,
    CleanSpec,
    DefenderSpec,
    GradientSpec,
    LibrarySpec,
    MixtureSpec,
    PreprocessSpec,
    ReformerSpec,
    ShiftSpec,
    SmoothingSpec,
    StrongSpec,
    TransferSpec,
    spec_key,
)
from advgame.models import TrainConfig, build_model, frozen, train
from advgame.rng import init_parameters, unit_generator
from advgame.threat import parse_norm

__all__ = [
    "BuildContext",
    "Fit",
    "build_attackers",
    "build_defenders",
    "fit_in_memory",
    "train_against_mixture",
]


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
    attacks: Sequence[strategy.Attack],
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
        >>> atk = strategy.GradientAttack("F", "fgm", 0.1)
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
        >>> from advgame.game.specs import parse_strategies
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
            models[spec.name] = frozen(model)
            d = ClassifierDefense(spec.name, model, key)
        elif isinstance(spec, AdversarialSpec):
            model = _adversarial_model(spec, key, ctx)
            models[spec.name] = frozen(model)
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
        elif isinstance(spec, PreprocessSpec):
            t = preprocessing(spec.transform,
                              spec.size if spec.transform == "median" else spec.bits)
            d = TransformDefense(spec.name, t, models[spec.base], key, bpda=spec.bpda)
        elif isinstance(spec, MixtureSpec):
            comps = [built[c] for c in spec.components]
            probs = spec.probs or tuple(1.0 / len(comps) for _ in comps)
            d = MixedDefense(spec.name, comps, probs, key)
        else:  # pragma: no cover - parse_strategies only makes the kinds above
            raise InputError("defenders", f"unknown kind {spec.kind!r}")
        built[spec.name] = frozen(d)  # type: ignore[assignment]
    return {s.name: built[s.name] for s in specs}


def _adversarial_model(spec: AdversarialSpec, key: str, ctx: BuildContext) -> nn.Module:
    model = copy.deepcopy(ctx.base_model) if spec.init == "clean" else ctx.new_classifier(key)
    for p in model.parameters():
        p.requires_grad_(True)
    cfg = ctx.train_config if spec.epochs is None else \
        dataclasses.replace(ctx.train_config, epochs=spec.epochs)
    atk = strategy.GradientAttack(spec.name, "pgd" if spec.attack == "pgd" else "fgm",
                                  spec.eps, spec.norm, steps=spec.steps)

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
    return frozen(ctx.fit(key, model, fit))


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
    return frozen(ctx.fit(key, ae, fit))


def build_attackers(
    specs: Sequence[AttackerSpec], ctx: BuildContext, defenders: Mapping[str, Defense],
) -> tuple[dict[str, strategy.Attack], dict[str, str]]:
    """Build every attacker spec.

    Returns ``({name: Attack}, {name: reason})`` — the second lists the strategies skipped
    because their library (ART, torchattacks) cannot be imported.

    Example:
        >>> from advgame.game.specs import parse_strategies
        >>> from advgame.models import build_model
        >>> x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 2, (16,))
        >>> ctx = BuildContext(x, y, 2, build_model("mlp", (1, 4, 4), 2, hidden=(8,)))
        >>> _, at = parse_strategies([{"name": "clean", "kind": "clean"}],
        ...                          [{"name": "PGD", "kind": "pgd", "eps": 0.1}])
        >>> atks, skipped = build_attackers(at, ctx, {})
        >>> atks["PGD"].adaptive, skipped
        (True, {})
    """
    out: dict[str, strategy.Attack] = {}
    skipped: dict[str, str] = {}
    for spec in specs:
        deps = [defenders[d].key for d in spec.dependencies()]
        key = spec_key(spec, deps)
        a: strategy.Attack
        if isinstance(spec, GradientSpec):
            a = strategy.GradientAttack(spec.name, spec.method, spec.eps, spec.norm,
                                        steps=spec.steps, step_size=spec.step_size,
                                        restarts=spec.restarts, key=key, bpda=spec.bpda)
        elif isinstance(spec, AttNetSpec):
            xa, ya = ctx.train_subset(spec.train_size)
            a = strategy.AttNetAttack(spec.name, spec.eps, arch=spec.arch, hidden=spec.hidden,
                                      epochs=spec.epochs, lr=spec.lr, batch_size=spec.batch_size,
                                      x_train=xa, y_train=ya, key=key)
            if spec.path is not None:
                assert isinstance(a, strategy.AttNetAttack)
                if ctx.load_state is None:
                    raise InputError("path", "loading AttNet weights is not available here")
                net = a.fresh_net(ctx.input_shape, ctx.generator("init-" + key), ctx.device)
                a = strategy.AttNetAttack(spec.name, spec.eps,
                                          net=ctx.load_state(spec.path, net), key=key)
            elif spec.against != "self":
                assert isinstance(a, strategy.AttNetAttack)
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
                a = strategy.AttNetAttack(spec.name, spec.eps, net=net, key=key)
        elif isinstance(spec, TransferSpec):
            inner = strategy.GradientAttack(spec.name, spec.method, spec.eps, spec.norm,
                                            steps=spec.steps)
            if spec.surrogate == "independent":
                sur = ctx.new_classifier(key)
                cfg = ctx.train_config if spec.epochs is None else \
                    dataclasses.replace(ctx.train_config, epochs=spec.epochs)

                def fit_sur(m: nn.Module, cfg: TrainConfig = cfg, key: str = key) -> None:
                    train(m, ctx.x_train, ctx.y_train, cfg, generator=ctx.generator(key))
                surrogate: nn.Module = frozen(ctx.fit(key, sur, fit_sur))
            else:
                surrogate = defenders[spec.surrogate]
            a = strategy.TransferAttack(spec.name, surrogate, inner, key=key)
        elif isinstance(spec, StrongSpec):
            a = strategy.StrongAttack(spec.name, spec.eps, spec.norm, method=spec.method,
                                      loss=spec.loss, targeted=spec.targeted, steps=spec.steps,
                                      restarts=spec.restarts, queries=spec.queries,
                                      version=spec.version, key=key, bpda=spec.bpda)
        elif isinstance(spec, LibrarySpec):
            if not strategy.library_available(spec.library):
                skipped[spec.name] = f"{spec.library} is not installed"
                continue
            a = strategy.LibraryAttack(spec.name, spec.library, spec.attack, spec.eps, spec.norm,
                                       params=dict(spec.params), num_classes=ctx.num_classes,
                                       key=key)
        else:  # pragma: no cover
            raise InputError("attackers", f"unknown kind {spec.kind!r}")
        out[spec.name] = a
    return out, skipped
