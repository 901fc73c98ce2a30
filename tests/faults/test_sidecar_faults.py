"""A sidecar that dies, and one that freezes past its lease, with work in flight."""

from __future__ import annotations

import signal
import time

import pytest

from swarmmesh.v1 import tasks_pb2
from tests.faults.ledger import Ledger, executions, naps, settle, submit
from tests.faults.report import Report, conclude
from tests.integration.conftest import Mesh
from tests.support import assert_eventually

pytestmark = pytest.mark.faults


def test_kill_9_of_a_sidecar_with_50_tasks_in_flight(mesh: Mesh, report: Report) -> None:
    # A lease far longer than the test: the dead stream, not the lease, must free the tasks.
    lease_timeout = 60.0
    mesh.start_coordinator("--lease-timeout-s", str(lease_timeout))
    victim = mesh.start_sidecar("victim", "--capacity", "50", handler="sleepy")
    ledger = Ledger()
    ids = submit(mesh.stub, ledger, naps("kill9", 50, b'{"ms": 2000}'))
    assert_eventually(lambda: mesh.ready_agents()["victim"].in_flight == 50, what="victim holds 50 tasks")
    mesh.start_sidecar("survivor", "--capacity", "50", handler="sleepy")
    # Every handler has started: the kill interrupts 50 runs, not 50 queued assignments.
    assert_eventually(lambda: len(executions(mesh.exec_log)) == 50, what="50 handlers running")

    killed_at = time.monotonic()
    victim.kill9()
    settle(lambda: mesh.stub, ledger, timeout=lease_timeout)

    conclude(report, 1, "kill -9 of a sidecar with 50 tasks in flight", ledger, at_risk=50, fault_at=killed_at,
             runs=executions(mesh.exec_log), risky=set(ids))
    for i in ids:
        [done] = ledger.completions(i)
        assert (done.agent_id, done.attempt) == ("survivor", 2)
    stats = mesh.stats()
    assert stats.succeeded_total == 50 and stats.reassigned_total == 50


def test_sigstop_of_a_sidecar_past_its_lease_then_sigcont(mesh: Mesh, report: Report) -> None:
    mesh.start_coordinator("--lease-timeout-s", "2", "--heartbeat-interval-s", "0.5")
    # DEBUG: the sidecar names each result it drops as belonging to a fenced stream.
    frozen = mesh.start_sidecar("frozen", "--capacity", "8", "--log-level", "DEBUG", handler="paced")
    ledger = Ledger()
    # Attempt 1 at the frozen agent outlasts the freeze, so its results come late, after the thaw.
    ids = submit(mesh.stub, ledger, naps("sigstop", 24, b'{"ms": {"frozen": 8000, "healthy": 50}}'))
    assert_eventually(lambda: mesh.ready_agents()["frozen"].in_flight == 8, what="frozen holds 8 tasks")
    held = {i for i in ids if mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=i), timeout=10).agent_id == "frozen"}
    mesh.start_sidecar("healthy", "--capacity", "8", handler="paced")

    frozen.popen.send_signal(signal.SIGSTOP)  # alive, socket open, but silent
    stopped_at = time.monotonic()
    try:
        assert_eventually(lambda: "frozen" not in mesh.ready_agents(), timeout=30, what="frozen's lease expired")
        settle(lambda: mesh.stub, ledger, timeout=60)
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
    assert_eventually(lambda: "frozen" in mesh.ready_agents(), timeout=30, what="frozen re-registered")

    def refused() -> int:
        # The sidecar keeps each late result through its fenced stream and hands it over on
        # the new one, where the coordinator refuses it as stale: attempt 2 was recorded.
        return mesh.stats().stale_results_total

    assert_eventually(lambda: refused() >= len(held), timeout=30, what="every late attempt-1 result refused")
    settle(lambda: mesh.stub, ledger, timeout=10)  # read again: no late result changed a record
    conclude(report, 2, "SIGSTOP of a sidecar past its lease, then SIGCONT", ledger, at_risk=len(held),
             fault_at=stopped_at, runs=executions(mesh.exec_log), risky=held,
             note=f"{refused()} late results refused")
    assert all(next(iter(ledger.completions(i))).agent_id == "healthy" for i in held)
    assert mesh.ready_agents()["frozen"].completed == 0
    assert mesh.stats().succeeded_total == len(ids)
