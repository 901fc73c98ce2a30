"""Bad input gets the right status with a message, and nobody else is harmed."""

from __future__ import annotations

import grpc
import pytest

from swarmmesh.v1 import mesh_pb2, tasks_pb2, types_pb2
from tests.integration.conftest import Mesh
from tests.integration.raw_sidecar import RawSidecar
from tests.support import CHANNEL_OPTIONS


@pytest.fixture
def coord(mesh: Mesh) -> Mesh:
    mesh.start_coordinator("--max-payload-bytes", "1000")
    return mesh


def code_of(fn: object, *args: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        fn(*args, timeout=10)  # type: ignore[operator]
    return err.value.code(), err.value.details()


def test_submit_rejects_bad_specs_naming_the_field(coord: Mesh) -> None:
    s = coord.stub
    cases = [
        ([], grpc.StatusCode.INVALID_ARGUMENT, "tasks: is empty"),
        ([types_pb2.TaskSpec(kind="")], grpc.StatusCode.INVALID_ARGUMENT, "tasks[0].kind: is required"),
        ([types_pb2.TaskSpec(kind="ok"), types_pb2.TaskSpec(kind="x" * 129)], grpc.StatusCode.INVALID_ARGUMENT,
         "tasks[1].kind: is 129 characters"),
        ([types_pb2.TaskSpec(kind="k", payload=b"x" * 1001)], grpc.StatusCode.RESOURCE_EXHAUSTED,
         "tasks[0].payload: is 1001 bytes, the limit is 1000 (max_payload_bytes)"),
        ([types_pb2.TaskSpec(kind="k", required_labels={"": 1})], grpc.StatusCode.INVALID_ARGUMENT,
         "tasks[0].required_labels"),
        ([types_pb2.TaskSpec(kind="k", priority=99999)], grpc.StatusCode.INVALID_ARGUMENT, "tasks[0].priority"),
    ]
    for specs, code, needle in cases:
        got_code, details = code_of(s.SubmitTasks, tasks_pb2.SubmitTasksRequest(tasks=specs))
        assert got_code == code and needle in details, (got_code, details)
    assert coord.stats().submitted_total == 0, "a rejected batch is rejected whole"


def test_unknown_ids_and_enum_values(coord: Mesh) -> None:
    s = coord.stub
    code, details = code_of(s.GetTask, tasks_pb2.GetTaskRequest(task_id="no-such-task"))
    assert code == grpc.StatusCode.NOT_FOUND and "no-such-task" in details
    code, details = code_of(s.GetTask, tasks_pb2.GetTaskRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "task_id" in details
    code, details = code_of(s.CancelTasks, tasks_pb2.CancelTasksRequest(task_ids=["nope"]))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in details
    code, details = code_of(lambda r, timeout: list(s.WatchTasks(r, timeout=timeout)),
                            tasks_pb2.WatchTasksRequest(task_ids=["ghost"]))
    assert code == grpc.StatusCode.NOT_FOUND and "ghost" in details
    code, details = code_of(s.ListTasks, tasks_pb2.ListTasksRequest(states=[77]))  # type: ignore[list-item]
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "states[0]: 77" in details
    code, details = code_of(s.DrainAgent, tasks_pb2.DrainAgentRequest(agent_id="nobody"))
    assert code == grpc.StatusCode.NOT_FOUND and "nobody" in details


def test_stream_rejects_bad_registration(coord: Mesh) -> None:
    for register, needle in [(None, "first frame must carry register"),
                             (mesh_pb2.Register(agent_id="a", capacity=0), "register.capacity"),
                             (mesh_pb2.Register(agent_id="", capacity=1), "register.agent_id")]:
        with RawSidecar(coord.address, register) as raw:
            if register is None:
                raw.send(mesh_pb2.SidecarFrame(credits=1))
            with pytest.raises(grpc.RpcError) as err:
                raw.registered()
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in err.value.details()


def test_bad_results_get_per_item_status_and_the_stream_keeps_serving(coord: Mesh) -> None:
    a = RawSidecar(coord.address, mesh_pb2.Register(agent_id="a", capacity=1, credits=1))
    b = RawSidecar(coord.address, mesh_pb2.Register(agent_id="b", capacity=1, credits=0))
    try:
        a.registered()
        b.registered()
        [task_id] = coord.submit([types_pb2.TaskSpec(kind="k")])
        assignment = a.assignments()[0]
        assert assignment.task_id == task_id and assignment.attempt == 1
        # b never held it; a sends an unknown id and an unknown state first.
        b.send(mesh_pb2.SidecarFrame(results=[mesh_pb2.TaskResult(task_id=task_id, attempt=1, state=3)]))
        [ack] = b.acks()
        assert ack.code == grpc.StatusCode.PERMISSION_DENIED.value[0] and "not held by agent 'b'" in ack.message
        a.send(mesh_pb2.SidecarFrame(results=[
            mesh_pb2.TaskResult(task_id="made-up", attempt=1, state=3),
            mesh_pb2.TaskResult(task_id=task_id, attempt=1, state=42),  # type: ignore[arg-type]
            mesh_pb2.TaskResult(task_id=task_id, attempt=1, state=2),
        ]))
        acks = a.acks(3)
        assert [x.code for x in acks] == [5, 3, 3]
        assert "made-up" in acks[0].message and "42" in acks[1].message
        # Same stream, a good result now: recorded.
        a.send(mesh_pb2.SidecarFrame(credits=1, results=[mesh_pb2.TaskResult(
            task_id=task_id, attempt=1, state=3, outcome=types_pb2.TaskOutcome(output=b"done"))]))
        a.wait_recorded(1)
        task = coord.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id))
        assert task.state == types_pb2.TASK_STATE_SUCCEEDED and task.outcome.output == b"done"
        # And the server still dispatches on the same stream.
        [second] = coord.submit([types_pb2.TaskSpec(kind="k")])
        assert a.assignments()[0].task_id == second
    finally:
        a.close()
        b.close()


