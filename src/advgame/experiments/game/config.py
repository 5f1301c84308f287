"""``advgame game``'s configuration: the default strategy sets, ``--quick`` and
:class:`GameConfig`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from advgame.errors import InputError
from advgame.experiments.classifier import ModelConfig
from advgame.game.oracle import OracleConfig
from advgame.game.specs import parse_strategies
from advgame.validate import check_nonnegative, check_positive_int

#: The default strategy sets (``configs/game-mnist.toml`` has them with a few more
#: attackers: an L2 PGD and ART's APGD).
DEFAULT_DEFENDERS: tuple[dict[str, Any], ...] = (
    {"name": "clean", "kind": "clean"},
    {"name": "adv-FGSM-0.1", "kind": "adversarial", "eps": 0.1},
    {"name": "adv-FGSM-0.2", "kind": "adversarial", "eps": 0.2},
    {"name": "smooth-0.25", "kind": "smoothing", "sigma": 0.25},
    {"name": "reformer", "kind": "reformer"},
)
DEFAULT_ATTACKERS: tuple[dict[str, Any], ...] = (
    {"name": "FGSM-0.1", "kind": "fgsm", "eps": 0.1},
    {"name": "FGSM-0.2", "kind": "fgsm", "eps": 0.2},
    {"name": "PGD-0.1", "kind": "pgd", "eps": 0.1, "steps": 20},
    {"name": "PGD-0.2", "kind": "pgd", "eps": 0.2, "steps": 20},
    {"name": "AttNet-0.2", "kind": "attnet", "eps": 0.2},
    {"name": "transfer-PGD-0.2", "kind": "transfer", "eps": 0.2},
    # evaluation-grade attacks: every table that ranks defenses includes a gradient-free one
    {"name": "APGD-T-0.2", "kind": "apgd", "eps": 0.2, "loss": "dlr", "targeted": True},
    {"name": "Square-0.2", "kind": "square", "eps": 0.2, "queries": 1000},
)

#: Reduced settings of ``--quick``.
QUICK: dict[str, Any] = {
    "epochs": 3, "defense_epochs": 2, "n_test": 300, "attnet_epochs": 1,
    "attnet_train_size": 1000, "fp_iterations": 2000, "rm_iterations": 2000,
    "do_max_iters": 2, "do_attnet_epochs": 1, "do_defender_epochs": 1,
    "do_train_size": 1000,
}


@dataclass(frozen=True, kw_only=True)
class GameConfig(ModelConfig):
    """Configuration of ``advgame game`` (beyond the data and classifier of ModelConfig).

    Attributes:
        defenders, attackers: strategy tables (TOML ``[[defenders]]`` / ``[[attackers]]``
            with ``name``, ``kind`` and the kind's fields; see
            :mod:`advgame.game.specs`).
        n_test: test examples (None = all).
        defense_epochs: epochs of trained defenders and surrogates (None = ``epochs``).
        attnet_epochs, attnet_train_size: override every AttNet strategy's epochs and
            training-set size when set.
        fp_iterations, rm_iterations: iterations of fictitious play / regret matching+.
        mixed_eot: evaluate the equilibrium mixtures against adaptive EOT attacks.
        eval_attackers: attacker tables *outside* the game, run only against the deployed
            equilibrium mixtures (e.g. white-box PGD with EOT when the game's attackers are
            fixed maps); their expected payoff sum_i p_i A_ij is computed as well.
        double_oracle: run the double oracle from the configured game.
        do_attacker: attacker oracle, ``attnet`` or ``pgd``; do_eps, do_norm: its budget.
        do_tol, do_max_iters: stopping rule (bounds within tol, or iterations).
        do_attnet_epochs, do_attnet_hidden: the AttNet oracle. do_pgd_steps: PGD oracle.
        do_defender_epochs: adversarial-training epochs of the defender oracle.
        do_train_size: training examples the oracles use (None = all).
    """

    defenders: tuple[dict[str, Any], ...] = DEFAULT_DEFENDERS
    attackers: tuple[dict[str, Any], ...] = DEFAULT_ATTACKERS
    n_test: int | None = None
    defense_epochs: int | None = None
    attnet_epochs: int | None = None
    attnet_train_size: int | None = None
    fp_iterations: int = 10_000
    rm_iterations: int = 10_000
    mixed_eot: bool = True
    eval_attackers: tuple[dict[str, Any], ...] = ()
    double_oracle: bool = True
    do_attacker: str = "attnet"
    do_eps: float = 0.2
    do_norm: str = "inf"
    do_tol: float = 0.01
    do_max_iters: int = 3
    do_attnet_epochs: int = 3
    do_attnet_hidden: tuple[int, ...] = (300, 300, 300)
    do_pgd_steps: int = 10
    do_defender_epochs: int = 3
    do_train_size: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_strategies(self.defenders, self.attackers)
        if self.eval_attackers:
            try:
                _, extra = parse_strategies(self.defenders, self.eval_attackers)
            except InputError as e:
                raise InputError("eval_" + e.argument, e.problem) from None
            clash = sorted({a.name for a in extra}
                           & {str(dict(t).get("name")) for t in self.attackers})
            if clash:
                raise InputError("eval_attackers", f"names {clash} are game attackers too")
        for name in ("n_test", "defense_epochs", "attnet_epochs", "attnet_train_size",
                     "do_train_size"):
            v = getattr(self, name)
            if v is not None:
                check_positive_int(name, v, minimum=0 if "epochs" in name else 1)
        for name in ("fp_iterations", "rm_iterations", "do_max_iters"):
            check_positive_int(name, getattr(self, name))
        check_nonnegative("do_tol", self.do_tol)
        self.oracle_config()  # validates the do_* fields

    def oracle_config(self) -> OracleConfig:
        """The double oracle's settings (errors name the ``do_*`` field)."""
        try:
            return OracleConfig(
                attacker=self.do_attacker, eps=self.do_eps, norm=self.do_norm,
                attnet_hidden=tuple(self.do_attnet_hidden),
                attnet_epochs=self.do_attnet_epochs, pgd_steps=self.do_pgd_steps,
                defender_epochs=self.do_defender_epochs, train_size=self.do_train_size,
                attnet_batch_size=self.batch_size)
        except InputError as e:
            name = {"eps": "do_eps", "norm": "do_norm", "attacker": "do_attacker",
                    "attnet_epochs": "do_attnet_epochs", "pgd_steps": "do_pgd_steps",
                    "defender_epochs": "do_defender_epochs",
                    "train_size": "do_train_size"}.get(e.argument, e.argument)
            raise InputError(name, e.problem) from None

    def model_config(self) -> ModelConfig:
        """The fields that define the clean classifier (``OUT/model.pt``)."""
        return ModelConfig(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(ModelConfig)})
