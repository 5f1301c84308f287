"""Training defenses of S2 (learning-based minimax, Hamm & Mehra): cat-and-mouse, Sens-FGSM,
minimax / maximin against an attack network.

Notation: classifier h(x; u), cross-entropy l, L-inf budget eta, inputs in [0, 1].

1. **Cat-and-mouse** (adversarial retraining against a moving FGSM attacker):
   u_0 is trained on clean data; for k = 1..K, FGSM-k are the examples
   z = clip(x + eta sign grad_x l(h(x; u_(k-1)), y), 0, 1) against the previous model
   (train and test sets) and u_k is retrained on FGSM-k (warm start from u_(k-1) or from
   scratch, with or without the clean data). ``cat_and_mouse_errors`` gives the matrix
   E[k][j] = test error of u_k on FGSM-j, the clean error and FGSM-curr (FGSM computed
   against the model being evaluated); ``detect_oscillation`` decides, from the data,
   whether a series such as FGSM-curr oscillates.

2. **Sens-FGSM**: the fixed point of the cat-and-mouse, optimized directly,

       min_u  E l(h(z(u); u), y),   z(u) = clip(x + eta s(grad_x l(h(x; u), y)), 0, 1),

   with z differentiated *through* u (double backprop, ``create_graph=True``). sign has a
   zero derivative, so s is a surrogate: tanh(g / tau) (tau relative to the mean |g| of
   each example by default) or the normalized gradient g / ||g||_inf. The first-order
   form replaces l(z) by its linearization l(x) + eta ||grad_x l(x)||_1 (the value of
   l(x) + eta grad.sign(grad)). Plain online adversarial training is the same loop with z
   detached (the dz/du term ignored).

3. **Minimax / maximin** between a classifier u and an attack network v with payoff
   f(u, v) = E l(h(z_v(x); u), y): ``alternating_gradient`` is a generic, pure solver of
   min_u max_v f (``leader="min"``: the attacker follows, ``k_max`` ascent steps then
   ``k_min`` descent steps per iteration) or max_v min_u f (``leader="max"``: the defender
   follows). With ``rho > 0`` the defender's step minimizes the sensitivity-penalized
   objective f(u, v) + rho ||grad_v f(u, v)||^2 (a look-ahead of the attacker's
   response). ``learned_minimax`` applies it to a classifier and an AttNet.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from advgame.attacks.gradient import fgm
from advgame.attacks.learned import attnet_attack
from advgame.errors import InputError
from advgame.models.training import TrainConfig, TrainHistory, predict, train
from advgame.validate import check_images, check_labels, check_nonnegative, check_positive_int

Surrogate = Literal["tanh", "normalized"]
SensForm = Literal["fgsm", "first-order"]
SensScale = Literal["batch", "example"]

# --------------------------------------------------------------------------- cat-and-mouse


def fgsm_examples(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eta: float, batch_size: int = 1000
) -> torch.Tensor:
    """FGSM examples clip(x + eta sign grad_x l(h(x), y), 0, 1) against a fixed model, batched.

    Shape: x (N, ...) in [0, 1], y (N,) -> (N, ...), detached, same device and dtype.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(5, 1, 2, 2); y = torch.randint(0, 2, (5,))
        >>> bool(((fgsm_examples(model, x, y, 0.1) - x).abs() <= 0.1 + 1e-6).all())
        True
    """
    check_positive_int("batch_size", batch_size)
    parts = [fgm(model, x[i:i + batch_size], y[i:i + batch_size], eta, "inf")
             for i in range(0, x.shape[0], batch_size)]
    return torch.cat(parts) if parts else x.clone()


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x misclassified by ``model`` (1 - accuracy)."""
    return float((predict(model, x) != y).float().mean())


