"""Keep C libraries' diagnostic lines off the user's terminal.

SciPy's HiGHS (``scipy.optimize.milp``) writes lines such as
``HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();`` straight to
file descriptor 1 on some solves, even with ``disp=False``: Python cannot silence them
through ``sys.stdout``, and they break the CLI's output (and anything piping it).
:func:`native_stdout_to_log` points descriptor 1 at a temporary file while a solver runs,
then sends the solver's lines to the ``advgame`` logger at DEBUG level and writes every
other captured line (for example a ``print`` from another thread in that window) back to
the real standard output, in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

__all__ = ["native_stdout_to_log"]

_LOG = logging.getLogger("advgame")
_SOLVER_LINE = re.compile(r"^\s*(Highs|HiGHS|tmpSolver|Running HiGHS)")
_LOCK = threading.RLock()  # descriptor 1 is process-wide: one redirection at a time


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (printf output not yet written to the descriptor)."""
    with contextlib.suppress(Exception):  # no libc symbol table (unusual platforms)
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def native_stdout_to_log(
    pattern: re.Pattern[str] = _SOLVER_LINE, logger: logging.Logger = _LOG
) -> Iterator[None]:
    """Capture what native code writes to descriptor 1 during the ``with`` block.

    Lines matching ``pattern`` go to ``logger.debug``; the others are written back to
    descriptor 1 afterwards. If descriptor 1 cannot be duplicated (closed, or no
    descriptors left) the block runs unchanged.

    Example:
        >>> with native_stdout_to_log():
        ...     _ = os.write(1, b"HighsMipSolverData::run();\\n")  # goes to the log
    """
    with _LOCK:
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError, AttributeError):
            yield
            return
        tmp = tempfile.TemporaryFile()
        try:
            os.dup2(tmp.fileno(), 1)
            yield
        finally:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stdout.flush()
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            captured = tmp.read().decode("utf-8", errors="replace")
            tmp.close()
            _dispatch(captured, pattern, logger)


def _dispatch(captured: str, pattern: re.Pattern[str], logger: logging.Logger) -> None:
    passed: list[str] = []
    for line in captured.splitlines(keepends=True):
        if pattern.search(line):
            logger.debug("native solver output: %s", line.rstrip())
        else:
            passed.append(line)
    if passed:
        os.write(1, "".join(passed).encode())
