"""The mesh end to end: real coordinator and sidecar processes on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import grpc

from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc, tasks_pb2, types_pb2
from tests.integration.conftest import Mesh
from tests.integration.raw_sidecar import RawSidecar
from tests.support import assert_eventually, free_port

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED


def _unread_bytes(port: int) -> int:
    """Bytes waiting in the receive queues of the established connections to a local port."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            _, local, _, state, queues, *_ = row.split()
            if int(local.rsplit(":", 1)[1], 16) == port and state == "01":  # 01: ESTABLISHED
                total += int(queues.split(":")[1], 16)  # tx_queue:rx_queue
    return total


def test_tasks_go_only_to_agents_with_required_labels(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("math-1", "--label", "math=3")
    mesh.start_sidecar("text-1", "--label", "text=2")
    mesh.start_sidecar("text-math", "--label", "text=1", "--label", "math=1")
    specs = ([types_pb2.TaskSpec(kind="calc", required_labels={"math": 2}) for _ in range(100)]
             + [types_pb2.TaskSpec(kind="words", required_labels={"text": 2}) for _ in range(100)]
             + [types_pb2.TaskSpec(kind="both", required_labels={"text": 1, "math": 1}) for _ in range(50)])
    ids = mesh.submit(specs)
    tasks, _ = mesh.wait_all(ids)
    assert all(t.state == SUCCEEDED for t in tasks.values())
    by_kind: dict[str, set[str]] = {}
    for t in tasks.values():
        by_kind.setdefault(t.spec.kind, set()).add(t.agent_id)
        assert json.loads(t.outcome.output)["agent"] == t.agent_id
    assert by_kind["calc"] == {"math-1"}
    assert by_kind["words"] == {"text-1"}
    assert by_kind["both"] == {"text-math"}


def test_unroutable_task_waits_and_says_why(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("text-1", "--label", "text=2")
    [task_id] = mesh.submit([types_pb2.TaskSpec(kind="see", required_labels={"vision": 1})])
    task = mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id))
    assert task.state == types_pb2.TASK_STATE_PENDING
    assert "vision" in task.pending_reason
    mesh.start_sidecar("eye", "--label", "vision=1")
    tasks, _ = mesh.wait_all([task_id], timeout=30)
    assert tasks[task_id].state == SUCCEEDED and tasks[task_id].agent_id == "eye"


def test_2000_tasks_across_3_sidecars_complete_exactly_once(mesh: Mesh) -> None:
    mesh.start_coordinator()
    for i in range(3):
        mesh.start_sidecar(f"agent-{i}", "--capacity", "16")
    ids = mesh.submit([types_pb2.TaskSpec(kind="echo", payload=str(i).encode()) for i in range(2000)])
    assert len(set(ids)) == 2000
    tasks, updates = mesh.wait_all(ids)
    assert updates == 2000, "each task is reported terminal exactly once"
    assert len(tasks) == 2000 and all(t.state == SUCCEEDED for t in tasks.values())
    assert all(json.loads(tasks[i].outcome.output)["payload"] == str(n) for n, i in enumerate(ids))
    execs = Counter(task_id for task_id, _, _ in mesh.executions())
    assert set(execs) == set(ids) and set(execs.values()) == {1}
    per_agent = Counter(t.agent_id for t in tasks.values())
    assert set(per_agent) == {"agent-0", "agent-1", "agent-2"}
    stats = mesh.stats()
    assert stats.succeeded_total == 2000 and stats.stale_results_total == 0 and stats.reassigned_total == 0


