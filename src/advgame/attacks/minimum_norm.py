"""Minimum-norm attacks: FAB (Croce & Hein, ICML 2020) and Carlini-Wagner L2 (2017).

Both look for the *smallest* perturbation that flips the prediction, so one run gives the
robust accuracy at every radius: a point is robust at eps iff its minimal adversarial norm
exceeds eps (:class:`MinimumNormResult`).

FAB ("fast adaptive boundary"). At the iterate x_k the decision boundary between y and a
class t is linearized, f_t - f_y ~ df + w.(z - x_k); the step projects both x_k and the
original x onto that hyperplane inside the box (:func:`advgame.threat.
project_onto_hyperplane_in_box`), giving steps d_k and d_0, and moves to

    x_(k+1) = clip((1 - alpha)(x_k + eta d_k) + alpha (x + eta d_0)),
    alpha = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max)

(extrapolation eta = 1.05 crosses the boundary; the bias alpha towards x keeps the
perturbation small). Each time x_(k+1) is adversarial its norm is recorded and it is pulled
back towards x: x_(k+1) = x + beta (x_(k+1) - x). Untargeted: t is the class whose
linearized boundary is nearest, |df_t| / ||w_t||_{p*} (one backward pass per class);
targeted (FAB-T, AutoAttack's choice): t runs over the most likely other classes. Restarts
after the first start from random points at half of min(best norm found, eps).

CW-L2. x_adv = (tanh(w) + 1) / 2 keeps the box; Adam minimizes
||x_adv - x||_2^2 + c max(z_y - max_{i != y} z_i, -kappa) with a binary search on c per
example (up after a failure, down after a success) and keeps the smallest adversarial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from advgame.attacks.base import check_attack_args, checked_logits
from advgame.models.training import eval_mode
from advgame.threat import Norm, lp_norm, project_onto_hyperplane_in_box
from advgame.validate import check_nonnegative, check_positive, check_positive_int


@dataclass(frozen=True)
class MinimumNormResult:
    """The smallest adversarial perturbation found per example.

    Attributes:
        x_adv: (N, ...) the smallest adversarial input found (x itself where none was
            found; x for points the model already misclassifies, with norm 0).
        norm: (N,) its distance to x in the attack's norm; inf where none was found.
        norm_name: ``"2"`` or ``"inf"``.
    """

    x_adv: torch.Tensor
    norm: torch.Tensor
    norm_name: str

    def robust(self, eps: float) -> torch.Tensor:
        """(N,) bool: no adversarial example of norm <= eps was found."""
        return self.norm > eps

    def robust_accuracy(self, eps: float) -> float:
        """Fraction of points still robust at radius eps."""
        return float(self.robust(eps).float().mean())

    def at(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        """The adversarial inputs within radius eps (x elsewhere)."""
        keep = (self.norm <= eps).reshape(-1, *[1] * (x.ndim - 1))
        return torch.where(keep, self.x_adv, x)


def _logit_diffs_and_grads(
    model: nn.Module, z: torch.Tensor, y: torch.Tensor, classes: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """f_k - f_y and its input gradient, for every class k (``classes`` None) or one class
    per example: shapes (N, K) and (N, K, d), or (N, 1) and (N, 1, d)."""
    za = z.detach().requires_grad_(True)
    logits = model(za)
    n, k_all = logits.shape
    ks = (torch.arange(k_all, device=z.device)[None].expand(n, k_all) if classes is None
          else classes[:, None])
    diffs = logits.gather(1, ks) - logits.gather(1, y[:, None])
    grads = []
    for j in range(ks.shape[1]):
        (g,) = torch.autograd.grad(diffs[:, j].sum(), za, retain_graph=j < ks.shape[1] - 1)
        grads.append(g.reshape(n, -1))
    return diffs.detach(), torch.stack(grads, 1)


def _fab_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Norm, steps: int,
             target: torch.Tensor | None, start: torch.Tensor, alpha_max: float, eta: float,
             beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One FAB run; returns (best adversarial (N, ...), its norm (N,), inf if none)."""
    n = x.shape[0]
    xf = x.reshape(n, -1)
    best = x.clone()
    best_norm = torch.full((n,), math.inf, device=x.device, dtype=x.dtype)
    cur = start.clone()
    dual = "1" if norm == "inf" else "2"
    for _ in range(steps):
        diffs, grads = _logit_diffs_and_grads(model, cur, y, target)
        if target is None:  # the nearest linearized boundary among the other classes
            dist = diffs.abs() / (lp_norm(grads.reshape(-1, grads.shape[-1]), dual)
                                  .reshape(diffs.shape) + 1e-12)
            dist.scatter_(1, y[:, None], math.inf)
            k = dist.argmin(1)
            df = diffs.gather(1, k[:, None]).squeeze(1)
            w = grads[torch.arange(n, device=x.device), k]
        else:
            df, w = diffs[:, 0], grads[:, 0]
        with torch.no_grad():
            cf = cur.reshape(n, -1)
            b = (w * cf).sum(1) - df  # the zero set of df + w.(z - cur)
            d = project_onto_hyperplane_in_box(torch.cat([cf, xf]), torch.cat([w, w]),
                                               torch.cat([b, b]), norm)
            d1, d2 = d[:n], d[n:]
            a1 = lp_norm(d1, norm).clamp_min(1e-8)
            a2 = lp_norm(d2, norm).clamp_min(1e-8)
            alpha = (a1 / (a1 + a2)).clamp(0.0, alpha_max)[:, None]
            nxt = ((cf + eta * d1) * (1 - alpha) + (xf + eta * d2) * alpha).clamp(0.0, 1.0)
            cur = nxt.reshape(x.shape)
            adv = model(cur).argmax(1) != y
            if bool(adv.any()):
                t = lp_norm((cur - x)[adv], norm)
                smaller = t < best_norm[adv]
                sel = torch.nonzero(adv).squeeze(1)[smaller]
                best[sel] = cur[sel]
                best_norm[sel] = t[smaller]
                cur[adv] = x[adv] + beta * (cur[adv] - x[adv])
    return best, best_norm


