"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): a score-based,
gradient-free random search, L-inf and L2.

It only queries the model's logits (under ``torch.no_grad``: no backward pass ever runs),
so a model whose gradients are useless (a non-differentiable input quantizer, saturated
or masked gradients) is attacked as hard as any other. The objective is the margin
m(x) = z_y(x) - max_{k != y} z_k(x), minimized; a point is fooled when m < 0.

Each iteration changes one random square window of side s (all channels) of the current
perturbation and keeps the change only if the margin decreases. The fraction p of pixels
changed follows the piecewise-constant schedule (iteration i rescaled to 10,000 queries):
p_init, /2 after 10, /4 after 50, /8 after 200, /16 after 500, /32 after 1000, /64 after
2000, /128 after 4000, /256 after 6000, /512 after 8000.

* L-inf: start from vertical stripes of +-eps (one random sign per channel and column);
  a step sets the window to +-eps (one random sign per channel), clipped to the box.
* L2: start from a centred grid of squares, each two "pseudo-Gaussians" (concentric
  rectangles weighted 1/(r+1)^2) of opposite sign side by side, with random signs, scaled
  to norm eps; a step moves the mass of a second window into the first one, adds a new
  two-lobe pseudo-Gaussian pattern there, and rescales so that the perturbation stays on
  the eps-sphere (then the box clips it).

Inputs of shape (N, C, H, W) use H x W windows; (N, H, W) is read as one channel and
(N, d) as a 1 x d strip (windows of 1 x s^2 pixels).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advgame.attacks.base import check_attack_args, checked_logits
from advgame.errors import InputError
from advgame.models.training import eval_mode
from advgame.threat import Norm
from advgame.validate import check_nonnegative, check_positive_int

_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256))


def p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """The fraction of pixels changed at iteration ``it`` of ``n_iters``.

    Example:
        >>> [p_schedule(0.8, i, 1000) for i in (0, 2, 10, 100, 999)]
        [0.8, 0.4, 0.2, 0.05, 0.0015625]
    """
    t = int(it / n_iters * 10000)
    div = 512
    for bound, d in _SCHEDULE:
        if t <= bound:
            div = d
            break
    return p_init / div


def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = model(x)
    other = z.scatter(1, y[:, None], -math.inf).amax(1)
    return z.gather(1, y[:, None]).squeeze(1) - other


def _chw(x: torch.Tensor) -> tuple[int, int, int]:
    if x.ndim == 4:
        return int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    if x.ndim == 3:
        return 1, int(x.shape[1]), int(x.shape[2])
    return 1, 1, int(math.prod(x.shape[1:]))


def _window(p: float, c: int, h: int, w: int, least: int, cap_h: int) -> tuple[int, int]:
    """(rows, cols) of the window that changes a fraction p of the features."""
    if h == 1:
        return 1, min(max(int(round(p * h * w)), least), w)
    s = int(round(math.sqrt(p * h * w)))
    s = min(max(s, least), cap_h, w)
    return s, s


