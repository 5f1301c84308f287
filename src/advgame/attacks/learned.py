"""Learned attackers ("AttNet"): a network that maps an input to its adversarial example.

An attack network with parameters v produces, for an input x in [0, 1]^d and an L-inf
budget eta,

    z_v(x) = clip(x + eta * tanh(a(x; v)), 0, 1),                       (Hamm & Mehra)

so ``||z - x||_inf <= eta`` and z stays in the box for every v (the budget is built into
the architecture, no projection is needed). The attacker is trained to maximize the
classifier's cross-entropy at z against a *frozen* defense h(.; u):

    max_v  E_(x,y) l(h(z_v(x); u), y).

``AttNet`` is the paper's MLP (default 3 hidden layers of 300 ReLU units, output of the
input's size); ``ConvAttNet`` is a small convolutional encoder-decoder of another
architecture class, used to ask whether a defense trained against one attack network
transfers to another (a reviewer's question).

The networks output the *direction* tanh(a(x; v)) in [-1, 1]^shape; ``attnet_attack``
turns it into z for a budget eta given at call time, so one AttNet can be evaluated at
several budgets. The classifier is always passed at call time and its train/eval mode is
restored; no classifier parameter gradient is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from advgame.errors import InputError
from advgame.validate import check_images, check_labels, check_nonnegative, check_positive_int


class AttNet(nn.Module):
    """MLP attack network: x -> tanh(a(x; v)), a = Linear/ReLU stack, output shaped like x.

    Args:
        input_shape: shape of one input, e.g. (1, 28, 28).
        hidden: hidden widths (default three layers of 300, as in the paper).

    Shape: (N, *input_shape) -> (N, *input_shape), values in [-1, 1].

    Example:
        >>> net = AttNet((1, 4, 4), hidden=(8,))
        >>> x = torch.rand(2, 1, 4, 4)
        >>> z = attnet_attack(net, x, 0.1)
        >>> bool(((z - x).abs() <= 0.1 + 1e-6).all()) and bool(((z >= 0) & (z <= 1)).all())
        True
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (300, 300, 300)) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        d = math.prod(self.input_shape)
        layers: list[nn.Module] = [nn.Flatten()]
        width = d
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, d))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x)).reshape(x.shape)


