"""Retries and dead letters against a real coordinator and sidecar: a task whose
handler keeps failing with an error its kind retries spends its attempts, lands
in DEAD_LETTER, is listed and requeued through the CLI, and then completes."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest

from swarmmesh.v1 import tasks_pb2, types_pb2
from tests.integration.conftest import Mesh
from tests.support import REPO, assert_eventually, child_env

DEAD = types_pb2.TASK_STATE_DEAD_LETTER
POLICY = "flaky=max_attempts:3,backoff:0.05-0.2,on:transient"


def spec(kind: str, fail: int, **kw: object) -> types_pb2.TaskSpec:
    return types_pb2.TaskSpec(kind=kind, payload=json.dumps({"fail": fail}).encode(),
                              content_type="application/json", **kw)  # type: ignore[arg-type]


def cli(mesh: Mesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swarmmesh.cli", "--coordinator", mesh.address, *args],
                          capture_output=True, text=True, timeout=60, env=child_env(), cwd=str(REPO))


def requeue_error(mesh: Mesh, *task_ids: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        mesh.stub.RequeueTasks(tasks_pb2.RequeueTasksRequest(task_ids=list(task_ids)), timeout=10)
    return e.value


def test_a_task_that_keeps_failing_is_dead_lettered_and_a_requeue_sends_it_back(mesh: Mesh) -> None:
    mesh.start_coordinator("--retry-policy", POLICY)
    mesh.start_sidecar("a", handler="fails_first")
    # Fails its first 4 runs: the 3 attempts of the policy, then the first one after the requeue.
    [task_id] = mesh.submit([spec("flaky", fail=4)])
    # Without a policy for its kind a handler's error is final, as it always was.
    [plain] = mesh.submit([spec("plain", fail=1)])
    tasks, _ = mesh.wait_all([task_id, plain], timeout=60)
    dead = tasks[task_id]
    assert dead.state == DEAD and dead.attempt == 3, dead
    assert dead.outcome.error_type == "transient" and dead.outcome.error == "Transient: run 3 of 4 that fail"
    assert [(t, n) for t, n, _ in mesh.executions() if t == task_id] == [(task_id, 1), (task_id, 2), (task_id, 3)]
    assert tasks[plain].state == types_pb2.TASK_STATE_FAILED and tasks[plain].attempt == 1
    stats = mesh.stats()
    assert (stats.retried_total, stats.dead_lettered_total, stats.tasks_by_state["DEAD_LETTER"]) == (2, 1, 1)

    listed = cli(mesh, "tasks", "--state", "DEAD_LETTER")
    assert listed.returncode == 0, listed.stderr
    assert task_id in listed.stdout and plain not in listed.stdout and "1 of 1 matching" in listed.stdout

    sent = cli(mesh, "requeue", task_id)
    assert sent.returncode == 0, sent.stderr
    assert task_id in sent.stdout and "requeued 1 of 1 dead letter(s)" in sent.stdout
    # A new run of 3 attempts: the 4th run fails and is retried, the 5th succeeds.
    tasks, _ = mesh.wait_all([task_id], timeout=60)
    done = tasks[task_id]
    assert done.state == types_pb2.TASK_STATE_SUCCEEDED and done.attempt == 5, done
    assert json.loads(done.outcome.output)["runs"] == 5
    assert mesh.stats().requeued_total == 1

    # Bad input names the id: unknown, or not a dead letter (now SUCCEEDED, or PENDING).
    missing = requeue_error(mesh, "no-such-task")
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "'no-such-task'" in (missing.details() or "")
    finished = requeue_error(mesh, task_id)
    assert finished.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert repr(task_id) in (finished.details() or "") and "SUCCEEDED" in (finished.details() or "")
    [waiting] = mesh.submit([spec("flaky", fail=0, required_labels={"gpu": 1})])
    pending = requeue_error(mesh, waiting)
    assert pending.code() == grpc.StatusCode.FAILED_PRECONDITION and "PENDING" in (pending.details() or "")
    refused = cli(mesh, "requeue", "no-such-task")
    assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr and "no-such-task" in refused.stderr
    empty = requeue_error(mesh)
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT and "task_ids" in (empty.details() or "")


def test_requeue_of_every_dead_letter_of_a_kind(mesh: Mesh) -> None:
    mesh.start_coordinator("--retry-policy", POLICY)
    mesh.start_sidecar("a", handler="fails_first")
    ids = mesh.submit([spec("flaky", fail=3) for _ in range(3)])
    tasks, _ = mesh.wait_all(ids, timeout=60)
    assert {t.state for t in tasks.values()} == {DEAD}
    sent = cli(mesh, "--json", "requeue", "--all-dead", "--kind", "flaky")
    assert sent.returncode == 0, sent.stderr
    assert sorted(t["task_id"] for t in json.loads(sent.stdout)["tasks"]) == sorted(ids)
    tasks, _ = mesh.wait_all(ids, timeout=60)
    assert all(t.state == types_pb2.TASK_STATE_SUCCEEDED and t.attempt == 4 for t in tasks.values())
    assert_eventually(lambda: mesh.stats().tasks_by_state["DEAD_LETTER"] == 0, what="no dead letters left")


def test_requeue_requests_that_cannot_be_served_name_the_field(mesh: Mesh) -> None:
    mesh.start_coordinator()
    cases = [
        (tasks_pb2.RequeueTasksRequest(task_ids=[f"t{i}" for i in range(10_001)]), "task_ids: 10001 ids"),
        (tasks_pb2.RequeueTasksRequest(task_ids=["a"], all_dead_letters=True), "task_ids: give either"),
        (tasks_pb2.RequeueTasksRequest(all_dead_letters=True, limit=10_001), "limit: 10001"),
        (tasks_pb2.RequeueTasksRequest(task_ids=["a"], kind="k"), "kind: filters dead letters only"),
    ]
    for request, message in cases:
        with pytest.raises(grpc.RpcError) as e:
            mesh.stub.RequeueTasks(request, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in (e.value.details() or "")
    nothing = mesh.stub.RequeueTasks(tasks_pb2.RequeueTasksRequest(all_dead_letters=True), timeout=10)
    assert list(nothing.tasks) == [] and nothing.total == 0
