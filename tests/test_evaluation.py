"""advgame.evaluation: a healthy model gets no flags; gradient masking, randomness and
softmax outputs are caught, and a masked model's robust accuracy is what Square finds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advgame.data import load_dataset, stratified_indices
from advgame.errors import InputError
from advgame.evaluation import Evaluation, accuracy_curve, evaluate
from advgame.models import TrainConfig, build_model, train


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP on scikit-learn's 8x8 digits (10 classes) and 60 stratified test points."""
    ds = load_dataset("digits-8x8")
    torch.manual_seed(0)
    model = build_model("mlp", ds.input_shape, 10, hidden=(64,))
    train(model, ds.x_train, ds.y_train, TrainConfig(epochs=30, lr=3e-3),
          generator=torch.Generator().manual_seed(0))
    model.eval()
    idx = stratified_indices(ds.y_test, 60, generator=torch.Generator().manual_seed(0))
    return model, ds.x_test[idx], ds.y_test[idx]


class Quantized(nn.Module):
    """A non-differentiable input quantizer in front of the model: zero input gradients."""

    def __init__(self, model: nn.Module, levels: int = 4) -> None:
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.levels) / self.levels)


class Noisy(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x + 0.05 * torch.randn_like(x))


def names(ev: Evaluation) -> set[str]:
    return {f.name for f in ev.flags}


def test_healthy_model_gets_no_flags(digits: tuple[nn.Module, torch.Tensor, torch.Tensor]
                                     ) -> None:
    model, x, y = digits
    ev = evaluate(model, x, y, 0.1, "inf", generator=torch.Generator().manual_seed(0))
    assert ev.clean_accuracy > 0.85
    assert ev.flags == (), [f.message for f in ev.flags]
    assert list(ev.per_attack) == ["apgd-ce", "apgd-t", "fab-t", "square", "fgm (single step)"]
    accs = list(ev.per_attack.values())
    assert accs == sorted(accs, reverse=True) and ev.robust_accuracy == accs[-1]
    assert ev.robust_accuracy < ev.clean_accuracy
    assert ev.robust.shape == (60,) and float(ev.robust.float().mean()) == ev.robust_accuracy
    fooled = ~ev.robust
    with torch.no_grad():
        assert bool((model(ev.x_adv[fooled]).argmax(1) != y[fooled]).all())


