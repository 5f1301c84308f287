"""The attack loop against closed forms (linear models), its constraints, and determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advgame.attacks import attack_loop, evaluate_attack, fgm, pgd
from advgame.errors import InputError
from advgame.models import MLP, LinearModel, SmallCNN


def linear_binary(d: int, gen: torch.Generator) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A two-logit linear model with logits (0, w.x + b), so g = w.x + b."""
    m = LinearModel((d,), 2)
    w = torch.randn(d, generator=gen)
    b = torch.randn((), generator=gen) * 0.1
    with torch.no_grad():
        m[1].weight.copy_(torch.stack([torch.zeros(d), w]))
        m[1].bias.copy_(torch.stack([torch.zeros(()), b]))
    return m, w, b


@pytest.mark.parametrize("norm", ["2", "inf"])
def test_fgm_matches_closed_form_on_linear_model(norm: str, gen: torch.Generator) -> None:
    d, n, eps = 20, 64, 0.05
    model, w, b = linear_binary(d, gen)
    # interior points so that the box clipping never binds
    x = 0.3 + 0.4 * torch.rand(n, d, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    ys = (2 * y - 1).float()
    x_adv = fgm(model, x, y, eps, norm)
    direction = w / w.norm() if norm == "2" else w.sign()
    expected = x - eps * ys[:, None] * direction[None, :]
    torch.testing.assert_close(x_adv, expected, atol=1e-6, rtol=0)
    # the margin y g(x) drops by exactly eps ||w||_{p*}
    dual = w.norm() if norm == "2" else w.abs().sum()
    margin = ys * (x @ w + b)
    margin_adv = ys * (x_adv @ w + b)
    torch.testing.assert_close(margin - margin_adv, eps * dual.expand(n), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("norm", ["2", "inf"])
@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_stays_in_ball_and_box(norm: str, random_start: bool, gen: torch.Generator) -> None:
    torch.manual_seed(1)
    model = SmallCNN((1, 12, 12), 3, channels=(4, 8), head=16)
    x = torch.rand(16, 1, 12, 12, generator=gen)
    x[:4] = 0.0  # corners of the box
    x[4:8] = 1.0
    y = torch.randint(0, 3, (16,), generator=gen)
    eps = 0.3 if norm == "inf" else 2.0
    x_adv = pgd(model, x, y, eps, norm, steps=15, step_size=eps / 3, random_start=random_start,
                generator=gen)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "inf" else delta.norm(dim=1)
    assert bool((size <= eps + 1e-5).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype


def test_pgd_loss_at_least_fgm(gen: torch.Generator) -> None:
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 2, hidden=(32, 32))
    x = torch.rand(200, 1, 8, 8, generator=gen)
    y = torch.randint(0, 2, (200,), generator=gen)
    eps = 0.1
    loss_fgm = evaluate_attack(model, fgm(model, x, y, eps, "inf"), y).loss
    x_pgd = pgd(model, x, y, eps, "inf", steps=20, random_start=False, keep_best=True)
    loss_pgd = evaluate_attack(model, x_pgd, y).loss
    # keep_best includes the start x; on a ReLU net PGD-20 reaches at least FGM's loss on
    # average and on nearly every example
    assert loss_pgd.mean() >= loss_fgm.mean()
    assert (loss_pgd >= loss_fgm - 1e-5).float().mean() >= 0.95


def test_pgd_linear_linf_reaches_fgm_vertex(gen: torch.Generator) -> None:
    model, w, b = linear_binary(10, gen)
    x = 0.3 + 0.4 * torch.rand(32, 10, generator=gen)
    y = torch.randint(0, 2, (32,), generator=gen)
    x_f = fgm(model, x, y, 0.05, "inf")
    x_p = pgd(model, x, y, 0.05, "inf", steps=10, random_start=True, generator=gen)
    torch.testing.assert_close(x_p, x_f, atol=1e-6, rtol=0)


def test_seeded_pgd_repeats_exactly() -> None:
    torch.manual_seed(0)
    model = MLP((1, 8, 8), 2, hidden=(16,))
    x = torch.rand(10, 1, 8, 8)
    y = torch.randint(0, 2, (10,))
    a = pgd(model, x, y, 0.2, "2", generator=torch.Generator().manual_seed(5))
    b = pgd(model, x, y, 0.2, "2", generator=torch.Generator().manual_seed(5))
    c = pgd(model, x, y, 0.2, "2", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_model_mode_restored_and_no_param_grads() -> None:
    model = MLP((4,), 2, hidden=(8,))
    model.train()
    x, y = torch.rand(3, 4), torch.tensor([0, 1, 0])
    pgd(model, x, y, 0.1, "inf", steps=3, generator=torch.Generator().manual_seed(0))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    fgm(model, x, y, 0.1)
    assert not model.training


def test_eps_zero_is_identity() -> None:
    model = MLP((4,), 2, hidden=(8,))
    x, y = torch.rand(3, 4), torch.tensor([0, 1, 0])
    assert torch.equal(fgm(model, x, y, 0.0), x)


def test_success_flags() -> None:
    model, _, _ = linear_binary(5, torch.Generator().manual_seed(3))
    x = torch.rand(50, 5)
    with torch.no_grad():
        pred = model(x).argmax(1)
    res = evaluate_attack(model, x, pred)
    assert not res.success.any()
    assert evaluate_attack(model, x, 1 - pred).success.all()


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"eps": -0.1}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"norm": "3"}, "norm"),
        ({"x": torch.full((2, 4), float("nan"))}, "x"),
        ({"x": torch.full((2, 4), 2.0)}, "x"),
        ({"y": torch.tensor([0, 5])}, "y"),
        ({"y": torch.tensor([0, 1, 1])}, "y"),
        ({"x": torch.zeros(0, 4), "y": torch.zeros(0, dtype=torch.long)}, "x"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs: dict, argument: str) -> None:
    model = MLP((4,), 2, hidden=(8,))
    args = {"x": torch.rand(2, 4), "y": torch.tensor([0, 1]), "eps": 0.1, "norm": "inf"}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        attack_loop(model, args["x"], args["y"], eps=args["eps"], norm=args["norm"], steps=1,
                    step_size=0.1)
    assert err.value.argument == argument


