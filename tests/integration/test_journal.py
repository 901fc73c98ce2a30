"""A coordinator killed with -9 and restarted on its journal keeps what it acknowledged."""

from __future__ import annotations

import json
from collections import Counter

import grpc
import pytest

from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2
from tests.integration.conftest import Mesh
from tests.support import CHANNEL_OPTIONS, Proc, assert_eventually, coordinator_args, free_port

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED
PENDING = types_pb2.TASK_STATE_PENDING


def echo(payload: str, **kw: object) -> types_pb2.TaskSpec:
    return types_pb2.TaskSpec(kind="echo", payload=payload.encode(), **kw)  # type: ignore[arg-type]


def test_a_killed_coordinator_recovers_pending_finished_and_keyed_tasks(mesh: Mesh) -> None:
    listen = f"127.0.0.1:{free_port()}"  # the sidecar finds the restarted coordinator at the same address
    mesh.start_coordinator(listen=listen)
    early = mesh.start_sidecar("early", "--kinds", "echo")
    finished_ids = mesh.submit([echo(f"done-{i}", idempotency_key=f"done-{i}") for i in range(5)])
    finished, _ = mesh.wait_all(finished_ids)
    assert all(t.state == SUCCEEDED for t in finished.values())
    early.stop()
    assert_eventually(lambda: "early" not in mesh.ready_agents(), what="early gone")

    # Acknowledged with nobody to run them: pending when the coordinator dies.
    keyed = mesh.submit([echo(f"keyed-{i}", idempotency_key=f"key-{i}", tenant="t1") for i in range(10)])
    plain = mesh.submit([echo(f"plain-{i}", priority=i % 3, tenant=f"t{i % 2}") for i in range(20)])
    assert mesh.coordinator is not None
    mesh.coordinator.kill9()

    mesh.start_coordinator(listen=listen)
    assert_eventually(lambda: "recovered 35 tasks (30 pending, 0 assigned, 5 finished; 15 idempotency keys)"
                      in mesh.coordinator.output() if mesh.coordinator else False, what="the recovery log line")
    stats = mesh.stats()
    assert stats.recovered_tasks == 35 and stats.queue_depth == 30 and stats.recovery_s > 0
    for task_id, before in finished.items():
        after = mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), timeout=10)
        assert after.state == SUCCEEDED and after.outcome.output == before.outcome.output
    again = mesh.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(
        tasks=[echo("other", idempotency_key="key-3", tenant="t1"), echo("x", idempotency_key="done-0")]), timeout=10)
    assert [(t.task_id, t.deduplicated) for t in again.tasks] == [(keyed[3], True), (finished_ids[0], True)]
    fresh = mesh.submit([echo("after")])
    assert not set(fresh) & set(keyed + plain + finished_ids)

    mesh.start_sidecar("late", "--kinds", "echo")
    tasks, _ = mesh.wait_all(keyed + plain + fresh)
    assert all(t.state == SUCCEEDED and t.agent_id == "late" for t in tasks.values())
    assert json.loads(tasks[keyed[3]].outcome.output)["payload"] == "keyed-3"  # the original spec, not the resubmit
    runs = Counter(task_id for task_id, _, _ in mesh.executions())
    assert all(runs[t] == 1 for t in finished_ids + keyed + plain + fresh), runs


def test_a_second_coordinator_on_the_same_journal_fails_at_start(mesh: Mesh) -> None:
    mesh.start_coordinator()
    ready = mesh.tmp / "second.json"
    second = Proc(coordinator_args(ready), ready, mesh.tmp / "second.log")
    try:
        assert second.popen.wait(60) == 1
        assert "is in use by another coordinator" in second.output()
    finally:
        second.stop()


def test_without_a_journal_the_coordinator_warns_and_acks_at_once(mesh: Mesh) -> None:
    ready = mesh.tmp / "bare.json"
    bare = Proc(coordinator_args(ready, journal=None), ready, mesh.tmp / "bare.log")
    try:
        address = str(bare.ready()["address"])
        assert "acknowledged or not, is lost" in bare.output()
        with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
            reply = tasks_pb2_grpc.TaskServiceStub(channel).SubmitTasks(
                tasks_pb2.SubmitTasksRequest(tasks=[echo("x")]), timeout=10)
            assert reply.tasks[0].state == PENDING
        assert not (mesh.tmp / "journal.sqlite").exists()
    finally:
        bare.stop()


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_a_clean_restart_recovers_under_either_sync(mesh: Mesh, sync: str) -> None:
    mesh.start_coordinator("--journal-sync", sync)
    ids = mesh.submit([echo(f"p-{i}") for i in range(50)])
    assert mesh.coordinator is not None and mesh.coordinator.stop() == 0
    mesh.start_coordinator("--journal-sync", sync)
    got = [mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=t), timeout=10).state for t in ids]
    assert got == [PENDING] * 50
