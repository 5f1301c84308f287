from __future__ import annotations

import pytest
import torch

from advgame.errors import InputError
from advgame.threat import dual_norm, parse_norm, project, random_in_ball, steepest_direction


def test_parse_norm_aliases() -> None:
    assert parse_norm(2) == "2" and parse_norm("L2") == "2"
    assert parse_norm(float("inf")) == "inf" and parse_norm("linf") == "inf"
    for bad in (1, "3", None, True):
        with pytest.raises(InputError):
            parse_norm(bad)


def test_steepest_direction_attains_dual_norm(gen: torch.Generator) -> None:
    g = torch.randn(7, 3, 4, generator=gen)
    for norm in ("2", "inf"):
        u = steepest_direction(g, norm)  # type: ignore[arg-type]
        torch.testing.assert_close((u * g).flatten(1).sum(1), dual_norm(g, norm))  # type: ignore[arg-type]


def test_project_is_projection(gen: torch.Generator) -> None:
    d = torch.randn(50, 10, generator=gen)
    p2 = project(d, 0.5, "2")
    assert bool((p2.norm(dim=1) <= 0.5 + 1e-6).all())
    inside = d.norm(dim=1) <= 0.5
    torch.testing.assert_close(p2[inside], d[inside])
    pinf = project(d, 0.5, "inf")
    torch.testing.assert_close(pinf, d.clamp(-0.5, 0.5))


def test_random_in_ball_radius_distribution(gen: torch.Generator) -> None:
    s = random_in_ball((4000, 3), 1.0, "2", generator=gen)
    r = s.norm(dim=1)
    assert bool((r <= 1 + 1e-6).all())
    # uniform in the 3-ball: P(r <= 0.5) = 0.125
    assert abs(float((r <= 0.5).float().mean()) - 0.125) < 0.02
