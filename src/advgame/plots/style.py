"""What every advgame figure shares: resolution, rc style, colours and markers, the Agg
figure and its saving, argument checks and line styles for true/approx pairs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advgame.errors import InputError

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
