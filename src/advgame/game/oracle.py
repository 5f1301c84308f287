"""Best-response oracles that train, for the double oracle over real strategies.

The generic :func:`advgame.game.double_oracle` grows a restricted game with best
responses. Here the strategies are real defenses and attacks (strategy *names*, resolved
through :class:`GameOracles`), and the oracles train new ones:

- **attacker oracle** (best response to the defender's mixture p): the mixture is deployed
  as :class:`~advgame.defenses.MixedDefense`; a new AttNet is trained to maximize
  the cross-entropy of its expectation log sum_i p_i softmax(f_i(x)) on the training data
  (``attacker="attnet"``, a fixed map afterwards), or PGD is run against that expectation
  (``attacker="pgd"``, a transfer attack with the mixture as surrogate);
- **defender oracle** (best response to the attacker's mixture q): a new classifier is
  adversarially trained, each batch perturbed by one attacker strategy drawn from q
  (:func:`~advgame.game.build.train_against_mixture`; adaptive attacks computed
  against the model being trained, an adaptive AttNet following it online).

Trained oracles are approximate. Each oracle therefore returns the better of its new
candidate and the best strategy already known against the mixture (measured on the test
set), so the recorded bounds satisfy lower <= v_k <= upper for the restricted value v_k,
and the loop stops when neither candidate improves on the known strategies by more than
``tol``: the empirical counterpart of "the bounds meet". Candidates are named
``BR<k>-AttNet`` / ``BR<k>-PGD`` / ``BR<k>-AdvTrain`` (k = iteration) and keyed by a hash of
the mixture they answer, so a rerun finds their trained weights and cells again.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from advgame.game.payoff import CellEvaluator
    >>> from advgame.attacks.strategy import GradientAttack
    >>> from advgame.defenses.base import ClassifierDefense
    >>> from advgame.game.build import BuildContext
    >>> x, y = torch.rand(40, 1, 2, 2), torch.randint(0, 2, (40,))
    >>> f = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> ctx = BuildContext(x, y, 2, f, arch="linear")
    >>> oracles = GameOracles({"clean": ClassifierDefense("clean", f)},
    ...                       {"FGSM": GradientAttack("FGSM", "fgm", 0.1)},
    ...                       CellEvaluator(x, y), ctx,
    ...                       OracleConfig(eps=0.1, attacker="pgd", pgd_steps=2,
    ...                                    defender_epochs=1))
    >>> res = run_double_oracle(oracles, tol=1.0, max_iters=2)
    >>> res.converged, res.iterations
    (True, 1)
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from advgame.attacks.learned import train_attnet
from advgame.attacks.strategy import Attack, AttNetAttack, GradientAttack, TransferAttack
from advgame.defenses.base import ClassifierDefense, Defense, MixedDefense
from advgame.errors import InputError
from advgame.game.build import BuildContext, train_against_mixture
from advgame.game.double_oracle import DoubleOracleIteration, DoubleOracleResult, double_oracle
from advgame.game.payoff import CellEvaluator
from advgame.rng import unit_generator
from advgame.storage import digest
from advgame.threat import parse_norm
from advgame.validate import check_nonnegative, check_positive_int

__all__ = ["GameOracles", "OracleCall", "OracleConfig", "run_double_oracle"]


@dataclass(frozen=True, kw_only=True)
class OracleConfig:
    """Settings of the training oracles.

    Attributes:
        attacker: ``attnet`` (train an AttNet against the defender mixture) or ``pgd``
            (PGD against the mixture's expectation).
        eps, norm: the attacker oracle's budget (AttNet: L-inf only).
        attnet_arch, attnet_hidden, attnet_epochs, attnet_lr, attnet_batch_size: the AttNet.
        pgd_steps: steps of the PGD oracle.
        defender_epochs: epochs of adversarial training of a new defender.
        defender_init: ``clean`` (fine-tune the clean classifier) or ``scratch``.
        with_clean: the new defender also trains on the clean batches.
        train_size: training examples the oracles use (None = all).
    """

    attacker: str = "attnet"
    eps: float = 0.2
    norm: str = "inf"
    attnet_arch: str = "mlp"
    attnet_hidden: tuple[int, ...] = (300, 300, 300)
    attnet_epochs: int = 3
    attnet_lr: float = 1e-3
    attnet_batch_size: int = 64
    pgd_steps: int = 10
    defender_epochs: int = 3
    defender_init: str = "clean"
    with_clean: bool = True
    train_size: int | None = None

    def __post_init__(self) -> None:
        if self.attacker not in ("attnet", "pgd"):
            raise InputError("attacker", f"must be attnet or pgd, got {self.attacker!r}")
        norm = parse_norm(self.norm)
        check_nonnegative("eps", self.eps, upper=1.0 if norm == "inf" else None)
        if self.attacker == "attnet" and norm != "inf":
            raise InputError("norm", "the AttNet oracle attacks in L-inf (norm = 'inf')")
        if self.defender_init not in ("clean", "scratch"):
            raise InputError("defender_init", f"must be clean or scratch, got "
                             f"{self.defender_init!r}")
        for name in ("attnet_epochs", "defender_epochs"):
            check_positive_int(name, getattr(self, name), minimum=0)
        for name in ("pgd_steps", "attnet_batch_size"):
            check_positive_int(name, getattr(self, name))
        if self.train_size is not None:
            check_positive_int("train_size", self.train_size)


@dataclass(frozen=True)
class OracleCall:
    """One oracle call of the double oracle.

    Attributes:
        iteration: 1-based double-oracle iteration.
        player: ``defender`` or ``attacker``.
        candidate: name of the newly trained strategy.
        candidate_payoff: its expected payoff against the opponent's mixture (accuracy).
        best_known: the best already-known strategy against that mixture, and
        best_known_payoff: its payoff.
        chosen: the strategy returned (the candidate if it strictly improves).
        seconds: training and evaluation time of the call.
    """

    iteration: int
    player: str
    candidate: str
    candidate_payoff: float
    best_known: str
    best_known_payoff: float
    chosen: str
    seconds: float


def _mixture_hash(payload: Any) -> str:
    return digest(payload)


class GameOracles:
    """Payoffs and training best-response oracles over named real strategies.

    Args:
        defenses: the initial defender strategies {name: Defense} (restricted rows).
        attacks: the initial attacker strategies {name: Attack} (restricted columns).
        evaluator: computes (and stores) the payoff cells on the test set.
        ctx: training data, clean classifier, model fitting (see
            :class:`~advgame.game.build.BuildContext`).
        config: :class:`OracleConfig`.

    The methods :meth:`payoff`, :meth:`defender_oracle` and :meth:`attacker_oracle` are the
    three callables of :func:`advgame.game.double_oracle`; chosen candidates are added to
    ``defenses`` / ``attacks``; ``calls`` records every oracle call.
    """

    def __init__(self, defenses: Mapping[str, Defense], attacks: Mapping[str, Attack],
                 evaluator: CellEvaluator, ctx: BuildContext, config: OracleConfig) -> None:
        if not defenses or not attacks:
            raise InputError("defenses" if not defenses else "attacks", "must not be empty")
        self.defenses: dict[str, Defense] = dict(defenses)
        self.attacks: dict[str, Attack] = dict(attacks)
        self.evaluator = evaluator
        self.ctx = ctx
        self.config = config
        self.calls: list[OracleCall] = []
        self._iteration = {"defender": 0, "attacker": 0}
        self.x_train, self.y_train = ctx.train_subset(config.train_size)
        self._cfg_hash = _mixture_hash(dataclasses.asdict(config))

    # ---- payoff

    def payoff(self, row: str, col: str) -> float:
        """Defender accuracy of the pair (computed once, through the evaluator's store)."""
        return self.evaluator.cell(self.defenses[row], self.attacks[col]).accuracy

    def _expected_row(self, row: str, q: Mapping[str, float]) -> float:
        return float(sum(w * self.payoff(row, c) for c, w in q.items()))

    def _expected_col(self, col: str, p: Mapping[str, float]) -> float:
        return float(sum(w * self.payoff(r, col) for r, w in p.items()))

    # ---- oracles

    def _key(self, name: str, mixture: Mapping[str, float], keys: Mapping[str, str]) -> str:
        mix = sorted((keys[s], round(float(w), 9)) for s, w in mixture.items())
        return f"{name}-{_mixture_hash([self._cfg_hash, self.ctx.seed, mix])}"

    def mixed_defense(self, p: Mapping[str, float], name: str = "mixture") -> MixedDefense:
        """The deployable mixed defense of a defender mixture {row: probability}."""
        comps = [self.defenses[r] for r in p]
        return MixedDefense(name, comps, [float(w) for w in p.values()])

    def attacker_oracle(self, p: Mapping[str, float]) -> str:
        """Best response to the defender mixture p: a trained AttNet (or PGD) against it,
        or the best known attack if the new one does not do better."""
        t0 = time.perf_counter()
        self._iteration["attacker"] += 1
        k = self._iteration["attacker"]
        cfg = self.config
        name = f"BR{k}-{'AttNet' if cfg.attacker == 'attnet' else 'PGD'}"
        mixture = self.mixed_defense(p)
        key = self._key(name, p, {r: d.key for r, d in self.defenses.items()})
        device = self.x_train.device
        cand: Attack
        if cfg.attacker == "attnet":
            proto = AttNetAttack(name, cfg.eps, arch=cfg.attnet_arch, hidden=cfg.attnet_hidden,
                                 epochs=cfg.attnet_epochs, lr=cfg.attnet_lr,
                                 batch_size=cfg.attnet_batch_size, x_train=self.x_train,
                                 y_train=self.y_train, key=key)
            net = proto.fresh_net(self.x_train.shape[1:], self.ctx.generator("init-" + key),
                                  device)
            target = mixture.attack_model()

            def fit(m: Any) -> None:
                mixture.set_generator(unit_generator(self.ctx.seed, "eot-" + key, device))
                train_attnet(m, target, self.x_train, self.y_train, cfg.eps,
                             epochs=cfg.attnet_epochs, batch_size=cfg.attnet_batch_size,
                             lr=cfg.attnet_lr, generator=self.ctx.generator(key))
            net = self.ctx.fit(key, net, fit)
            cand = AttNetAttack(name, cfg.eps, net=net, key=key)
        else:
            inner = GradientAttack(name, "pgd", cfg.eps, cfg.norm, steps=cfg.pgd_steps)
            cand = TransferAttack(name, mixture, inner, key=key)
        cand_value = self._expected_col_of(cand, p)
        known = {c: self._expected_col(c, p) for c in self.attacks}
        best = min(known, key=lambda c: known[c])
        chosen = name if cand_value < known[best] else best
        if chosen == name:
            self.attacks[name] = cand
        self.calls.append(OracleCall(k, "attacker", name, cand_value, best, known[best], chosen,
                                     time.perf_counter() - t0))
        return chosen

    def _expected_col_of(self, attack: Attack, p: Mapping[str, float]) -> float:
        return float(sum(w * self.evaluator.cell(self.defenses[r], attack).accuracy
                         for r, w in p.items()))

    def defender_oracle(self, q: Mapping[str, float]) -> str:
        """Best response to the attacker mixture q: a classifier adversarially trained
        against q, or the best known defense if the new one does not do better."""
        t0 = time.perf_counter()
        self._iteration["defender"] += 1
        k = self._iteration["defender"]
        cfg = self.config
        name = f"BR{k}-AdvTrain"
        key = self._key(name, q, {c: a.key for c, a in self.attacks.items()})
        if cfg.defender_init == "clean":
            model = copy.deepcopy(self.ctx.base_model)
        else:
            model = self.ctx.new_classifier(key)
        for prm in model.parameters():
            prm.requires_grad_(True)
        attacks = [self.attacks[c] for c in q]
        probs = [float(w) for w in q.values()]
        tc = dataclasses.replace(self.ctx.train_config, epochs=cfg.defender_epochs)

        def fit(m: Any) -> None:
            train_against_mixture(m, attacks, probs, self.x_train, self.y_train, tc,
                                  with_clean=cfg.with_clean,
                                  generator=self.ctx.generator(key))
        model = self.ctx.fit(key, model, fit)
        for prm in model.parameters():
            prm.requires_grad_(False)
        cand = ClassifierDefense(name, model.eval(), key)
        cand_value = float(sum(w * self.evaluator.cell(cand, self.attacks[c]).accuracy
                               for c, w in q.items()))
        known = {r: self._expected_row(r, q) for r in self.defenses}
        best = max(known, key=lambda r: known[r])
        chosen = name if cand_value > known[best] else best
        if chosen == name:
            self.defenses[name] = cand
        self.calls.append(OracleCall(k, "defender", name, cand_value, best, known[best], chosen,
                                     time.perf_counter() - t0))
        return chosen


def run_double_oracle(
    oracles: GameOracles,
    *,
    tol: float = 0.01,
    max_iters: int = 5,
    callback: Callable[[DoubleOracleIteration[str, str]], None] | None = None,
) -> DoubleOracleResult[str, str]:
    """:func:`advgame.game.double_oracle` from all of ``oracles``' current strategies.

    Each iteration solves the restricted game (payoff cells through the evaluator, each
    computed once), trains one candidate per player against the other's restricted
    equilibrium mixture, and records lower = p^T A[:, new col] <= v_k <= upper =
    A[new row, :] q. It stops when upper - lower <= ``tol`` (neither trained candidate
    beats the known strategies by more than tol), when neither oracle returns a new
    strategy, or after ``max_iters`` restricted games.

    Returns:
        the :class:`~advgame.game.double_oracle.DoubleOracleResult` over strategy names.
    """
    return double_oracle(oracles.payoff, oracles.defender_oracle, oracles.attacker_oracle,
                         list(oracles.defenses), list(oracles.attacks), tol=tol,
                         max_iters=max_iters, callback=callback)
