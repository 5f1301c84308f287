"""Sens-FGSM (S2): the cat-and-mouse's fixed point optimized directly, with the FGSM
point z(u) differentiated through u (double backprop) by a smooth surrogate of sign,
its first-order form l + eps ||grad_x l||_1, and an optional clean-loss weight."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from advgame.errors import InputError
from advgame.models.training import TrainConfig, TrainHistory
from advgame.validate import check_images, check_labels, check_nonnegative, check_positive_int

__all__ = [
    "SensForm",
    "SensObjective",
    "SensScale",
    "Surrogate",
    "sens_fgsm_inputs",
    "sens_fgsm_loss",
    "sens_fgsm_train",
    "surrogate_direction",
]


Surrogate = Literal["tanh", "normalized"]
SensForm = Literal["fgsm", "first-order"]
SensScale = Literal["batch", "example"]


# --------------------------------------------------------------------------- Sens-FGSM


def surrogate_direction(
    g: torch.Tensor,
    surrogate: Surrogate = "tanh",
    tau: float = 0.1,
    relative_tau: bool = True,
    *,
    scale: SensScale = "example",
    detach_scale: bool = False,
) -> torch.Tensor:
    """Differentiable stand-in s(g) in [-1, 1] for sign(g).

    ``tanh``: s = tanh(g / (tau * c)); s -> sign(g) as tau -> 0. With ``relative_tau`` the
    temperature is relative to a gradient scale c, so s does not change when g is
    multiplied by a constant; without it c = 1:

    - ``scale="example"``: c_n = mean_i |g_ni| of each example n. Every example gets a
      near-sign step that uses most of the budget, however flat its loss.
    - ``scale="batch"``: c = mean |g| over every coordinate of the batch, one number. An
      example whose gradient is small against the batch's (a confidently classified one)
      is perturbed less, as the first-order value eps ||g||_1 of the attack says.

    ``detach_scale`` treats c as a constant when differentiating (through ``g`` only).

    ``normalized``: s = g / ||g||_inf per example (the normalized gradient, inside the L-inf
    ball); ``tau``, ``scale`` and ``detach_scale`` do not apply.

    Shape: (N, ...) -> (N, ...).

    Example:
        >>> g = torch.tensor([[3.0, -1.0, 0.0]])
        >>> surrogate_direction(g, "normalized").tolist()
        [[1.0, -0.3333333432674408, 0.0]]
        >>> g = torch.tensor([[2.0, -2.0], [0.5, 0.0]])  # batch mean |g| = 1.125
        >>> s = surrogate_direction(g, "tanh", tau=1.0, scale="batch")
        >>> torch.allclose(s, torch.tanh(g / 1.125))
        True
    """
    flat = g.reshape(g.shape[0], -1)
    tiny = torch.finfo(g.dtype).tiny
    if surrogate == "tanh":
        if check_nonnegative("tau", tau) == 0:
            raise InputError("tau", "must be > 0")
        if scale == "example":
            c = flat.abs().mean(dim=1, keepdim=True)
        elif scale == "batch":
            c = flat.abs().mean()
        else:
            raise InputError("scale", f"must be 'batch' or 'example', got {scale!r}")
        if not relative_tau:
            return torch.tanh(flat / tau).reshape(g.shape)
        c = c.clamp_min(tiny)
        if detach_scale:
            c = c.detach()
        return torch.tanh(flat / (tau * c)).reshape(g.shape)
    if surrogate == "normalized":
        return (flat / flat.abs().amax(dim=1, keepdim=True).clamp_min(tiny)).reshape(g.shape)
    raise InputError("surrogate", f"must be 'tanh' or 'normalized', got {surrogate!r}")


def _sens_point(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, surrogate: Surrogate,
    tau: float, relative_tau: bool, scale: SensScale, detach_scale: bool,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z(u), the per-example clean losses l(h(x; u), y)); the losses keep their graph."""
    xg = x.detach().requires_grad_(True)
    losses = F.cross_entropy(model(xg), y, reduction="none")
    (g,) = torch.autograd.grad(losses.sum(), xg, create_graph=create_graph, retain_graph=True)
    s = surrogate_direction(g, surrogate, tau, relative_tau, scale=scale,
                            detach_scale=detach_scale)
    z = torch.clamp(x.detach() + eps * s, 0.0, 1.0)
    return (z if create_graph else z.detach()), losses


def sens_fgsm_inputs(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    *,
    surrogate: Surrogate = "tanh",
    tau: float = 0.1,
    relative_tau: bool = True,
    scale: SensScale = "example",
    detach_scale: bool = False,
    create_graph: bool = True,
) -> torch.Tensor:
    """z(u) = clip(x + eps s(grad_x l(h(x; u), y)), 0, 1), a function of the parameters u.

    With ``create_graph`` the input gradient keeps its graph, so backpropagating a loss
    at z(u) reaches u both through h(.; u) and through z(u) (double backprop). With
    ``create_graph=False`` z is detached (plain online adversarial training).
    ``surrogate``, ``tau``, ``relative_tau``, ``scale``, ``detach_scale``: see
    :func:`surrogate_direction`.

    Shape: x (N, ...) in [0, 1], y (N,) -> z (N, ...).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(3, 1, 2, 2); y = torch.tensor([0, 1, 0])
        >>> z = sens_fgsm_inputs(model, x, y, 0.1)
        >>> z.requires_grad, bool(((z - x).abs() <= 0.1 + 1e-6).all())
        (True, True)
    """
    z, _ = _sens_point(model, x, y, eps, surrogate=surrogate, tau=tau,
                       relative_tau=relative_tau, scale=scale, detach_scale=detach_scale,
                       create_graph=create_graph)
    return z


