"""The coordinator killed, or stopped with SIGTERM, under load, and restarted on the same
journal and address: what it acknowledged before is completed exactly once after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bench.fleet import spawn_fleet
from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2
from tests.faults.ledger import Ledger, executions, naps, settle, submit
from tests.faults.load import Submitter, Watcher
from tests.faults.report import Report, conclude
from tests.integration.conftest import Mesh
from tests.support import CHANNEL_OPTIONS, assert_eventually, free_port, stop_tree

pytestmark = pytest.mark.faults

# The test's own channel comes back soon after the coordinator does, not after gRPC's
# default reconnect backoff (up to two minutes).
FAST_RECONNECT = [*CHANNEL_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 100),
                  ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]
FLEET_AGENTS = 200


@pytest.fixture
def address() -> str:
    """A fixed address: sidecars and clients find the restarted coordinator where the first was."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def stub(address: str) -> Iterator[tasks_pb2_grpc.TaskServiceStub]:
    """A channel of the test's own: the mesh's is closed and opened again by each restart,
    under the threads that submit and watch."""
    with grpc.insecure_channel(address, options=FAST_RECONNECT) as channel:
        yield tasks_pb2_grpc.TaskServiceStub(channel)


def test_kill_9_of_the_coordinator_in_the_middle_of_1000_submissions(
        mesh: Mesh, report: Report, address: str, stub: tasks_pb2_grpc.TaskServiceStub) -> None:
    mesh.start_coordinator(listen=address)
    for name in ("a", "b"):
        mesh.start_sidecar(name, "--capacity", "16", handler="sleepy")
    ledger = Ledger()

    def spec_of(i: int) -> types_pb2.TaskSpec:
        return types_pb2.TaskSpec(kind="nap", payload=b'{"ms": 50}', idempotency_key=f"crash-{i}")

    with Watcher(lambda: stub, ledger), Submitter(lambda: stub, ledger, spec_of, 1000, batch=10) as load:
        assert_eventually(lambda: len(ledger.acked) >= 400, timeout=60, what="400 of 1,000 submitted")
        assert mesh.coordinator is not None
        killed_at = time.monotonic()
        mesh.coordinator.kill9()
        before = set(ledger.acked)
        mesh.start_coordinator(listen=address)
        load.wait(timeout=120)
        assert load.sent == 1000
        settle(lambda: stub, ledger, timeout=120)

    stats = stub.GetStats(tasks_pb2.GetStatsRequest(), timeout=10)
    conclude(report, 3, "kill -9 of the coordinator in the middle of 1,000 submissions", ledger,
             at_risk=len(before), fault_at=killed_at, runs=executions(mesh.exec_log), risky=before,
             note=f"{load.resent} batches resent; recovery of {stats.recovered_tasks} tasks took "
                  f"{stats.recovery_s * 1000:.0f} ms")
    assert len(ledger.acked) == 1000, "each of the 1,000 keys names one task"


def test_sigterm_of_the_coordinator_with_200_agents_connected_and_work_in_flight(
        mesh: Mesh, report: Report, address: str, stub: tasks_pb2_grpc.TaskServiceStub, tmp_path: Path) -> None:
    mesh.start_coordinator(listen=address)
    fleet = spawn_fleet(address, FLEET_AGENTS, tmp_path, "fleet")
    try:
        assert_eventually(lambda: (tmp_path / "fleet.ready").exists() or fleet.poll() is not None, timeout=120,
                          what="the simulated agents registered")
        assert fleet.poll() is None, (tmp_path / "fleet.log").read_text()
        # Real sidecars for the slow work, which simulated agents, with no labels, never get.
        for name in ("a", "b"):
            mesh.start_sidecar(name, "--capacity", "8", "--label", "real=1", "--kinds", "nap", handler="sleepy")
        ledger = Ledger()
        quick = submit(stub, ledger, naps("term-quick", 400, b"", kind="echo"))
        # More slow work than the shutdown's grace lets the sidecars finish: some of it is still
        # queued or running when the next coordinator takes over.
        slow = submit(stub, ledger, [types_pb2.TaskSpec(
            kind="nap", payload=b'{"ms": 1000}', required_labels={"real": 1}, idempotency_key=f"term-slow-{i}")
            for i in range(200)])
        with Watcher(lambda: stub, ledger):
            assert_eventually(lambda: sum(a.in_flight for n, a in mesh.ready_agents().items() if n in ("a", "b")) == 16,
                              what="the real sidecars busy")
            assert mesh.coordinator is not None
            at_risk = set(ledger.outstanding())
            stopped_at = time.monotonic()
            assert mesh.coordinator.stop(timeout=30) == 0, mesh.coordinator.output()
            left = len(ledger.outstanding())  # what the shutdown left to the next coordinator
            mesh.start_coordinator(listen=address)
            assert_eventually(lambda: _ready(stub) >= FLEET_AGENTS + 2, timeout=120,
                              what="every agent, simulated or not, connected again")
            reconnected_s = time.monotonic() - stopped_at
            settle(lambda: stub, ledger, timeout=120)
    finally:
        stop_tree(fleet)  # type: ignore[arg-type]

    conclude(report, 4, f"SIGTERM of the coordinator with {FLEET_AGENTS} simulated agents and 2 sidecars", ledger,
             at_risk=len(at_risk), fault_at=stopped_at, runs=executions(mesh.exec_log), risky=at_risk,
             logged=set(slow), note=f"{left} left unfinished by the shutdown; all {FLEET_AGENTS + 2} agents back "
                                    f"{reconnected_s:.1f} s after the SIGTERM")
    assert len(quick) == 400 and left > 0, "the restarted coordinator had work to take over"


def _ready(stub: tasks_pb2_grpc.TaskServiceStub) -> int:
    agents = stub.ListAgents(tasks_pb2.ListAgentsRequest(), timeout=10).agents
    return sum(1 for a in agents if a.state == types_pb2.AGENT_STATE_READY)
