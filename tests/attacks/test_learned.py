"""AttNet, the reformer and the Sens-FGSM gradient (double backprop) on tiny data."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from advgame.attacks.learned import (
    AttNet,
    ConvAttNet,
    attacker_objective,
    attnet_attack,
    attnet_examples,
    attnet_saturation,
    best_response_attnet,
    build_attnet,
    default_cap,
    init_attnet_,
    mode_fraction,
    train_attnet,
)
from advgame.defenses.training import (
    SensObjective,
    adversarial_training,
    sens_fgsm_inputs,
    sens_fgsm_loss,
    sens_fgsm_train,
    surrogate_direction,
)
from advgame.defenses.transforms import (
    ConvAutoencoder,
    MLPAutoencoder,
    ReformedClassifier,
    train_autoencoder,
)
from advgame.errors import InputError
from advgame.models import TrainConfig, accuracy


def _blobs(gen: torch.Generator, n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 1x4x4 images: bright top half vs bright bottom half, plus noise."""
    y = torch.randint(0, 2, (n,), generator=gen)
    x = 0.3 * torch.rand(n, 1, 4, 4, generator=gen)
    x[y == 0, :, :2] += 0.6
    x[y == 1, :, 2:] += 0.6
    return x.clamp(0, 1), y


def _clf(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("eta", [0.0, 0.05, 0.3, 1.0])
def test_attnet_respects_budget_and_box(kind: str, eta: float, gen: torch.Generator) -> None:
    net = build_attnet(kind, (1, 8, 8), **({"hidden": (16,)} if kind == "mlp" else
                                          {"channels": (4, 8)}))
    # large weights saturate tanh: the budget must still hold exactly
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(50)
    x = torch.rand(32, 1, 8, 8, generator=gen)
    x[:4] = 0.0
    x[4:8] = 1.0
    z = attnet_attack(net, x, eta).detach()
    assert z.shape == x.shape
    assert float((z - x).abs().max()) <= eta + 1e-6
    assert float(z.min()) >= 0.0 and float(z.max()) <= 1.0
    assert torch.equal(attnet_examples(net, x, eta), z)


def test_conv_attnet_shapes() -> None:
    assert ConvAttNet((3, 7, 5), channels=(2, 4))(torch.rand(2, 3, 7, 5)).shape == (2, 3, 7, 5)
    with pytest.raises(InputError, match="input_shape"):
        ConvAttNet((6, 6))
    with pytest.raises(InputError, match="attnet"):
        build_attnet("rnn", (1, 8, 8))


def test_train_attnet_raises_error_and_keeps_model(gen: torch.Generator) -> None:
    x, y = _blobs(gen)
    model = _clf()
    from advgame.models import train

    train(model, x, y, TrainConfig(epochs=30, batch_size=32, lr=1e-2), generator=gen)
    assert accuracy(model, x, y) > 0.95
    before = copy.deepcopy(model.state_dict())
    model.zero_grad(set_to_none=True)
    model.train()
    torch.manual_seed(1)
    net = AttNet((1, 4, 4), hidden=(32,))
    h = train_attnet(net, model, x, y, 0.5, epochs=40, batch_size=32, lr=1e-2, generator=gen)
    assert model.training  # mode restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert h.loss[-1] > h.loss[0]
    z = attnet_examples(net, x, 0.5)
    assert 1 - accuracy(model, z, y) > 0.5  # a budget of 0.5 lets it flip the halves


def test_reformer_is_differentiable_and_trains(gen: torch.Generator) -> None:
    x, _ = _blobs(gen)
    torch.manual_seed(0)
    ae = MLPAutoencoder((1, 4, 4), hidden=16, code=4)
    curve = train_autoencoder(ae, x, epochs=30, batch_size=32, lr=1e-2, generator=gen)
    assert curve[-1] < curve[0]
    clf = _clf()
    defended = ReformedClassifier(ae, clf)
    xg = x[:5].clone().requires_grad_(True)
    defended(xg).sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0
    conv = ConvAutoencoder((1, 8, 8), channels=4)
    out = conv(torch.rand(2, 1, 8, 8)).detach()
    assert out.shape == (2, 1, 8, 8) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_surrogates() -> None:
    g = torch.tensor([[2.0, -0.5, 0.0, 1e-3]])
    s = surrogate_direction(g, "tanh", tau=1e-3)
    assert torch.allclose(s[:, :3], torch.tensor([[1.0, -1.0, 0.0]]))
    # relative temperature: scaling the gradient does not change the direction
    assert torch.allclose(surrogate_direction(1e-6 * g, "tanh", 0.5),
                          surrogate_direction(g, "tanh", 0.5), atol=1e-6)
    assert float(surrogate_direction(g, "normalized").abs().max()) == 1.0
    with pytest.raises(InputError, match="surrogate"):
        surrogate_direction(g, "sign")  # type: ignore[arg-type]


def _flat_params(model: nn.Module) -> list[torch.Tensor]:
    return list(model.parameters())


@pytest.mark.parametrize("relative", [True, False])
def test_sens_fgsm_gradient_matches_finite_differences(relative: bool) -> None:
    """d/du L(z(u), u) by double backprop equals central finite differences (float64)."""
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = (0.3 + 0.4 * torch.rand(6, 1, 2, 2, generator=g)).double()  # no clipping at eta=0.1
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    eta, tau = 0.1, (0.7 if relative else 0.05)

    def loss() -> torch.Tensor:
        return sens_fgsm_loss(model, x, y, eta, surrogate="tanh", tau=tau, relative_tau=relative)

    params = _flat_params(model)
    grads = torch.autograd.grad(loss(), params)
    h = 1e-6
    max_err, max_g = 0.0, 0.0
    for p, gp in zip(params, grads, strict=True):
        flat = p.data.view(-1)
        for i in range(flat.numel()):
            old = float(flat[i])
            flat[i] = old + h
            lp = float(loss().detach())
            flat[i] = old - h
            lm = float(loss().detach())
            flat[i] = old
            fd = (lp - lm) / (2 * h)
            max_err = max(max_err, abs(fd - float(gp.view(-1)[i])))
            max_g = max(max_g, abs(fd))
    assert max_err < 1e-6 * max(1.0, max_g)
    # and the dz/du term matters: detaching z (plain adversarial training) differs
    detached = torch.autograd.grad(
        sens_fgsm_loss(model, x, y, eta, surrogate="tanh", tau=tau, relative_tau=relative,
                       through=False), params)
    diff = max(float((a - b).abs().max()) for a, b in zip(grads, detached, strict=True))
    assert diff > 1e-4


def test_first_order_form_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 1, 0, 1])
    p = next(model.parameters())

    def loss() -> torch.Tensor:
        return sens_fgsm_loss(model, x, y, 0.2, form="first-order")

    (gp,) = torch.autograd.grad(loss(), [p])
    flat = p.data.view(-1)
    h = 1e-6
    for i in range(flat.numel()):
        old = float(flat[i])
        flat[i] = old + h
        lp = float(loss().detach())
        flat[i] = old - h
        lm = float(loss().detach())
        flat[i] = old
        assert abs((lp - lm) / (2 * h) - float(gp.view(-1)[i])) < 1e-6


