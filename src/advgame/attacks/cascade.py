"""AutoAttack's protocol (Croce & Hein 2020): a cascade of diverse attacks, each run only
on the points that are still robust, giving the worst case per point.

Versions (``auto_attack(..., version=...)``):

* ``"standard"``: APGD-CE -> APGD-T (targeted DLR, 9 target classes) -> FAB-T (9 targets)
  -> Square (5,000 queries), 100 iterations each gradient attack, one restart.
* ``"plus"``: APGD-CE and APGD-DLR with 5 restarts, FAB (untargeted, 5 restarts),
  Square (5 runs of 5,000 queries), APGD-T, FAB-T.
* ``"rand"``: for randomized defenses: APGD-CE and APGD-DLR with the gradient averaged
  over 20 forward passes (expectation over transformation).

Any sequence of attack names from :data:`ATTACKS` is a cascade too
(:func:`run_cascade`). Each stage is a function (model, x, y, eps, norm, generator) ->
x_adv on the still-robust points; a point counts as fooled by a stage when the model
misclassifies the stage's output (checked here, never taken on trust).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from advgame.attacks.apgd import apgd
from advgame.attacks.base import check_attack_args, checked_logits
from advgame.attacks.gradient import fgm, pgd
from advgame.attacks.minimum_norm import cw_l2, fab
from advgame.attacks.score import square
from advgame.errors import InputError
from advgame.models.training import eval_mode
from advgame.progress import progress_bar
from advgame.threat import Norm, parse_norm

Stage = Callable[[nn.Module, torch.Tensor, torch.Tensor, float, Norm, torch.Generator | None],
                 torch.Tensor]


def _cw(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm,
        gen: torch.Generator | None) -> torch.Tensor:
    if norm != "2":
        raise InputError("attacks", "cw is an L2 attack; use it with norm 2")
    return cw_l2(model, x, y).at(x, eps)


#: Attack name -> stage. Names are what ``advgame evaluate --attacks`` and the game accept.
ATTACKS: dict[str, Stage] = {
    "fgm": lambda m, x, y, e, p, g: fgm(m, x, y, e, p, box_aware=True),
    "pgd": lambda m, x, y, e, p, g: pgd(m, x, y, e, p, steps=100, generator=g),
    "apgd-ce": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, generator=g),
    "apgd-dlr": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, loss="dlr", generator=g),
    "apgd-t": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, targeted=True, generator=g),
    "fab": lambda m, x, y, e, p, g: fab(m, x, y, e, p, targeted=False, generator=g),
    "fab-t": lambda m, x, y, e, p, g: fab(m, x, y, e, p, targeted=True, generator=g),
    "square": lambda m, x, y, e, p, g: square(m, x, y, e, p, queries=5000, generator=g),
    "cw": _cw,
    # the "plus" and "rand" variants
    "apgd-ce-5": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, restarts=5, generator=g),
    "apgd-dlr-5": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, loss="dlr", restarts=5,
                                                generator=g),
    "fab-5": lambda m, x, y, e, p, g: fab(m, x, y, e, p, targeted=False, restarts=5,
                                          generator=g),
    "square-5": lambda m, x, y, e, p, g: _repeat(square, 5, m, x, y, e, p, g),
    "apgd-ce-eot": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, eot=20, generator=g),
    "apgd-dlr-eot": lambda m, x, y, e, p, g: apgd(m, x, y, e, p, loss="dlr", eot=20,
                                                  generator=g),
}

VERSIONS: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "plus": ("apgd-ce-5", "apgd-dlr-5", "fab-5", "square-5", "apgd-t", "fab-t"),
    "rand": ("apgd-ce-eot", "apgd-dlr-eot"),
}

#: The stages of :data:`ATTACKS` that only query the model's outputs, never its gradient.
GRADIENT_FREE = frozenset({"square", "square-5"})


def _repeat(attack: Callable[..., torch.Tensor], times: int, m: nn.Module, x: torch.Tensor,
            y: torch.Tensor, e: float, p: Norm, g: torch.Generator | None) -> torch.Tensor:
    """``times`` independent runs; each later run attacks the points still robust."""
    out = x.clone()
    todo = torch.arange(x.shape[0], device=x.device)
    for _ in range(times):
        if todo.numel() == 0:
            break
        xa = attack(m, x[todo], y[todo], e, p, queries=5000, generator=g)
        out[todo] = xa
        with torch.no_grad():
            todo = todo[m(xa).argmax(1) == y[todo]]
    return out


@dataclass(frozen=True)
class StageReport:
    """One stage of a cascade: how many points it attacked, what it left robust."""

    name: str
    attacked: int
    fooled: int
    robust_accuracy: float
    time_s: float
    gradient_free: bool = False


@dataclass(frozen=True)
class CascadeResult:
    """Outcome of a cascade.

    Attributes:
        x_adv: (N, ...) the adversarial input of each fooled point (x for robust points and
            for points misclassified without attack).
        clean: (N,) bool, correct without attack.
        robust: (N,) bool, correct under every stage.
        fooled_by: (N,) int64, index of the first stage that fooled the point; -1 for
            robust points, -2 for points misclassified without attack.
        stages: one :class:`StageReport` per stage, robust accuracy cumulative.
    """

    x_adv: torch.Tensor
    clean: torch.Tensor
    robust: torch.Tensor
    fooled_by: torch.Tensor
    stages: tuple[StageReport, ...]

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean.float().mean())

    @property
    def robust_accuracy(self) -> float:
        return float(self.robust.float().mean())


Stages = str | Sequence[Any]
"""A version name, comma-separated names, or a list of names from :data:`ATTACKS`,
(name, stage) or (name, stage, gradient_free) tuples and :class:`advgame.attacks.Attack`
objects."""


def _attack_stage(attack: Any) -> tuple[str, Stage, bool]:
    """An :class:`advgame.attacks.Attack` as a stage: ``attack.craft(model, x, y,
    generator=g)`` (its own eps and norm, checked by :func:`_stages`)."""
    def stage(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm,
              generator: torch.Generator | None) -> torch.Tensor:
        return attack.craft(model, x, y, generator=generator)
    return str(attack.name), stage, bool(getattr(attack, "gradient_free", False))


def _stages(attacks: Stages, eps: float | None = None,
            norm: Norm | None = None) -> tuple[tuple[str, Stage, bool], ...]:
    """(name, stage, gradient_free) triples: a version, comma-separated names, or a list of
    names, (name, stage[, gradient_free]) tuples (a caller's own stage, e.g. Square with
    fewer queries; gradient-based unless said) and Attack objects (whose threat model must
    be ``eps`` and ``norm`` when given). A name that repeats gets " (2)", " (3)", ..."""
    if isinstance(attacks, str):
        items: Sequence[Any] = (
            VERSIONS[attacks] if attacks in VERSIONS
            else [a.strip() for a in attacks.split(",")])
        if any(not a for a in items):
            raise InputError("attacks", f"an empty attack name in {attacks!r}")
    else:
        items = list(attacks)
    if not items:
        raise InputError("attacks", "give at least one attack")
    unknown = [a for a in items if isinstance(a, str) and a not in ATTACKS]
    if unknown:
        raise InputError("attacks", f"unknown attack(s) {unknown}; choose a version "
                         f"{sorted(VERSIONS)} or names from {sorted(ATTACKS)}")
    out: list[tuple[str, Stage, bool]] = []
    for a in items:
        if isinstance(a, str):
            out.append((a, ATTACKS[a], a in GRADIENT_FREE))
        elif callable(getattr(a, "craft", None)):
            if eps is not None and (abs(a.eps - eps) > 1e-12 or a.norm != norm):
                raise InputError("attacks", f"{a.name} has eps {a.eps:g} (L{a.norm}), the "
                                 f"evaluation eps {eps:g} (L{norm})")
            out.append(_attack_stage(a))
        elif isinstance(a, tuple) and len(a) in (2, 3) and callable(a[1]):
            out.append((str(a[0]), a[1], bool(a[2]) if len(a) == 3 else False))
        else:
            raise InputError("attacks", f"expected a name, a (name, stage) pair or an "
                             f"Attack, got {a!r}")
    if norm is not None and norm != "2" and "cw" in items:
        raise InputError("attacks", "cw is an L2 attack; use it with norm 2")
    seen: dict[str, int] = {}
    for k, (name, stage, free) in enumerate(out):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            out[k] = (f"{name} ({seen[name]})", stage, free)
    return tuple(out)


def check_attacks(attacks: Stages, norm: Norm | str | float) -> tuple[str, ...]:
    """Check a cascade's ``attacks`` for ``norm`` before anything runs (names, versions,
    cw only in L2) and return its stage names.

    Example:
        >>> check_attacks("apgd-ce,square", "inf")
        ('apgd-ce', 'square')
    """
    return tuple(name for name, _, _ in _stages(attacks, None, parse_norm(norm)))


def run_cascade(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    attacks: Stages = "standard",
    generator: torch.Generator | None = None,
    *,
    progress: bool | Callable[[str], None] | None = False,
) -> CascadeResult:
    """Run the stages of ``attacks`` (a version name, a comma-separated string, or a list
    of names from :data:`ATTACKS`, (name, stage) pairs and :class:`advgame.attacks.Attack`
    objects of the same eps and norm) one after the other, each on the points still
    robust.

    Shape: x (N, ...) in [0, 1], y (N,) -> :class:`CascadeResult`.

    ``progress``: ``True`` reports the stages done on stderr, each with the points it
    attacks (:func:`advgame.progress.progress_bar`: a tqdm bar on a terminal, plain lines
    in a log file); a callable is called as ``progress("name: K points")`` before each
    stage; ``False``/``None`` (default): silent.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(6, 1, 2, 2); y = model(x).argmax(1)
        >>> r = run_cascade(model, x, y, 0.5, "inf", ["apgd-ce", "square"],
        ...                 torch.Generator().manual_seed(0))
        >>> [s.name for s in r.stages], r.clean_accuracy
        (['apgd-ce', 'square'], 1.0)
    """
    _stages(attacks)  # names first: an unknown attack is reported before the inputs
    x, p, e = check_attack_args(x, y, eps, norm)
    names = _stages(attacks, e, p)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise InputError("progress", f"must be True, False or a callable, got {progress!r}")
    with eval_mode(model):
        logits = checked_logits(model, x, y)
    clean = logits.argmax(1) == y
    robust = clean.clone()
    fooled_by = torch.where(clean, -1, -2).to(torch.int64)
    x_adv = x.clone()
    reports = []
    with progress_bar(len(names), "cascade", unit="stages", enabled=progress is True) as bar:
        for k, (name, stage, free) in enumerate(names):
            todo = torch.nonzero(robust).squeeze(1)
            t0 = time.perf_counter()
            fooled = 0
            bar.set_postfix_str(f"{name} on {todo.numel()} points")
            if todo.numel() > 0:
                if callable(progress):
                    progress(f"{name}: {todo.numel()} points")
                xa = stage(model, x[todo], y[todo], e, p, generator)
                with eval_mode(model), torch.no_grad():
                    now = model(xa).argmax(1) != y[todo]
                hit = todo[now]
                x_adv[hit] = xa[now]
                robust[hit] = False
                fooled_by[hit] = k
                fooled = int(now.sum())
            reports.append(StageReport(name, int(todo.numel()), fooled,
                                       float(robust.float().mean()), time.perf_counter() - t0,
                                       free))
            bar.update(1)
    return CascadeResult(x_adv, clean, robust, fooled_by, tuple(reports))


def auto_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    version: str = "standard",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AutoAttack: the worst-case x_adv per point over the version's cascade
    (see :func:`run_cascade` for the per-stage report).

    Shape: x (N, ...) in [0, 1], y (N,) -> x_adv (N, ...), inside the eps-ball and the box.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(4, 1, 2, 2); y = model(x).argmax(1)
        >>> x_adv = auto_attack(model, x, y, 0.1, generator=torch.Generator().manual_seed(0))
        >>> x_adv.shape == x.shape
        True
    """
    if version not in VERSIONS:
        raise InputError("version", f"must be one of {sorted(VERSIONS)}, got {version!r}")
    return run_cascade(model, x, y, eps, norm, version, generator).x_adv
