"""Matrix figures: annotated heatmaps and the payoff matrix with its equilibrium
strategies beside it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from advgame.errors import InputError
from advgame.plots.style import (
    ArrayLike,
    PathLike,
    _as_float_array,
    _check_labels,
    _new_figure,
    _save,
    _style,
    _text_color,
)


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
    m, rows, cols = _check_matrix("matrix", matrix, row_labels, col_labels)
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
    m, rows, cols = _check_matrix("payoff", payoff, row_labels, col_labels)
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
            _marginal(fig.add_subplot(gs[1, 1], sharey=ax), ax, p, horizontal=True)
        if q is not None:
            _marginal(fig.add_subplot(gs[0, 0], sharex=ax), ax, q, horizontal=False)
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


def _check_matrix(name: str, matrix: object, row_labels: Sequence[str],
                  col_labels: Sequence[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """The non-empty (R, C) float matrix ``name`` with R row and C column labels."""
    m = _as_float_array(name, matrix, ndim=2)
    if m.size == 0:
        raise InputError(name, "must not be empty")
    return (m, _check_labels("row_labels", row_labels, m.shape[0]),
            _check_labels("col_labels", col_labels, m.shape[1]))


def _check_strategy(name: str, s: ArrayLike, n: int) -> np.ndarray:
    arr = _as_float_array(name, s)
    if arr.shape != (n,):
        raise InputError(name, f"must have {n} entries, got {arr.size}")
    if np.isnan(arr).any() or (arr < -1e-9).any() or abs(arr.sum() - 1) > 1e-6:
        raise InputError(name, f"must be a probability vector (>= 0, sums to 1), got {arr}")
    return np.clip(arr, 0.0, 1.0)


def _marginal(bar_ax: Any, ax: Any, probs: np.ndarray, *, horizontal: bool) -> None:
    """A player's strategy as bars beside the matrix ``ax`` (the defender's on the right,
    ``horizontal``; the attacker's on top), its value on each bar played, and the played
    rows' or columns' tick labels in bold."""
    if horizontal:
        bar_ax.barh(range(len(probs)), probs, color="#0072B2", height=0.6)
        bar_ax.set_xlim(0, 1.35)
        bar_ax.set_xlabel("P(defender plays)")
        bar_ax.tick_params(labelleft=False, length=0)
    else:
        bar_ax.bar(range(len(probs)), probs, color="#D55E00", width=0.6)
        bar_ax.set_ylim(0, 1.35)
        bar_ax.set_ylabel("P(attacker\nplays)")
        bar_ax.tick_params(labelbottom=False, length=0)
    bar_ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    labels = ax.get_yticklabels() if horizontal else ax.get_xticklabels()
    for i in np.flatnonzero(probs > 1e-6):
        v = float(probs[i])
        if horizontal:
            bar_ax.text(v + 0.03, i, f"{v:.2f}", va="center", ha="left", fontsize=9)
        else:
            bar_ax.text(i, v + 0.03, f"{v:.2f}", ha="center", va="bottom", fontsize=9)
        labels[i].set_fontweight("bold")
