"""Progress of long work: a tqdm bar on a terminal, plain lines in a log file.

Library functions that can run long (:func:`advgame.smoothing.certify`,
:func:`advgame.smoothing.predict`, :func:`advgame.models.train`, ...) take
``progress=False`` by default and report through :func:`progress_bar` when it is True;
the ``advgame`` command line turns it on (through :func:`track`).

Where the output goes decides the form:

- a terminal (``file.isatty()``), or a Jupyter notebook: a tqdm bar that redraws in place;
- anything else (a log file, a pipe, a CI log): :class:`LineProgress`, one plain line at
  the start, at every 10% of the total (at most one per 2 s), at least every minute, and
  at the end -- never carriage returns, so a log stays one line per report.

A line reads ``certify: 40% (40,400/101,000 rows) 12s elapsed, ~18s left, 3.4k rows/s``.

Example:
    >>> import io
    >>> log = io.StringIO()                        # not a terminal: plain lines
    >>> with progress_bar(4, "work", unit="step", file=log) as bar:
    ...     for _ in range(4):
    ...         _ = bar.update(1)
    >>> [line.split(" (")[0] for line in log.getvalue().splitlines()]  # done in 2 s: 2 lines
    ['work: 0%', 'work: 100%']
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, Protocol, TypeVar

__all__ = ["LineProgress", "NullProgress", "ProgressBar", "progress_bar", "track"]

T = TypeVar("T")

MIN_INTERVAL_S = 2.0
"""Seconds between two step lines of :class:`LineProgress` (its default)."""


class ProgressBar(Protocol):
    """What a progress reporter offers (a subset of ``tqdm``'s interface)."""

    def update(self, n: float = 1) -> object: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> object: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> object: ...


class NullProgress:
    """Reports nothing (``progress=False``)."""

    def update(self, n: float = 1) -> None:
        """Ignore ``n`` units of progress."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Ignore the postfix."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None:
        self.close()


def _duration(seconds: float) -> str:
    """``45s``, ``3m 12s``, ``2h 05m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _rate(per_second: float, unit: str) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.1f}{suffix} {unit}/s"
    return f"{per_second:.3g} {unit}/s"


