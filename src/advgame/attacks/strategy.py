"""The Attack protocol: an attacker strategy that crafts adversarial examples against a
target module passed at call time (``craft(target, x, y, generator=...)``).

An *adaptive* attack depends on the target (white box: gradient attacks, APGD, Square,
FAB, CW, the AutoAttack cascade, library adapters); a fixed one (transfer examples from a
surrogate, a trained AttNet) is the same map for every defender. ``perturber`` gives the
map a defender trains against. Every random draw comes from an explicit generator.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from advgame.attacks.apgd import LOSSES
from advgame.attacks.cascade import VERSIONS
from advgame.attacks.gradient import attack_loop
from advgame.attacks.learned import attnet_attack, attnet_examples, build_attnet, train_attnet
from advgame.errors import InputError
from advgame.models import frozen
from advgame.models.training import module_modes, restore_modes
from advgame.rng import init_parameters
from advgame.threat import Norm, clip_box, parse_norm, project
from advgame.validate import check_choice, check_positive_int

__all__ = [
    "DeployedModel",
    "LIBRARIES",
    "library_available",
    "AttNetAttack",
    "Attack",
    "GradientAttack",
    "LibraryAttack",
    "Perturber",
    "STRONG_METHODS",
    "StrongAttack",
    "TransferAttack",
]


# ----------------------------------------------------------------------------- attacks

Perturber = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]



@runtime_checkable
class DeployedModel(Protocol):
    """What an attack needs of a defense (:class:`advgame.defenses.Defense` is one): the
    module white-box attacks differentiate, and a generator for its randomness."""

    def set_generator(self, generator: torch.Generator | None) -> None: ...

    def attack_model(self, bpda: bool | None = None) -> nn.Module: ...


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
        gradient_free: whether ``craft`` only queries the target's outputs (never its
            gradient); the gradient-masking checks compare such attacks with the others.
        bpda: how the attack meets a defense's input transform (:meth:`against`): True
            BPDA (the transform differentiated as the identity), False through it as it
            is, None (default) as the defense says.
    """

    adaptive: bool = True
    gradient_free: bool = False
    bpda: bool | None = None

    def __init__(self, name: str, eps: float, norm: Norm | str, key: str | None = None
                 ) -> None:
        self.name = name
        self.key = key or name
        self.eps = float(eps)
        self.norm: Norm = parse_norm(norm)

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def against(self, defense: DeployedModel) -> nn.Module:
        """The module this attack differentiates to attack ``defense``: its
        ``attack_model`` with the attack's :attr:`bpda` choice."""
        return defense.attack_model(bpda=self.bpda)

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
             y: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """``fn`` on batches of ``batch_size`` rows (None: all rows at once), concatenated."""
    if batch_size is None:
        return fn(x, y)
    parts = [fn(x[i:i + batch_size], y[i:i + batch_size])
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts) if parts else x.clone()


class GradientAttack(Attack):
    """FGM / PGD (the one loop of :mod:`advgame.attacks.gradient`) against the target.

    PGD with ``restarts`` > 1 keeps, per example, the first run that fools the target.
    ``box_aware`` (L2): exact steps in ball ∩ box (:func:`advgame.attacks.fgm`).
    ``batch_size``: rows per call of the loop (None: all at once). ``bpda``: see
    :attr:`Attack.bpda` (BPDA-PGD is ``GradientAttack(..., "pgd", ..., bpda=True)``).

    Example:
        >>> atk = GradientAttack("FGSM", "fgm", 0.1, "inf")
        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> x = torch.rand(3, 1, 2, 2)
        >>> bool(((atk.craft(f, x, torch.tensor([0, 1, 0])) - x).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(self, name: str, method: str, eps: float, norm: Norm | str = "inf", *,
                 steps: int = 10, step_size: float | None = None, restarts: int = 1,
                 box_aware: bool = False, batch_size: int | None = 500,
                 key: str | None = None, bpda: bool | None = None) -> None:
        super().__init__(name, eps, norm, key)
        self.bpda = bpda
        if method not in ("fgm", "pgd"):
            raise InputError("method", f"must be fgm or pgd, got {method!r}")
        self.method = method
        self.box_aware = bool(box_aware)
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
                                 random_start=self.method == "pgd", generator=generator,
                                 box_aware=self.box_aware)
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


#: StrongAttack's methods.
STRONG_METHODS = ("apgd", "square", "fab", "cw", "autoattack")


class StrongAttack(Attack):
    """APGD, Square, FAB, CW or the AutoAttack cascade against the
    target, white box; the generator drives their random starts and searches.

    ``method``: one of :data:`STRONG_METHODS`. ``loss`` (APGD): ``"ce"`` or ``"dlr"``; None:
    ``"dlr"`` when ``targeted`` (APGD-T), else ``"ce"``. ``targeted``: APGD-T / FAB-T (None:
    untargeted APGD, targeted FAB). ``cw`` is an L2 attack. Square is ``gradient_free``.
    ``bpda``: see :attr:`Attack.bpda`.

    Example:
        >>> atk = StrongAttack("APGD", 0.1, "inf", method="apgd", steps=5)
        >>> f = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(3, 1, 2, 2)
        >>> bool(((atk.craft(f, x, f(x).argmax(1)) - x).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(self, name: str, eps: float, norm: Norm | str = "inf", *,
                 method: str = "apgd", loss: str | None = None,
                 targeted: bool | None = None, steps: int = 100, restarts: int = 1,
                 queries: int = 5000, version: str = "standard",
                 batch_size: int | None = 500, key: str | None = None,
                 bpda: bool | None = None) -> None:
        super().__init__(name, eps, norm, key)
        self.bpda = bpda
        check_choice("method", method, STRONG_METHODS)
        if loss is not None:
            check_choice("loss", loss, LOSSES)
        check_choice("version", version, tuple(VERSIONS))
        for arg, val in (("steps", steps), ("restarts", restarts), ("queries", queries)):
            check_positive_int(arg, val)
        if batch_size is not None:
            check_positive_int("batch_size", batch_size)
        if method == "cw" and self.norm != "2":
            raise InputError("norm", "cw is an L2 attack: use norm 2")
        self.gradient_free = method == "square"
        self.method, self.loss, self.targeted = method, loss, targeted
        self.steps, self.restarts, self.queries = steps, restarts, queries
        self.version, self.batch_size = version, batch_size

    def craft(self, target: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              generator: torch.Generator | None = None) -> torch.Tensor:
        from advgame.attacks import apgd, auto_attack, cw_l2, fab, square

        s, e, p = self, self.eps, self.norm

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
        self.net = frozen(net) if net is not None else None
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
        return frozen(net)

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
            was = module_modes(model)
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
                restore_modes(was)
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
        if isinstance(sur, DeployedModel):  # a (randomized) Defense: attack its EOT model
            sur.set_generator(g)
            sur = sur.attack_model()
        return self.inner.craft(sur, x, y, generator=g)


#: Modules of the attack libraries the adapters wrap.
LIBRARIES: dict[str, str] = {"art": "art.attacks.evasion", "torchattacks": "torchattacks"}


def library_available(library: str) -> bool:
    """Whether the attack library (``art`` or ``torchattacks``) can be imported."""
    return importlib.util.find_spec(library) is not None


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
        was = module_modes(target)
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
            restore_modes(was)
        return self._in_ball(x, x_adv)