def _random_start(x: torch.Tensor, radius: torch.Tensor, norm: Norm,
                  gen: torch.Generator | None) -> torch.Tensor:
    view = (-1,) + (1,) * (x.ndim - 1)
    if norm == "inf":
        t = 2 * torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) - 1
        t = t / t.flatten(1).abs().amax(1).clamp_min(1e-12).reshape(view)
    else:
        t = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        t = t / t.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(view)
    return (x + 0.5 * radius.reshape(view) * t).clamp(0.0, 1.0)


def fab_minimum_norm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor,
    norm: Norm | str | float = "inf",
    steps: int = 100,
    restarts: int = 1,
    targeted: bool = True,
    n_target_classes: int = 9,
    start_radius: float | None = None,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
    generator: torch.Generator | None = None,
) -> MinimumNormResult:
    """FAB's smallest adversarial perturbation per example (see the module docstring).

    ``start_radius``: the random starts of restarts 2, 3, ... lie at half of min(best norm
    found, ``start_radius``) from x (default: 0.3 for L-inf, 1.0 for L2; AutoAttack's
    values; :func:`fab` passes its eps).

    Shape: x (N, ...) in [0, 1], y (N,) -> :class:`MinimumNormResult`.
    """
    x, p, _ = check_attack_args(x, y, 0.0, norm)
    check_positive_int("steps", steps)
    check_positive_int("restarts", restarts)
    check_positive_int("n_target_classes", n_target_classes)
    for name, val in (("alpha_max", alpha_max), ("eta", eta), ("beta", beta)):
        check_nonnegative(name, val)
    r0 = (0.3 if p == "inf" else 1.0) if start_radius is None else check_nonnegative(
        "start_radius", start_radius)
    with eval_mode(model):
        logits = checked_logits(model, x, y)
        best = x.clone()
        best_norm = torch.where(logits.argmax(1) != y, 0.0, math.inf).to(x.dtype)
        todo = torch.nonzero(best_norm > 0).squeeze(1)
        if todo.numel() == 0:
            return MinimumNormResult(best, best_norm, p)
        xs, ys = x[todo], y[todo]
        targets: list[torch.Tensor | None] = [None]
        if targeted:
            order = logits[todo].argsort(1, descending=True)
            targets = [order[:, k] for k in range(1, min(n_target_classes,
                                                          logits.shape[1] - 1) + 1)]
        sub_best, sub_norm = xs.clone(), torch.full((todo.numel(),), math.inf,
                                                    device=x.device, dtype=x.dtype)
        for target in targets:
            for r in range(restarts):
                if r == 0:
                    start = xs
                else:
                    radius = sub_norm.clamp(max=r0)  # AutoAttack's min(best norm, eps)
                    start = _random_start(xs, radius, p, generator)
                adv, adv_norm = _fab_run(model, xs, ys, p, steps, target, start, alpha_max,
                                         eta, beta)
                better = adv_norm < sub_norm
                sub_best[better], sub_norm[better] = adv[better], adv_norm[better]
        best[todo], best_norm[todo] = sub_best, sub_norm
    return MinimumNormResult(best, best_norm, p)


