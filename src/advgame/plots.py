"""PNG figures for advgame reports: pure functions from plain numbers to a file.

Every function takes numbers or numpy arrays and a path, writes one PNG (about 110 dpi,
fonts readable at the width of a report page), and returns the path. Nothing here
touches torch, reads files, or keeps state between calls.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas
directly, never through ``pyplot``: no window is ever opened, nothing is left in
pyplot's global list of open figures (so there is nothing to close and nothing leaks in
a long sweep), and importing this module does not switch the backend of a user's
interactive session.

Conventions shared by the functions:

- Curve labels ending in ``approx`` / ``(approx)`` / ``approximate`` are drawn dashed and
  labels with ``true`` solid; a "true"/"approx" pair of the same quantity shares one
  colour (e.g. ``"FGM true"`` and ``"FGM approx"``). An explicit ``styles`` mapping
  (label -> matplotlib line keyword arguments) overrides this.
- ``None`` / NaN values are gaps, not zeros.
- Bad input raises :class:`advgame.errors.InputError` naming the argument.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> accuracy_vs_eps(d / "sweep.png", [0.0, 0.1, 0.2],
    ...                 {"FGM true": [0.99, 0.7, 0.3], "FGM approx": [0.99, 0.6, 0.2]},
    ...                 title="MNIST 0 vs 1").name
    'sweep.png'
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from advgame.errors import InputError

__all__ = [
    "DPI",
    "accuracy_vs_eps",
    "bars",
    "certified_accuracy_vs_radius",
    "convergence",
    "example_images",
    "heatmap",
    "payoff_heatmap",
]

DPI = 110
"""Resolution of every figure, dots per inch."""

_RC: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 13,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}

# Colour-blind friendly qualitative palette (Okabe & Ito 2008).
_COLORS = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]

PathLike = str | Path
ArrayLike = Sequence[float | None] | np.ndarray


# --------------------------------------------------------------------------- helpers


def _style(*, grid: bool = True) -> AbstractContextManager[None]:
    """Temporarily apply the report style (fonts, grid) to figures created inside."""
    rc: Any = {**_RC, "axes.grid": grid}
    return matplotlib.rc_context(rc)


def _new_figure(width: float, height: float, *, constrained: bool = False) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI,
                 layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InputError("path", f"must end in .png, got {str(path)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    fig.clear()
    return out


def _as_float_array(name: str, values: object, ndim: int | tuple[int, ...] = 1) -> np.ndarray:
    """Convert to a float array (``None`` -> NaN) and check its rank; inf is rejected."""
    try:
        arr = np.array(values, dtype=float)  # None -> NaN
    except (TypeError, ValueError) as exc:
        raise InputError(name, f"must be numbers, got {type(values).__name__} ({exc})") from exc
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in allowed:
        raise InputError(
            name, f"must have {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise InputError(name, "contains inf values")
    return arr


def _check_labels(name: str, labels: Sequence[str], n: int) -> list[str]:
    labels = [str(lbl) for lbl in labels]
    if len(labels) != n:
        raise InputError(name, f"must have {n} entries, got {len(labels)}")
    return labels


_PAIR_WORDS = re.compile(r"\(?\b(true|approx\.?|approximate|approximated)\b\)?", re.IGNORECASE)


def _pair_key(label: str) -> str:
    """``"FGM approx"`` and ``"FGM true"`` -> ``"fgm"``: the quantity both describe."""
    return re.sub(r"\s+", " ", _PAIR_WORDS.sub("", label)).strip(" ,:-").lower()


def _is_approx(label: str) -> bool:
    return re.search(r"\bapprox", label, re.IGNORECASE) is not None


def _line_styles(
    labels: Sequence[str], styles: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Colour per quantity, dashed for approximations, then the caller's overrides."""
    groups: dict[str, int] = {}
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        g = groups.setdefault(_pair_key(label), len(groups))
        style: dict[str, Any] = {
            "color": _COLORS[g % len(_COLORS)],
            "marker": _MARKERS[g % len(_MARKERS)],
            "linestyle": "--" if _is_approx(label) else "-",
            "linewidth": 2.0,
            "markersize": 5,
        }
        if _is_approx(label):
            style["markerfacecolor"] = "white"
        style.update((styles or {}).get(label, {}))
        out[label] = style
    if styles:
        unknown = sorted(set(styles) - set(labels))
        if unknown:
            raise InputError("styles", f"names curves that do not exist: {unknown}")
    return out


