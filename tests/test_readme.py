"""The README's Python examples run as written (in order, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.slow
def test_readme_python_examples_run() -> None:
    namespace: dict[str, object] = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    cls, radius = namespace["cls"], namespace["radius"]
    assert isinstance(cls, torch.Tensor) and isinstance(radius, torch.Tensor)
    assert cls.shape == (100,) and radius.shape == (100,)
    idx, ds = namespace["idx"], namespace["ds"]
    assert torch.bincount(ds.y_test[idx]).tolist() == [50, 50]  # type: ignore[attr-defined]
    assert bool(((cls >= -1) & (cls <= 1)).all()) and bool((radius >= 0).all())
    details: Any = namespace["details"]
    assert details.constraint_satisfied
    assert details.clean_accuracy >= details.clean_accuracy_no_defense - 0.01
    x_adv, x = namespace["x_adv"], namespace["ds"].x_test  # type: ignore[attr-defined]
    assert isinstance(x_adv, torch.Tensor)
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6
