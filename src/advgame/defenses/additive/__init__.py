"""The finite-sample equilibrium defense of the additive game (SPEC section 1).

In the locally linearized additive game every data point i contributes a half-space
constraint on the defender's shift v (one vector added to every input):

    a_i . v > c_i,    a_i = y_i w_i,    c_i = eps_a ||w_i||_{p*} - m_i,
    m_i = y_i (w_i . x_i + b_i)

(``m_i`` is the margin, FGM with budget ``eps_a`` in norm p lowers it by
``eps_a ||w_i||_{p*}``, and the shift raises it by ``y_i w_i . v``). The finite-sample
equilibrium defense is

    v_n = argmax_{||v||_q <= eps_d}  #{ i : a_i . v > c_i }

a maximum feasible subsystem problem (NP-hard in general). This module solves it

* ``method="exact"``: a mixed-integer program solved by HiGHS (``scipy.optimize.milp``).
  For q = inf it is the big-M program of the spec; for q = 2 the ball is replaced by a
  polyhedral outer approximation refined by tangent cuts until the integer solution is
  realizable in the true ball (an exact outer-approximation method; if the round or time
  limit stops it first, the error of the approximation is reported).
* ``method="fast"``: an annealed sigmoid surrogate maximized by projected ascent from
  several starts, then a greedy refinement that adds violated constraints one at a time
  while an exact feasibility oracle (an LP for q = inf, least-distance programming for
  q = 2) says the enlarged set is still jointly satisfiable in the ball, then a
  large-neighborhood search that re-optimizes the constraints nearest to flipping with a
  small MILP.
* Either method first detects the case of a linear classifier (all rows collinear),
  which is one-dimensional and solved exactly by a sweep.

Both return every distinct maximizer they found on request: the uniform distribution over
them is a mixed (randomized-smoothing) equilibrium strategy of the linearized game, since
the defender's payoff is linear in the mixture.

Strictness. The count uses the strict test ``a_i . v > c_i`` (a point on the decision
boundary is not classified correctly). An optimization solver cannot represent a strict
inequality, so the solvers require a margin ``tol`` in normalized units (see
:func:`max_feasible_shift`): the exact solvers are exact for the problem
``max #{a_i . v >= c_i + tol * eps_d ||a_i||_{q*}}`` and their bounds refer to it; the
reported ``count`` is always re-evaluated with the exact strict test at the returned v.

The closed form :func:`gaussian_equilibrium` gives the population equilibrium of a
*linear* classifier on two Gaussian classes; tests use it as an oracle.
"""

from advgame.defenses.additive.api import (
    EquilibriumShiftDetails,
    equilibrium_shift,
    max_feasible_shift,
)
from advgame.defenses.additive.gaussian import (
    GaussianEquilibrium,
    gaussian_accuracy,
    gaussian_equilibrium,
)
from advgame.defenses.additive.problem import ShiftResult

__all__ = [
    "EquilibriumShiftDetails",
    "GaussianEquilibrium",
    "ShiftResult",
    "equilibrium_shift",
    "gaussian_accuracy",
    "gaussian_equilibrium",
    "max_feasible_shift",
]
