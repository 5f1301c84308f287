"""Curves and bars: accuracy against eps, certified accuracy against radius (with the
sampling ceiling), convergence of iterative solvers, grouped bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advgame.errors import InputError
from advgame.plots.style import (
    _COLORS,
    ArrayLike,
    PathLike,
    _as_float_array,
    _legend,
    _line_styles,
    _new_figure,
    _save,
    _style,
)


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