def test_quantizer_is_flagged_and_square_sets_the_number(
        digits: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = digits
    masked = Quantized(model)
    ev = evaluate(masked, x, y, 0.2, "inf", generator=torch.Generator().manual_seed(0))
    assert "zero_gradients" in names(ev)
    assert "gradient_free_beats_gradient" in names(ev)
    grad_only = ev.per_attack["fab-t"]
    after_square = ev.per_attack["square"]
    assert after_square < grad_only - 0.05  # PGD-style attacks claim far more
    assert ev.robust_accuracy == after_square
    # against a plain PGD the quantizer looks robust: exactly what the flags warn about
    from advgame.attacks import pgd

    xa = pgd(masked, x, y, 0.2, "inf", steps=40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pgd_acc = float((masked(xa).argmax(1) == y).float().mean())
    assert pgd_acc > ev.robust_accuracy + 0.05


def test_random_and_softmax_outputs_are_flagged(
        digits: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = digits
    ev = evaluate(Noisy(model), x[:30], y[:30], 0.05, "inf", ["apgd-ce"],
                  torch.Generator().manual_seed(0))
    assert "random_outputs_without_eot" in names(ev)
    ev_eot = evaluate(Noisy(model), x[:30], y[:30], 0.05, "inf", ["apgd-ce-eot"],
                      torch.Generator().manual_seed(0))
    assert "random_outputs_without_eot" not in names(ev_eot)
    soft = nn.Sequential(model, nn.Softmax(dim=1))
    ev_soft = evaluate(soft, x[:30], y[:30], 0.05, "inf", ["apgd-ce"],
                       torch.Generator().manual_seed(0))
    assert "softmax_outputs" in names(ev_soft)


def test_accuracy_curve_and_bad_input(digits: tuple[nn.Module, torch.Tensor, torch.Tensor]
                                      ) -> None:
    model, x, y = digits
    evs = [evaluate(model, x[:20], y[:20], e, "inf", ["apgd-ce"], checks=False)
           for e in (0.02, 0.2)]
    assert accuracy_curve(evs) == []
    assert evs[1].robust_accuracy <= evs[0].robust_accuracy
    fake = [evs[1], Evaluation(0.3, "inf", 20, 1.0, 0.9, {}, evs[0].robust, x[:20], (), ())]
    assert [f.name for f in accuracy_curve(fake)] == ["accuracy_not_falling_with_eps"]
    for arg, kw in [("eps", {"eps": -1.0}), ("attacks", {"attacks": ["nope"]}),
                    ("norm", {"norm": "1"})]:
        args = {"eps": 0.1, "norm": "inf", "attacks": "standard", **kw}
        with pytest.raises(InputError) as info:
            evaluate(model, x[:5], y[:5], args["eps"], args["norm"], args["attacks"])
        assert info.value.argument == arg


def test_single_step_beating_the_iterative_stages_is_flagged() -> None:
    """An 'iterative' stage that returns its input unchanged (a failing attack): FGM, folded
    in after the cascade, fools the points it left, and the check says so."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(40, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    stuck = ("stuck", lambda m, xx, yy, e, p, gg: xx)
    ev = evaluate(model, x, y, 0.3, "inf", [stuck], checks=False)
    assert ev.per_attack["stuck"] == 1.0
    assert ev.robust_accuracy < 0.9
    assert "single_step_beats_iterative" in names(ev)
    flag = next(f for f in ev.flags if f.name == "single_step_beats_iterative")
    assert str(round((1 - ev.robust_accuracy) * 40)) in flag.message
    # the same stage that attacks properly leaves FGM nothing: no flag
    assert "single_step_beats_iterative" not in names(
        evaluate(model, x, y, 0.3, "inf", ["apgd-ce"], torch.Generator().manual_seed(0),
                 checks=False))


def test_a_model_that_ignores_its_input_fails_the_budget_checks() -> None:
    """Logits that do not depend on x: no attack at any eps changes a prediction. Zero
    gradients, accuracy flat from eps to 4 eps and an unbounded attack leaving everything
    correct must all be flagged."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([2.0, 0.0, -1.0]))
    x = torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(20, dtype=torch.long)
    ev = evaluate(model, x, y, 0.1, "inf", ["apgd-ce", "square"],
                  torch.Generator().manual_seed(0))
    assert ev.robust_accuracy == 1.0
    assert {"zero_gradients", "accuracy_not_falling_with_eps",
            "unbounded_attack_not_zero"} <= names(ev)
    assert ev.checks["unbounded_accuracy"] == 1.0
    assert ev.checks["apgd_ce_accuracy_eps"] == ev.checks["apgd_ce_accuracy_4eps"] == 1.0


def test_gradient_free_is_what_the_stage_is_not_what_it_is_called(
        digits: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    """The masking check knows Square by the attack, whatever its name: a StrongAttack
    'Random search' (method square) counts as gradient-free, an APGD named 'square-ish'
    does not; a repeated stage name is kept apart in per_attack."""
    from advgame.attacks import StrongAttack

    model, x, y = digits
    masked = Quantized(model)
    sq = StrongAttack("Random search", 0.2, "inf", method="square", queries=300)
    fake = StrongAttack("square-ish", 0.2, "inf", method="apgd", steps=10)
    assert sq.gradient_free and not fake.gradient_free
    ev = evaluate(masked, x, y, 0.2, "inf", ["apgd-ce", sq, fake, "apgd-ce"],
                  torch.Generator().manual_seed(0), checks=False)
    assert [s.gradient_free for s in ev.stages] == [False, True, False, False]
    assert list(ev.per_attack)[:4] == ["apgd-ce", "Random search", "square-ish", "apgd-ce (2)"]
    assert ev.stages[1].fooled >= 2
    assert ev.checks["gradient_free_fooled_after_gradient"] == ev.stages[1].fooled
    assert "gradient_free_beats_gradient" in names(ev)


def test_evaluate_is_reproducible(digits: tuple[nn.Module, torch.Tensor, torch.Tensor]
                                  ) -> None:
    model, x, y = digits
    runs = [evaluate(model, x[:30], y[:30], 0.1, "inf", ["apgd-ce", "apgd-t", "square"],
                     torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(runs[0].x_adv, runs[1].x_adv)
    assert torch.equal(runs[0].robust, runs[1].robust)
    assert runs[0].per_attack == runs[1].per_attack and runs[0].checks == runs[1].checks