def test_sens_inputs_budget_and_detach(gen: torch.Generator) -> None:
    x, y = _blobs(gen, 20)
    model = _clf()
    for sur in ("tanh", "normalized"):
        z = sens_fgsm_inputs(model, x, y, 0.2, surrogate=sur)  # type: ignore[arg-type]
        assert z.requires_grad
        z = z.detach()
        assert float((z - x).abs().max()) <= 0.2 + 1e-6
        assert float(z.min()) >= 0 and float(z.max()) <= 1
    assert not sens_fgsm_inputs(model, x, y, 0.2, create_graph=False).requires_grad


def test_sens_fgsm_and_online_training_run(gen: torch.Generator) -> None:
    x, y = _blobs(gen)
    cfg = TrainConfig(epochs=10, batch_size=32, lr=1e-2)
    for form in ("fgsm", "first-order"):
        m = _clf()
        h = sens_fgsm_train(m, x, y, 0.1, cfg, SensObjective(form=form),  # type: ignore[arg-type]
                            generator=gen)
        assert not m.training and len(h.loss) == 10 and accuracy(m, x, y) > 0.9
    m = _clf()
    adversarial_training(m, x, y, 0.1, cfg, generator=gen)
    assert accuracy(m, x, y) > 0.9


def test_surrogate_scales() -> None:
    """Batch scale: one c for the batch, so an example with small gradients moves less."""
    g = torch.tensor([[2.0, -2.0], [0.02, -0.01]])
    ex = surrogate_direction(g, "tanh", tau=0.5, scale="example")
    ba = surrogate_direction(g, "tanh", tau=0.5, scale="batch")
    c = float(g.abs().mean())
    assert torch.allclose(ba, torch.tanh(g / (0.5 * c)))
    assert torch.allclose(ex[1], torch.tanh(g[1] / (0.5 * float(g[1].abs().mean()))))
    assert float(ba[1].abs().max()) < 0.05 < 0.5 < float(ex[1].abs().max())
    # both are scale free in the whole batch's gradient
    assert torch.allclose(surrogate_direction(1e-5 * g, "tanh", 0.5, scale="batch"), ba,
                          atol=1e-6)
    with pytest.raises(InputError, match="scale"):
        surrogate_direction(g, "tanh", scale="pixel")  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", ["example", "batch"])
