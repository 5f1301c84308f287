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

Modules: ``style`` (shared look and checks), ``curves``, ``matrices``, ``images``.
"""

from __future__ import annotations

from advgame.plots.curves import accuracy_vs_eps, bars, certified_accuracy_vs_radius, convergence
from advgame.plots.images import example_images
from advgame.plots.matrices import heatmap, payoff_heatmap
from advgame.plots.style import DPI

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