def cat_and_mouse_round(
    previous: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eta: float,
    config: TrainConfig,
    warm_start: bool = True,
    with_clean: bool = False,
    make_model: Callable[[], nn.Module] | None = None,
    generator: torch.Generator,
) -> nn.Module:
    """One round of the cat-and-mouse: u_k trained on FGSM examples against u_(k-1).

    FGSM-k = clip(x + eta sign grad_x l(h(x; u_(k-1)), y), 0, 1) is computed once against
    the fixed ``previous`` model (the attacker of round k); u_k starts as a copy of
    u_(k-1) (``warm_start``) or as ``make_model()`` and is trained on FGSM-k (plus the
    clean (x, y) when ``with_clean``) with :func:`advgame.models.train`.

    Args:
        previous: u_(k-1), left unchanged.
        x: (N, ...) training inputs in [0, 1]. y: (N,) labels.
        eta: L-inf budget. config: training settings for u_k.
        warm_start: start from u_(k-1) instead of a fresh model.
        with_clean: train on clean and FGSM-k examples together.
        make_model: builds a fresh model (needed when not ``warm_start``).
        generator: CPU generator shuffling the batches.

    Returns:
        u_k, in eval mode.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> u1 = cat_and_mouse_round(model, x, y, eta=0.1, config=TrainConfig(epochs=1),
        ...                          generator=torch.Generator())
        >>> u1 is model
        False
    """
    eta = check_nonnegative("eta", eta)
    x_adv = fgsm_examples(previous, x, y, eta)
    if warm_start:
        model = copy.deepcopy(previous)
    else:
        if make_model is None:
            raise InputError("make_model", "is required when warm_start is False")
        model = make_model().to(x.device)
    xs, ys = (torch.cat([x, x_adv]), torch.cat([y, y])) if with_clean else (x_adv, y)
    train(model, xs, ys, config, generator=generator)
    return model


def cat_and_mouse(
    u0: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eta: float,
    rounds: int,
    config: TrainConfig,
    warm_start: bool = True,
    with_clean: bool = False,
    make_model: Callable[[], nn.Module] | None = None,
    generator: torch.Generator,
) -> Iterator[nn.Module]:
    """Yield u_1, ..., u_K of the cat-and-mouse started from the clean model u_0.

    See :func:`cat_and_mouse_round`; u_0 is not modified.

    Example:
        >>> u0 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> us = list(cat_and_mouse(u0, x, y, eta=0.1, rounds=2, config=TrainConfig(epochs=1),
        ...                         generator=torch.Generator()))
        >>> len(us)
        2
    """
    check_positive_int("rounds", rounds, minimum=0)
    prev = u0
    for _ in range(rounds):
        prev = cat_and_mouse_round(prev, x, y, eta=eta, config=config, warm_start=warm_start,
                                   with_clean=with_clean, make_model=make_model,
                                   generator=generator)
        yield prev


@dataclass(frozen=True)
class CatMouseErrors:
    """Test errors of the cat-and-mouse models u_0..u_K.

    Attributes:
        error: (K+1) x (K+1) list, ``error[k][j-1]`` = error of u_k on FGSM-j, j = 1..K+1,
            where FGSM-j is computed against u_(j-1). Column K+1 is FGSM against u_K.
        clean: K+1 clean errors.
        fgsm_curr: K+1 errors of u_k on FGSM computed against u_k itself
            (= ``error[k][k]``).
    """

    error: list[list[float]]
    clean: list[float]
    fgsm_curr: list[float]


def cat_and_mouse_errors(
    models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, eta: float
) -> CatMouseErrors:
    """The error matrix E[k][j] of the cat-and-mouse, clean errors and FGSM-curr.

    Args:
        models: u_0, ..., u_K.
        x: (N, ...) test inputs in [0, 1]. y: (N,) labels.
        eta: the FGSM budget.

    Example:
        >>> us = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        ...       for _ in range(3)]
        >>> e = cat_and_mouse_errors(us, torch.rand(6, 1, 2, 2), torch.zeros(6, dtype=int), 0.1)
        >>> len(e.error), len(e.error[0]), e.fgsm_curr[1] == e.error[1][1]
        (3, 3, True)
    """
    if not models:
        raise InputError("models", "give at least u_0")
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    attacks = [fgsm_examples(m, x, y, eta) for m in models]  # FGSM-1 .. FGSM-(K+1)
    err = [[error_rate(m, xa, y) for xa in attacks] for m in models]
    clean = [error_rate(m, x, y) for m in models]
    return CatMouseErrors(error=err, clean=clean,
                          fgsm_curr=[err[k][k] for k in range(len(models))])