def test_detached_scale_same_value_other_gradient(scale: str) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    x = (0.3 + 0.4 * torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(1))).double()
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    params = _flat_params(model)
    out = {}
    for detach in (False, True):
        loss = sens_fgsm_loss(model, x, y, 0.1, tau=0.7, scale=scale,  # type: ignore[arg-type]
                              detach_scale=detach)
        out[detach] = (float(loss.detach()), torch.autograd.grad(loss, params))
    assert out[False][0] == pytest.approx(out[True][0], abs=1e-12)
    diff = max(float((a - b).abs().max()) for a, b in zip(out[False][1], out[True][1],
                                                           strict=True))
    assert diff > 1e-6


def test_clean_weight_mixes_the_clean_loss(gen: torch.Generator) -> None:
    x, y = _blobs(gen, 16)
    model = _clf()
    bare = sens_fgsm_loss(model, x, y, 0.2)
    clean = torch.nn.functional.cross_entropy(model(x), y)
    for w in (0.25, 1.0):
        mixed = sens_fgsm_loss(model, x, y, 0.2, clean_weight=w)
        assert float(mixed.detach()) == pytest.approx(float(((1 - w) * bare + w * clean).detach()),
                                                      rel=1e-6)
    with pytest.raises(InputError, match="clean_weight"):
        sens_fgsm_loss(model, x, y, 0.2, clean_weight=1.5)


def test_first_order_without_graph_is_refused(gen: torch.Generator) -> None:
    """It used to fail with "backward through the graph a second time"; it has no meaning."""
    x, y = _blobs(gen, 16)
    with pytest.raises(InputError, match="through"):
        sens_fgsm_train(_clf(), x, y, 0.1, TrainConfig(epochs=1),
                        SensObjective(form="first-order", through=False), generator=gen)


def test_bare_sens_fgsm_leaks_the_label_and_the_clean_term_fixes_it() -> None:
    """Real 8x8 digits, eta 0.3: trained on z(x, y) alone the model reads the label the
    attack writes into z and misclassifies clean inputs (clean error 0.57 here against
    u_0's 0.03); with half the loss on clean inputs it stays near u_0 (0.07)."""
    from advgame.attacks import fgm
    from advgame.data import load_dataset
    from advgame.models import build_model, train

    torch.set_num_threads(1)
    ds = load_dataset("digits-8x8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        u0 = build_model("mlp", ds.input_shape, 10, hidden=(64,))
    train(u0, ds.x_train, ds.y_train, TrainConfig(epochs=15, lr=3e-3),
          generator=torch.Generator().manual_seed(0))
    err = {}
    for w in (0.0, 0.5):
        m = copy.deepcopy(u0)
        sens_fgsm_train(m, ds.x_train, ds.y_train, 0.3, TrainConfig(epochs=40, lr=3e-3),
                        SensObjective(clean_weight=w), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            pred = m(ds.x_test).argmax(1)
        leak = fgm(m, ds.x_test, pred, 0.3, "inf")  # FGSM with the model's own labels
        err[w] = (1 - accuracy(m, ds.x_test, ds.y_test), 1 - accuracy(m, leak, ds.y_test),
                  1 - accuracy(m, fgm(m, ds.x_test, ds.y_test, 0.3, "inf"), ds.y_test))
    u0_err = 1 - accuracy(u0, ds.x_test, ds.y_test)
    assert err[0.0][0] > 0.3 > 0.1 > err[0.5][0] and err[0.5][0] < u0_err + 0.08
    assert err[0.0][2] < err[0.0][1] - 0.1  # the true-label step helps it: a label leak


# --------------------------------------------------------------------------- objectives

_Z = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0]])
_Y = torch.tensor([0, 0, 1])


def _ce_by_hand(z: list[float], y: int) -> float:
    return math.log(sum(math.exp(v) for v in z)) - z[y]


