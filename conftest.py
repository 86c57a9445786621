"""pytest configuration shared by the unit tests and nbval.

nbval runs each notebook as a series of cell items; here we add a per-notebook wall-clock limit
(the smoke profile must finish a notebook in NOTEBOOK_LIMIT_S seconds, kernel start included).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

NOTEBOOK_LIMIT_S = 120.0
_started: dict[Path, float] = {}
_flagged: set[Path] = set()


def pytest_runtest_logstart(nodeid: str, location) -> None:
    path = Path(location[0])
    if path.suffix == ".ipynb":
        _started.setdefault(path.resolve(), time.perf_counter())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    path = Path(str(item.fspath)).resolve()
    if path.suffix != ".ipynb" or report.when != "call" or path in _flagged:
        return
    elapsed = time.perf_counter() - _started.get(path, time.perf_counter())
    if elapsed > NOTEBOOK_LIMIT_S and report.passed:
        _flagged.add(path)
        report.outcome = "failed"
        report.longrepr = (
            f"{path.name} has run {elapsed:.0f} s in the smoke profile, over the "
            f"{NOTEBOOK_LIMIT_S:.0f} s per-notebook limit: shrink its smoke configuration."
        )
