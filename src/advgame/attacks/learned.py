"""Learned attackers ("AttNet"): a network that maps an input to its adversarial example.

An attack network with parameters v produces, for an input x in [0, 1]^d and an L-inf
budget eps,

    z_v(x) = clip(x + eps * tanh(a(x; v)), 0, 1),                       (Hamm & Mehra)

so ``||z - x||_inf <= eps`` and z stays in the box for every v (the budget is built into
the architecture, no projection is needed). The attacker is trained to maximize the
classifier's cross-entropy at z against a *frozen* defense h(.; u):

    max_v  E_(x,y) l(h(z_v(x); u), y).

The paper's l is the cross-entropy, which is unbounded: a few examples pushed to a huge
loss (or every input pushed to one class c) pay more than fooling one more example, and
most fresh AttNets trained with it collapse to an input-independent "everything -> class c"
perturbation (error pinned at 1 - 1/K). ``train_attnet`` therefore also takes bounded
objectives (:data:`OBJECTIVES`, :func:`attacker_objective`): the Carlini-Wagner margin
min(max_{j != y} z_j - z_y, kappa) and the clamped cross-entropy min(CE, cap), under which
an example that is already fooled (by kappa, resp. past the cap) stops pulling, and the
scale-invariant DLR loss of AutoAttack. ``best_response_attnet`` trains several AttNets
from independently seeded initializations and ORs their per-example error flags (the worst
case over restarts).

Measured (``benchmarks/attnet_objectives.py``, mnist-5k, MLP classifier, eps 0.3, 5 epochs,
3 restarts x {MLP, conv} AttNets): CE and clamped CE collapse in 6/6 restarts against the
clean model (error pinned at 0.900); CW with kappa = 0 collapses in none and reaches 0.994
(clean model) and 0.941 (FGSM-trained model) worst-case error, against PGD-20's 1.000 and
0.999. The clamp alone does not help: the collapse comes from CE's softmax-weighted pull
toward a common class, not from its unboundedness; CW pushes each example toward its own
runner-up. A larger kappa (1, 3) brings the collapse back against the FGSM-trained model.

``AttNet`` is the paper's MLP (default 3 hidden layers of 300 ReLU units, output of the
input's size); ``ConvAttNet`` is a small convolutional encoder-decoder of another
architecture class, used to ask whether a defense trained against one attack network
transfers to another (a reviewer's question).

The networks output the *direction* tanh(a(x; v)) in [-1, 1]^shape; ``attnet_attack``
turns it into z for a budget eps given at call time, so one AttNet can be evaluated at
several budgets. The classifier is always passed at call time and its train/eval mode is
restored; no classifier parameter gradient is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from advgame.attacks.apgd import dlr_loss
from advgame.errors import InputError
from advgame.models.training import module_modes, restore_modes
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


def attnet_attack(attnet: nn.Module, x: torch.Tensor, eps: float) -> torch.Tensor:
    """z = clip(x + eps * attnet(x), 0, 1), differentiable in the attack network's parameters.

    ``attnet(x)`` must lie in [-1, 1] (both networks here end in tanh), so
    ``||z - x||_inf <= eps``. Gradients flow to the attack network; x is not detached.

    Shape: x (N, ...) in [0, 1] -> z (N, ...), same device and dtype.

    Example:
        >>> net = AttNet((1, 2, 2), hidden=(4,))
        >>> attnet_attack(net, torch.full((1, 1, 2, 2), 0.5), 0.0).unique().tolist()
        [0.5]
    """
    return torch.clamp(x + eps * attnet(x), 0.0, 1.0)


@torch.no_grad()
def attnet_examples(
    attnet: nn.Module, x: torch.Tensor, eps: float, batch_size: int = 1000
) -> torch.Tensor:
    """Batched, gradient-free ``attnet_attack`` in eval mode (restored). (N, ...) -> (N, ...)."""
    was = attnet.training
    attnet.eval()
    try:
        out = [attnet_attack(attnet, x[i:i + batch_size], eps)
               for i in range(0, x.shape[0], batch_size)]
    finally:
        attnet.train(was)
    return torch.cat(out) if out else x.clone()


#: Attacker objectives of :func:`train_attnet` (see :func:`attacker_objective`).
Objective = Literal["ce", "cw", "clamped-ce", "dlr"]
OBJECTIVES: tuple[str, ...] = ("ce", "cw", "clamped-ce", "dlr")


def check_objective(objective: object) -> Objective:
    """``objective`` if it is one of :data:`OBJECTIVES`, else :class:`InputError`."""
    if objective not in OBJECTIVES:
        raise InputError("objective", f"unknown attacker objective {objective!r}; choose from "
                         f"{', '.join(OBJECTIVES)}")
    return objective  # type: ignore[return-value]


def default_cap(num_classes: int) -> float:
    """The clamped-CE cap log K + 1: CE > log K implies p_y < 1/K, so y is not the argmax."""
    return math.log(num_classes) + 1.0


def attacker_objective(
    logits: torch.Tensor,
    y: torch.Tensor,
    objective: Objective | str = "ce",
    *,
    kappa: float = 0.0,
    cap: float | None = None,
) -> torch.Tensor:
    """Per-example attacker objective (to maximize) at the attacked logits.

    - ``"ce"``: CE(z, y) = logsumexp(z) - z_y, unbounded above (the paper's objective).
    - ``"cw"``: min(max_{j != y} z_j - z_y, kappa), the Carlini-Wagner margin; bounded
      above by ``kappa``, so an example fooled with margin >= kappa has zero gradient.
    - ``"clamped-ce"``: min(CE(z, y), cap); ``cap`` defaults to :func:`default_cap` (log K + 1).
    - ``"dlr"``: AutoAttack's DLR loss (:func:`advgame.attacks.apgd.dlr_loss`), the margin
      divided by z_(1) - z_(3), invariant to the logits' scale.

    Shape: logits (N, K), y (N,) -> (N,).

    Example:
        >>> z = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
        >>> y = torch.tensor([0, 0])
        >>> attacker_objective(z, y, "cw", kappa=1.0).tolist()   # margins -2 and 3 -> 1
        [-2.0, 1.0]
    """
    objective = check_objective(objective)
    if objective == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if objective == "clamped-ce":
        c = default_cap(logits.shape[1]) if cap is None else check_nonnegative("cap", cap)
        return F.cross_entropy(logits, y, reduction="none").clamp_max(c)
    if objective == "dlr":
        return dlr_loss(logits, y)
    kappa = check_nonnegative("kappa", kappa)
    other = logits.scatter(1, y[:, None], -math.inf).amax(dim=1)
    return (other - logits.gather(1, y[:, None]).squeeze(1)).clamp_max(kappa)


@dataclass
class AttNetHistory:
    """Per-epoch mean attacker objective, mean cross-entropy and error rate on the batches.

    ``loss`` is the objective that was maximized (``objective``, with ``kappa`` / ``cap``);
    ``ce`` is the cross-entropy at the same attacked batches, comparable across objectives.
    """

    loss: list[float] = field(default_factory=list)
    error: list[float] = field(default_factory=list)
    ce: list[float] = field(default_factory=list)
    objective: str = "ce"
    kappa: float | None = None
    cap: float | None = None


def train_attnet(
    attnet: nn.Module,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    generator: torch.Generator,
    objective: Objective | str = "ce",
    kappa: float = 0.0,
    cap: float | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> AttNetHistory:
    """Train ``attnet`` in place to maximize the frozen ``model``'s attacker objective (Adam).

    Maximizes f(v) = E_(x,y) l(model(clip(x + eps tanh(a(x; v)), 0, 1)), y) over the
    attack network's parameters v by mini-batch gradient ascent, with l the per-example
    :func:`attacker_objective` ``objective`` (default ``"ce"``, the paper's; ``"cw"`` with
    margin ``kappa`` or ``"clamped-ce"`` with ``cap`` are bounded above and do not collapse
    to one class as often, see ``benchmarks/attnet_objectives.py``). The model (the defense
    u) is held fixed: it is evaluated in eval mode, its parameters receive no ``.grad`` and
    its mode is restored afterwards. The attack network is left in eval mode.

    Args:
        attnet: attack network, (N, ...) -> (N, ...) in [-1, 1].
        model: frozen classifier (N, ...) -> (N, K) logits (passed at call time).
        x: (N, ...) inputs in [0, 1]. y: (N,) labels in [0, K).
        eps: L-inf budget (>= 0).
        epochs, batch_size, lr: optimization settings.
        generator: CPU generator shuffling the batches.
        objective: one of :data:`OBJECTIVES`. kappa: CW margin (>= 0, logit units).
        cap: clamped-CE cap (default log K + 1).
        progress: called as ``progress(epoch, mean_objective)`` after each epoch.

    Returns:
        :class:`AttNetHistory` (mean objective, CE and error per epoch).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(16, 1, 2, 2); y = torch.randint(0, 2, (16,))
        >>> net = AttNet((1, 2, 2), hidden=(8,))
        >>> h = train_attnet(net, model, x, y, 0.2, epochs=2, generator=torch.Generator(),
        ...                  objective="cw")
        >>> len(h.loss), h.objective
        (2, 'cw')
    """
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    eps = check_nonnegative("eps", eps)
    check_positive_int("epochs", epochs, minimum=0)
    check_positive_int("batch_size", batch_size)
    objective = check_objective(objective)
    kappa = check_nonnegative("kappa", kappa)
    if cap is not None:
        cap = check_nonnegative("cap", cap)
    params = [p for p in attnet.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, maximize=True)
    was_model = module_modes(model)
    model.eval()
    hist = AttNetHistory(objective=objective, kappa=kappa if objective == "cw" else None,
                         cap=cap if objective == "clamped-ce" else None)
    n = x.shape[0]
    try:
        for epoch in range(epochs):
            attnet.train()
            order = torch.randperm(n, generator=generator).to(x.device)
            tot, tot_ce, wrong = 0.0, 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                xb, yb = x[idx], y[idx]
                logits = model(attnet_attack(attnet, xb, eps))
                if cap is None and objective == "clamped-ce":
                    hist.cap = cap = default_cap(logits.shape[1])
                loss = attacker_objective(logits, yb, objective, kappa=kappa, cap=cap).mean()
                grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                opt.step()
                tot += loss.item() * xb.shape[0]
                with torch.no_grad():
                    tot_ce += float(F.cross_entropy(logits, yb, reduction="sum"))
                wrong += int((logits.argmax(1) != yb).sum())
            hist.loss.append(tot / n)
            hist.ce.append(tot_ce / n)
            hist.error.append(wrong / n)
            if progress is not None:
                progress(epoch, hist.loss[-1])
    finally:
        restore_modes(was_model)
        attnet.eval()
    return hist


# --------------------------------------------------------------------------- restarts


def init_attnet_(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialize ``net``'s Linear and Conv layers in place from ``generator``; returns net.

    PyTorch's default scheme (weights Kaiming-uniform with a = sqrt(5), biases
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))), drawn on the CPU from ``generator`` and copied to
    the parameters' device and dtype, so that the initialization depends on the generator
    only, never on torch's global RNG. Parameters of other modules keep their values.

    Example:
        >>> a = init_attnet_(AttNet((1, 2, 2), hidden=(3,)), torch.Generator().manual_seed(0))
        >>> b = init_attnet_(AttNet((1, 2, 2), hidden=(3,)), torch.Generator().manual_seed(0))
        >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        True
    """
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
              nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    with torch.no_grad():
        for m in net.modules():
            if not isinstance(m, layers):
                continue
            w = torch.empty(m.weight.shape)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            m.weight.copy_(w)
            if m.bias is not None:
                fan_in = w[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                m.bias.copy_(torch.empty(m.bias.shape).uniform_(-bound, bound,
                                                                generator=generator))
    return net


@torch.no_grad()
def attnet_saturation(attnet: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of outputs with |tanh(a(x; v))| > 0.99, where the attacker's gradient vanishes.

    Evaluated in eval mode (restored). Example:
        >>> net = AttNet((1, 2, 2), hidden=(3,))
        >>> 0.0 <= attnet_saturation(net, torch.rand(5, 1, 2, 2)) <= 1.0
        True
    """
    was = attnet.training
    attnet.eval()
    try:
        hits = sum(int((attnet(x[i:i + batch_size]).abs() > 0.99).sum())
                   for i in range(0, x.shape[0], batch_size))
    finally:
        attnet.train(was)
    return hits / max(1, x.numel())


def mode_fraction(preds: torch.Tensor) -> float:
    """Share of predictions in the most frequent class (>= 0.9: a collapsed attacker).

    Example:
        >>> mode_fraction(torch.tensor([3, 3, 3, 1]))
        0.75
    """
    if preds.numel() == 0:
        return 0.0
    return float(torch.bincount(preds.flatten().cpu()).max()) / preds.numel()


@dataclass
class RestartStats:
    """One restart of :func:`best_response_attnet`, measured on the evaluation set.

    Attributes:
        seed: seed of the generator that drew this restart's initialization and batches.
        error: error rate of the model on this AttNet's examples.
        mode_fraction: share of attacked predictions in the most frequent class.
        saturation: fraction of |tanh| outputs > 0.99.
        history: the training curves.
    """

    seed: int
    error: float
    mode_fraction: float
    saturation: float
    history: AttNetHistory


@dataclass
class BestResponse:
    """Worst case over restarts: ``flags`` (N,) bool, True where some restart fooled the model.

    ``attnets`` holds the trained networks (eval mode), in the order of ``restarts``.
    """

    flags: torch.Tensor
    restarts: list[RestartStats]
    attnets: list[nn.Module]

    @property
    def error(self) -> float:
        """Error rate of the worst case over restarts (mean of ``flags``)."""
        return float(self.flags.float().mean()) if self.flags.numel() else 0.0

    @property
    def collapsed(self) -> int:
        """Number of restarts with ``mode_fraction >= 0.9`` (an input-independent attacker)."""
        return sum(r.mode_fraction >= 0.9 for r in self.restarts)


def best_response_attnet(
    make_attnet: Callable[[], nn.Module],
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    restarts: int = 3,
    objective: Objective | str = "cw",
    kappa: float = 0.0,
    cap: float | None = None,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    x_eval: torch.Tensor | None = None,
    y_eval: torch.Tensor | None = None,
    generator: torch.Generator,
) -> BestResponse:
    """Train ``restarts`` AttNets from independent initializations; OR their error flags.

    Restart r draws a seed s_r from ``generator``; a generator seeded with s_r
    re-initializes the fresh ``make_attnet()`` (:func:`init_attnet_`, independent of
    torch's global RNG) and shuffles its batches in :func:`train_attnet`. Each AttNet is
    trained on (x, y) against the frozen ``model`` and evaluated on (``x_eval``, ``y_eval``)
    (default: the training set): per-example error flags, ORed over restarts, and per
    restart its error, mode fraction and saturation.

    Args:
        make_attnet: builds a fresh attack network (moved to x's device here).
        model: frozen classifier (passed at call time; mode restored).
        x, y: training inputs (N, ...) in [0, 1] and labels (N,).
        eps: L-inf budget. restarts: number of AttNets (>= 1).
        objective, kappa, cap, epochs, batch_size, lr: as in :func:`train_attnet`.
        x_eval, y_eval: evaluation set (M, ...), (M,).
        generator: CPU generator; the only source of randomness.

    Returns:
        :class:`BestResponse` with flags (M,) on y_eval's device.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(12, 1, 2, 2); y = torch.randint(0, 3, (12,))
        >>> br = best_response_attnet(lambda: AttNet((1, 2, 2), hidden=(4,)), model, x, y,
        ...                           0.1, restarts=2, epochs=1,
        ...                           generator=torch.Generator().manual_seed(0))
        >>> len(br.restarts), br.flags.shape
        (2, torch.Size([12]))
    """
    check_positive_int("restarts", restarts)
    objective = check_objective(objective)
    if (x_eval is None) != (y_eval is None):
        raise InputError("x_eval", "give both x_eval and y_eval, or neither")
    xe = x if x_eval is None else check_images("x_eval", x_eval)
    ye = y if y_eval is None else y_eval
    check_labels("y_eval", ye, xe.shape[0])
    flags = torch.zeros(xe.shape[0], dtype=torch.bool, device=ye.device)
    stats: list[RestartStats] = []
    nets: list[nn.Module] = []
    was_model = module_modes(model)
    try:
        for _ in range(restarts):
            seed = int(torch.randint(0, 2**62, (), generator=generator))
            g = torch.Generator().manual_seed(seed)
            net = init_attnet_(make_attnet(), g).to(device=x.device)
            hist = train_attnet(net, model, x, y, eps, epochs=epochs, batch_size=batch_size,
                                lr=lr, generator=g, objective=objective, kappa=kappa, cap=cap)
            model.eval()
            with torch.no_grad():
                z = attnet_examples(net, xe, eps)
                preds = torch.cat([model(z[i:i + 1000]).argmax(1)
                                   for i in range(0, z.shape[0], 1000)])
            wrong = (preds != ye).to(flags.device)
            flags |= wrong
            stats.append(RestartStats(seed=seed, error=float(wrong.float().mean()),
                                      mode_fraction=mode_fraction(preds),
                                      saturation=attnet_saturation(net, xe),
                                      history=hist))
            nets.append(net)
    finally:
        restore_modes(was_model)
    return BestResponse(flags=flags, restarts=stats, attnets=nets)
