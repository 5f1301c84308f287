"""Attacks. ``gradient``: the one FGM/PGD loop. The model is always passed at call time."""

from advgame.attacks.gradient import AttackResult, attack_loop, evaluate_attack, fgm, pgd

__all__ = ["AttackResult", "attack_loop", "evaluate_attack", "fgm", "pgd"]
