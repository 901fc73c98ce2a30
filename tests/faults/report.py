"""The fault suite's report: one row per scenario, printed as a table at the end of the
run and written to a file, so that docs/faults.md can be made from one run.

Each scenario ends with `conclude`: its row goes into the report first, then the
promise is asserted, so a scenario that breaks it still shows its figures.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from swarmmesh.v1 import types_pb2
from tests.faults.ledger import Ledger

# Where the table is written; a file under the temporary directory when unset.
REPORT_ENV = "SWARMMESH_FAULT_REPORT"
HEADER = ("#", "fault", "tasks at risk", "lost", "recorded twice", "handler re-runs", "recovery time")


@dataclass(frozen=True, slots=True)
class Row:
    # The scenario's number in docs/faults.md: the table's order, whatever order the tests ran in.
    scenario: int
    fault: str
    # Acknowledged tasks the fault could have lost or recorded twice.
    at_risk: int
    lost: int
    recorded_twice: int
    # Handler runs beyond one per task (at-least-once: only after a fault); None where not counted.
    reruns: int | None
    # Seconds from the fault until the last task at risk completed; None where nothing waited on it.
    recovery_s: float | None
    # What else the scenario measured (RSS, stale results, ...).
    note: str = ""

    def cells(self) -> tuple[str, ...]:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.1f} s"
        fault = f"{self.fault} ({self.note})" if self.note else self.fault
        return (str(self.scenario), fault, str(self.at_risk), str(self.lost), str(self.recorded_twice),
                "-" if self.reruns is None else str(self.reruns), recovery)


class Report:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        with self._lock:
            self.rows.append(row)

    def table(self) -> str:
        lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        lines += ["| " + " | ".join(r.cells()) + " |" for r in sorted(self.rows, key=lambda r: r.scenario)]
        return "\n".join(lines) + "\n"

    def write(self) -> Path:
        path = Path(os.environ.get(REPORT_ENV) or Path(tempfile.gettempdir()) / "swarmmesh-faults.md")
        path.write_text(self.table())
        return path


def conclude(report: Report, scenario: int, fault: str, ledger: Ledger, *, at_risk: int, fault_at: float | None,
             runs: Counter[str] | None = None, risky: set[str] | None = None, logged: set[str] | None = None,
             note: str = "", expect: int = types_pb2.TASK_STATE_SUCCEEDED) -> Row:
    """Add the scenario's row, then assert the promise: every acknowledged task completed once
    (in state `expect`), none lost, none recorded twice; with `runs` (handler runs per task), every
    task ran, and more than once only if it is in `risky` (all tasks when None). Only the runs of
    the ledger's tasks count, and of those only the ones in `logged` (default all: simulated
    agents log none)."""
    v = ledger.verdict(expect)
    counted = [i for i in ledger.acked if logged is None or i in logged]
    if runs is not None:
        runs = Counter({i: runs[i] for i in counted})
    reruns = None if runs is None else sum(n - 1 for n in runs.values() if n > 1)
    recovery = None if fault_at is None else max(0.0, v.last_completion - fault_at)
    row = Row(scenario, fault, at_risk, len(v.lost), len(v.recorded_twice), reruns, recovery, note)
    report.add(row)
    assert v.acknowledged > 0, "the scenario acknowledged no task"
    assert not v.lost, f"{len(v.lost)} acknowledged tasks lost, e.g. {list(v.lost[:5])}"
    assert not v.recorded_twice, f"{len(v.recorded_twice)} recorded twice, e.g. " + str(
        {i: ledger.completions(i) for i in v.recorded_twice[:3]})
    assert not v.wrong_state, f"{len(v.wrong_state)} ended in another state, e.g. " + str(
        {i: ledger.completions(i) for i in v.wrong_state[:3]})
    if runs is not None:
        never = [i for i in counted if runs[i] == 0]
        assert not never, f"{len(never)} completed tasks never ran a handler, e.g. {never[:5]}"
        again = [i for i, n in runs.items() if n > 1 and risky is not None and i not in risky]
        assert not again, f"{len(again)} tasks no fault touched ran more than once, e.g. {again[:5]}"
    return row