def _legend(ax: Any, *, outside: bool | None = None) -> None:
    """Legend inside the axes for a few entries, to the right of them for many."""
    n = len(ax.get_legend_handles_labels()[1])
    if outside is None:
        outside = n > 4
    if outside:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(loc="best")


def _text_color(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


# --------------------------------------------------------------------------- figures


def accuracy_vs_eps(
    path: PathLike,
    eps: ArrayLike,
    curves: Mapping[str, ArrayLike],
    *,
    title: str,
    xlabel: str = "attack budget ε (L∞, pixel scale [0, 1])",
    ylabel: str = "accuracy",
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylim: tuple[float, float] | None = (0.0, 1.02),
    reference: Mapping[str, float] | None = None,
) -> Path:
    """Accuracy (or any rate) against the attack budget, one line per curve.

    Args:
        path: PNG file to write.
        eps: budgets, shape (E,).
        curves: label -> values of shape (E,); ``None``/NaN are gaps. Labels with
            "approx" are dashed and share the colour of their "true" partner.
        title, xlabel, ylabel: text; put the unit in the axis labels.
        styles: optional label -> matplotlib line kwargs, e.g.
            ``{"no defense": {"color": "gray"}}``.
        ylim: y range, or None for automatic.
        reference: optional label -> y value drawn as a dotted horizontal line (e.g.
            chance level 0.5).

    Returns:
        ``Path(path)``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> accuracy_vs_eps(p, [0, 0.1], {"PGD true": [1.0, 0.4]}, title="t") == p
        True
    """
    x = _as_float_array("eps", eps)
    if not curves:
        raise InputError("curves", "must contain at least one curve")
    ys = {str(k): _as_float_array(f"curves[{k!r}]", v) for k, v in curves.items()}
    for k, y in ys.items():
        if y.shape != x.shape:
            raise InputError(f"curves[{k!r}]", f"must have {x.size} values (one per eps), "
                             f"got {y.size}")
    st = _line_styles(list(ys), styles)
    with _style():
        fig = _new_figure(7.0, 4.5)
        ax = fig.add_subplot()
        for label, y in ys.items():
            ax.plot(x, y, label=label, **st[label])
        for i, (label, level) in enumerate((reference or {}).items()):
            ax.axhline(level, color="0.4", linestyle=":", linewidth=1.3,
                       label=label, zorder=0.5 + i)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
        _legend(ax)
        return _save(fig, path)


def certified_accuracy_vs_radius(
    path: PathLike,
    radii: ArrayLike | Mapping[str, ArrayLike],
    correct: ArrayLike | Mapping[str, ArrayLike],
    *,
    label: str = "smoothed classifier",
    title: str = "Certified accuracy",
    xlabel: str = "L2 radius r (pixel scale [0, 1])",
    ylabel: str = "certified accuracy",
    max_radius: float | None = None,
    ceiling: float | None = None,
    ceiling_label: str | None = None,
) -> Path:
    """Fraction of inputs classified correctly *and* certified at radius >= r, against r.

    The curve is ``acc(r) = #{i : correct_i and R_i >= r} / N`` (Cohen et al. 2019,
    Fig. 1), drawn exactly as a step function. Abstentions should come with
    ``correct = False`` (their radius is ignored).

    Args:
        path: PNG file to write.
        radii: certified radius per input, shape (N,), or label -> (N_k,) for several
            curves (e.g. one per noise level sigma).
        correct: bool per input, shape (N,), or a mapping with the same keys as ``radii``.
        label: legend label when a single curve is given.
        title, xlabel, ylabel: text.
        max_radius: right end of the x axis (default: 10 % past the largest radius, or
            past ``ceiling``).
        ceiling: the largest radius the certification can give
            (:func:`advgame.smoothing.radius_ceiling`), drawn as a dotted vertical line, so
            that a reader sees where the curve's drop comes from n, not from the model.
        ceiling_label: its legend entry (default: the formula and the value).

    The legend sits below the axes, where it covers no curve.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.png"
        >>> certified_accuracy_vs_radius(p, [0.1, 0.5, 0.0], [True, True, False]) == p
        True
    """
    if isinstance(radii, Mapping) != isinstance(correct, Mapping):
        raise InputError("correct", "must be a mapping exactly when radii is one")
    if isinstance(radii, Mapping):
        assert isinstance(correct, Mapping)
        if set(radii) != set(correct):
            raise InputError("correct", f"must have the same keys as radii: {sorted(radii)}")
        pairs: dict[str, tuple[Any, Any]] = {str(k): (radii[k], correct[k]) for k in radii}
    else:
        pairs = {label: (radii, correct)}
    if not pairs:
        raise InputError("radii", "must contain at least one curve")
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k, (r, c) in pairs.items():
        rn = f"radii[{k!r}]" if len(pairs) > 1 or isinstance(radii, Mapping) else "radii"
        cn = rn.replace("radii", "correct", 1)
        r_arr = _as_float_array(rn, r)
        c_arr = np.asarray(c)
        if c_arr.shape != r_arr.shape:
            raise InputError(cn, f"must have shape {r_arr.shape} like radii, got {c_arr.shape}")
        if r_arr.size == 0:
            raise InputError(rn, "must not be empty")
        if c_arr.dtype != bool and not np.isin(c_arr, (0, 1)).all():
            raise InputError(cn, "must be booleans (or 0/1)")
        data[k] = (r_arr, c_arr.astype(bool))
    top = max((float(np.nanmax(np.where(c, r, np.nan), initial=0.0)) for r, c in data.values()),
              default=0.0)
    if ceiling is not None:
        ceiling = float(ceiling)
        if not (math.isfinite(ceiling) and ceiling > 0):
            raise InputError("ceiling", f"must be a positive finite radius, got {ceiling!r}")
        top = max(top, ceiling)
    right = max_radius if max_radius is not None else (1.1 * top if top > 0 else 1.0)
    st = _line_styles(list(data), None)
    with _style():
        fig = _new_figure(7.0, 4.5)
        ax = fig.add_subplot()
        for k, (r, c) in data.items():
            xs, ys = _certified_curve(r, c)
            # With where="pre" the value ys[j] holds on (xs[j-1], xs[j]]: right for ">=".
            xs = np.append(xs, max(right, xs[-1]))
            ys = np.append(ys, 0.0)
            s = dict(st[k])
            s.pop("marker", None)
            ax.step(xs, ys, where="pre", label=f"{k} (clean: {ys[0]:.3f})", **s)
        if ceiling is not None:
            text = ceiling_label or f"largest certifiable radius σ·Φ⁻¹(α^(1/n)) = {ceiling:.3f}"
            # on top of the curve: a classifier certified up to the ceiling drops exactly there
            ax.axvline(ceiling, color="#b42318", linestyle=":", linewidth=2.0, label=text,
                       zorder=5)
        ax.set_xlim(0, right)
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
        return _save(fig, path)


def _certified_curve(radii: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints of ``acc(r) = #{i : correct_i and R_i >= r} / N``: (xs, acc(xs)).

    ``xs`` is 0 followed by the distinct certified radii, increasing; between breakpoints
    acc is constant on (xs[j-1], xs[j]]. Non-finite or negative radii never count.
    """
    cert = np.sort(radii[correct & np.isfinite(radii) & (radii >= 0)])
    xs = np.unique(np.concatenate([[0.0], cert]))
    ys = (cert.size - np.searchsorted(cert, xs, side="left")) / radii.size
    return xs, ys


def heatmap(
    path: PathLike,
    matrix: ArrayLike | Sequence[ArrayLike],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    annotate: bool = True,
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar_label: str = "",
) -> Path:
    """A labelled matrix of numbers, e.g. the cat-and-mouse error matrix E[k][j].

    Args:
        path: PNG file to write.
        matrix: shape (R, C); NaN/None cells are grey and annotated "—".
        row_labels, col_labels: R and C tick labels.
        title, xlabel, ylabel, colorbar_label: text (give units).
        annotate: write each value in its cell (black or white, whichever reads).
        fmt: format of the annotations.
        cmap: matplotlib colormap name.
        vmin, vmax: colour range (default: data range).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "h.png"
        >>> heatmap(p, [[0.1, 0.9], [0.5, 0.2]], ["u0", "u1"], ["FGSM-1", "FGSM-2"],
        ...         title="test error") == p
        True
    """
    m = _as_float_array("matrix", matrix, ndim=2)
    if m.size == 0:
        raise InputError("matrix", "must not be empty")
    rows = _check_labels("row_labels", row_labels, m.shape[0])
    cols = _check_labels("col_labels", col_labels, m.shape[1])
    with _style(grid=False):
        w = min(14.0, max(5.0, 1.0 + 0.9 * m.shape[1] + 0.08 * max(map(len, rows))))
        h = min(12.0, max(3.5, 1.4 + 0.55 * m.shape[0]))
        fig = _new_figure(w, h)
        ax = fig.add_subplot()
        _draw_matrix(fig, ax, m, rows, cols, annotate=annotate, fmt=fmt, cmap=cmap,
                     vmin=vmin, vmax=vmax, colorbar_label=colorbar_label)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        return _save(fig, path)


def _draw_matrix(
    fig: Figure,
    ax: Any,
    m: np.ndarray,
    rows: list[str],
    cols: list[str],
    *,
    annotate: bool,
    fmt: str,
    cmap: str,
    vmin: float | None,
    vmax: float | None,
    colorbar_label: str,
    colorbar_ax: Any = None,
) -> None:
    cm = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    finite = m[np.isfinite(m)]
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    norm = Normalize(lo, hi)
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cm, norm=norm, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30 if max(map(len, cols)) > 6 else 0,
                  ha="right" if max(map(len, cols)) > 6 else "center")
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if annotate and m.size <= 400:
        size = 10 if m.size <= 100 else 8
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                v = m[i, j]
                if math.isnan(v):
                    ax.text(j, i, "—", ha="center", va="center", color="0.3", fontsize=size)
                else:
                    color = _text_color(cm(norm(v)))
                    ax.text(j, i, fmt.format(v), ha="center", va="center", color=color,
                            fontsize=size)
    if colorbar_ax is not None:
        cb = fig.colorbar(im, cax=colorbar_ax)
    else:
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    if colorbar_label:
        cb.set_label(colorbar_label)


def payoff_heatmap(
    path: PathLike,
    payoff: ArrayLike | Sequence[ArrayLike],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    row_strategy: ArrayLike | None = None,
    col_strategy: ArrayLike | None = None,
    *,
    title: str = "Payoff matrix (defender accuracy)",
    value: float | None = None,
    xlabel: str = "attacker strategy",
    ylabel: str = "defender strategy",
    colorbar_label: str = "defender accuracy",
    fmt: str = "{:.2f}",
    cmap: str = "RdYlGn",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
) -> Path:
    """The game's payoff matrix with the equilibrium mixed strategies beside it.

    Rows are defender strategies (the maximizer), columns attacker strategies. When
    strategies are given, bars on the right (defender) and on top (attacker) show each
    strategy's probability with its value printed; the labels of strategies in the support
    (probability > 1e-6) are bold, and the cells both players use with positive
    probability (the equilibrium sub-game) are outlined in black.

    Args:
        path: PNG file to write.
        payoff: shape (R, C).
        row_labels, col_labels: strategy names.
        row_strategy, col_strategy: mixed strategies, shapes (R,) and (C,), or None.
        title: text; the game value is appended when ``value`` is given.
        value: the game value (defender accuracy at equilibrium).
        xlabel, ylabel, colorbar_label, fmt, cmap, vmin, vmax: as in :func:`heatmap`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.png"
        >>> payoff_heatmap(p, [[1, 0], [0, 1]], ["D1", "D2"], ["A1", "A2"],
        ...                [0.5, 0.5], [0.5, 0.5], value=0.5) == p
        True
    """
    m = _as_float_array("payoff", payoff, ndim=2)
    if m.size == 0:
        raise InputError("payoff", "must not be empty")
    rows = _check_labels("row_labels", row_labels, m.shape[0])
    cols = _check_labels("col_labels", col_labels, m.shape[1])
    p = q = None
    if row_strategy is not None:
        p = _check_strategy("row_strategy", row_strategy, m.shape[0])
    if col_strategy is not None:
        q = _check_strategy("col_strategy", col_strategy, m.shape[1])
    with _style(grid=False):
        w = min(16.0, max(6.0, 2.5 + 0.95 * m.shape[1] + 0.08 * max(map(len, rows))))
        h = min(14.0, max(4.0, 2.2 + 0.6 * m.shape[0]))
        fig = _new_figure(w, h)
        gs = fig.add_gridspec(
            2, 3, width_ratios=[max(m.shape[1], 2), 1.3, 0.25],
            height_ratios=[1.3, max(m.shape[0], 2)], wspace=0.08, hspace=0.08,
        )
        ax = fig.add_subplot(gs[1, 0])
        cax = fig.add_subplot(gs[1, 2])
        _draw_matrix(fig, ax, m, rows, cols, annotate=True, fmt=fmt, cmap=cmap, vmin=vmin,
                     vmax=vmax, colorbar_label=colorbar_label, colorbar_ax=cax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if p is not None:
            axr = fig.add_subplot(gs[1, 1], sharey=ax)
            axr.barh(range(len(p)), p, color="#0072B2", height=0.6)
            _bar_values(axr, p, horizontal=True)
            axr.set_xlim(0, 1.35)
            axr.set_xlabel("P(defender plays)")
            axr.tick_params(labelleft=False, length=0)
            axr.grid(axis="x", alpha=0.3)
            for i in np.flatnonzero(p > 1e-6):
                ax.get_yticklabels()[i].set_fontweight("bold")
        if q is not None:
            axt = fig.add_subplot(gs[0, 0], sharex=ax)
            axt.bar(range(len(q)), q, color="#D55E00", width=0.6)
            _bar_values(axt, q, horizontal=False)
            axt.set_ylim(0, 1.35)
            axt.set_ylabel("P(attacker\nplays)")
            axt.tick_params(labelbottom=False, length=0)
            axt.grid(axis="y", alpha=0.3)
            for j in np.flatnonzero(q > 1e-6):
                ax.get_xticklabels()[j].set_fontweight("bold")
        # Outline the equilibrium sub-game: cells played with positive probability.
        rows_in = np.flatnonzero(p > 1e-6) if p is not None else np.arange(m.shape[0])
        cols_in = np.flatnonzero(q > 1e-6) if q is not None else np.arange(m.shape[1])
        if p is not None or q is not None:
            for r, c in itertools.product(rows_in.tolist(), cols_in.tolist()):
                ax.add_patch(Rectangle((c - 0.48, r - 0.48), 0.96, 0.96, fill=False,
                                       edgecolor="black", linewidth=2.4))
        full = title if value is None else f"{title}\ngame value = {value:.4f}"
        fig.suptitle(full, fontsize=13, fontweight="bold")
        return _save(fig, path)


def _check_strategy(name: str, s: ArrayLike, n: int) -> np.ndarray:
    arr = _as_float_array(name, s)
    if arr.shape != (n,):
        raise InputError(name, f"must have {n} entries, got {arr.size}")
    if np.isnan(arr).any() or (arr < -1e-9).any() or abs(arr.sum() - 1) > 1e-6:
        raise InputError(name, f"must be a probability vector (>= 0, sums to 1), got {arr}")
    return np.clip(arr, 0.0, 1.0)


def _bar_values(ax: Any, values: np.ndarray, *, horizontal: bool) -> None:
    for i, v in enumerate(values):
        if v <= 1e-6:
            continue
        if horizontal:
            ax.text(v + 0.03, i, f"{v:.2f}", va="center", ha="left", fontsize=9)
        else:
            ax.text(i, v + 0.03, f"{v:.2f}", ha="center", va="bottom", fontsize=9)


def convergence(
    path: PathLike,
    xs: ArrayLike,
    series: Mapping[str, ArrayLike | Sequence[ArrayLike]],
    *,
    title: str,
    xlabel: str = "number of samples n",
    ylabel: str = "gap Φ(v*) − Φ(v_n)",
    logx: bool = True,
    logy: bool = True,
    reference_lines: Mapping[str, float | ArrayLike] | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Quantities against n (sample size) or solver iteration, with reference bounds.

    Args:
        path: PNG file to write.
        xs: x values, shape (X,).
        series: label -> shape (X,) values, or shape (D, X) for D independent draws, drawn
            as their mean with a shaded 10 %–90 % band.
        title, xlabel, ylabel: text.
        logx, logy: logarithmic axes. On a log axis, values <= 0 cannot be drawn and are
            left out (a gap of exactly 0 is not plotted).
        reference_lines: label -> a number (horizontal line) or shape (X,) values (e.g. a
            VC bound, the Hoeffding rate exp(-2 n t²)); drawn in grey/black, dotted.
        styles: optional label -> matplotlib line kwargs for ``series``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "n.png"
        >>> n = [10, 100, 1000]
        >>> convergence(p, n, {"gap": [[0.2, 0.05, 0.01], [0.3, 0.06, 0.02]]},
        ...             title="t", reference_lines={"VC bound": [1.0, 0.4, 0.1]}) == p
        True
    """
    x = _as_float_array("xs", xs)
    if not series:
        raise InputError("series", "must contain at least one series")
    arrays = {str(k): _as_float_array(f"series[{k!r}]", v, ndim=(1, 2))
              for k, v in series.items()}
    for k, a in arrays.items():
        if a.shape[-1] != x.size:
            raise InputError(f"series[{k!r}]", f"must have {x.size} values per draw (one per "
                             f"x), got shape {a.shape}")
    refs: dict[str, np.ndarray] = {}
    for k, v in (reference_lines or {}).items():
        if isinstance(v, int | float):
            refs[str(k)] = np.full(x.shape, float(v))
        else:
            r = _as_float_array(f"reference_lines[{k!r}]", v)
            if r.shape != x.shape:
                raise InputError(f"reference_lines[{k!r}]", f"must have {x.size} values, "
                                 f"got {r.size}")
            refs[str(k)] = r
    st = _line_styles(list(arrays), styles)
    ref_styles = [":", "-.", (0, (5, 2, 1, 2)), (0, (1, 1))]
    with _style():
        fig = _new_figure(7.0, 4.5)
        ax = fig.add_subplot()
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log", nonpositive="mask")
        for k, a in arrays.items():
            if a.ndim == 2:
                mean = np.nanmean(a, axis=0)
                lo, hi = np.nanquantile(a, [0.1, 0.9], axis=0)
                ax.plot(x, mean, label=f"{k} (mean of {a.shape[0]})", **st[k])
                if logy:
                    lo = np.where(lo > 0, lo, np.nan)
                ax.fill_between(x, lo, hi, color=st[k]["color"], alpha=0.18, linewidth=0)
            else:
                ax.plot(x, a, label=k, **st[k])
        for i, (k, r) in enumerate(refs.items()):
            ax.plot(x, r, color="0.15" if i % 2 == 0 else "0.45",
                    linestyle=ref_styles[i % len(ref_styles)], linewidth=1.6, label=k)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        _legend(ax)
        return _save(fig, path)


def example_images(
    path: PathLike,
    rows: Mapping[str, np.ndarray],
    *,
    title: str = "Examples",
    captions: Mapping[str, Sequence[str]] | None = None,
    column_labels: Sequence[str] | None = None,
) -> Path:
    """A grid of images: one row per version (clean, attacked, defended), k per row.

    Args:
        path: PNG file to write.
        rows: label -> images of shape (k, C, H, W) (or (k, H, W)) with values in [0, 1];
            every row has the same k. C = 1 is drawn in grayscale, C = 3 as RGB.
        title: figure title.
        captions: optional label -> k short strings printed under each image (e.g.
            "pred 1 ✗").
        column_labels: optional k strings above the first row (e.g. "true 0").

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.png"
        >>> x = np.zeros((2, 1, 8, 8))
        >>> example_images(p, {"clean": x, "FGM": x + 0.3}) == p
        True
    """
    if not rows:
        raise InputError("rows", "must contain at least one row of images")
    imgs: dict[str, np.ndarray] = {}
    k = None
    for label, a in rows.items():
        name = f"rows[{label!r}]"
        arr = np.asarray(a, dtype=float)
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise InputError(name, f"must have shape (k, C, H, W) with C in (1, 3), got "
                             f"{arr.shape}")
        if arr.shape[0] == 0:
            raise InputError(name, "must not be empty")
        if k is None:
            k = arr.shape[0]
        elif arr.shape[0] != k:
            raise InputError(name, f"must have {k} images like the first row, got "
                             f"{arr.shape[0]}")
        if not np.isfinite(arr).all():
            raise InputError(name, "contains NaN or inf values")
        if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
            raise InputError(name, f"values must lie in [0, 1], got range "
                             f"[{arr.min():.4g}, {arr.max():.4g}]")
        imgs[str(label)] = np.clip(arr, 0.0, 1.0)
    assert k is not None
    for label, caps in (captions or {}).items():
        if label not in imgs:
            raise InputError("captions", f"names a row that does not exist: {label!r}")
        if len(caps) != k:
            raise InputError(f"captions[{label!r}]", f"must have {k} entries, got {len(caps)}")
    if column_labels is not None:
        column_labels = _check_labels("column_labels", column_labels, k)
    n_rows = len(imgs)
    cell = 1.35 if k > 6 else 1.6
    with _style(grid=False):
        fig = _new_figure(1.6 + cell * k, 0.6 + (cell + 0.3) * n_rows, constrained=True)
        axes = fig.subplots(n_rows, k, squeeze=False)
        for i, (label, arr) in enumerate(imgs.items()):
            for j in range(k):
                ax = axes[i, j]
                img = arr[j]
                if img.shape[0] == 1:
                    ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
                else:
                    ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color("0.6")
                if j == 0:
                    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=11,
                                  fontweight="bold", labelpad=8)
                if i == 0 and column_labels is not None:
                    ax.set_title(column_labels[j], fontsize=10, fontweight="normal")
                if captions and label in captions:
                    ax.set_xlabel(str(captions[label][j]), fontsize=9)
        fig.suptitle(title, fontsize=13, fontweight="bold")
        return _save(fig, path)


def bars(
    path: PathLike,
    categories: Sequence[str],
    series: Mapping[str, ArrayLike],
    *,
    title: str,
    xlabel: str = "",
    ylabel: str = "accuracy",
    ylim: tuple[float, float] | None = (0.0, 1.0),
    annotate: bool = True,
    fmt: str = "{:.3f}",
) -> Path:
    """Grouped bar chart: one group per category, one bar per series.

    Args:
        path: PNG file to write.
        categories: group names, length G (e.g. attacks).
        series: label -> G values (e.g. one per defense); NaN/None bars are left out.
        title, xlabel, ylabel: text.
        ylim: y range, or None for automatic.
        annotate: print each value above its bar.
        fmt: format of the annotations.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "b.png"
        >>> bars(p, ["clean", "FGM"], {"none": [0.99, 0.2], "equilibrium": [0.98, 0.6]},
        ...      title="t") == p
        True
    """
    cats = [str(c) for c in categories]
    if not cats:
        raise InputError("categories", "must not be empty")
    if not series:
        raise InputError("series", "must contain at least one series")
    vals = {str(k): _as_float_array(f"series[{k!r}]", v) for k, v in series.items()}
    for k, v in vals.items():
        if v.shape != (len(cats),):
            raise InputError(f"series[{k!r}]", f"must have {len(cats)} values (one per "
                             f"category), got {v.size}")
    n = len(vals)
    width = 0.8 / n
    with _style():
        fig = _new_figure(min(14.0, max(6.0, 1.0 + 0.45 * n * len(cats))), 4.5)
        ax = fig.add_subplot()
        ax.grid(axis="x", visible=False)
        centers = np.arange(len(cats))
        for i, (k, v) in enumerate(vals.items()):
            pos = centers - 0.4 + width * (i + 0.5)
            ax.bar(pos, np.nan_to_num(v, nan=0.0), width=width * 0.92, label=k,
                   color=_COLORS[i % len(_COLORS)])
            if annotate:
                for xpos, y in zip(pos, v, strict=True):
                    if not math.isnan(y):
                        ax.text(xpos, y, fmt.format(y), ha="center", va="bottom",
                                fontsize=8 if n * len(cats) > 12 else 9)
        ax.set_xticks(centers, cats, rotation=20 if max(map(len, cats)) > 8 else 0,
                      ha="right" if max(map(len, cats)) > 8 else "center")
        if ylim is not None:
            ax.set_ylim(ylim[0], ylim[1] * (1.08 if annotate else 1.0))
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if n > 1:
            _legend(ax, outside=True)
        return _save(fig, path)