def sens_fgsm_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    *,
    form: SensForm = "fgsm",
    surrogate: Surrogate = "tanh",
    tau: float = 0.1,
    relative_tau: bool = True,
    scale: SensScale = "example",
    detach_scale: bool = False,
    clean_weight: float = 0.0,
    through: bool = True,
) -> torch.Tensor:
    """The Sens-FGSM objective L(u) on a batch, differentiable in u (scalar).

    ``form="fgsm"``: A(u) = mean_n l(h(z_n(u); u), y_n) with z from
    :func:`sens_fgsm_inputs` (``through=False`` detaches z: online adversarial training
    with the surrogate attack). ``form="first-order"``: A(u) = mean_n [l(h(x_n; u), y_n)
    + eps ||grad_x l(h(x_n; u), y_n)||_1], the linearization of l at the FGSM point.

    L(u) = (1 - clean_weight) A(u) + clean_weight mean_n l(h(x_n; u), y_n).

    ``through=False`` is refused for the first-order form: its penalty eps ||g||_1 =
    eps g.sign(g) already has the attack direction sign(g) constant in u (sign has a zero
    derivative), so holding the attack fixed changes nothing, and detaching g as well
    would leave the clean loss plus a constant — clean training under another name.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(3, 1, 2, 2); y = torch.tensor([0, 1, 0])
        >>> sens_fgsm_loss(model, x, y, 0.1, form="first-order").ndim
        0
    """
    if not 0.0 <= clean_weight <= 1.0:
        raise InputError("clean_weight", f"must be in [0, 1], got {clean_weight!r}")
    if form == "fgsm":
        z, clean = _sens_point(model, x, y, eps, surrogate=surrogate, tau=tau,
                               relative_tau=relative_tau, scale=scale,
                               detach_scale=detach_scale, create_graph=through)
        attacked = F.cross_entropy(model(z), y)
    elif form == "first-order":
        if not through:
            raise InputError(
                "through", "through=False has no meaning for form='first-order': the "
                "penalty eps ||grad_x l||_1 = eps grad.sign(grad) already holds the attack "
                "direction fixed, and detaching the gradient leaves the clean loss plus a "
                "constant; use form='fgsm' with through=False for adversarial training")
        xg = x.detach().requires_grad_(True)
        clean = F.cross_entropy(model(xg), y, reduction="none")
        (g,) = torch.autograd.grad(clean.sum(), xg, create_graph=True)
        attacked = (clean + eps * g.reshape(g.shape[0], -1).abs().sum(dim=1)).mean()
    else:
        raise InputError("form", f"must be 'fgsm' or 'first-order', got {form!r}")
    if clean_weight == 0.0:
        return attacked
    return (1.0 - clean_weight) * attacked + clean_weight * clean.mean()


@dataclass(frozen=True, kw_only=True)
class SensObjective:
    """The options of the Sens-FGSM objective, one value for a whole training run.

    The fields are the keyword arguments of :func:`sens_fgsm_loss` (see there for their
    meaning); ``objective.loss(model, x, y, eps)`` is ``sens_fgsm_loss(model, x, y, eps,
    **fields)``.

    Example:
        >>> SensObjective(form="first-order").form
        'first-order'
    """

    form: SensForm = "fgsm"
    surrogate: Surrogate = "tanh"
    tau: float = 0.1
    relative_tau: bool = True
    scale: SensScale = "example"
    detach_scale: bool = False
    clean_weight: float = 0.0
    through: bool = True

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             eps: float) -> torch.Tensor:
        """:func:`sens_fgsm_loss` with these options (scalar, differentiable in u)."""
        return sens_fgsm_loss(model, x, y, eps, **dataclasses.asdict(self))


def sens_fgsm_train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    config: TrainConfig,
    objective: SensObjective = SensObjective(),  # noqa: B008 - frozen, so shared safely
    *,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None = None,
) -> TrainHistory:
    """Train ``model`` in place by Adam on :func:`sens_fgsm_loss` (Sens-FGSM).

    Args:
        model: classifier (N, ...) -> (N, K).
        x: (N, ...) training inputs in [0, 1]. y: (N,) labels.
        eps: L-inf budget. config: epochs, batch size, learning rate, weight decay.
        objective: the objective's options (:class:`SensObjective`; its defaults are
            :func:`sens_fgsm_loss`'s).
        generator: CPU generator shuffling the batches.
        progress: called as ``progress(epoch, mean_loss)``.

    Returns:
        :class:`advgame.models.TrainHistory` (objective, and accuracy at z, per epoch;
        the accuracy is at the clean x for the first-order form). The model ends in eval
        mode.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> h = sens_fgsm_train(model, x, y, 0.1, TrainConfig(epochs=2),
        ...                     generator=torch.Generator())
        >>> len(h.loss)
        2
    """
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    eps = check_nonnegative("eps", eps)
    check_positive_int("epochs", config.epochs, minimum=0)
    check_positive_int("batch_size", config.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    hist = TrainHistory()
    n = x.shape[0]
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(x.device)
        tot, correct = 0.0, 0
        for start in range(0, n, config.batch_size):
            idx = order[start:start + config.batch_size]
            xb, yb = x[idx], y[idx]
            loss = objective.loss(model, xb, yb, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * xb.shape[0]
            with torch.no_grad():
                correct += int((model(xb).argmax(1) == yb).sum())
        hist.loss.append(tot / n)
        hist.accuracy.append(correct / n)
        if progress is not None:
            progress(epoch, hist.loss[-1])
    model.eval()
    return hist
