"""The ``Example:`` sections of the public docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest
import torch

import advgame

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(advgame.__path__, prefix="advgame.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    threads = torch.get_num_threads()
    try:
        # the examples assume the usual imports of a user's session
        result = doctest.testmod(
            module, extraglobs={"torch": torch, "nn": torch.nn, "np": np},
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False,
        )
    finally:
        torch.set_num_threads(threads)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
