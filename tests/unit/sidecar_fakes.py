"""A sidecar connection without sockets: a stream that records what it is sent, and the manager over it.

`FakeCall` stands in for the grpc.aio stream of one Connect call: it records
the frames the sidecar writes, can hold a write open, and hands the reader
whatever the test puts in it (`deliver`, `end`). `FakeStub.Connect` answers
each call with the next stream, so a test can run `ConnectionManager._session`
over several streams in a row, as a reconnect would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from agent_sidecar.config import SidecarConfig
from agent_sidecar.connection.manager import ConnectionManager
from agent_sidecar.handlers import HandlerRegistry
from agent_sidecar.runner.runner import Runner
from swarmmesh.v1 import mesh_pb2


class FakeCall:
    """Stands in for the grpc.aio stream: records frames, can hold a write open."""

    def __init__(self, *, registered: bool = True) -> None:
        self.frames: list[mesh_pb2.SidecarFrame] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = asyncio.Event()
        self.half_closed = False
        self._inbound: asyncio.Queue[Any] = asyncio.Queue()
        if registered:
            self.deliver(mesh_pb2.CoordinatorFrame(registered=mesh_pb2.Registered(agent_id="a", session=1)))

    @property
    def register(self) -> mesh_pb2.Register:
        return self.frames[0].register

    @property
    def results(self) -> list[tuple[str, int]]:
        """(task_id, attempt) of every result written after the Register, in order."""
        return [(r.task_id, r.attempt) for f in self.frames[1:] for r in f.results]

    @property
    def credits(self) -> int:
        """Credits granted by the Register and every frame after it."""
        return self.register.credits + sum(f.credits for f in self.frames[1:])

    def deliver(self, frame: mesh_pb2.CoordinatorFrame) -> None:
        self._inbound.put_nowait(frame)

    def end(self) -> None:
        """The coordinator goes away: the reader sees the stream end."""
        self._inbound.put_nowait(grpc.aio.EOF)

    async def write(self, frame: mesh_pb2.SidecarFrame) -> None:
        self.frames.append(frame)
        self.writing.set()
        await self.gate.wait()

    async def read(self) -> Any:
        return await self._inbound.get()

    async def done_writing(self) -> None:
        self.half_closed = True

    async def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    async def details(self) -> str:
        return "coordinator restarting"

    def cancel(self) -> bool:
        return True


class FakeStub:
    """MeshServiceStub whose Connect hands out the given streams in order."""

    def __init__(self, *calls: FakeCall) -> None:
        self.calls = list(calls)

    def Connect(self) -> FakeCall:
        return self.calls.pop(0)


def make_conn(
    capacity: int = 4, handler: Callable[[Any], object] = lambda ctx: None, **config: Any
) -> tuple[ConnectionManager, Runner]:
    cfg = SidecarConfig(agent_id="a", capacity=capacity, **config)
    reg = HandlerRegistry()
    reg.register("*", handler)
    conn: ConnectionManager | None = None

    def forward(result: mesh_pb2.TaskResult | None, credits: int) -> None:
        assert conn is not None
        conn.outbox.push_result(result, credits)

    runner = Runner(reg, capacity=capacity, agent_id="a", on_result=forward)
    conn = ConnectionManager(cfg, runner, kinds=[])
    return conn, runner


def assign(conn: ConnectionManager, *task_ids: str) -> None:
    """Make the tasks known to the connection, as the reader does."""
    for t in task_ids:
        conn.outbox.expect_result((t, 1))


def assignment(task_id: str, attempt: int = 1) -> mesh_pb2.CoordinatorFrame:
    return mesh_pb2.CoordinatorFrame(assignments=[mesh_pb2.Assignment(task_id=task_id, attempt=attempt)])
