"""The empirical game between defenders (rows, maximizer) and attackers (columns).

Pure solvers over payoff matrices live in :mod:`advgame.game.solvers` (exact, numpy/scipy
only) and :mod:`advgame.game.dynamics` (fictitious play, regret matching)
and the generic double oracle in :mod:`advgame.game.double_oracle`.

Example:
    >>> from advgame.game import solve_zero_sum
    >>> value, p, q = solve_zero_sum([[0.9, 0.3], [0.5, 0.7]])
    >>> round(value, 6)
    0.6
"""

from advgame.game.double_oracle import (
    DoubleOracleIteration,
    DoubleOracleResult,
    MatrixOracles,
    double_oracle,
    matrix_oracles,
)
from advgame.game.dynamics import (
    ApproximateEquilibrium,
    GameIterate,
    fictitious_play,
    fictitious_play_equilibrium,
    regret_matching,
    regret_matching_equilibrium,
)
from advgame.game.solvers import (
    ZeroSumSolution,
    best_response_col,
    best_response_row,
    check_payoff,
    check_strategy,
    exploitability,
    solve_zero_sum,
)

__all__ = [
    "ApproximateEquilibrium",
    "DoubleOracleIteration",
    "DoubleOracleResult",
    "GameIterate",
    "MatrixOracles",
    "ZeroSumSolution",
    "best_response_col",
    "best_response_row",
    "check_payoff",
    "check_strategy",
    "double_oracle",
    "exploitability",
    "fictitious_play",
    "fictitious_play_equilibrium",
    "matrix_oracles",
    "regret_matching",
    "regret_matching_equilibrium",
    "solve_zero_sum",
]
