"""Attacks; the model is always passed at call time.

``gradient``: the one FGM/PGD loop. ``apgd``: Auto-PGD (CE, DLR, targeted DLR). ``score``:
the Square Attack (gradient-free). ``minimum_norm``: FAB and Carlini-Wagner L2.
``cascade``: AutoAttack's cascade over a set of attacks. ``learned``: attack networks.
``strategy``: the :class:`Attack` protocol (an attacker strategy of the game: gradient,
strong, learned, transfer and library attacks behind one ``craft(target, x, y)``).
"""

from advgame.attacks.apgd import apgd, dlr_loss, dlr_loss_targeted
from advgame.attacks.cascade import ATTACKS, VERSIONS, CascadeResult, auto_attack, run_cascade
from advgame.attacks.gradient import AttackResult, attack_loop, evaluate_attack, fgm, pgd
from advgame.attacks.minimum_norm import MinimumNormResult, cw_l2, fab, fab_minimum_norm
from advgame.attacks.score import square
from advgame.attacks.strategy import (
    Attack,
    AttNetAttack,
    GradientAttack,
    LibraryAttack,
    StrongAttack,
    TransferAttack,
)

__all__ = [
    "ATTACKS", "AttNetAttack", "Attack", "GradientAttack", "LibraryAttack", "StrongAttack",
    "TransferAttack", "VERSIONS", "AttackResult", "CascadeResult", "MinimumNormResult", "apgd",
    "attack_loop", "auto_attack", "cw_l2", "dlr_loss", "dlr_loss_targeted", "evaluate_attack",
    "fab", "fab_minimum_norm", "fgm", "pgd", "run_cascade", "square",
]
