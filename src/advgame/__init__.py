"""advgame: adversarial robustness as a two-player zero-sum game.

Subpackages: ``data``, ``models``, ``threat``, ``attacks``, ``linear``, ``defenses``,
``smoothing``, ``game``, ``experiments``, ``report``; the ``advgame`` command is ``cli``.
"""

__version__ = "0.1.0"
