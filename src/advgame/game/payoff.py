"""The payoff matrix of the empirical game, computed from real defenses and attacks.

This is the torch side of :mod:`advgame.game` (the solvers stay numpy-only; import this
module explicitly, ``advgame.game`` does not).

For defender strategies D_1..D_m (rows, the maximizer) and attacker strategies
A_1..A_n (columns), on test points (x_k, y_k), k = 1..N,

    success[i, j, k] = 1[ D_i.predict(A_j(D_i, x_k, y_k)) != y_k ],
    payoff[i, j]     = 1 - mean_k success[i, j, k]            (defender accuracy),

where the attack A_j is computed against the *defended* model D_i (white box;
``D_i.attack_model()`` is the expectation over transformation for randomized defenses),
unless A_j is a fixed map (a transfer attack, a trained AttNet), which is crafted once and
replayed against every row. The per-example success flags are kept, so that the attacker
who runs a *set* S of attacks and keeps any success has, per example, the OR of their
flags (:func:`worst_case`; AutoAttack's worst case):

    worst_case_accuracy[i] = 1 - mean_k OR_(j in S) success[i, j, k]   (<= min_j payoff[i, j]).

Every cell is computed once: :class:`CellEvaluator` looks a cell up in a ``store`` (any
object with ``get(key)`` / ``put(key, value)``, e.g.
:class:`advgame.experiments.runtime.UnitStore`) under a key made of both strategies' config
hashes, and computes and stores it only when absent, so an interrupted computation
resumes. Each cell draws from its own generator (seeded by the run seed and the cell key),
so a resumed run gives the same matrix as an uninterrupted one.

A mixed defense p is deployed as :class:`advgame.defenses.MixedDefense`;
:func:`evaluate_mixed_defense` measures it three ways: the expected payoff p^T A[:, j]; the
deployed module answering with one component per query (for adaptive attacks the attacker
sees the drawn component: the game's semantics); and an adaptive attacker who does not see
the draw and attacks the mixture's expectation (EOT) — plus, for gradient attacks, a naive
attacker differentiating the deployed module (one random component per forward pass).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from advgame.attacks.strategy import GradientAttack
    >>> from advgame.defenses.base import ClassifierDefense
    >>> f = ClassifierDefense("f", nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    >>> x, y = torch.rand(10, 1, 2, 2), torch.randint(0, 2, (10,))
    >>> m = compute_payoff({"f": f}, {"FGSM": GradientAttack("FGSM", "fgm", 0.1)}, x, y)
    >>> m.accuracy.shape, m.success.shape
    ((1, 1), torch.Size([1, 1, 10]))
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from advgame import distributed
from advgame.attacks.strategy import Attack, GradientAttack
from advgame.defenses.base import Defense, MixedDefense
from advgame.errors import InputError
from advgame.rng import unit_generator
from advgame.validate import check_images, check_labels

__all__ = [
    "Cell",
    "CellEvaluator",
    "CellStore",
    "MemoryStore",
    "MixedDefenseEvaluation",
    "PayoffMatrix",
    "compute_payoff",
    "decode_flags",
    "encode_flags",
    "evaluate_mixed_defense",
    "worst_case",
    "worst_case_accuracy",
]


# ----------------------------------------------------------------------------- storage


class CellStore(Protocol):
    """Where finished cells live: ``get(key)`` -> stored JSON value or None; ``put``."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> Any: ...


class MemoryStore:
    """A dict-backed :class:`CellStore` that counts its writes (for tests and in-memory runs).

    Example:
        >>> s = MemoryStore(); _ = s.put("a", 1); (s.get("a"), s.get("b"), s.puts)
        (1, None, 1)
    """

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.puts = 0

    def get(self, key: str) -> Any | None:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> Any:
        self.data[key] = value
        self.puts += 1
        return value


