"""AttNet, the reformer and the Sens-FGSM gradient (double backprop) on tiny data."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from advgame.attacks.learned import (
    AttNet,
    ConvAttNet,
    attnet_attack,
    attnet_examples,
    build_attnet,
    train_attnet,
)
from advgame.defenses.training import (
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
        h = sens_fgsm_train(m, x, y, 0.1, cfg, form=form, generator=gen)  # type: ignore[arg-type]
        assert not m.training and len(h.loss) == 10 and accuracy(m, x, y) > 0.9
    m = _clf()
    adversarial_training(m, x, y, 0.1, cfg, generator=gen)
    assert accuracy(m, x, y) > 0.9