def _offsets(n: int, size: int, span: int, gen: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    """(n, size) indices of a random window of ``size`` in a range of ``span``."""
    start = torch.randint(0, span - size + 1, (n,), generator=gen, device=device)
    return start[:, None] + torch.arange(size, device=device)[None]


def _index(n: int, c: int, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Advanced indices of the windows: (n, c, rows, cols) broadcast."""
    dev = rows.device
    return (torch.arange(n, device=dev)[:, None, None, None],
            torch.arange(c, device=dev)[None, :, None, None],
            rows[:, None, :, None], cols[:, None, None, :])


def _flat_windows(k: int, c: int, h: int, w: int, rows: torch.Tensor, cols: torch.Tensor
                  ) -> torch.Tensor:
    """(k, c, rows, cols) flat indices of the windows into a contiguous (k, c, h, w)
    tensor, for ``take`` / ``put_`` (one index tensor: cheaper than four)."""
    dev = rows.device
    start = (torch.arange(k, device=dev) * (c * h * w))[:, None] + rows * w  # (k, rows)
    chan = (torch.arange(c, device=dev) * (h * w))[None, :, None, None]
    return start[:, None, :, None] + chan + cols[:, None, None, :]


def _pseudo_gaussian(a: int, b: int) -> torch.Tensor:
    """Concentric rectangles around the centre, ring r weighted 1 / (r + 1)^2; unit norm."""
    i = torch.arange(a, dtype=torch.float64)[:, None]
    j = torch.arange(b, dtype=torch.float64)[None, :]
    ring = torch.maximum((i - (a - 1) / 2).abs().ceil(), (j - (b - 1) / 2).abs().ceil())
    r_max = int(ring.max())
    d = torch.zeros(a, b, dtype=torch.float64)
    for r in range(r_max + 1):
        d += (ring <= r).double() / (r + 1) ** 2
    return d / d.norm()


def _two_lobes(a: int, b: int, gen: torch.Generator | None) -> torch.Tensor:
    """Two pseudo-Gaussians of opposite sign side by side (randomly transposed if square)."""
    if a >= b and a > 1:
        h = a // 2
        d = torch.cat([_pseudo_gaussian(h, b), -_pseudo_gaussian(a - h, b)], 0)
    elif b > 1:
        h = b // 2
        d = torch.cat([_pseudo_gaussian(a, h), -_pseudo_gaussian(a, b - h)], 1)
    else:
        d = torch.ones(a, b, dtype=torch.float64)
    dev = gen.device if gen is not None else torch.device("cpu")
    if a == b and float(torch.rand((), generator=gen, device=dev)) < 0.5:
        d = d.T
    return d / d.norm()


def _signs(shape: tuple[int, ...], gen: torch.Generator | None, device: torch.device,
           dtype: torch.dtype) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=gen, device=device).to(dtype) * 2 - 1


def square(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
    norm: Norm | str | float = "inf",
    queries: int = 5000,
    p_init: float = 0.8,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Square Attack: at most ``queries`` forward passes per example, no gradients.

    ``generator`` drives every random choice (on x's device; CPU generator for CPU
    inputs). Points the model already misclassifies are returned unchanged; the search
    stops for a point as soon as it is misclassified.

    Shape: x (N, ...) in [0, 1], y (N,) -> x_adv (N, ...), same device and dtype, inside the
    eps-ball and the box.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        >>> x = torch.rand(4, 1, 4, 4); y = model(x).argmax(1)
        >>> x_adv = square(model, x, y, 0.3, "inf", queries=50,
        ...                generator=torch.Generator().manual_seed(0))
        >>> bool(((x_adv - x).abs() <= 0.3 + 1e-6).all() and (x_adv >= 0).all())
        True
    """
    x, p, e = check_attack_args(x, y, eps, norm)
    check_positive_int("queries", queries)
    check_nonnegative("p_init", p_init, upper=1.0)
    if p_init == 0:
        raise InputError("p_init", "must be in (0, 1], got 0")
    with eval_mode(model), torch.no_grad():
        return _square(model, x, y, e, p, queries, p_init, generator)


def _square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm,
            queries: int, p_init: float, gen: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    c, h, w = _chw(x)
    shape = x.shape
    xs = x.reshape(n, c, h, w)
    dev, dt = x.device, x.dtype
    logits = checked_logits(model, x, y)
    out = x.clone()
    if eps == 0:
        return out
    active = logits.argmax(1) == y
    idx = torch.nonzero(active).squeeze(1)
    if idx.numel() == 0:
        return out
    x0, y0 = xs[idx], y[idx]
    m = idx.numel()
    if norm == "inf":
        delta = eps * _signs((m, c, 1, w), gen, dev, dt).expand(m, c, h, w)
        best = (x0 + delta).clamp(0.0, 1.0)
    else:
        best = (x0 + _l2_init(m, c, h, w, eps, gen, dev, dt)).clamp(0.0, 1.0)
    margin = _margin(model, best.reshape(m, *shape[1:]), y0)
    # the working set: the points not yet fooled, compacted only when one is fooled (no
    # gathers while it does not change; the order, hence every random draw, is the same)
    work = torch.nonzero(margin > 0).squeeze(1)
    cur, orig, yw, mw = best[work], x0[work], y0[work], margin[work]
    for it in range(1, queries):
        if work.numel() == 0:
            break
        frac = p_schedule(p_init, it, queries)
        k = work.numel()
        if norm == "inf":
            cand = _linf_step(cur, orig, eps, frac, gen)
        else:
            cand = _l2_step(cur, orig, eps, frac, gen)
        new_margin = _margin(model, cand.reshape(k, *shape[1:]), yw)
        better = new_margin < mw
        cur[better] = cand[better]
        mw[better] = new_margin[better]
        fooled = ~(mw > 0)
        if bool(fooled.any()):
            best[work] = cur
            keep = ~fooled
            work, cur, orig, yw, mw = work[keep], cur[keep], orig[keep], yw[keep], mw[keep]
    best[work] = cur
    out[idx] = best.reshape(m, *shape[1:])
    return out


def _linf_step(cur: torch.Tensor, orig: torch.Tensor, eps: float, frac: float,
               gen: torch.Generator | None) -> torch.Tensor:
    """cur with one random window (all channels) set to +-eps around orig, in the box."""
    k, c, h, w = cur.shape
    sh, sw = _window(frac, c, h, w, 1, max(h - 1, 1))
    rows = _offsets(k, sh, h, gen, cur.device)
    cols = _offsets(k, sw, w, gen, cur.device)
    ix = _flat_windows(k, c, h, w, rows, cols)
    window_x, window_cur = orig.take(ix), cur.take(ix)
    # the window's two possible values per channel, and whether each leaves it unchanged
    # (computed once: the redraws below only pick between them)
    up, down = (window_x + eps).clamp(0.0, 1.0), (window_x - eps).clamp(0.0, 1.0)
    up_same = (up - window_cur).abs().flatten(2).amax(2) < 1e-7  # (k, c)
    down_same = (down - window_cur).abs().flatten(2).amax(2) < 1e-7
    if c == 1:
        up_same, down_same = up_same.view(k), down_same.view(k)
    # one sign per example and channel, kept as the drawn bit (1: +eps, 0: -eps)
    bit = torch.randint(0, 2, (k, c, 1, 1), generator=gen, device=cur.device)
    for _ in range(8):  # redraw the signs of windows the step would leave unchanged
        if c == 1:
            same = torch.where(bit.view(k) > 0, up_same, down_same)
        else:
            same = torch.where(bit.view(k, c) > 0, up_same, down_same).all(1)
        redraw = int(same.sum())
        if redraw == 0:
            break
        bit[same] = torch.randint(0, 2, (redraw, c, 1, 1), generator=gen, device=cur.device)
    cand = cur.clone()
    return cand.put_(ix, torch.where(bit > 0, up, down))


def _l2_init(m: int, c: int, h: int, w: int, eps: float, gen: torch.Generator | None,
             dev: torch.device, dt: torch.dtype) -> torch.Tensor:
    """A centred grid of squares of side max(h // 5, 1), each the two-lobe pattern
    (randomly transposed) with a random sign per example and channel, scaled to norm eps
    (the reference implementation's start)."""
    delta = torch.zeros(m, c, h, w, device=dev, dtype=dt)
    if h == 1:
        s = max(w // 25, 1)
        sh, sw = 1, s
    else:
        sh = sw = max(h // 5, 1)
    top, left = (h - sh * (h // sh)) // 2, (w - sw * (w // sw)) // 2
    for r0 in range(top, h - sh + 1, sh):
        for c0 in range(left, w - sw + 1, sw):
            pattern = _two_lobes(sh, sw, gen).to(dev, dt)
            sign = _signs((m, c, 1, 1), gen, dev, dt)
            delta[:, :, r0:r0 + sh, c0:c0 + sw] += sign * pattern
    nrm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, 1, 1, 1)
    return delta / nrm * eps


def _l2_step(cur: torch.Tensor, orig: torch.Tensor, eps: float, frac: float,
             gen: torch.Generator | None) -> torch.Tensor:
    k, c, h, w = cur.shape
    sh, sw = _window(frac, c, h, w, 3, h)
    if h > 1 and sh % 2 == 0 and sh < h:
        sh = sw = sh + 1
    sw = min(sw, w)
    rows1, cols1 = _offsets(k, sh, h, gen, cur.device), _offsets(k, sw, w, gen, cur.device)
    rows2, cols2 = _offsets(k, sh, h, gen, cur.device), _offsets(k, sw, w, gen, cur.device)
    ix1, ix2 = _index(k, c, rows1, cols1), _index(k, c, rows2, cols2)
    delta = cur - orig
    win1 = delta[ix1]  # (k, c, sh, sw)
    norm_win1 = win1.flatten(2).norm(dim=2)[:, :, None, None]
    norm_img = delta.flatten(1).norm(dim=1)[:, None, None, None]
    mask = torch.zeros(k, 1, h, w, device=cur.device, dtype=cur.dtype)
    mask[_index(k, 1, rows1, cols1)] = 1.0
    mask[_index(k, 1, rows2, cols2)] = 1.0
    norm_both = (delta * mask).flatten(2).norm(dim=2)[:, :, None, None]
    lobes = _two_lobes(sh, sw, gen).to(cur.device, cur.dtype)
    new = lobes[None, None] * _signs((k, c, 1, 1), gen, cur.device, cur.dtype)
    new = new + win1 / (1e-10 + norm_win1)
    budget = ((eps ** 2 - norm_img ** 2).clamp_min(0.0) / c + norm_both ** 2).sqrt()
    new = new / new.flatten(2).norm(dim=2)[:, :, None, None].clamp_min(1e-12) * budget
    delta[ix2] = 0.0
    delta[ix1] = new
    nrm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
    return (orig + delta / nrm * eps).clamp(0.0, 1.0)