def encode_flags(flags: torch.Tensor) -> str:
    """Pack a (N,) bool tensor into a short ASCII string (bits, base64).

    Example:
        >>> t = torch.tensor([True, False, True])
        >>> bool((decode_flags(encode_flags(t), 3) == t).all())
        True
    """
    bits = np.packbits(flags.detach().cpu().numpy().astype(bool))
    return base64.b64encode(bits.tobytes()).decode("ascii")


def decode_flags(text: str, n: int) -> torch.Tensor:
    """Inverse of :func:`encode_flags`: (n,) bool tensor on the CPU."""
    bits = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=np.uint8)
    return torch.from_numpy(np.unpackbits(bits)[:n].astype(bool))


# ----------------------------------------------------------------------------- worst case


def worst_case(success: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-example worst case over a set of attacks: the OR of their success flags.

    Shape: (S, N) bool (or a sequence of S tensors (N,)) -> (N,) bool; an example is lost
    if any attack of the set fools the defender on it.

    Example:
        >>> worst_case([torch.tensor([True, False, False]), torch.tensor([False, False, True])])
        tensor([ True, False,  True])
    """
    flags = torch.stack(list(success)) if not isinstance(success, torch.Tensor) else success
    if flags.ndim != 2 or flags.shape[0] == 0:
        raise InputError("success", f"must be (S >= 1, N) flags, got shape {tuple(flags.shape)}")
    return flags.bool().any(dim=0)


def worst_case_accuracy(success: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """1 - mean of :func:`worst_case`: accuracy against the attacker who runs every attack.

    Example:
        >>> worst_case_accuracy(torch.tensor([[True, False, False, False],
        ...                                   [False, False, True, False]]))
        0.5
    """
    return 1.0 - float(worst_case(success).float().mean())


# ----------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Cell:
    """One evaluated (defender, attacker) pair.

    Attributes:
        accuracy: defender accuracy on the N test points (the payoff).
        success: (N,) bool, the attack fooled the defender on example k.
        seconds: time its computation took (as stored when it was first computed).
    """

    accuracy: float
    success: torch.Tensor
    seconds: float


class CellEvaluator:
    """Computes payoff cells once each, against a fixed test set, through a store.

    ``cell(defense, attack)`` -> :class:`Cell`: read from ``store`` under
    ``cell_key(defense, attack)``, or computed (attack crafted against
    ``defense.attack_model()`` with the cell's own generator, then the defense's deployed
    ``predict``), stored and returned. Fixed (non-adaptive) attacks are crafted once per
    evaluator and replayed against every defense. ``computed`` counts the cells computed
    (not read) by this evaluator.

    Args:
        x: (N, ...) test inputs in [0, 1]. y: (N,) labels.
        store: a :class:`CellStore` (default: a fresh :class:`MemoryStore`).
        seed: run seed (cell generators are ``unit_generator(seed, key, x.device)``).
        tag: extra text in every key (e.g. a hash of the test set).

    Example:
        >>> from torch import nn
        >>> from advgame.attacks.strategy import GradientAttack
        >>> from advgame.defenses.base import ClassifierDefense
        >>> ev = CellEvaluator(torch.rand(6, 1, 2, 2), torch.randint(0, 2, (6,)))
        >>> d = ClassifierDefense("f", nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> a = GradientAttack("FGSM", "fgm", 0.1)
        >>> c1 = ev.cell(d, a); c2 = ev.cell(d, a)
        >>> ev.computed, c1.accuracy == c2.accuracy
        (1, True)
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, store: CellStore | None = None,
                 seed: int = 0, tag: str = "") -> None:
        check_images("x", x)
        check_labels("y", y, x.shape[0])
        self.x, self.y = x, y
        self.store: CellStore = store if store is not None else MemoryStore()
        self.seed = int(seed)
        self.tag = tag or f"n{x.shape[0]}"
        self.computed = 0
        self._memo: dict[str, Cell] = {}
        self._fixed: dict[str, torch.Tensor] = {}

    def cell_key(self, defense: Defense, attack: Attack) -> str:
        """The store key of a cell: both strategies' keys and the test-set tag."""
        return f"cell-{self.tag}-{defense.key}-{attack.key}"

    def examples(self, attack: Attack, defense: Defense | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """The adversarial test inputs of ``attack`` (against ``defense`` when adaptive)."""
        if not attack.adaptive:
            if attack.key not in self._fixed:
                g = unit_generator(self.seed, f"craft-{self.tag}-{attack.key}", self.x.device)
                target = attack.against(defense) if defense is not None else torch.nn.Identity()
                self._fixed[attack.key] = attack.craft(target, self.x, self.y, generator=g)
            return self._fixed[attack.key]
        if defense is None:
            raise InputError("defense", f"the adaptive attack {attack.name!r} needs a target")
        return attack.craft(attack.against(defense), self.x, self.y, generator=generator)

    def cell(self, defense: Defense, attack: Attack) -> Cell:
        key = self.cell_key(defense, attack)
        if key in self._memo:
            return self._memo[key]
        got = self.store.get(key)
        n = self.x.shape[0]
        if isinstance(got, dict) and got.get("n") == n and "success" in got:
            c = Cell(float(got["accuracy"]), decode_flags(got["success"], n),
                     float(got.get("seconds", 0.0)))
        else:
            t0 = time.perf_counter()
            g = unit_generator(self.seed, key, self.x.device)
            defense.set_generator(g)
            x_adv = self.examples(attack, defense, g)
            pred = defense.predict(x_adv, g)
            success = (pred != self.y).cpu()
            c = Cell(1.0 - float(success.float().mean()), success, time.perf_counter() - t0)
            self.store.put(key, {"defender": defense.name, "attacker": attack.name,
                                 "accuracy": c.accuracy, "n": n,
                                 "success": encode_flags(success), "seconds": c.seconds})
            self.computed += 1
        self._memo[key] = c
        return c


# ----------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class PayoffMatrix:
    """The payoff matrix with its per-example flags.

    Attributes:
        defenders: row names (m). attackers: column names (n).
        accuracy: (m, n) defender accuracy (the payoff, rows maximize).
        success: (m, n, N) bool attack-success flags per test example.
        seconds: (m, n) time each cell took when it was computed.
    """

    defenders: tuple[str, ...]
    attackers: tuple[str, ...]
    accuracy: np.ndarray
    success: torch.Tensor
    seconds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def worst_case_accuracy(self, attackers: Sequence[str] | None = None) -> np.ndarray:
        """(m,) accuracy of each defender when every attack in ``attackers`` (default all)
        is run and any success counts (OR of the flags)."""
        cols = [self.attackers.index(a) for a in (attackers or self.attackers)]
        return np.array([worst_case_accuracy(self.success[i, cols])
                         for i in range(len(self.defenders))])

    def column(self, attacker: str) -> np.ndarray:
        """(m,) payoffs of one attacker against every defender."""
        return self.accuracy[:, self.attackers.index(attacker)]

    def submatrix(self, defenders: Sequence[str], attackers: Sequence[str]) -> PayoffMatrix:
        """The game restricted to the given strategies (in the given order)."""
        r = [self.defenders.index(d) for d in defenders]
        c = [self.attackers.index(a) for a in attackers]
        return PayoffMatrix(tuple(defenders), tuple(attackers), self.accuracy[np.ix_(r, c)],
                            self.success[r][:, c], self.seconds[np.ix_(r, c)]
                            if self.seconds.size else self.seconds)


def _share_cells(
    ev: CellEvaluator, defenses: Mapping[str, Defense], attacks: Mapping[str, Attack],
    pairs: Sequence[tuple[str, str]],
    progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None,
) -> None:
    """Under torchrun: each rank computes the cells ``pairs[rank::world]`` (each seeded by
    its own key, so the process does not matter), then every rank stores every cell."""
    mine = distributed.my_units(list(pairs))
    it: Iterable[Any] = mine if progress is None else progress(
        mine, distributed.label("payoff cells"), len(mine))
    local: dict[str, Any] = {}
    for d, a in it:
        key = ev.cell_key(defenses[d], attacks[a])
        c = ev.cell(defenses[d], attacks[a])
        local[key] = {"defender": d, "attacker": a, "accuracy": c.accuracy,
                      "n": ev.x.shape[0], "success": encode_flags(c.success),
                      "seconds": c.seconds}
    for key, value in distributed.gather_units(local).items():
        if ev.store.get(key) is None:
            ev.store.put(key, value)


def compute_payoff(
    defenses: Mapping[str, Defense],
    attacks: Mapping[str, Attack],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    store: CellStore | None = None,
    seed: int = 0,
    evaluator: CellEvaluator | None = None,
    progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
) -> PayoffMatrix:
    """Evaluate every (defender, attacker) pair: defender accuracy and per-example flags.

    Cells already in ``store`` are read, the others computed and stored (see
    :class:`CellEvaluator`); an ``evaluator`` may be passed to share its cache.

    Shapes: x (N, ...) in [0, 1], y (N,) -> :class:`PayoffMatrix` with accuracy
    (len(defenses), len(attacks)) and success (len(defenses), len(attacks), N).

    Example:
        >>> from torch import nn
        >>> from advgame.attacks.strategy import GradientAttack
        >>> from advgame.defenses.base import ClassifierDefense
        >>> f = ClassifierDefense("f", nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        >>> atk = {e: GradientAttack(e, "fgm", float(e)) for e in ("0.0", "0.5")}
        >>> m = compute_payoff({"f": f}, atk, torch.rand(8, 1, 2, 2), torch.zeros(8).long())
        >>> bool(m.accuracy[0, 1] <= m.accuracy[0, 0])
        True
    """
    if not defenses or not attacks:
        raise InputError("defenses" if not defenses else "attacks", "must not be empty")
    ev = evaluator or CellEvaluator(x, y, store=store, seed=seed)
    names_d, names_a = list(defenses), list(attacks)
    pairs = [(d, a) for d in names_d for a in names_a]
    if distributed.world_size() > 1:
        _share_cells(ev, defenses, attacks, pairs, progress)
    it: Iterable[Any] = pairs if progress is None else progress(pairs, "payoff cells",
                                                                len(pairs))
    cells: dict[tuple[str, str], Cell] = {}
    for d, a in it:
        cells[(d, a)] = ev.cell(defenses[d], attacks[a])
    acc = np.array([[cells[(d, a)].accuracy for a in names_a] for d in names_d])
    sec = np.array([[cells[(d, a)].seconds for a in names_a] for d in names_d])
    success = torch.stack([torch.stack([cells[(d, a)].success for a in names_a])
                           for d in names_d])
    return PayoffMatrix(tuple(names_d), tuple(names_a), acc, success, sec)


# ----------------------------------------------------------------------------- mixtures


@dataclass(frozen=True)
class MixedDefenseEvaluation:
    """A deployed mixed defense against one attacker strategy (accuracies in [0, 1]).

    Attributes:
        attacker: the attacker strategy's name. adaptive: whether it depends on the target.
        expected: sum_i p_i payoff[i, j], the mixed strategy's expected payoff.
        sampled: accuracy of the deployed module, one component drawn per query; for an
            adaptive attack the attack is the one computed against the drawn component
            (the attacker sees the draw, as in the game). Its expectation is ``expected``.
        sampled_se: binomial standard error of ``sampled``, sqrt(a (1 - a) / N).
        eot: adaptive attack computed against the mixture's expectation
            log sum_i p_i softmax(f_i(x)) (the attacker does not see the draw), then
            answered by the deployed module; None for fixed attacks (equal to ``sampled``).
            For a single component this is its payoff cell (the cell's attack is EOT).
        naive: gradient attack differentiating the deployed module itself (one random
            component per forward pass, no expectation); None for other attacks and for a
            single component.
    """

    attacker: str
    adaptive: bool
    expected: float
    sampled: float
    sampled_se: float
    eot: float | None
    naive: float | None


def evaluate_mixed_defense(
    mixed: MixedDefense,
    matrix: PayoffMatrix,
    attacks: Mapping[str, Attack],
    evaluator: CellEvaluator,
    *,
    adaptive_attacks: bool = True,
    naive: bool = True,
    progress: Callable[[Iterable[Any], str, int], Iterable[Any]] | None = None,
) -> list[MixedDefenseEvaluation]:
    """Evaluate the deployed mixture against every attacker column of ``matrix``.

    The components of ``mixed`` must be rows of ``matrix`` (by name). Results that need new
    attacks (EOT, naive) are stored in the evaluator's store under the mixture's key.

    Example:
        >>> from torch import nn
        >>> from advgame.attacks.strategy import GradientAttack
        >>> from advgame.defenses.base import ClassifierDefense
        >>> x, y = torch.rand(50, 1, 2, 2), torch.randint(0, 2, (50,))
        >>> ds = {n: ClassifierDefense(n, nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
        ...       for n in ("f", "g")}
        >>> at = {"FGSM": GradientAttack("FGSM", "fgm", 0.2)}
        >>> ev = CellEvaluator(x, y)
        >>> m = compute_payoff(ds, at, x, y, evaluator=ev)
        >>> mix = MixedDefense("mix", list(ds.values()), [0.5, 0.5])
        >>> r = evaluate_mixed_defense(mix, m, at, ev)[0]
        >>> bool(abs(r.expected - 0.5 * (m.accuracy[0, 0] + m.accuracy[1, 0])) < 1e-12)
        True
    """
    comps = mixed.components
    rows = []
    for c in comps:
        if c.name not in matrix.defenders:
            raise InputError("mixed", f"component {c.name!r} is not a row of the matrix")
        rows.append(matrix.defenders.index(c.name))
    p = mixed.probs.double().cpu().numpy()
    x, y = evaluator.x, evaluator.y
    n = x.shape[0]
    names = list(matrix.attackers)
    it: Iterable[Any] = names if progress is None else progress(names, "mixed defense",
                                                                len(names))
    out: list[MixedDefenseEvaluation] = []
    for name in it:
        j = matrix.attackers.index(name)
        attack = attacks[name]
        expected = float(p @ matrix.accuracy[rows, j])
        key = f"mixed-{evaluator.tag}-{mixed.key}-{attack.key}"
        got = evaluator.store.get(key)
        if not isinstance(got, dict):
            g = unit_generator(evaluator.seed, key, x.device)
            mixed.set_generator(g)
            if attack.adaptive:
                which = mixed.sample(n, g, x.device).cpu()
                lost = matrix.success[rows][:, j][which, torch.arange(n)]
                sampled = 1.0 - float(lost.float().mean())
            else:
                sampled = _accuracy(mixed.predict(evaluator.examples(attack), g), y)
            eot = nv = None
            if attack.adaptive and adaptive_attacks and len(comps) == 1:
                eot = float(matrix.accuracy[rows[0], j])  # EOT of one component = its cell
            elif attack.adaptive and adaptive_attacks:
                x_eot = attack.craft(attack.against(mixed), x, y, generator=g)
                eot = _accuracy(mixed.predict(x_eot, g), y)
                if naive and isinstance(attack, GradientAttack):
                    nv = _accuracy(mixed.predict(attack.craft(mixed, x, y, generator=g), g), y)
            got = evaluator.store.put(key, {"sampled": sampled, "eot": eot, "naive": nv})
        s = float(got["sampled"])
        out.append(MixedDefenseEvaluation(
            attacker=name, adaptive=attack.adaptive, expected=expected, sampled=s,
            sampled_se=math.sqrt(max(s * (1 - s), 0.0) / n),
            eot=None if got["eot"] is None else float(got["eot"]),
            naive=None if got["naive"] is None else float(got["naive"])))
    return out


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean())