def test_attacker_objectives_closed_form() -> None:
    ce = [_ce_by_hand(row, int(y)) for row, y in zip(_Z.tolist(), _Y.tolist(), strict=True)]
    assert torch.allclose(attacker_objective(_Z, _Y, "ce"), torch.tensor(ce))
    # margins max_{j != y} z_j - z_y: -2, 3, 0
    assert attacker_objective(_Z, _Y, "cw").tolist() == [-2.0, 0.0, 0.0]
    assert attacker_objective(_Z, _Y, "cw", kappa=1.0).tolist() == [-2.0, 1.0, 0.0]
    assert attacker_objective(_Z, _Y, "cw", kappa=5.0).tolist() == [-2.0, 3.0, 0.0]
    assert torch.allclose(attacker_objective(_Z, _Y, "clamped-ce", cap=1.0),
                          torch.tensor([min(c, 1.0) for c in ce]))
    assert default_cap(3) == pytest.approx(math.log(3) + 1)
    assert torch.allclose(attacker_objective(_Z, _Y, "clamped-ce"),
                          torch.tensor([min(c, math.log(3) + 1) for c in ce]))
    assert ce[1] > math.log(3) + 1  # so the default cap binds on row 1
    # DLR: -(z_y - max_{j != y} z_j) / (z_(1) - z_(3))
    assert torch.allclose(attacker_objective(_Z, _Y, "dlr"),
                          torch.tensor([-2.0 / 3.0, 1.0, 0.0]), atol=1e-6)


def test_cw_stops_rewarding_fooled_examples() -> None:
    """Past the margin kappa an example has zero gradient; CE keeps pulling it."""
    z = _Z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(attacker_objective(z, _Y, "cw", kappa=1.0).sum(), z)
    assert torch.equal(g[1], torch.zeros(3))          # fooled by 3 > kappa: no pull
    assert g[0].tolist() == [-1.0, 1.0, 0.0]          # not fooled: push runner-up over y
    (g_ce,) = torch.autograd.grad(attacker_objective(z, _Y, "ce").sum(), z)
    assert float(g_ce[1].abs().sum()) > 0.1           # the unbounded CE still pulls it
    # pushing the fooled example further does not raise the objective
    far = _Z.clone()
    far[1, 1] = 30.0
    assert torch.equal(attacker_objective(far, _Y, "cw", kappa=1.0),
                       attacker_objective(_Z, _Y, "cw", kappa=1.0))
    assert float(attacker_objective(far, _Y, "ce")[1]) > 25.0
    # the clamped CE stops at its cap as well
    (g_cl,) = torch.autograd.grad(attacker_objective(z, _Y, "clamped-ce").sum(), z)
    assert torch.equal(g_cl[1], torch.zeros(3)) and float(g_cl[0].abs().sum()) > 0.1


def test_bad_objective_and_margin_raise(gen: torch.Generator) -> None:
    with pytest.raises(InputError, match="^objective: .*'hinge'"):
        attacker_objective(_Z, _Y, "hinge")
    x, y = _blobs(gen, 8)
    net, model = AttNet((1, 4, 4), hidden=(4,)), _clf()
    with pytest.raises(InputError, match="^objective"):
        train_attnet(net, model, x, y, 0.1, epochs=1, generator=gen, objective="CE")
    with pytest.raises(InputError, match="^kappa"):
        train_attnet(net, model, x, y, 0.1, epochs=1, generator=gen, objective="cw",
                     kappa=-1.0)
    with pytest.raises(InputError, match="^objective"):
        best_response_attnet(lambda: AttNet((1, 4, 4), hidden=(4,)), model, x, y, 0.1,
                             objective="margin", generator=gen)
    with pytest.raises(InputError, match="^restarts"):
        best_response_attnet(lambda: AttNet((1, 4, 4), hidden=(4,)), model, x, y, 0.1,
                             restarts=0, generator=gen)


def test_train_attnet_records_objective(gen: torch.Generator) -> None:
    x, y = _blobs(gen, 40)
    h = train_attnet(AttNet((1, 4, 4), hidden=(8,)), _clf(), x, y, 0.2, epochs=2,
                     generator=gen, objective="clamped-ce")
    assert (h.objective, h.cap, h.kappa) == ("clamped-ce", pytest.approx(math.log(2) + 1), None)
    assert len(h.loss) == len(h.ce) == len(h.error) == 2
    assert all(lo <= c + 1e-6 for lo, c in zip(h.loss, h.ce, strict=True))  # min(CE, cap)
    h = train_attnet(AttNet((1, 4, 4), hidden=(8,)), _clf(), x, y, 0.2, epochs=1,
                     generator=gen, objective="cw", kappa=0.5)
    assert (h.objective, h.kappa, h.cap) == ("cw", 0.5, None) and h.loss[0] <= 0.5


