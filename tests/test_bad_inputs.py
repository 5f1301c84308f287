"""Property tests: generated bad inputs to the public API raise InputError naming the argument
(never a bare IndexError / RuntimeError / silent garbage)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advgame import smoothing
from advgame.attacks import fgm, pgd
from advgame.defenses.additive import equilibrium_shift
from advgame.errors import InputError
from advgame.game import solve_zero_sum
from advgame.linear import linearize
from advgame.models import MLP

torch.manual_seed(0)
MODEL = MLP((4,), 2, hidden=(8,))
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

bad_eps = st.one_of(st.floats(max_value=-1e-9, allow_nan=False), st.just(math.nan),
                    st.just(math.inf), st.just(-math.inf))
poison = st.sampled_from([math.nan, math.inf, -math.inf, -0.5, 1.5])


def good_x(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 4, generator=torch.Generator().manual_seed(n))


@SETTINGS
@given(eps=bad_eps)
def test_attacks_reject_bad_eps(eps: float) -> None:
    for attack in (fgm, pgd):
        with pytest.raises(InputError) as e:
            attack(MODEL, good_x(), torch.tensor([0, 1, 0]), eps, "inf")
        assert e.value.argument == "eps"


@SETTINGS
@given(value=poison, row=st.integers(0, 2), col=st.integers(0, 3))
def test_attacks_reject_poisoned_inputs(value: float, row: int, col: int) -> None:
    x = good_x()
    x[row, col] = value
    with pytest.raises(InputError) as e:
        fgm(MODEL, x, torch.tensor([0, 1, 0]), 0.1)
    assert e.value.argument == "x"


@SETTINGS
@given(labels=st.lists(st.integers(-5, 7), min_size=1, max_size=6))
def test_attacks_reject_bad_labels(labels: list[int]) -> None:
    y = torch.tensor(labels)
    x = good_x(3)
    if len(labels) == 3 and all(0 <= v <= 1 for v in labels):
        fgm(MODEL, x, y, 0.1)  # valid: must not raise
        return
    with pytest.raises(InputError) as e:
        fgm(MODEL, x, y, 0.1)
    assert e.value.argument == "y"


@SETTINGS
@given(norm=st.one_of(st.integers(-3, 10).filter(lambda v: v != 2), st.text(max_size=4),
                      st.just(1.5)))
def test_attacks_reject_bad_norm(norm: object) -> None:
    if isinstance(norm, str) and norm.strip().lower() in ("2", "l2", "2.0", "inf", "linf",
                                                          "infinity", "l_inf"):
        return
    with pytest.raises(InputError) as e:
        fgm(MODEL, good_x(), torch.tensor([0, 1, 0]), 0.1, norm)  # type: ignore[arg-type]
    assert e.value.argument == "norm"


@SETTINGS
@given(shape=st.sampled_from([(0, 4), (4,), ()]))
def test_empty_or_rankless_inputs(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError):
        fgm(MODEL, torch.rand(shape), torch.zeros(shape[:1], dtype=torch.long), 0.1)
    with pytest.raises(InputError):
        linearize(MODEL, torch.rand(shape))


def test_model_returning_wrong_shape() -> None:
    class Bad(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(1)

    with pytest.raises(InputError, match="model"):
        fgm(Bad(), good_x(), torch.tensor([0, 1, 0]), 0.1)
    with pytest.raises(InputError, match="model"):
        linearize(Bad(), good_x())
    with pytest.raises(InputError, match="model"):
        smoothing.certify(Bad(), good_x(), 0.25, n0=5, n=10,
                          generator=torch.Generator().manual_seed(0))


@SETTINGS
@given(labels=st.lists(st.sampled_from([-2, -1, 0, 1, 2, 3]), min_size=3, max_size=3))
def test_equilibrium_shift_needs_signed_binary_labels(labels: list[int]) -> None:
    x = good_x()
    w, b = linearize(MODEL, x)
    y = torch.tensor(labels)
    if all(v in (-1, 1) for v in labels):
        equilibrium_shift(w, b, x, y, 0.1, 0.1)
        return
    with pytest.raises(InputError) as e:
        equilibrium_shift(w, b, x, y, 0.1, 0.1)
    assert e.value.argument == "y"


@SETTINGS
@given(eps=bad_eps, which=st.sampled_from(["eps_a", "eps_d"]))
def test_equilibrium_shift_bad_eps(eps: float, which: str) -> None:
    x = good_x()
    w, b = linearize(MODEL, x)
    kw = {"eps_a": 0.1, "eps_d": 0.1, which: eps}
    with pytest.raises(InputError) as e:
        equilibrium_shift(w, b, x, torch.tensor([1, -1, 1]), kw["eps_a"], kw["eps_d"])
    assert e.value.argument == which


def test_equilibrium_shift_shape_mismatch() -> None:
    x = good_x()
    w, b = linearize(MODEL, x)
    with pytest.raises(InputError):
        equilibrium_shift(w[:2], b, x, torch.tensor([1, -1, 1]), 0.1, 0.1)


@SETTINGS
@given(sigma=st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(math.nan)),
       n=st.integers(-3, 0))
def test_certify_rejects_bad_parameters(sigma: float, n: int) -> None:
    with pytest.raises(InputError):
        smoothing.certify(MODEL, good_x(), sigma, n0=5, n=10)
    with pytest.raises(InputError):
        smoothing.certify(MODEL, good_x(), 0.25, n0=5, n=n)


@SETTINGS
@given(m=st.integers(1, 4), n=st.integers(1, 4), value=st.sampled_from([math.nan, math.inf]))
def test_solver_rejects_non_finite_payoffs(m: int, n: int, value: float) -> None:
    a = np.zeros((m, n))
    a[0, 0] = value
    with pytest.raises(InputError):
        solve_zero_sum(a)


@pytest.mark.parametrize("payoff", [np.zeros((0, 3)), np.zeros(3), [[1, 2], [3]]])
def test_solver_rejects_bad_shapes(payoff: object) -> None:
    with pytest.raises(InputError):
        solve_zero_sum(payoff)  # type: ignore[arg-type]
