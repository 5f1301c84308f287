"""Helpers shared by the benchmark scripts: machine description, BLAS threads, and
replacing one script's section of BENCHMARKS.md without touching the others."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def blas_threads(limit: str) -> Iterator[str]:
    """Limit BLAS threads (``"default"`` leaves them); yields a description."""
    if limit == "default":
        yield f"default ({os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} OPENBLAS_NUM_THREADS)"
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield "default (threadpoolctl not installed)"
        return
    with threadpool_limits(limits=int(limit), user_api="blas"):
        yield limit


def header_lines(heading: str, command: str, load: tuple[float, float],
                 threads: str) -> list[str]:
    """Heading, command, date and machine lines that open a benchmark's section."""
    import datetime

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        heading,
        "",
        f"Command: `{command}`  ",
        f"Date: {now}  ",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPU cores (2-core VM shared with other "
        f"jobs; load average {load[0]:.1f} before, {load[1]:.1f} after), no GPU; {threads}  ",
    ]


def update_section(path: str | Path, section: str) -> None:
    """Replace the ``## ...`` section whose heading is ``section``'s first line (append it
    if absent), leaving every other section of ``path`` alone."""
    heading = section.splitlines()[0]
    p = Path(path)
    lines = p.read_text().splitlines() if p.exists() else ["# Benchmarks"]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        new = lines[:start] + section.rstrip().splitlines() + [""] + lines[end:]
    else:
        new = lines + [""] + section.rstrip().splitlines()
    while new and not new[-1]:
        new.pop()
    p.write_text("\n".join(new) + "\n")
