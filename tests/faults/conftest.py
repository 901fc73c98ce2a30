"""The fault suite's fixtures: the integration tests' mesh of real processes, and the
report every scenario adds its row to, printed and written at the end of the run."""

from __future__ import annotations

import pytest

from tests.faults.report import Report

# The integration tests' fixture: a mesh of real processes, always torn down.
from tests.integration.conftest import mesh  # noqa: F401

_REPORT = Report()


@pytest.fixture(scope="session")
def report() -> Report:
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORT.rows:
        return
    path = _REPORT.write()
    terminalreporter.section("fault-injection report")
    terminalreporter.write(_REPORT.table())
    terminalreporter.write_line(f"(written to {path})")