def test_kill_9_of_a_busy_sidecar_loses_nothing(mesh: Mesh) -> None:
    lease_timeout = 30.0
    mesh.start_coordinator("--lease-timeout-s", str(lease_timeout))
    victim = mesh.start_sidecar("victim", "--capacity", "8", handler="sleepy")
    ids = mesh.submit([types_pb2.TaskSpec(kind="nap", payload=b'{"ms": 300}') for _ in range(60)])
    assert_eventually(lambda: mesh.ready_agents()["victim"].in_flight == 8, what="victim holds 8 tasks")
    mesh.start_sidecar("survivor-1", "--capacity", "8", handler="sleepy")
    mesh.start_sidecar("survivor-2", "--capacity", "8", handler="sleepy")
    held = {t.task_id for t in mesh.stub.ListTasks(tasks_pb2.ListTasksRequest(
        states=[types_pb2.TASK_STATE_ASSIGNED], agent_id="victim", limit=100)).tasks}
    assert held
    killed_at = time.monotonic()
    victim.kill9()
    tasks, updates = mesh.wait_all(ids, timeout=lease_timeout)
    elapsed = time.monotonic() - killed_at
    assert elapsed < lease_timeout / 2, f"recovery took {elapsed:.1f} s; lease timeout is {lease_timeout} s"
    assert updates == len(ids) and all(t.state == SUCCEEDED for t in tasks.values())
    for task_id in held & set(ids):
        t = tasks[task_id]
        if t.attempt > 1:
            assert t.agent_id != "victim"
    reassigned = [t for t in tasks.values() if t.attempt > 1]
    assert reassigned and all(t.agent_id.startswith("survivor") for t in reassigned)
    stats = mesh.stats()
    assert stats.succeeded_total == len(ids)
    assert stats.reassigned_total == len(reassigned)


def test_idempotent_resubmission_returns_the_same_task(mesh: Mesh) -> None:
    mesh.start_coordinator()
    spec = types_pb2.TaskSpec(kind="echo", payload=b"once", idempotency_key="order-42")
    first = mesh.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[spec])).tasks[0]
    again = mesh.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[spec, spec])).tasks
    assert not first.deduplicated
    assert [t.task_id for t in again] == [first.task_id] * 2 and all(t.deduplicated for t in again)
    mesh.start_sidecar("a")
    tasks, _ = mesh.wait_all([first.task_id])
    assert tasks[first.task_id].state == SUCCEEDED
    later = mesh.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[spec])).tasks[0]
    assert later.task_id == first.task_id and later.state == SUCCEEDED
    assert len(mesh.executions()) == 1


def test_sidecar_survives_a_coordinator_restart(mesh: Mesh) -> None:
    port = free_port()
    listen = f"127.0.0.1:{port}"
    mesh.start_coordinator(listen=listen)
    mesh.start_sidecar("steady", "--capacity", "4")
    ids = mesh.submit([types_pb2.TaskSpec(kind="echo") for _ in range(20)])
    assert all(t.state == SUCCEEDED for t in mesh.wait_all(ids)[0].values())
    assert mesh.coordinator is not None
    assert mesh.coordinator.stop() == 0
    mesh.start_coordinator(listen=listen)
    assert_eventually(lambda: "steady" in mesh.ready_agents(), timeout=30, what="sidecar re-registered")
    ids = mesh.submit([types_pb2.TaskSpec(kind="echo") for _ in range(20)])
    tasks, _ = mesh.wait_all(ids)
    assert all(t.state == SUCCEEDED and t.agent_id == "steady" for t in tasks.values())