@dataclass(frozen=True)
class Oscillation:
    """Whether a series (e.g. FGSM-curr error over rounds) oscillates, decided from data.

    Attributes:
        oscillates: at least two sign changes among the significant successive differences
            and at least half of the possible ones.
        sign_changes: sign changes between consecutive significant differences.
        significant: number of differences |s_(k+1) - s_k| > tol.
        amplitude: mean |difference| over the significant ones (0 if none).
        period: estimated period in rounds, 2 x the mean spacing of the sign changes
            (None with fewer than two changes; 2.0 is the up-down-up-down pattern).
        changes_at: indices k at which the direction turns.
    """

    oscillates: bool
    sign_changes: int
    significant: int
    amplitude: float
    period: float | None
    changes_at: list[int] = field(default_factory=list)


def detect_oscillation(series: Sequence[float], tol: float = 0.0) -> Oscillation:
    """Sign changes of successive differences d_k = s_(k+1) - s_k with |d_k| > tol.

    A difference within ``tol`` (e.g. two binomial standard errors of an error rate) is
    treated as noise and skipped. The series oscillates when its direction turns at least
    twice and at least at half of the opportunities.

    Example:
        >>> detect_oscillation([0.9, 0.2, 0.8, 0.3, 0.7]).period
        2.0
        >>> detect_oscillation([0.9, 0.5, 0.3, 0.2], tol=0.01).oscillates
        False
    """
    tol = check_nonnegative("tol", tol)
    s = [float(v) for v in series]
    if any(not math.isfinite(v) for v in s):
        raise InputError("series", "must be finite numbers")
    diffs = [(k, s[k + 1] - s[k]) for k in range(len(s) - 1)]
    sig = [(k, d) for k, d in diffs if abs(d) > tol]
    changes = [sig[i + 1][0] for i in range(len(sig) - 1)
               if (sig[i][1] > 0) != (sig[i + 1][1] > 0)]
    n_changes = len(changes)
    amplitude = sum(abs(d) for _, d in sig) / len(sig) if sig else 0.0
    period = None
    if n_changes >= 2:
        spacing = (changes[-1] - changes[0]) / (n_changes - 1)
        period = 2.0 * spacing
    oscillates = n_changes >= 2 and n_changes >= (len(sig) - 1) / 2
    return Oscillation(oscillates=oscillates, sign_changes=n_changes, significant=len(sig),
                       amplitude=amplitude, period=period, changes_at=changes)


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
      is perturbed less, as the first-order value eta ||g||_1 of the attack says.

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
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eta: float, *, surrogate: Surrogate,
    tau: float, relative_tau: bool, scale: SensScale, detach_scale: bool,
    create_graph: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(z(u), the per-example clean losses l(h(x; u), y)); the losses keep their graph."""
    xg = x.detach().requires_grad_(True)
    losses = F.cross_entropy(model(xg), y, reduction="none")
    (g,) = torch.autograd.grad(losses.sum(), xg, create_graph=create_graph, retain_graph=True)
    s = surrogate_direction(g, surrogate, tau, relative_tau, scale=scale,
                            detach_scale=detach_scale)
    z = torch.clamp(x.detach() + eta * s, 0.0, 1.0)
    return (z if create_graph else z.detach()), losses


def sens_fgsm_inputs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
    *,
    surrogate: Surrogate = "tanh",
    tau: float = 0.1,
    relative_tau: bool = True,
    scale: SensScale = "example",
    detach_scale: bool = False,
    create_graph: bool = True,
) -> torch.Tensor:
    """z(u) = clip(x + eta s(grad_x l(h(x; u), y)), 0, 1), a function of the parameters u.

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
    z, _ = _sens_point(model, x, y, eta, surrogate=surrogate, tau=tau,
                       relative_tau=relative_tau, scale=scale, detach_scale=detach_scale,
                       create_graph=create_graph)
    return z


