"""A coordinator restarted under its clients, with real processes and the journal on: a CLI
``submit --wait`` and a Python ``run()`` issued before it complete after it, whether the
coordinator was stopped with SIGTERM or killed; and what a client sees during a shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from swarmmesh import Client, TaskInfo, TaskSpec
from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2
from tests.integration.conftest import Mesh
from tests.support import CHANNEL_OPTIONS, REPO, assert_eventually, child_env, free_port

pytestmark = pytest.mark.integration

RESTARTING = "the coordinator is restarting"


@pytest.fixture
def address() -> str:
    """A fixed address: the restarted coordinator comes back where its clients and sidecars left it."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def channel(address: str) -> Iterator[grpc.Channel]:
    """The test's own channel, back soon after the coordinator is (not after gRPC's default backoff)."""
    options = [*CHANNEL_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 100),
               ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500)]
    with grpc.insecure_channel(address, options=options) as ch:
        yield ch


def pending(stub: tasks_pb2_grpc.TaskServiceStub) -> list[types_pb2.Task]:
    return list(stub.ListTasks(tasks_pb2.ListTasksRequest(states=[types_pb2.TASK_STATE_PENDING]), timeout=10).tasks)


def restart_under_a_cli_wait(mesh: Mesh, address: str, channel: grpc.Channel, kill: bool) -> None:
    mesh.start_coordinator(listen=address)
    stub = tasks_pb2_grpc.TaskServiceStub(channel)
    # No sidecar yet: the task stays pending across the restart.
    with subprocess.Popen([sys.executable, "-m", "swarmmesh.cli", "--coordinator", address, "--json",
                           "submit", "words", "across a restart", "--wait"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                          cwd=str(REPO)) as cli:
        try:
            [task] = assert_eventually(lambda: pending(stub), what="the CLI's task accepted")
            assert mesh.coordinator is not None
            if kill:
                mesh.coordinator.kill9()
            else:
                assert mesh.coordinator.stop() == 0, mesh.coordinator.output()
            assert cli.poll() is None, "the CLI must still be waiting"
            mesh.start_coordinator(listen=address)
            mesh.start_sidecar("after")
            stdout, stderr = cli.communicate(timeout=90)
        finally:
            if cli.poll() is None:
                cli.kill()
    assert cli.returncode == 0, stderr
    done = json.loads(stdout)
    assert done["task_id"] == task.task_id and done["state"] == "SUCCEEDED", done
    assert done["agent_id"] == "after" and done["outcome"]["output"]["payload"] == "across a restart"
    assert [t for t, _, _ in mesh.executions()] == [task.task_id]


def test_a_cli_submit_wait_issued_before_a_sigterm_restart_completes_after_it(
        mesh: Mesh, address: str, channel: grpc.Channel) -> None:
    restart_under_a_cli_wait(mesh, address, channel, kill=False)


def test_a_cli_submit_wait_issued_before_a_kill_9_restart_completes_after_it(
        mesh: Mesh, address: str, channel: grpc.Channel) -> None:
    restart_under_a_cli_wait(mesh, address, channel, kill=True)


def test_a_client_run_in_progress_survives_a_sigterm_restart(mesh: Mesh, address: str, channel: grpc.Channel) -> None:
    mesh.start_coordinator(listen=address)
    for name in ("a", "b"):
        mesh.start_sidecar(name, "--capacity", "4", handler="sleepy")
    n = 300
    results: list[TaskInfo] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with Client(address) as c:
                results.extend(c.run([TaskSpec("nap", {"ms": 20, "i": i}) for i in range(n)], batch_size=50))
        except BaseException as e:
            failure.append(e)

    runner = threading.Thread(target=run, name="run-across-a-restart")
    runner.start()
    try:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        stats = lambda: stub.GetStats(tasks_pb2.GetStatsRequest(), timeout=10)  # noqa: E731
        assert_eventually(lambda: stats().submitted_total == n and 30 <= stats().succeeded_total, timeout=60,
                          interval=0.01, what="the run submitted and under way")
        assert mesh.coordinator is not None
        assert mesh.coordinator.stop() == 0, mesh.coordinator.output()
        mesh.start_coordinator(listen=address)
        assert stats().recovered_tasks == n
    finally:
        runner.join(120)
    assert not runner.is_alive() and not failure, failure
    assert len(results) == n and all(t.ok for t in results)
    assert [json.loads(t.spec.payload)["i"] for t in results] == list(range(n))  # type: ignore[union-attr]
    # A graceful stop is no fault: every task ran once.
    runs = Counter(t for t, _, _ in mesh.executions())
    assert runs == Counter({t.task_id: 1 for t in results})


def test_during_a_shutdown_submissions_get_unavailable_with_a_retry_hint_and_health_is_not_serving(
        mesh: Mesh, address: str, channel: grpc.Channel) -> None:
    mesh.start_coordinator("--shutdown-grace-s", "30", listen=address)
    mesh.start_sidecar("busy", "--capacity", "1", handler="sleepy")
    stub = tasks_pb2_grpc.TaskServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    [running] = mesh.submit_json("nap", [{"ms": 3000}])
    assert_eventually(lambda: mesh.ready_agents()["busy"].in_flight == 1, what="the task running")
    late: list[str] = []

    with Client(address) as client:
        client.stats()  # the coordinator has answered this client: an outage is one to ride out
        coordinator = mesh.coordinator
        assert coordinator is not None
        coordinator.popen.send_signal(signal.SIGTERM)
        assert_eventually(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                          == health_pb2.HealthCheckResponse.NOT_SERVING, what="NOT_SERVING")
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(kind="nap")]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert RESTARTING in refused.value.details()
        trailer = dict(refused.value.trailing_metadata())
        assert int(trailer["grpc-retry-pushback-ms"]) > 0
        # A new Session is refused the same way; one already open would get its submits acked UNAVAILABLE.
        with pytest.raises(grpc.RpcError) as no_session:
            list(stub.Session(iter([tasks_pb2.SessionRequest(submits=[tasks_pb2.SessionSubmit(
                id=1, tasks=[types_pb2.TaskSpec(kind="nap")])])]), timeout=10))
        assert no_session.value.code() == grpc.StatusCode.UNAVAILABLE
        assert int(dict(no_session.value.trailing_metadata())["grpc-retry-pushback-ms"]) > 0
        assert coordinator.popen.poll() is None, "still draining the running task"

        # The client's own submission during the shutdown is retried until the next run takes it.
        submitting = threading.Thread(target=lambda: late.append(client.submit("nap", {"ms": 1})))
        submitting.start()
        assert coordinator.popen.wait(30) == 0, coordinator.output()
        assert submitting.is_alive(), "no coordinator to take it yet"
        mesh.start_coordinator(listen=address)
        submitting.join(60)
        assert late and client.wait(late[0], timeout=60).ok

    done = stub.GetTask(tasks_pb2.GetTaskRequest(task_id=running), timeout=10)
    # The drain let the running task finish: recorded by the first run, not run again.
    assert done.state == types_pb2.TASK_STATE_SUCCEEDED and done.attempt == 1
    assert Counter(t for t, _, _ in mesh.executions())[running] == 1
    assert len(pending(stub)) == 0