def test_stale_result_after_reassignment_is_rejected(coord: Mesh) -> None:
    with RawSidecar(coord.address, mesh_pb2.Register(agent_id="first", capacity=1, credits=1)) as first:
        first.registered()
        [task_id] = coord.submit([types_pb2.TaskSpec(kind="k")])
        assert first.assignments()[0].attempt == 1
    # The stream has dropped while it held the task.
    second = RawSidecar(coord.address, mesh_pb2.Register(agent_id="second", capacity=1, credits=1))
    again = RawSidecar(coord.address, mesh_pb2.Register(agent_id="first", capacity=1, credits=0))
    try:
        second.registered()
        a2 = second.assignments()[0]
        assert a2.task_id == task_id and a2.attempt == 2
        again.registered()
        again.send(mesh_pb2.SidecarFrame(results=[mesh_pb2.TaskResult(
            task_id=task_id, attempt=1, state=3, outcome=types_pb2.TaskOutcome(output=b"late"))]))
        [ack] = again.acks()
        assert ack.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "superseded by attempt 2" in ack.message
        second.send(mesh_pb2.SidecarFrame(credits=1, results=[mesh_pb2.TaskResult(
            task_id=task_id, attempt=2, state=3, outcome=types_pb2.TaskOutcome(output=b"fresh"))]))
        second.wait_recorded(1)
        task = coord.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id))
        assert task.outcome.output == b"fresh" and task.attempt == 2 and task.agent_id == "second"
        assert coord.stats().stale_results_total == 1
    finally:
        second.close()
        again.close()


def test_a_misbehaving_client_does_not_harm_others(coord: Mesh) -> None:
    good = RawSidecar(coord.address, mesh_pb2.Register(agent_id="good", capacity=4, credits=4))
    try:
        good.registered()
        for _ in range(20):
            code_of(coord.stub.SubmitTasks, tasks_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(kind="")]))
            with RawSidecar(coord.address, None) as bad:
                bad.send(mesh_pb2.SidecarFrame(heartbeat=mesh_pb2.Heartbeat()))
                with pytest.raises(grpc.RpcError):
                    bad.registered()
        [task_id] = coord.submit([types_pb2.TaskSpec(kind="k")])
        assert good.assignments()[0].task_id == task_id
    finally:
        good.close()


def test_a_frame_that_is_not_a_sidecar_frame_is_refused_by_name(coord: Mesh) -> None:
    # Frames are parsed by the coordinator itself (it recognises repeated heartbeats by their bytes).
    channel = grpc.insecure_channel(coord.address, options=CHANNEL_OPTIONS)
    connect = channel.stream_stream("/swarmmesh.v1.MeshService/Connect", request_serializer=None,
                                    response_deserializer=mesh_pb2.CoordinatorFrame.FromString)
    good = RawSidecar(coord.address, mesh_pb2.Register(agent_id="good", capacity=1, credits=1))
    try:
        good.registered()
        register = mesh_pb2.SidecarFrame(register=mesh_pb2.Register(agent_id="garbled", capacity=1)).SerializeToString()
        for frames in ([b"\xff\xff\xff"], [register, b"\x0a\xff\xff"]):
            with pytest.raises(grpc.RpcError) as err:
                list(connect(iter(frames), timeout=10))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "frame: not a SidecarFrame" in err.value.details()
        [task_id] = coord.submit([types_pb2.TaskSpec(kind="k")])
        assert good.assignments()[0].task_id == task_id
    finally:
        good.close()
        channel.close()