def test_failures_and_cancel(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("broken", "--kinds", "bad", handler="boom")
    # A short drain: if the cancel left a nap running, the sidecar still stops soon.
    mesh.start_sidecar("slow", "--kinds", "nap", "--capacity", "1", "--drain-timeout", "1", handler="sleepy")
    [bad] = mesh.submit([types_pb2.TaskSpec(kind="bad", payload=b"xyz")])
    # Far longer than the quick task below may wait: only the cancel can free the slot in time.
    naps = mesh.submit([types_pb2.TaskSpec(kind="nap", payload=b'{"ms": 600000}') for _ in range(2)])
    [late] = mesh.submit([types_pb2.TaskSpec(kind="nap", payload=b'{"ms": 5000}', timeout_ms=300)])
    tasks, _ = mesh.wait_all([bad, late])
    assert tasks[bad].state == types_pb2.TASK_STATE_FAILED
    assert "ValueError" in tasks[bad].outcome.error and "xyz" in tasks[bad].outcome.error
    assert tasks[late].state == types_pb2.TASK_STATE_FAILED
    assert tasks[late].outcome.error_type == "deadline_exceeded"
    cancelled = mesh.stub.CancelTasks(tasks_pb2.CancelTasksRequest(task_ids=naps)).tasks
    assert all(t.state == types_pb2.TASK_STATE_CANCELLED for t in cancelled)
    # The cancelled task frees the slow agent's only slot for new work.
    [quick] = mesh.submit([types_pb2.TaskSpec(kind="nap", payload=b'{"ms": 10}')])
    tasks, _ = mesh.wait_all([quick], timeout=30)
    assert tasks[quick].state == SUCCEEDED


def test_a_frozen_sidecar_loses_its_lease_and_its_late_results_are_rejected(mesh: Mesh) -> None:
    mesh.start_coordinator("--lease-timeout-s", "2", "--heartbeat-interval-s", "0.5")
    # DEBUG: the sidecar names each result the coordinator refuses as stale.
    frozen = mesh.start_sidecar("frozen", "--capacity", "4", "--log-level", "DEBUG", handler="paced")
    # Attempt 1 outlasts the freeze and the lease, so it finishes after the thaw,
    # when the sidecar already knows its stream was fenced.
    ids = mesh.submit_json("nap", [{"ms": {"frozen": 5000, "healthy": 10}}] * 4)
    assert_eventually(lambda: mesh.ready_agents()["frozen"].in_flight == 4, what="frozen holds 4 tasks")
    # Started before the freeze, so its start-up time does not eat into attempt 1's.
    mesh.start_sidecar("healthy", "--capacity", "4", handler="paced")
    frozen.popen.send_signal(signal.SIGSTOP)  # alive, socket open, but silent
    try:
        tasks, _ = mesh.wait_all(ids, timeout=60)
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
    assert all(t.state == SUCCEEDED and t.attempt == 2 and t.agent_id == "healthy" for t in tasks.values())
    # Thawed, it finishes attempt 1 of each task and keeps those results through its
    # fenced stream; it registers afresh and hands them over, and the coordinator
    # refuses each as stale: attempt 2 was recorded.
    assert_eventually(lambda: "frozen" in mesh.ready_agents(), timeout=30, what="frozen re-registered")

    def dropped() -> set[str]:
        found = re.findall(r"(?:stale|handed-over) result (\S+)#1", frozen.log_file.read_text())
        return set(found)

    assert_eventually(lambda: dropped() == set(ids), timeout=30, what="attempt 1 results finished and refused")
    assert Counter(a for _, a, _ in mesh.executions())[1] == 4, "the old attempts ran"
    stats = mesh.stats()
    assert stats.succeeded_total == 4 and stats.stale_results_total == 4
    assert all(mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=i)).agent_id == "healthy" for i in ids)
    assert mesh.ready_agents()["frozen"].completed == 0


def test_a_draining_agent_is_answered_after_its_last_assignment(mesh: Mesh) -> None:
    """The drain frame tells a draining agent that no assignment is still on its way."""
    mesh.start_coordinator()
    agent = RawSidecar(mesh.address, mesh_pb2.Register(agent_id="leaving", capacity=2, credits=2))
    try:
        agent.registered()
        held = mesh.submit([types_pb2.TaskSpec(kind="k")] * 2)
        assert {a.task_id for a in agent.assignments(2)} == set(held)
        agent.send(mesh_pb2.SidecarFrame(draining=True, credits=2))
        assert agent.drain_frame() == 2
        [later] = mesh.submit([types_pb2.TaskSpec(kind="k")])
        task = mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=later))
        assert task.state == types_pb2.TASK_STATE_PENDING and "ready" in task.pending_reason
        agent.send(mesh_pb2.SidecarFrame(results=[
            mesh_pb2.TaskResult(task_id=t, attempt=1, state=SUCCEEDED) for t in held]))
        agent.wait_recorded(2)
        assert agent.assigned == 2
    finally:
        agent.close()


def test_processes_run_on_the_chosen_grpc_engine_and_loop(mesh: Mesh) -> None:
    # "iomgr" is only reported when the choice was made before grpc was imported.
    mesh.start_coordinator()
    sidecar = mesh.start_sidecar("engine-a")
    assert mesh.coordinator is not None
    assert "(gRPC engine iomgr, loop uvloop)" in mesh.coordinator.output()
    assert "gRPC engine iomgr, loop uvloop" in sidecar.output()
    other = mesh.start_sidecar("engine-b", env={"SWARMMESH_GRPC_ENGINE": "eventengine",
                                                "SWARMMESH_EVENT_LOOP": "asyncio"})
    assert "gRPC engine eventengine, loop asyncio" in other.output()
    ids = mesh.submit_json("echo", [{"n": i} for i in range(40)])
    done, _ = mesh.wait_all(ids)
    assert {t.state for t in done.values()} == {types_pb2.TASK_STATE_SUCCEEDED}