def test_init_attnet_is_seeded_by_the_generator_only() -> None:
    def params(seed: int, global_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(global_seed)
        net = init_attnet_(ConvAttNet((1, 8, 8), channels=(2, 4)),
                           torch.Generator().manual_seed(seed))
        return [p.detach().clone() for p in net.parameters()]

    a, b, c = params(0, 1), params(0, 2), params(1, 1)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert all(not torch.equal(p, q) for p, q in zip(a, c, strict=True))
    # the default scheme's scale: Linear(32 -> 64) weights within 1/sqrt(32)
    lin = init_attnet_(nn.Linear(32, 64), torch.Generator().manual_seed(0))
    w_max = float(lin.weight.detach().abs().max())
    assert 0.9 / math.sqrt(32) < w_max <= 1 / math.sqrt(32) + 1e-7


@pytest.fixture(scope="module")
def digits() -> tuple[object, nn.Module]:
    """8x8 digits (10 classes) and an MLP (64 hidden) trained on them, test accuracy ~0.97."""
    from advgame.data import load_dataset
    from advgame.models import build_model, train

    torch.set_num_threads(1)
    ds = load_dataset("digits-8x8")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("mlp", ds.input_shape, 10, hidden=(64,))
    train(model, ds.x_train, ds.y_train, TrainConfig(epochs=15, lr=3e-3),
          generator=torch.Generator().manual_seed(0))
    return ds, model.eval()


def test_restarts_or_flags_and_differ(digits: tuple) -> None:  # type: ignore[type-arg]
    ds, model = digits
    x, y, xe, ye = ds.x_train[:300], ds.y_train[:300], ds.x_test[:200], ds.y_test[:200]

    def run(global_seed: int):  # type: ignore[no-untyped-def]
        torch.manual_seed(global_seed)
        return best_response_attnet(lambda: AttNet((1, 8, 8), hidden=(16,)), model, x, y, 0.2,
                                    restarts=4, objective="cw", epochs=3, batch_size=32,
                                    lr=3e-3, x_eval=xe, y_eval=ye,
                                    generator=torch.Generator().manual_seed(0))

    br = run(0)
    assert len(br.restarts) == len(br.attnets) == 4
    assert len({r.seed for r in br.restarts}) == 4
    per = []
    for net, r in zip(br.attnets, br.restarts, strict=True):
        with torch.no_grad():
            preds = model(attnet_examples(net, xe, 0.2)).argmax(1)
        per.append(preds != ye)
        assert r.error == pytest.approx(float(per[-1].float().mean()))
        assert r.mode_fraction == pytest.approx(mode_fraction(preds))
        assert r.saturation == pytest.approx(attnet_saturation(net, xe))
        assert r.history.objective == "cw"
    stacked = torch.stack(per)
    assert not all(torch.equal(stacked[0], f) for f in stacked[1:])  # restarts disagree
    assert torch.equal(br.flags, stacked.any(dim=0))
    assert br.error > max(r.error for r in br.restarts)  # the OR gains over every restart
    first = [next(n.parameters()).detach() for n in br.attnets]
    assert all(not torch.equal(first[0], f) for f in first[1:])
    # reproducible from the generator alone, whatever torch's global seed
    again = run(123)
    assert torch.equal(again.flags, br.flags)
    assert [r.seed for r in again.restarts] == [r.seed for r in br.restarts]


def test_mode_fraction_and_saturation() -> None:
    assert mode_fraction(torch.tensor([2, 2, 0, 2, 1])) == pytest.approx(0.6)
    net = AttNet((1, 2, 2), hidden=(3,))
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.net[-1].bias.copy_(torch.tensor([10.0, 0.0, -10.0, 0.5]))
    assert attnet_saturation(net, torch.rand(7, 1, 2, 2)) == pytest.approx(0.5)


def test_cw_attnet_does_not_collapse_on_digits(digits: tuple) -> None:  # type: ignore[type-arg]
    """Real data (8x8 digits, 10 classes, eta 0.4): the CE AttNets collapse to one class,
    the CW AttNets from the same initializations fool the model input by input."""
    ds, model = digits
    assert accuracy(model, ds.x_test, ds.y_test) > 0.9
    res = {obj: best_response_attnet(
        lambda: AttNet(ds.input_shape, hidden=(64,)), model, ds.x_train, ds.y_train, 0.4,
        restarts=3, objective=obj, epochs=10, lr=1e-3, x_eval=ds.x_test, y_eval=ds.y_test,
        generator=torch.Generator().manual_seed(0)) for obj in ("ce", "cw")}
    assert res["ce"].collapsed == 3  # the control: the unbounded CE does collapse here
    assert all(r.mode_fraction < 0.85 for r in res["cw"].restarts)
    assert all(r.error > 0.7 for r in res["cw"].restarts)
    assert res["cw"].error > 0.95