def sens_fgsm_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
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
    + eta ||grad_x l(h(x_n; u), y_n)||_1], the linearization of l at the FGSM point.

    L(u) = (1 - clean_weight) A(u) + clean_weight mean_n l(h(x_n; u), y_n).

    ``through=False`` is refused for the first-order form: its penalty eta ||g||_1 =
    eta g.sign(g) already has the attack direction sign(g) constant in u (sign has a zero
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
        z, clean = _sens_point(model, x, y, eta, surrogate=surrogate, tau=tau,
                               relative_tau=relative_tau, scale=scale,
                               detach_scale=detach_scale, create_graph=through)
        attacked = F.cross_entropy(model(z), y)
    elif form == "first-order":
        if not through:
            raise InputError(
                "through", "through=False has no meaning for form='first-order': the "
                "penalty eta ||grad_x l||_1 = eta grad.sign(grad) already holds the attack "
                "direction fixed, and detaching the gradient leaves the clean loss plus a "
                "constant; use form='fgsm' with through=False for adversarial training")
        xg = x.detach().requires_grad_(True)
        clean = F.cross_entropy(model(xg), y, reduction="none")
        (g,) = torch.autograd.grad(clean.sum(), xg, create_graph=True)
        attacked = (clean + eta * g.reshape(g.shape[0], -1).abs().sum(dim=1)).mean()
    else:
        raise InputError("form", f"must be 'fgsm' or 'first-order', got {form!r}")
    if clean_weight == 0.0:
        return attacked
    return (1.0 - clean_weight) * attacked + clean_weight * clean.mean()


def sens_fgsm_train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
    config: TrainConfig,
    *,
    form: SensForm = "fgsm",
    surrogate: Surrogate = "tanh",
    tau: float = 0.1,
    relative_tau: bool = True,
    scale: SensScale = "example",
    detach_scale: bool = False,
    clean_weight: float = 0.0,
    through: bool = True,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None = None,
) -> TrainHistory:
    """Train ``model`` in place by Adam on :func:`sens_fgsm_loss` (Sens-FGSM).

    Args:
        model: classifier (N, ...) -> (N, K).
        x: (N, ...) training inputs in [0, 1]. y: (N,) labels.
        eta: L-inf budget. config: epochs, batch size, learning rate, weight decay.
        form, surrogate, tau, relative_tau, through: see :func:`sens_fgsm_loss`.
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
    eta = check_nonnegative("eta", eta)
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
            loss = sens_fgsm_loss(model, xb, yb, eta, form=form, surrogate=surrogate, tau=tau,
                                  relative_tau=relative_tau, scale=scale,
                                  detach_scale=detach_scale, clean_weight=clean_weight,
                                  through=through)
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


def adversarial_training(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
    config: TrainConfig,
    *,
    with_clean: bool = False,
    generator: torch.Generator,
    progress: Callable[[int, float], None] | None = None,
) -> TrainHistory:
    """Online adversarial training: each batch replaced by FGSM examples against the current u.

    min_u E l(h(z; u), y) with z = FGSM(x; u) recomputed per batch but *detached*
    (dz/du ignored, Goodfellow et al. 2015) — the baseline Sens-FGSM is compared with.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(8, 1, 2, 2); y = torch.randint(0, 2, (8,))
        >>> len(adversarial_training(model, x, y, 0.1, TrainConfig(epochs=1),
        ...                          generator=torch.Generator()).loss)
        1
    """
    eta = check_nonnegative("eta", eta)

    def perturb(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return fgm(m, xb, yb, eta, "inf")

    return train(model, x, y, config, generator=generator, perturb=perturb,
                 keep_clean=with_clean, progress=progress)


# --------------------------------------------------------------------------- minimax


@dataclass
class AlternatingHistory:
    """Objective curves of :func:`alternating_gradient`, one entry per outer iteration.

    Attributes:
        min_objective: mean over the iteration's descent steps of the minimizer's
            objective f (+ rho ||grad_v f||^2 when penalized).
        max_objective: mean over the iteration's ascent steps of f (the maximizer's
            objective).
        value: f after the iteration (one more evaluation).
    """

    min_objective: list[float] = field(default_factory=list)
    max_objective: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)


def _optimizer(params: list[torch.Tensor], kind: str, lr: float,
               maximize: bool) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, maximize=maximize)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, maximize=maximize)
    raise InputError("optimizer", f"must be 'sgd' or 'adam', got {kind!r}")


def alternating_gradient(
    f: Callable[[], torch.Tensor],
    u_params: Sequence[torch.Tensor],
    v_params: Sequence[torch.Tensor],
    *,
    iterations: int,
    k_min: int = 1,
    k_max: int = 1,
    leader: Literal["min", "max"] = "min",
    lr_min: float = 1e-2,
    lr_max: float = 1e-2,
    optimizer: Literal["sgd", "adam"] = "sgd",
    rho: float = 0.0,
    callback: Callable[[int, AlternatingHistory], None] | None = None,
) -> AlternatingHistory:
    """Alternating gradient descent (on u) / ascent (on v) for min_u max_v f or max_v min_u f.

    Each iteration lets the *follower* move first, then the leader:

    - ``leader="min"`` (minimax, min_u max_v f; the defender leads): ``k_max`` ascent
      steps on v (the attacker best-responds), then ``k_min`` descent steps on u;
    - ``leader="max"`` (maximin, max_v min_u f; the attacker leads): ``k_min`` descent
      steps on u, then ``k_max`` ascent steps on v.

    Use a large follower count (e.g. k_max = 5, k_min = 1 for minimax) so that the inner
    problem is approximately solved. With ``rho > 0`` each descent step minimizes
    f(u, v) + rho ||grad_v f(u, v)||^2 (differentiated through grad_v f), penalizing how
    much the attacker could still gain: f(u, v + s grad_v f) ~ f + s ||grad_v f||^2, so the
    penalty is a one-step look-ahead of the attacker's ascent step (Hamm & Mehra's
    sensitivity-penalized minimax; rho = 0 is their "Alt"). It vanishes with its gradient
    where grad_v f = 0, so at an interior best response the penalized and plain solvers
    share their fixed points. ``advgame paper2`` uses k = 5 follower steps
    (``minimax_k``, 3 with ``--quick``) and rho = 1.0 (``minimax_rho``).

    ``f`` is a closure evaluating the payoff at the current parameters (it may draw a new
    mini-batch per call); the parameters are updated in place with SGD or Adam
    (``maximize=True`` for v). Pure: no randomness of its own.

    Args:
        f: () -> scalar tensor, differentiable in ``u_params`` and ``v_params``.
        u_params, v_params: leaf tensors of the minimizer and of the maximizer.
        iterations: outer iterations. k_min, k_max: descent / ascent steps per iteration.
        leader: "min" or "max" (see above).
        lr_min, lr_max: step sizes. optimizer: "sgd" or "adam".
        rho: sensitivity penalty weight (>= 0).
        callback: called as ``callback(iteration, history)`` after each iteration.

    Returns:
        :class:`AlternatingHistory`.

    Example:
        >>> u = torch.tensor([1.0], requires_grad=True)
        >>> v = torch.tensor([-1.0], requires_grad=True)
        >>> h = alternating_gradient(lambda: (u**2 / 2 - v**2 / 2 + u * v).sum(), [u], [v],
        ...                          iterations=300, lr_min=0.1, lr_max=0.1)
        >>> abs(u.item()) < 1e-3 and abs(v.item()) < 1e-3
        True
    """
    check_positive_int("iterations", iterations, minimum=0)
    check_positive_int("k_min", k_min)
    check_positive_int("k_max", k_max)
    rho = check_nonnegative("rho", rho)
    if leader not in ("min", "max"):
        raise InputError("leader", f"must be 'min' or 'max', got {leader!r}")
    up, vp = list(u_params), list(v_params)
    if not up or not vp:
        raise InputError("u_params", "both players need at least one parameter tensor")
    opt_u = _optimizer(up, optimizer, lr_min, maximize=False)
    opt_v = _optimizer(vp, optimizer, lr_max, maximize=True)
    hist = AlternatingHistory()

    def descend() -> float:
        val = f()
        obj = val
        if rho > 0:
            gv = torch.autograd.grad(val, vp, create_graph=True, allow_unused=True)
            obj = val + rho * sum((g.pow(2).sum() for g in gv if g is not None),
                                  torch.zeros_like(val))
        grads = torch.autograd.grad(obj, up, allow_unused=True)
        for p, g in zip(up, grads, strict=True):
            p.grad = g
        opt_u.step()
        return float(obj.detach())

    def ascend() -> float:
        val = f()
        grads = torch.autograd.grad(val, vp, allow_unused=True)
        for p, g in zip(vp, grads, strict=True):
            p.grad = g
        opt_v.step()
        return float(val.detach())

    for it in range(iterations):
        if leader == "min":
            maxs = [ascend() for _ in range(k_max)]
            mins = [descend() for _ in range(k_min)]
        else:
            mins = [descend() for _ in range(k_min)]
            maxs = [ascend() for _ in range(k_max)]
        hist.min_objective.append(sum(mins) / len(mins))
        hist.max_objective.append(sum(maxs) / len(maxs))
        with torch.no_grad():
            hist.value.append(float(f()))
        if callback is not None:
            callback(it, hist)
    return hist


def attnet_payoff(
    model: nn.Module, attnet: nn.Module, x: torch.Tensor, y: torch.Tensor, eta: float
) -> torch.Tensor:
    """f(u, v) = mean_i l(h(z_v(x_i); u), y_i), z_v = clip(x + eta attnet(x), 0, 1). Scalar.

    Example:
        >>> from advgame.attacks.learned import AttNet
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> attnet_payoff(model, AttNet((1, 2, 2), hidden=(4,)), torch.rand(3, 1, 2, 2),
        ...               torch.tensor([0, 1, 1]), 0.1).ndim
        0
    """
    return F.cross_entropy(model(attnet_attack(attnet, x, eta)), y)


def learned_minimax(
    model: nn.Module,
    attnet: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eta: float,
    *,
    leader: Literal["min", "max"] = "min",
    iterations: int = 1000,
    k_min: int = 1,
    k_max: int = 5,
    lr_min: float = 1e-3,
    lr_max: float = 1e-3,
    batch_size: int = 64,
    rho: float = 0.0,
    generator: torch.Generator,
    callback: Callable[[int, AlternatingHistory], None] | None = None,
) -> AlternatingHistory:
    """Solve min_u max_v f(u, v) (``leader="min"``) or max_v min_u f between a classifier
    and an attack network by :func:`alternating_gradient` with Adam on mini-batches.

    f(u, v) = E l(h(clip(x + eta tanh(a(x; v)), 0, 1); u), y). Every payoff evaluation
    draws a mini-batch of ``batch_size`` training examples uniformly with replacement
    (``generator``, CPU). Both networks are trained in place and left in eval mode.

    ``advgame paper2`` runs it with k = 5 follower steps (k_max = 5, k_min = 1 for minimax;
    k_min = 5, k_max = 1 for maximin) and, for the sensitivity-penalized minimax, rho = 1.0:
    the defender then minimizes f + rho ||grad_v f||^2, the first-order value of f after
    one attacker step (f(u, v + s grad_v f) ~ f + s ||grad_v f||^2).

    Args:
        model: classifier h(.; u). attnet: attack network a(.; v).
        x: (N, ...) training inputs in [0, 1]. y: (N,) labels.
        eta: L-inf budget. leader, iterations, k_min, k_max, lr_min, lr_max, rho: see
            :func:`alternating_gradient`.
        batch_size: examples per payoff evaluation.
        generator: CPU generator for the mini-batches.

    Returns:
        :class:`AlternatingHistory` of mini-batch objectives.

    Example:
        >>> from advgame.attacks.learned import AttNet
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
        >>> x = torch.rand(16, 1, 2, 2); y = torch.randint(0, 2, (16,))
        >>> h = learned_minimax(model, AttNet((1, 2, 2), hidden=(4,)), x, y, 0.1,
        ...                     iterations=3, k_max=2, generator=torch.Generator())
        >>> len(h.value)
        3
    """
    check_images("x", x)
    check_labels("y", y, x.shape[0])
    eta = check_nonnegative("eta", eta)
    check_positive_int("batch_size", batch_size)
    n = x.shape[0]

    def f() -> torch.Tensor:
        idx = torch.randint(n, (min(batch_size, n),), generator=generator).to(x.device)
        return attnet_payoff(model, attnet, x[idx], y[idx], eta)

    model.train()
    attnet.train()
    try:
        return alternating_gradient(
            f, [p for p in model.parameters() if p.requires_grad],
            [p for p in attnet.parameters() if p.requires_grad],
            iterations=iterations, k_min=k_min, k_max=k_max, leader=leader, lr_min=lr_min,
            lr_max=lr_max, optimizer="adam", rho=rho, callback=callback,
        )
    finally:
        model.eval()
        attnet.eval()
