"""Errors raised for bad user input.

Every check in advgame raises :class:`InputError` (a ``ValueError``) whose message starts
with the name of the offending argument, so that the CLI can print it as one line and exit
with status 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input to a public function or command. The message names the argument.

    Example:
        >>> raise InputError("eps", "must be >= 0, got -0.1")
        Traceback (most recent call last):
        ...
        advgame.errors.InputError: eps: must be >= 0, got -0.1
    """

    def __init__(self, argument: str, problem: str) -> None:
        self.argument = argument
        self.problem = problem
        super().__init__(f"{argument}: {problem}")
