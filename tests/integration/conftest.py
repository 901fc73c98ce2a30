from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2
from tests.support import CHANNEL_OPTIONS, Proc, assert_eventually, coordinator_args, sidecar_args

HANDLERS = "tests.integration.handlers"


class Mesh:
    """A coordinator process, sidecar processes and a raw TaskService stub."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.coordinator: Proc | None = None
        self.address = ""
        self._channel: grpc.Channel | None = None
        self.exec_log = tmp / "executions.log"

    def start_coordinator(self, *extra: str, listen: str = "127.0.0.1:0", env: dict[str, str] | None = None) -> str:
        n = len(self.procs)
        ready = self.tmp / f"coordinator-{n}.json"
        # A coordinator on a fixed port keeps its history under XDG_STATE_HOME: the test's tmp dir.
        proc = Proc(coordinator_args(ready, listen, *extra), ready, self.tmp / f"coordinator-{n}.log",
                    env={"XDG_STATE_HOME": str(self.tmp / "state"), **(env or {})})
        self.procs.append(proc)
        self.coordinator = proc
        self.address = str(proc.ready()["address"])
        if self._channel is not None:
            self._channel.close()
        self._channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        return self.address

    def start_sidecar(self, agent_id: str, *extra: str, handler: str = "echo", wait: bool = True,
                      env: dict[str, str] | None = None) -> Proc:
        ready = self.tmp / f"sidecar-{agent_id}-{len(self.procs)}.json"
        args = sidecar_args(self.address, agent_id, ready, "--handler", f"{HANDLERS}:{handler}", *extra)
        proc = Proc(args, ready, self.tmp / f"sidecar-{agent_id}-{len(self.procs)}.log",
                    # Default cache directories live under the test's own tmp dir.
                    env={"SWARMMESH_TEST_EXEC_LOG": str(self.exec_log), "XDG_CACHE_HOME": str(self.tmp / "xdg"),
                         **(env or {})})
        self.procs.append(proc)
        if wait:
            proc.ready()
            assert_eventually(lambda: agent_id in self.ready_agents(), what=f"{agent_id} READY")
        return proc

    @property
    def stub(self) -> tasks_pb2_grpc.TaskServiceStub:
        assert self._channel is not None
        return tasks_pb2_grpc.TaskServiceStub(self._channel)

    def ready_agents(self) -> dict[str, types_pb2.Agent]:
        agents = self.stub.ListAgents(tasks_pb2.ListAgentsRequest(), timeout=10).agents
        return {a.agent_id: a for a in agents if a.state == types_pb2.AGENT_STATE_READY}

    def submit(self, specs: list[types_pb2.TaskSpec]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(specs), 1000):
            resp = self.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=specs[i:i + 1000]), timeout=30)
            ids.extend(t.task_id for t in resp.tasks)
        return ids

    def submit_json(self, kind: str, payloads: list[object]) -> list[str]:
        return self.submit([types_pb2.TaskSpec(kind=kind, payload=json.dumps(p).encode(),
                                               content_type="application/json") for p in payloads])

    def wait_all(self, ids: list[str], timeout: float = 120.0) -> tuple[dict[str, types_pb2.Task], int]:
        """Follow every id on one WatchTasks stream; returns tasks and how many updates arrived."""
        got: dict[str, types_pb2.Task] = {}
        updates = 0
        for msg in self.stub.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=ids), timeout=timeout):
            for t in msg.tasks:
                updates += 1
                got[t.task_id] = t
        return got, updates

    def stats(self) -> tasks_pb2.ClusterStats:
        return self.stub.GetStats(tasks_pb2.GetStatsRequest(), timeout=10)

    def executions(self) -> list[tuple[str, int, str]]:
        if not self.exec_log.exists():
            return []
        out = []
        for line in self.exec_log.read_text().splitlines():
            task_id, attempt, agent = line.split()
            out.append((task_id, int(attempt), agent))
        return out

    def close(self) -> None:
        # Every step runs even when one fails, so no process is left behind.
        steps: list[Callable[[], object]] = [self._channel.close] if self._channel is not None else []
        # Sidecars first, so they drain against a live coordinator.
        steps += [p.stop for p in sorted(self.procs, key=lambda p: p is self.coordinator or "coordinator" in p.args)]
        first: BaseException | None = None
        for step in steps:
            try:
                step()
            except BaseException as e:
                first = first or e
        if first is not None:
            raise first


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(tmp_path)
    try:
        yield m
    finally:
        m.close()