def fab(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    steps: int = 100,
    restarts: int = 1,
    targeted: bool = True,
    n_target_classes: int = 9,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """FAB (targeted by default, as in AutoAttack's FAB-T) reported at radius eps: the
    smallest adversarial input found where its norm is <= eps, x elsewhere.

    Shape: x (N, ...) in [0, 1], y (N,) -> x_adv (N, ...), inside the eps-ball and the box.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(5, 1, 2, 2); y = model(x).argmax(1)
        >>> x_adv = fab(model, x, y, 0.2, "inf", steps=10)
        >>> bool(((x_adv - x).abs() <= 0.2 + 1e-6).all())
        True
    """
    e = check_nonnegative("eps", eps)
    res = fab_minimum_norm(model, x, y, norm, steps, restarts, targeted, n_target_classes,
                           start_radius=e if e > 0 else None, generator=generator)
    return res.at(x.detach(), e)


def cw_l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor,
    steps: int = 100,
    c_init: float = 1.0,
    binary_search_steps: int = 9,
    kappa: float = 0.0,
    lr: float = 0.01,
) -> MinimumNormResult:
    """Carlini-Wagner L2: the smallest adversarial L2 perturbation found per example.

    ``steps`` Adam steps per binary-search step; c starts at ``c_init`` (> 0) and is
    bisected per example (multiplied by 10 until a first success). A point counts as
    adversarial, for the search and for the smallest norm kept, only with confidence
    ``kappa``: z_y - max_{i != y} z_i < -kappa (CW's criterion; kappa = 0: misclassified).
    Robust accuracy at radius eps: ``cw_l2(...).robust_accuracy(eps)`` (with kappa = 0; a
    kappa > 0 leaves points misclassified with less confidence counted as robust).

    Shape: x (N, ...) in [0, 1], y (N,) -> :class:`MinimumNormResult` (L2).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
        >>> x = torch.rand(5, 1, 2, 2); y = model(x).argmax(1)
        >>> res = cw_l2(model, x, y, steps=20, binary_search_steps=3)
        >>> bool((res.x_adv >= 0).all() and (res.x_adv <= 1).all())
        True
    """
    x, _, _ = check_attack_args(x, y, 0.0, "2")
    check_positive_int("steps", steps)
    check_positive_int("binary_search_steps", binary_search_steps)
    c0 = check_positive("c_init", c_init)
    k = check_nonnegative("kappa", kappa)
    lr_ = check_positive("lr", lr)
    with eval_mode(model):
        logits = checked_logits(model, x, y)
        n = x.shape[0]
        best = x.clone()
        best_norm = torch.where(logits.argmax(1) != y, 0.0, math.inf).to(x.dtype)
        lower = torch.zeros(n, device=x.device, dtype=x.dtype)
        upper = torch.full((n,), 1e10, device=x.device, dtype=x.dtype)
        c = torch.full((n,), c0, device=x.device, dtype=x.dtype)
        w0 = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        for _ in range(binary_search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=lr_)
            success = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(steps):
                x_adv = (torch.tanh(w) + 1) / 2
                z = model(x_adv)
                other = z.scatter(1, y[:, None], -math.inf).amax(1)
                margin = z.gather(1, y[:, None]).squeeze(1) - other
                dist = (x_adv - x).flatten(1).square().sum(1)
                loss = (dist + c * margin.clamp_min(-k)).sum()
                (w.grad,) = torch.autograd.grad(loss, w)  # parameters' .grad untouched
                opt.step()
                with torch.no_grad():
                    adv = margin < -k  # CW's success: misclassified with confidence kappa
                    nrm = dist.sqrt()
                    better = adv & (nrm < best_norm)
                    best[better] = x_adv.detach()[better]
                    best_norm[better] = nrm[better]
                    success |= adv
            with torch.no_grad():
                upper = torch.where(success, torch.minimum(upper, c), upper)
                lower = torch.where(success, lower, torch.maximum(lower, c))
                c = torch.where(upper < 1e9, (lower + upper) / 2, c * 10)
    return MinimumNormResult(best, best_norm, "2")
