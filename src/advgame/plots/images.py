"""Grids of example images (clean, perturbed, difference)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from advgame.errors import InputError
from advgame.plots.style import PathLike, _check_labels, _new_figure, _save, _style


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
