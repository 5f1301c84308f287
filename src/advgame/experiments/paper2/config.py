"""``advgame paper2``'s configuration: the defenses, the ``--quick`` settings and
:class:`Paper2Config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advgame.attacks.learned import OBJECTIVES
from advgame.errors import InputError
from advgame.experiments.classifier import ModelConfig
from advgame.validate import check_nonnegative, check_positive_int

#: Defenses a run can evaluate (``clean`` = u_0, ``cat-mouse`` = u_1..u_K).
DEFENSES = ("clean", "cat-mouse", "adv-online", "sens-fgsm", "sens-first-order", "minimax",
            "maximin", "minimax-sens", "reformer")

#: Defenses of the eta table (the paper's Minimax = ``minimax-sens``, the sensitivity-
#: penalized solver; Alt = ``minimax``, plain alternating descent/ascent with the same k).
SWEEP_DEFENSES = ("clean", "adv-online", "sens-fgsm", "minimax", "minimax-sens")

#: Reduced settings of ``--quick`` (about 5 minutes on one CPU core for mnist-5k).
QUICK: dict[str, Any] = {
    "epochs": 3, "rounds": 20, "round_epochs": 1, "adv_epochs": 2, "sens_epochs": 2,
    "minimax_iterations": 120, "minimax_k": 3, "attnet_epochs": 2, "attnet_restarts": 1,
    "cnn_attnet_restarts": 1, "attnet_train_size": 2000, "pgd_steps": 10,
    "reformer_epochs": 2, "n_test": 300, "apgd_steps": 20, "square_queries": 300,
    "etas": (0.3, 0.5), "compare_archs": (), "table_rounds": 2,
}


@dataclass(frozen=True, kw_only=True)
class Paper2Config(ModelConfig):
    """``advgame paper2``: the learning-based minimax defense paper (S2), end to end.

    Attributes (beyond the data and u_0 fields of :class:`ModelConfig`):
        arch: the classifier; ``cnn`` by default, as in the paper's MNIST experiments (a
            convolutional network; the paper's attack network is a 3-layer fully connected
            net with 300 units per layer, ``attnet_hidden``).
        eta: L-inf budget of every attack in the cat-and-mouse and the defense x attack
            table (MNIST scale, inputs in [0, 1]), in (0, 1].
        rounds: cat-and-mouse rounds K (the paper ran 80). round_epochs: epochs to train
            each u_k. heatmap_rounds: the E[k][j] matrix covers u_0..u_heatmap_rounds.
            table_rounds: the u_k of the defense x attack table (u_1..u_table_rounds and
            u_K; every round is in ``cat_and_mouse_rounds``).
        etas: budgets of the eta table (``eta_sweep``): the defenses ``sweep_defenses``
            trained at each eta against FGSM-curr, the game's own attacker, fresh AttNets,
            PGD and Square at that eta. compare_archs: other classifiers the eta table is
            also run with (e.g. ``("mlp",)``).
        warm_start: u_k starts from u_(k-1) (else from scratch). with_clean: u_k also sees
            the clean training data.
        adv_epochs: epochs of online adversarial training (from u_0).
        adv_with_clean: online adversarial training sees each clean batch beside its
            FGSM batch (Goodfellow et al.'s alpha = 0.5), else the FGSM batch only.
        sens_epochs: epochs of Sens-FGSM (both forms, from u_0). sens_surrogate: "tanh"
            or "normalized". sens_tau: tanh temperature relative to the gradient scale
            ``sens_scale`` ("example": each example's mean |grad|; "batch": the batch's),
            held constant in u when ``sens_detach_scale``. sens_clean_weight: w in
            L = (1 - w) Sens-FGSM + w clean loss; 0.5 by default, because w = 0 trains a
            classifier that reads the label the attack leaks into z and misclassifies
            most clean inputs (clean error 0.83 on the CNN, benchmarks/BENCHMARKS.md);
            the first-order form l + eta ||grad||_1 holds the clean loss already and
            ignores it.
        minimax_iterations: outer iterations of the alternating solver. minimax_k:
            follower steps per leader step (ascent steps for minimax, descent steps for
            maximin). minimax_lr: defender (Adam) step. minimax_rho: weight of the
            sensitivity penalty of ``minimax-sens``.
        attnet_hidden: MLP AttNet widths. attnet_lr: AttNet (Adam) step, in the game and
            for fresh AttNets. attnet_epochs: epochs to train a fresh AttNet.
        attnet_restarts: fresh MLP AttNets per defense (worst case per example).
        cnn_attnet_restarts: fresh convolutional AttNets per defense (0 disables).
        attnet_train_size: training examples for fresh AttNets (None = all).
        attnet_objective: what a fresh AttNet maximizes (:func:`advgame.attacks.learned.
            attacker_objective`): ``cw`` (default: the margin min(max_(j!=y) z_j - z_y,
            attnet_kappa), bounded, so fooled examples stop pulling and the AttNet does not
            collapse to "everything -> one class"), ``ce`` (unbounded cross-entropy, the
            paper's; collapses at eta 0.3), ``clamped-ce`` or ``dlr``. The minimax games'
            own attackers always maximize the game's payoff, cross-entropy.
        pgd_steps: PGD steps (step 2.5 eta / steps, one random start).
        apgd_steps: APGD-CE iterations (Croce & Hein 2020); square_queries: queries of the
            gradient-free Square Attack per example (0 disables either column).
        reformer_epochs, reformer_noise: autoencoder training epochs and noise std.
        n_test: test examples evaluated (None = all).
        defenses: which defenses to build and evaluate (see ``DEFENSES``).
    """

    # the classifier, the budget and the eta table
    arch: str = "cnn"
    eta: float = 0.3

    # the cat-and-mouse
    rounds: int = 80
    round_epochs: int = 3
    heatmap_rounds: int = 10
    table_rounds: int = 3

    # the eta table and the architecture comparison
    etas: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6)
    sweep_defenses: tuple[str, ...] = SWEEP_DEFENSES
    compare_archs: tuple[str, ...] = ("mlp",)

    # the cat-and-mouse's training of each round
    warm_start: bool = True
    with_clean: bool = False

    # adversarial training and Sens-FGSM
    adv_epochs: int = 10
    adv_with_clean: bool = True
    sens_epochs: int = 10
    sens_surrogate: str = "tanh"
    sens_tau: float = 0.1
    sens_scale: str = "example"
    sens_detach_scale: bool = False
    sens_clean_weight: float = 0.5

    # the learned minimax (alternating gradient)
    minimax_iterations: int = 1000
    minimax_k: int = 5
    minimax_lr: float = 1e-3
    minimax_rho: float = 1.0

    # the attack networks (AttNets)
    attnet_hidden: tuple[int, ...] = (300, 300, 300)
    attnet_lr: float = 1e-3
    attnet_epochs: int = 5
    attnet_restarts: int = 3
    cnn_attnet_restarts: int = 2
    attnet_train_size: int | None = None
    attnet_objective: str = "cw"
    attnet_kappa: float = 0.0

    # the evaluation attacks, the reformer and the evaluated subset
    pgd_steps: int = 20
    apgd_steps: int = 100
    square_queries: int = 1000
    reformer_epochs: int = 10
    reformer_noise: float = 0.1
    n_test: int | None = None
    defenses: tuple[str, ...] = DEFENSES

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value in [("eta", self.eta), *(("etas", e) for e in self.etas)]:
            if not 0.0 < check_nonnegative(name, value, upper=1.0):
                raise InputError(name, f"must be in (0, 1], got {value!r}")
        if not self.etas:
            raise InputError("etas", "give at least one budget")
        if len(set(self.etas)) != len(self.etas):
            raise InputError("etas", f"must be distinct, got {list(self.etas)}")
        check_positive_int("rounds", self.rounds)
        for name in ("heatmap_rounds", "table_rounds"):
            check_positive_int(name, getattr(self, name), minimum=0)
        bad_s = [d for d in self.sweep_defenses if d not in SWEEP_DEFENSES]
        if bad_s or len(set(self.sweep_defenses)) != len(self.sweep_defenses):
            raise InputError("sweep_defenses", f"unknown or repeated defense(s) {bad_s}; "
                             f"choose from {list(SWEEP_DEFENSES)}")
        from advgame.models import ARCHITECTURES

        bad_a = [a for a in self.compare_archs if a not in ARCHITECTURES or a == self.arch]
        if bad_a:
            raise InputError("compare_archs", f"{bad_a}: give architectures from "
                             f"{list(ARCHITECTURES)} other than arch={self.arch!r}")
        for name in ("round_epochs", "adv_epochs", "sens_epochs",
                     "minimax_iterations", "attnet_epochs", "cnn_attnet_restarts",
                     "reformer_epochs", "apgd_steps", "square_queries"):
            check_positive_int(name, getattr(self, name), minimum=0)
        for name in ("minimax_k", "attnet_restarts", "pgd_steps"):
            check_positive_int(name, getattr(self, name))
        for name in ("n_test", "attnet_train_size"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        for name in ("minimax_lr", "attnet_lr", "sens_tau"):
            if check_nonnegative(name, getattr(self, name)) == 0:
                raise InputError(name, "must be > 0")
        check_nonnegative("minimax_rho", self.minimax_rho)
        if self.attnet_objective not in OBJECTIVES:
            raise InputError("attnet_objective", f"unknown attacker objective "
                             f"{self.attnet_objective!r}; choose from {', '.join(OBJECTIVES)}")
        check_nonnegative("attnet_kappa", self.attnet_kappa)
        check_nonnegative("reformer_noise", self.reformer_noise)
        if self.sens_surrogate not in ("tanh", "normalized"):
            raise InputError("sens_surrogate", "must be 'tanh' or 'normalized', got "
                             f"{self.sens_surrogate!r}")
        if self.sens_scale not in ("example", "batch"):
            raise InputError("sens_scale", "must be 'example' or 'batch', got "
                             f"{self.sens_scale!r}")
        if not 0.0 <= check_nonnegative("sens_clean_weight", self.sens_clean_weight) <= 1.0:
            raise InputError("sens_clean_weight",
                             f"must be in [0, 1], got {self.sens_clean_weight!r}")
        bad = [d for d in self.defenses if d not in DEFENSES]
        if bad or not self.defenses:
            raise InputError("defenses", f"unknown defense(s) {bad}; choose from "
                             f"{list(DEFENSES)}")
        if not self.attnet_hidden:
            raise InputError("attnet_hidden", "give at least one hidden width")
