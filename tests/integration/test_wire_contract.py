"""Clients that know only the .proto files (or only reflection) can use the mesh."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.integration.conftest import Mesh
from tests.support import CHANNEL_OPTIONS, REPO


def test_health_and_reflection_list_the_services(mesh: Mesh) -> None:
    mesh.start_coordinator()
    with grpc.insecure_channel(mesh.address, options=CHANNEL_OPTIONS) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "swarmmesh.v1.TaskService", "swarmmesh.v1.MeshService"):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(ch).get_services())
        assert {"swarmmesh.v1.TaskService", "swarmmesh.v1.MeshService", "grpc.health.v1.Health"} <= services


def test_a_client_built_from_reflection_alone_submits_and_reads(mesh: Mesh) -> None:
    """What grpcurl does: fetch descriptors from the server, build messages, call by method name."""
    mesh.start_coordinator()
    mesh.start_sidecar("a")
    with grpc.insecure_channel(mesh.address, options=CHANNEL_OPTIONS) as ch:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
        service = pool.FindServiceByName("swarmmesh.v1.TaskService")
        submit_d = service.methods_by_name["SubmitTasks"]
        get_d = service.methods_by_name["GetTask"]
        watch_d = service.methods_by_name["WatchTasks"]
        cls = message_factory.GetMessageClass
        req = cls(submit_d.input_type)()
        spec = req.tasks.add()
        spec.kind = "echo"
        spec.payload = b"from reflection"
        submit = ch.unary_unary("/swarmmesh.v1.TaskService/SubmitTasks", request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=cls(submit_d.output_type).FromString)
        task_id = submit(req, timeout=10).tasks[0].task_id
        watch = ch.unary_stream("/swarmmesh.v1.TaskService/WatchTasks",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=cls(watch_d.output_type).FromString)
        wreq = cls(watch_d.input_type)(task_ids=[task_id])
        finished = [t for msg in watch(wreq, timeout=30) for t in msg.tasks]
        assert [t.task_id for t in finished] == [task_id]
        get = ch.unary_unary("/swarmmesh.v1.TaskService/GetTask", request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=cls(get_d.output_type).FromString)
        task = get(cls(get_d.input_type)(task_id=task_id), timeout=10)
        state_name = task.DESCRIPTOR.fields_by_name["state"].enum_type.values_by_number[task.state].name
        assert state_name == "TASK_STATE_SUCCEEDED"
        assert b"from reflection" in task.outcome.output


def test_stubs_compiled_from_the_protos_alone(mesh: Mesh, tmp_path: Path) -> None:
    """Compile protos/ into an empty directory and use only that code, in a fresh interpreter."""
    mesh.start_coordinator()
    mesh.start_sidecar("a")
    out = tmp_path / "gen"
    out.mkdir()
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'protos'}", f"--python_out={out}",
                    f"--grpc_python_out={out}", *map(str, sorted((REPO / "protos").rglob("*.proto")))], check=True)
    # A regular package shadows the installed swarmmesh, so nothing of ours is imported.
    (out / "swarmmesh" / "__init__.py").write_text("")
    script = textwrap.dedent(f"""
        import grpc, swarmmesh
        assert swarmmesh.__file__.startswith({str(out)!r}), swarmmesh.__file__
        from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2
        with grpc.insecure_channel({mesh.address!r}, options=[("grpc.enable_http_proxy", 0)]) as ch:
            stub = tasks_pb2_grpc.TaskServiceStub(ch)
            resp = stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(kind="echo", payload=b"hi")]))
            tid = resp.tasks[0].task_id
            for _ in stub.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=[tid]), timeout=30):
                pass
            task = stub.GetTask(tasks_pb2.GetTaskRequest(task_id=tid))
            print(types_pb2.TaskState.Name(task.state), task.outcome.output.decode())
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=out, env={"PYTHONPATH": str(out), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    state, output = done.stdout.split(" ", 1)
    assert state == "TASK_STATE_SUCCEEDED" and json.loads(output)["payload"] == "hi"


def test_checked_in_wire_code_is_current() -> None:
    done = subprocess.run([sys.executable, str(REPO / "tools" / "genproto.py"), "--check"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