def test_model_with_wrong_output_shape() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    with pytest.raises(InputError, match="model"):
        fgm(model, torch.rand(2, 4), torch.tensor([0, 0]), 0.1)


def test_box_aware_fgm_is_the_linear_best_response(gen: torch.Generator) -> None:
    """On a linear model, box-aware L2 FGM = linear.best_response; it beats clipped FGM."""
    from advgame.linear import best_response

    d, n, eps = 30, 40, 1.0
    model, w, b = linear_binary(d, gen)
    model = model.double()
    x = torch.rand(n, d, generator=gen, dtype=torch.float64)
    x[torch.rand(n, d, generator=gen) < 0.6] = 0.0  # MNIST-like zero pixels
    y = torch.randint(0, 2, (n,), generator=gen)
    ys = 2 * y - 1
    wd, bd = w.double(), b.double()
    x_box = fgm(model, x, y, eps, "2", box_aware=True)
    delta = best_response(wd.expand(n, d), bd.expand(n), x, ys, eps, "2")
    torch.testing.assert_close(x_box, x + delta, atol=1e-12, rtol=0)
    assert x_box.min() >= 0 and x_box.max() <= 1
    assert bool(((x_box - x).norm(dim=1) <= eps * (1 + 1e-9)).all())
    margin_box = ys * (x_box @ wd + bd)
    margin_clip = ys * (fgm(model, x, y, eps, "2") @ wd + bd)
    assert bool((margin_box <= margin_clip + 1e-12).all())
    assert bool((margin_box < margin_clip - 1e-3).any())
    # L-inf: clipped FGSM is already exact
    torch.testing.assert_close(fgm(model, x, y, 0.1, "inf", box_aware=True),
                               fgm(model, x, y, 0.1, "inf"))


def test_box_aware_pgd_stays_in_ball_and_box(gen: torch.Generator) -> None:
    torch.manual_seed(2)
    model = SmallCNN((1, 12, 12), 3, channels=(4, 8), head=16)
    x = torch.rand(8, 1, 12, 12, generator=gen)
    x[:3] = 0.0
    y = torch.randint(0, 3, (8,), generator=gen)
    x_adv = pgd(model, x, y, 2.0, "2", steps=10, generator=gen, box_aware=True)
    assert bool(((x_adv - x).flatten(1).norm(dim=1) <= 2.0 + 1e-5).all())
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_attacks_restore_every_submodules_mode() -> None:
    """A fresh wrapper (a Defense is built in training mode) around an eval-mode network with
    batch norm: after any attack the network is still in eval mode and the wrapper in its
    own mode. Restoring only the outer flag (``wrapper.train(True)``) would switch the
    network's batch norm to training statistics for every later prediction."""
    from advgame.attacks import apgd, cw_l2, fab, run_cascade, square
    from advgame.defenses import TransformDefense
    from advgame.defenses.preprocessing import BitDepthReduction
    from advgame.evaluation import evaluate
    from advgame.linear import linearize
    from advgame.models import predict

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(),
                        nn.Linear(8, 3)).eval()
    wrapper = TransformDefense("bd", BitDepthReduction(3), net)
    assert wrapper.training and not net.training
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = predict(net, x)
    g = torch.Generator().manual_seed(0)
    calls = [lambda m: fgm(m, x, y, 0.1, "inf"),
             lambda m: pgd(m, x, y, 0.1, "inf", steps=2, generator=g),
             lambda m: apgd(m, x, y, 0.1, "inf", steps=3, generator=g),
             lambda m: square(m, x, y, 0.1, "inf", queries=5, generator=g),
             lambda m: fab(m, x, y, 0.1, "inf", steps=2, generator=g),
             lambda m: cw_l2(m, x, y, steps=2, binary_search_steps=1),
             lambda m: run_cascade(m, x, y, 0.1, "inf", ["apgd-ce", "square"], g),
             lambda m: evaluate(m, x, y, 0.1, "inf", ["apgd-ce"], g, checks=False),
             lambda m: predict(m, x)]
    for call in calls:
        call(wrapper)
        assert wrapper.training and not any(m.training for m in net.modules())
    two = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    linearize(nn.Sequential(two), x)  # the binary logit's linearization, through a wrapper
    assert not two.training
    net.train()  # a network being trained stays in training mode
    pgd(net, x, y, 0.1, "inf", steps=1, generator=g)
    assert all(m.training for m in net.modules())
