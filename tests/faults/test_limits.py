"""A 5 MiB payload and a 5 MiB result, against the coordinator's 4 MiB default limit."""

from __future__ import annotations

import grpc
import pytest

from swarmmesh import Client, errors
from swarmmesh.v1 import tasks_pb2, types_pb2
from tests.faults.handlers import BIG_BYTES
from tests.faults.ledger import Ledger, executions, settle, submit
from tests.faults.report import Report, conclude
from tests.integration.conftest import Mesh
from tests.support import assert_eventually

pytestmark = pytest.mark.faults

LIMIT = "the limit is 4194304 (max_payload_bytes)"


def test_a_5_mib_payload_is_refused_and_a_5_mib_result_fails_its_task_once(mesh: Mesh, report: Report) -> None:
    mesh.start_coordinator()
    sidecar = mesh.start_sidecar("a", "--handler", "big=tests.faults.handlers:big_result")

    with pytest.raises(grpc.RpcError) as err:
        mesh.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[
            types_pb2.TaskSpec(kind="echo"), types_pb2.TaskSpec(kind="echo", payload=b"x" * BIG_BYTES)]), timeout=30)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"tasks[1].payload: is {BIG_BYTES} bytes, {LIMIT}" in err.value.details()
    # The client's Session stream says the same, as its exception.
    with Client(mesh.address) as client, pytest.raises(errors.ResourceExhausted, match=r"max_payload_bytes"):
        client.submit("echo", b"x" * BIG_BYTES)
    assert mesh.stats().submitted_total == 0, "a refused batch is refused whole"

    ledger = Ledger()
    ids = submit(mesh.stub, ledger, [types_pb2.TaskSpec(kind="big", idempotency_key=f"big-{i}") for i in range(3)])
    fine = submit(mesh.stub, Ledger(), [types_pb2.TaskSpec(kind="echo") for _ in range(20)])
    settle(lambda: mesh.stub, ledger, timeout=60)
    runs = executions(mesh.exec_log)
    conclude(report, 6, "a 5 MiB payload, and a 5 MiB result", ledger, at_risk=len(ids), fault_at=None,
             runs=runs, risky=set(), expect=types_pb2.TASK_STATE_FAILED,
             note="payload: RESOURCE_EXHAUSTED; result: FAILED on attempt 1")
    for i in ids:
        [done] = ledger.completions(i)
        assert done.attempt == 1 and done.error_type == "output_too_large"
        task = mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=i), timeout=10)
        assert task.outcome.error == f"output: is {BIG_BYTES} bytes, {LIMIT}" and not task.outcome.output
    # The sidecar is told why, and the tasks beside them are untouched.
    assert_eventually(lambda: "rejected result" in sidecar.output() and LIMIT in sidecar.output(),
                      what="the sidecar logs the refusal")
    tasks, _ = mesh.wait_all(fine, timeout=60)
    assert all(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in tasks.values())
