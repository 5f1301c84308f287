"""Shared fixtures: tiny models and data; one torch thread (2-core machines, see cli)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)
try:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:  # pragma: no cover
    pass


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: needs headless Chromium (scripts/install-browser.sh)"
    )


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
