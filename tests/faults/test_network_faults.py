"""Peers that fail without closing anything: an OTLP collector that is down or never
answers, with tracing on everywhere, and an agent that takes work and goes silent."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from swarmmesh.v1 import mesh_pb2, tasks_pb2
from tests.faults.ledger import Ledger, executions, naps, settle, submit
from tests.faults.report import Report, conclude
from tests.integration.conftest import Mesh
from tests.integration.raw_sidecar import RawSidecar
from tests.support import assert_eventually, free_port

pytestmark = pytest.mark.faults

LEASE_S = 3.0
HELD = 10


@pytest.fixture
def silent_collector() -> Iterator[socket.socket]:
    """A listener whose TCP handshakes the kernel completes, and that never reads a byte."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield s


@pytest.mark.parametrize("collector", ["down", "silent"])
def test_a_bad_collector_and_a_blackholed_agent_leave_the_task_path_alone(
        mesh: Mesh, report: Report, collector: str, silent_collector: socket.socket) -> None:
    port = free_port() if collector == "down" else int(silent_collector.getsockname()[1])
    tracing = ("--tracing", "on", "--otlp-endpoint", f"http://127.0.0.1:{port}")
    # The tests switch the SDK off for every child; this scenario needs it on.
    env = {"OTEL_SDK_DISABLED": "false"}
    mesh.start_coordinator("--lease-timeout-s", str(LEASE_S), "--heartbeat-interval-s", "0.5",
                           "--trace-sample-ratio", "1", *tracing, env=env)
    ledger = Ledger()
    with RawSidecar(mesh.address, mesh_pb2.Register(agent_id="blackhole", capacity=HELD, credits=HELD)) as hole:
        hole.registered()
        held = set(submit(mesh.stub, ledger, naps(f"hole-{collector}", HELD, b"{}", kind="echo")))
        assert {a.task_id for a in hole.assignments(HELD)} == held
        silent_at = time.monotonic()  # from here on it neither answers nor heartbeats
        for name in ("a", "b"):
            mesh.start_sidecar(name, "--capacity", "16", *tracing, env=env)
        others = submit(mesh.stub, ledger, naps(f"path-{collector}", 300, b"{}", kind="echo"))
        settle(lambda: mesh.stub, ledger, timeout=60)
        assert_eventually(lambda: "blackhole" not in mesh.ready_agents(), what="the blackhole's lease expired")
    path_s = _span_s(mesh, others)

    label = "down (closed port)" if collector == "down" else "accepting, never answering"
    row = conclude(report, 7, f"OTLP collector {label}, tracing on, and a blackholed agent", ledger,
                   at_risk=HELD, fault_at=silent_at, runs=executions(mesh.exec_log), risky=held,
                   note=f"300 other tasks done in {path_s:.1f} s")
    assert row.recovery_s is not None and row.recovery_s >= LEASE_S * 0.9, "freed by the lease, not before"
    # Generous for a shared machine: an exporter in the task path would hang it, not slow it.
    assert path_s < 20, f"the other tasks took {path_s:.1f} s"
    for i in held:
        [done] = ledger.completions(i)
        assert done.attempt == 2 and done.agent_id in ("a", "b")
    if collector == "silent":
        silent_collector.settimeout(10)
        silent_collector.accept()[0].close()  # tracing was on: an exporter did connect


def _span_s(mesh: Mesh, ids: list[str]) -> float:
    """Seconds from the first of `ids` created to the last finished, by the coordinator's clock."""
    tasks = [mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=i), timeout=10) for i in ids]
    last_ns: int = max(t.finished_at.ToNanoseconds() for t in tasks)
    first_ns: int = min(t.created_at.ToNanoseconds() for t in tasks)
    return (last_ns - first_ns) / 1e9