def test_repeated_heartbeats_keep_the_lease_and_the_latest_heartbeat_wins(mesh: Mesh) -> None:
    # The coordinator renews the lease for a frame that repeats the last
    # heartbeat byte for byte without parsing it again; anything else is read in full.
    mesh.start_coordinator("--lease-timeout-s", "2", "--heartbeat-interval-s", "0.5")
    agent = RawSidecar(mesh.address, mesh_pb2.Register(agent_id="steady", capacity=2, credits=0))
    try:
        agent.registered()
        small = mesh_pb2.SidecarFrame(heartbeat=mesh_pb2.Heartbeat(free_slots=2, memory_rss_bytes=100 << 20))
        large = mesh_pb2.SidecarFrame(heartbeat=mesh_pb2.Heartbeat(free_slots=2, memory_rss_bytes=300 << 20))

        def rss() -> int:
            return mesh.ready_agents()["steady"].memory_rss_bytes

        for _ in range(10):  # 5 s: more than twice the lease
            agent.send(small)
            time.sleep(0.5)  # the heartbeat rhythm
        assert rss() == 100 << 20, "repeats kept the agent alive and its heartbeat as sent"
        agent.send(large)
        assert_eventually(lambda: rss() == 300 << 20, timeout=10)
        agent.send(small)  # the earlier bytes again: not a repeat of the last heartbeat
        assert_eventually(lambda: rss() == 100 << 20, timeout=10)
        # The same heartbeat with credits is a different frame: the credit counts.
        agent.send(mesh_pb2.SidecarFrame(heartbeat=small.heartbeat, credits=1))
        [task_id] = mesh.submit([types_pb2.TaskSpec(kind="k")])
        assert agent.assignments()[0].task_id == task_id
    finally:
        agent.close()


def test_a_reconnect_storm_is_taken_without_refusing_streams(mesh: Mesh) -> None:
    # Thousands of sidecars reconnecting at once: the coordinator is held still
    # while 2,000 streams open, then let go with all of them waiting. gRPC's own
    # limits (1,000 waiting streams) refused about 200 of them with CANCELLED.
    mesh.start_coordinator()
    assert mesh.coordinator is not None
    port = int(mesh.address.rsplit(":", 1)[1])
    n = 2000

    async def storm() -> Counter[str]:
        channels = [grpc.aio.insecure_channel(mesh.address, options=[("grpc.use_local_subchannel_pool", 1),
                                                                     ("storm", i)]) for i in range(8)]
        try:
            for ch in channels:
                await asyncio.wait_for(ch.channel_ready(), 10)
            os.kill(mesh.coordinator.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            try:
                calls = [mesh_pb2_grpc.MeshServiceStub(channels[i % 8]).Connect() for i in range(n)]
                sent = 0
                for i, call in enumerate(calls):
                    frame = mesh_pb2.SidecarFrame(register=mesh_pb2.Register(
                        agent_id=f"storm-{i}", capacity=1, credits=0))
                    await call.write(frame)
                    # No stream puts less on the wire: HEADERS and DATA frame headers, gRPC's prefix, the message.
                    sent += 9 + 9 + 5 + frame.ByteSize()
                # A finished write may still sit in the client: the storm has happened once
                # the stopped coordinator's kernel holds (at least) that many bytes unread.
                await asyncio.to_thread(assert_eventually, lambda: _unread_bytes(port) >= sent, timeout=30,
                                        interval=0.02, what="the streams are queued at the coordinator")
            finally:
                os.kill(mesh.coordinator.pid, signal.SIGCONT)  # type: ignore[union-attr]

            async def first(call: grpc.aio.StreamStreamCall) -> str:
                try:
                    frame = await asyncio.wait_for(call.read(), 60)
                    return "registered" if frame.HasField("registered") else "other"
                except grpc.aio.AioRpcError as e:
                    return e.code().name
            outcome = Counter(await asyncio.gather(*(first(c) for c in calls)))
            for c in calls:
                c.cancel()
            return outcome
        finally:
            for ch in channels:
                await ch.close()

    outcome = asyncio.run(storm())
    assert outcome == Counter({"registered": n}), outcome
