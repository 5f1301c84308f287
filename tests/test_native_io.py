"""native_stdout_to_log: C-level writes to descriptor 1 are captured, sorted and restored."""

from __future__ import annotations

import ctypes
import logging
import os

import pytest

from advgame.native_io import native_stdout_to_log


def test_solver_lines_go_to_the_log_and_other_lines_come_back(capfd, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="advgame")
    print("before", flush=True)
    with native_stdout_to_log():
        os.write(1, b"HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();\n")
        os.write(1, b"a line of the user\n")
        libc = ctypes.CDLL(None)
        libc.printf(b"HighsPrintf from C stdio\n")  # buffered in C: flushed before restore
    print("after", flush=True)
    out = capfd.readouterr().out
    assert out == "before\na line of the user\nafter\n"
    logged = [r.getMessage() for r in caplog.records]
    assert any("transformNewIntegerFeasibleSolution" in m for m in logged)
    assert any("HighsPrintf from C stdio" in m for m in logged)


def test_descriptor_restored_on_error_and_nesting_works(capfd) -> None:
    with pytest.raises(RuntimeError), native_stdout_to_log():
        os.write(1, b"kept\n")
        with native_stdout_to_log():
            os.write(1, b"Highs inner\n")
            os.write(1, b"inner kept\n")
        raise RuntimeError("boom")
    os.write(1, b"restored\n")
    assert capfd.readouterr().out == "kept\ninner kept\nrestored\n"