class LineProgress:
    """Progress as plain lines, for output that is not a terminal.

    Writes one line when it starts, each time the count crosses another ``step`` of the
    total (default every 10%) if at least ``min_interval`` seconds (default 2) passed since
    the last line, whenever ``interval`` seconds passed since the last line (default 60;
    the only reports when the total is unknown), and when it closes -- so a task of a
    second leaves two lines in a log, a task of an hour about a dozen.

    Args:
        total: units of work in all (None or 0: unknown).
        desc: what is being done; starts every line.
        unit: name of one unit ("rows", "epochs", ...).
        file: where the lines go (default ``sys.stderr``), flushed after each.
        step: fraction of the total between two lines, in (0, 1].
        interval: seconds after which a line is written even between two steps.
        min_interval: seconds that must pass between two step lines (default
            :data:`MIN_INTERVAL_S`).
        clock: the time source (seconds); tests pass a fake one.

    Example:
        >>> import io
        >>> log, now = io.StringIO(), [0.0]
        >>> bar = LineProgress(200, "certify", unit="rows", file=log, step=0.5,
        ...                    min_interval=0, clock=lambda: now[0])
        >>> now[0] = 3.0; bar.update(120)
        >>> now[0] = 4.0; bar.close()
        >>> print(log.getvalue().rstrip())
        certify: 0% (0/200 rows) 0s elapsed
        certify: 60% (120/200 rows) 3s elapsed, ~2s left, 40 rows/s
        certify: stopped at 60% (120/200 rows) after 4s
    """

    def __init__(
        self,
        total: float | None,
        desc: str = "",
        *,
        unit: str = "it",
        file: IO[str] | None = None,
        step: float = 0.1,
        interval: float = 60.0,
        min_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total if total else None
        self.desc = desc
        self.unit = unit
        self.file = file
        self.step = step
        self.interval = interval
        self.min_interval = MIN_INTERVAL_S if min_interval is None else min_interval
        self.clock = clock
        self.n: float = 0
        self.postfix = ""
        self.start = self.last_time = clock()
        self.last_step = 0
        self.closed = False
        self.finished = False  # the 100% line is out
        self._write(self._line())

    def _count(self) -> str:
        n = f"{self.n:,.0f}" if float(self.n).is_integer() else f"{self.n:,.3g}"
        if self.total is None:
            return f"{n} {self.unit}"
        total = f"{self.total:,.0f}" if float(self.total).is_integer() else f"{self.total:,.3g}"
        return f"{n}/{total} {self.unit}"

    def _line(self, final: bool = False) -> str:
        elapsed = self.clock() - self.start
        head = f"{self.desc}: " if self.desc else ""
        if self.total is None:
            text = f"{head}{self._count()} {_duration(elapsed)} elapsed"
            if self.n and elapsed > 0:
                text += f", {_rate(self.n / elapsed, self.unit)}"
        elif final and self.n >= self.total:
            text = f"{head}100% ({self._count()}) done in {_duration(elapsed)}"
        elif final:
            pct = math.floor(100 * self.n / self.total)
            text = f"{head}stopped at {pct}% ({self._count()}) after {_duration(elapsed)}"
        else:
            pct = math.floor(100 * min(self.n / self.total, 1.0))
            text = f"{head}{pct}% ({self._count()}) {_duration(elapsed)} elapsed"
            if self.n > 0:
                left = elapsed * max(self.total - self.n, 0) / self.n
                text += f", ~{_duration(left)} left"
                if elapsed > 0:
                    text += f", {_rate(self.n / elapsed, self.unit)}"
        return f"{text}, {self.postfix}" if self.postfix else text

    def _write(self, line: str) -> None:
        file = self.file if self.file is not None else sys.stderr
        file.write(line + "\n")
        file.flush()

    def update(self, n: float = 1) -> None:
        """Count ``n`` more units; write a line at a new step or after ``interval``."""
        if self.closed:
            return
        self.n += n
        now = self.clock()
        due = now - self.last_time >= self.interval
        if self.total is not None:
            reached = math.floor(min(self.n / self.total, 1.0) / self.step + 1e-9)
            if reached > self.last_step:  # a step boundary: its line, unless one is recent
                self.last_step = reached
                due = due or now - self.last_time >= self.min_interval
        if due:
            self.last_time = now
            self.finished = self.total is not None and self.n >= self.total
            self._write(self._line(final=self.finished))

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text appended to the following lines (e.g. ``"loss 0.12"``)."""
        self.postfix = s

    def close(self) -> None:
        """Write the final line (done, or where it stopped) once."""
        if self.closed:
            return
        self.closed = True
        if not self.finished:
            self._write(self._line(final=True))

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None, /) -> None:
        self.close()


def _notebook_tqdm() -> Any | None:
    """tqdm's notebook bar when running inside Jupyter (with ipywidgets), else None."""
    if "ipykernel" not in sys.modules:
        return None
    from tqdm.auto import tqdm as auto_tqdm

    return auto_tqdm if "notebook" in auto_tqdm.__module__ else None


def progress_bar(
    total: float | None,
    desc: str = "",
    *,
    unit: str = "it",
    enabled: bool = True,
    file: IO[str] | None = None,
    leave: bool = True,
) -> ProgressBar:
    """A progress reporter for ``total`` units of work, in the form that suits the output.

    Args:
        total: units of work (None: unknown).
        desc: label of the bar or lines.
        unit: name of one unit.
        enabled: False gives a :class:`NullProgress` (reports nothing).
        file: the stream to report to (default ``sys.stderr``): a terminal gets a tqdm
            bar, anything else :class:`LineProgress` lines; in Jupyter, tqdm's notebook bar.
        leave: keep a terminal bar on screen when it closes (tqdm's ``leave``).

    Returns:
        An object with ``update(n)``, ``set_postfix_str(s)``, ``close()``, usable in a
        ``with`` block.

    Example:
        >>> with progress_bar(10, "quiet", enabled=False) as bar:
        ...     _ = bar.update(10)
    """
    if not enabled:
        return NullProgress()
    stream = file if file is not None else sys.stderr
    notebook = _notebook_tqdm() if file is None else None
    if notebook is not None:
        return notebook(total=total, desc=desc, unit=unit, leave=leave)
    if _terminal_columns(stream) > 0:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=stream,
                    dynamic_ncols=True, unit_scale=bool(total and total >= 100_000))
    return LineProgress(total, desc, unit=unit, file=stream)


def _terminal_columns(stream: IO[str]) -> int:
    """Width of the terminal ``stream`` writes to; 0 if it is not a terminal (or a
    pseudo-terminal without a size, where tqdm would draw nothing)."""
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        return 0
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80  # a terminal-like stream without a file descriptor


def track(
    iterable: Iterable[T],
    desc: str = "",
    total: int | None = None,
    *,
    unit: str = "it",
    enabled: bool = True,
    file: IO[str] | None = None,
    leave: bool = False,
) -> Iterator[T]:
    """Iterate over ``iterable`` while reporting progress (see :func:`progress_bar`).

    ``total`` defaults to ``len(iterable)`` where it has one. The reporter closes when the
    loop ends, also when it ends early.

    Example:
        >>> import io
        >>> log = io.StringIO()
        >>> sum(track(range(5), "sum", file=log))
        10
        >>> log.getvalue().splitlines()[-1].split(" done")[0]
        'sum: 100% (5/5 it)'
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with progress_bar(total, desc, unit=unit, enabled=enabled, file=file, leave=leave) as bar:
        for item in iterable:
            yield item
            bar.update(1)