class ConvAttNet(nn.Module):
    """Convolutional attack network, another architecture class than ``AttNet``.

    Encoder: two stride-2 3x3 convolutions (ReLU) to (c2, ceil(H/4), ceil(W/4)); decoder:
    one linear layer back to C x H x W, then tanh. (A convolutional encoder with a dense
    decoder: transposed convolutions cost 3-5x more on a CPU for no gain here.)

    Shape: (N, C, H, W) -> (N, C, H, W), values in [-1, 1].

    Example:
        >>> net = ConvAttNet((1, 8, 8), channels=(4, 8))
        >>> net(torch.rand(3, 1, 8, 8)).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise InputError("input_shape", f"ConvAttNet needs (C, H, W), got "
                             f"{tuple(input_shape)}")
        self.input_shape = tuple(int(s) for s in input_shape)
        c, h, w = self.input_shape
        c1, c2 = (int(ch) for ch in channels)
        h4, w4 = (((h + 1) // 2) + 1) // 2, (((w + 1) // 2) + 1) // 2
        self.net = nn.Sequential(
            nn.Conv2d(c, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c2 * h4 * w4, c * h * w),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(x)).reshape(x.shape)


#: Names of the attack-network architectures, for configs and the CLI.
ATTNETS: dict[str, type[nn.Module]] = {"mlp": AttNet, "cnn": ConvAttNet}


def build_attnet(kind: str, input_shape: Sequence[int], **kwargs: object) -> nn.Module:
    """A named attack network: ``mlp`` (:class:`AttNet`) or ``cnn`` (:class:`ConvAttNet`).

    Example:
        >>> build_attnet("mlp", (1, 4, 4), hidden=(8,))(torch.zeros(1, 1, 4, 4)).shape
        torch.Size([1, 1, 4, 4])
    """
    if kind not in ATTNETS:
        raise InputError("attnet", f"unknown attack network {kind!r}; choose from "
                         f"{', '.join(ATTNETS)}")
    return ATTNETS[kind](tuple(input_shape), **kwargs)


def attnet_attack(attnet: nn.Module, x: torch.Tensor, eta: float) -> torch.Tensor:
    """z = clip(x + eta * attnet(x), 0, 1), differentiable in the attack network's parameters.

    ``attnet(x)`` must lie in [-1, 1] (both networks here end in tanh), so
    ``||z - x||_inf <= eta``. Gradients flow to the attack network; x is not detached.

    Shape: x (N, ...) in [0, 1] -> z (N, ...), same device and dtype.

    Example:
        >>> net = AttNet((1, 2, 2), hidden=(4,))
        >>> attnet_attack(net, torch.full((1, 1, 2, 2), 0.5), 0.0).unique().tolist()
        [0.5]
    """
    return torch.clamp(x + eta * attnet(x), 0.0, 1.0)


@torch.no_grad()
def attnet_examples(
    attnet: nn.Module, x: torch.Tensor, eta: float, batch_size: int = 1000
) -> torch.Tensor:
    """Batched, gradient-free ``attnet_attack`` in eval mode (restored). (N, ...) -> (N, ...)."""
    was = attnet.training
    attnet.eval()
    try:
        out = [attnet_attack(attnet, x[i:i + batch_size], eta)
               for i in range(0, x.shape[0], batch_size)]
    finally:
        attnet.train(was)
    return torch.cat(out) if out else x.clone()


@dataclass
class AttNetHistory:
    """Per-epoch mean attacker objective E l(h(z_v(x); u), y) and error rate on the batches."""

    loss: list[float] = field(default_factory=list)
    error: list[float] = field(default_factory=list)


def train_attnet(
    attnet: nn.Module,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None = None,
) -> AttNetHistory:
    """Train ``attnet`` in place to maximize the frozen ``model``'s cross-entropy (Adam).

    Maximizes f(v) = E_(x,y) CE(model(clip(x + eta tanh(a(x; v)), 0, 1)), y) over the
    attack network's parameters v by mini-batch gradient ascent; the model (the defense u)
    is held fixed: it is evaluated in eval mode, its parameters receive no ``.grad`` and its
    mode is restored afterwards. The attack network is left in eval mode.

    Args:
        attnet: attack network, (N, ...) -> (N, ...) in [-1, 1].
        model: frozen classifier (N, ...) -> (N, K) logits (passed at call time).
        x: (N, ...) inputs in [0, 1]. y: (N,) labels in [0, K).
        eta: L-inf budget (>= 0).
        epochs, batch_size, lr: optimization settings.
        generator: CPU generator shuffling the batches.
        progress: called as ``progress(epoch, mean_objective)`` after each epoch.

    Returns:
        :class:`AttNetHistory` (mean objective and error per epoch).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(16, 1, 2, 2); y = torch.randint(0, 2, (16,))
        >>> net = AttNet((1, 2, 2), hidden=(8,))
        >>> h = train_attnet(net, model, x, y, 0.2, epochs=2, generator=torch.Generator())
        >>> len(h.loss)
        2
    """
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    eta = check_nonnegative("eta", eta)
    check_positive_int("epochs", epochs, minimum=0)
    check_positive_int("batch_size", batch_size)
    params = [p for p in attnet.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, maximize=True)
    was_model = model.training
    model.eval()
    hist = AttNetHistory()
    n = x.shape[0]
    try:
        for epoch in range(epochs):
            attnet.train()
            order = torch.randperm(n, generator=generator).to(x.device)
            tot, wrong = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                xb, yb = x[idx], y[idx]
                logits = model(attnet_attack(attnet, xb, eta))
                loss = F.cross_entropy(logits, yb)
                grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                opt.step()
                tot += loss.item() * xb.shape[0]
                wrong += int((logits.argmax(1) != yb).sum())
            hist.loss.append(tot / n)
            hist.error.append(wrong / n)
            if progress is not None:
                progress(epoch, hist.loss[-1])
    finally:
        model.train(was_model)
        attnet.eval()
    return hist
