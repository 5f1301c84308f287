"""Configuration of ``advgame paper1`` (the additive game, S1): defaults are the full run
on MNIST 0 vs 1; ``QUICK`` is what ``--quick`` changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from advgame.data.files import check_data_files
from advgame.errors import InputError
from advgame.experiments.classifier import ModelConfig
from advgame.threat import parse_norm
from advgame.validate import check_nonnegative, check_positive_int

OBJECTIVES = ("box", "free")


@dataclass(frozen=True, kw_only=True)
class Paper1Config(ModelConfig):
    """Configuration of ``advgame paper1`` (defaults: the full run on MNIST 0 vs 1).

    eps values are in the input scale [0, 1]; ``norm_a`` / ``norm_d`` are the attacker's
    and defender's norms. ``solver``: ``auto`` runs the fast heuristic and the exact MILP
    (time-limited) and keeps the better shift, reporting the MILP's bound and the gap; when
    the MILP stops at ``exact_time_limit`` its incumbent depends on the machine's speed and
    load, so two runs can differ -- ``fast`` is reproducible bit for bit.

    ``objective``: the game the equilibrium shift v_n is solved for outside Table 1 (sweeps,
    convergence, pairs): ``"box"`` (default) — the game that is played on images, where the
    attacker's best response is clipped to [0, 1] (exact in ball ∩ box); ``"free"`` — the
    paper's unbounded model. Table 1 always shows both. ``clip_defense``: evaluate every
    shift on clip(x + delta + v, 0, 1) instead of the paper's unclipped x + delta + v
    (Table 1 shows the clipped variant of v_n either way). ``max_clean_drop``: the clean
    constraint of the constrained v_n rows (a fraction: 0.01 = at most one point of
    linearized clean accuracy on the training points below v = 0).

    ``autoattack``: Table 1 gets an "AA adaptive" column: APGD-CE -> APGD-T -> FAB-T ->
    Square (``aa_queries`` queries) against each defended classifier (EOT for random
    ones), the strongest evaluation the library has. ``preprocessing``: Table 1 gets the
    input-dependent defenses median filter 3x3 and bit-depth reduction (3 bits), attacked
    by PGD, BPDA-PGD and AutoAttack (whose Square needs no gradient).
    """

    # the data and the classifier
    classes: tuple[int, ...] | None = (0, 1)
    epochs: int = 10

    # the game: budgets, norms, sweeps
    norm_a: str = "inf"
    norm_d: str = "inf"
    eps_a: tuple[float, ...] = (0.1, 0.2)
    eps_d: tuple[float, ...] = (0.1,)
    sweep_eps_a: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    sweep_eps_d: tuple[float, ...] = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2)

    # the equilibrium shift's game and its evaluation
    objective: str = "box"
    clip_defense: bool = False
    max_clean_drop: float = 0.01

    # Gaussian smoothing (the vote rows and the certificate)
    sigma: float = 0.25
    n_noise: int = 1000
    alpha: float = 0.001

    # the attacks of Table 1
    pgd_steps: int = 40
    adaptive_eot: int = 16
    autoattack: bool = True
    aa_queries: int = 5000
    preprocessing: bool = True

    # the solvers of v_n
    solver: str = "auto"
    exact_time_limit: float = 30.0
    num_maximizers: int = 8
    restarts: int = 8
    refine_checks: int = 50
    lns_rounds: int = 5

    # the evaluated subset, convergence in n and the diagnostics
    n_test: int | None = None
    convergence_ns: tuple[int, ...] = (10, 25, 50, 100, 200, 400, 800)
    convergence_draws: int = 10
    convergence_t: float = 0.05
    diag_eps: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    diag_samples: int = 32
    certify_n: int = 10_000
    certify_n0: int = 100
    certify_points: int = 200
    pairs: tuple[tuple[int, int], ...] | str = "all"
    fashion_dir: str | None = None
    fashion_pairs: tuple[tuple[int, int], ...] = ((0, 1), (2, 4), (5, 7))
    cifar_dir: str | None = None
    cifar_pairs: tuple[tuple[int, int], ...] = ((0, 1), (3, 5))

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_norm(self.norm_a, "norm_a")
        parse_norm(self.norm_d, "norm_d")
        if self.classes is None or len(self.classes) != 2:
            raise InputError("classes", f"the additive game needs exactly two classes, got "
                             f"{None if self.classes is None else list(self.classes)}")
        for name in ("eps_a", "eps_d", "sweep_eps_a", "sweep_eps_d", "diag_eps"):
            vals = getattr(self, name)
            if not vals:
                raise InputError(name, "give at least one value")
            for v in vals:
                check_nonnegative(name, v)
        if self.objective not in OBJECTIVES:
            raise InputError("objective", f"must be 'box' (the game played on images) or "
                             f"'free' (the paper's unbounded model), got {self.objective!r}")
        if not isinstance(self.clip_defense, bool):
            raise InputError("clip_defense", f"must be true or false, got "
                             f"{self.clip_defense!r}")
        check_nonnegative("max_clean_drop", self.max_clean_drop, upper=1.0)
        if check_nonnegative("sigma", self.sigma) == 0:
            raise InputError("sigma", "must be > 0")
        for name in ("autoattack", "preprocessing"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(name, f"must be true or false, got {getattr(self, name)!r}")
        for name in ("n_noise", "pgd_steps", "adaptive_eot", "aa_queries", "num_maximizers",
                     "restarts",
                     "convergence_draws", "diag_samples", "certify_n", "certify_n0",
                     "certify_points"):
            check_positive_int(name, getattr(self, name))
        if self.solver not in ("auto", "exact", "fast"):
            raise InputError("solver", f"must be auto, exact or fast, got {self.solver!r}")
        for n in self.convergence_ns:
            check_positive_int("convergence_ns", n)
        if self.n_test is not None:
            check_positive_int("n_test", self.n_test)
        # the extra datasets are read only at the class-pairs stage, at the end of the run
        for name, fmt in (("fashion_dir", "idx"), ("cifar_dir", "cifar10")):
            if getattr(self, name):
                check_data_files(fmt, getattr(self, name), name)
        if isinstance(self.pairs, str) and self.pairs not in ("all", "none"):
            raise InputError("pairs", f"must be 'all', 'none' or a list of pairs, got "
                             f"{self.pairs!r}")

    @property
    def box(self) -> tuple[float, float] | None:
        """The attacker's box of the configured objective (None: the paper's model)."""
        return (0.0, 1.0) if self.objective == "box" else None


QUICK: dict[str, Any] = {
    "epochs": 4, "hidden": (128,), "eps_a": (0.2,), "eps_d": (0.1,),
    "sweep_eps_a": (0.0, 0.1, 0.2, 0.3), "sweep_eps_d": (0.0, 0.05, 0.1, 0.2),
    "n_noise": 200, "pgd_steps": 20, "adaptive_eot": 8, "aa_queries": 500,
    "exact_time_limit": 10.0,
    "num_maximizers": 4, "restarts": 4, "refine_checks": 10, "n_test": 200,
    "convergence_ns": (10, 50, 200), "convergence_draws": 4,
    "diag_eps": (0.05, 0.1, 0.2, 0.3), "diag_samples": 8,
    "certify_n": 1000, "certify_points": 100, "pairs": ((3, 8),),
}
