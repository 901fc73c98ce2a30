"""End-to-end smoke: a real Sidecar against a tiny fake MeshService on 127.0.0.1.

The fake coordinator honours credits the way the real one does: it keeps a
queue of tasks per stream and never has more assignments outstanding than the
credits the sidecar granted, so these tests also check the credit arithmetic.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent_sidecar import HandlerRegistry, Sidecar, SidecarConfig, SidecarState, TaskContext
from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc, types_pb2
from tests.support import REPO, eventually

pytestmark = pytest.mark.integration


class FakeStream:
    """What the fake coordinator knows about one sidecar stream."""

    def __init__(self, register: mesh_pb2.Register, session: int) -> None:
        self.register = register
        self.session = session
        self.frames: list[mesh_pb2.SidecarFrame] = []
        self.results: list[mesh_pb2.TaskResult] = []
        self.granted = register.credits  # every credit the sidecar ever gave
        self.assigned = 0
        self.pending: collections.deque[mesh_pb2.Assignment] = collections.deque()
        self.outbox: asyncio.Queue[mesh_pb2.CoordinatorFrame | None] = asyncio.Queue()
        self.client_closed = asyncio.Event()  # the sidecar half-closed
        self.ended = asyncio.Event()
        self.ack_code = 0
        # Like the real coordinator, the first draining frame is answered with
        # a drain frame; a test may send what was "in transit" first instead.
        self.drain_answered = False
        self.answer_drain: Callable[[FakeStream], None] = lambda s: s.outbox.put_nowait(
            mesh_pb2.CoordinatorFrame(drain=True))

    @property
    def credits(self) -> int:
        return self.granted - self.assigned

    def assign(self, *assignments: mesh_pb2.Assignment) -> None:
        self.pending.extend(assignments)
        self.dispatch()

    def dispatch(self) -> None:
        n = min(self.credits, len(self.pending))
        if n:
            batch = [self.pending.popleft() for _ in range(n)]
            self.assigned += n
            self.outbox.put_nowait(mesh_pb2.CoordinatorFrame(assignments=batch))

    def on_frame(self, frame: mesh_pb2.SidecarFrame) -> None:
        assert not frame.HasField("register"), "register only in the first frame"
        self.frames.append(frame)
        self.granted += frame.credits
        self.results.extend(frame.results)
        # The sidecar must never grant more than its capacity in total.
        assert self.credits <= self.register.capacity, (self.credits, self.register.capacity)
        if frame.results:
            acks = [
                mesh_pb2.ResultAck(task_id=r.task_id, attempt=r.attempt, code=self.ack_code)
                for r in frame.results
            ]
            self.outbox.put_nowait(mesh_pb2.CoordinatorFrame(acks=acks))
        if frame.draining and not self.drain_answered:
            self.drain_answered = True
            self.answer_drain(self)
        self.dispatch()

    @property
    def draining(self) -> bool:
        return any(f.draining for f in self.frames)

    @property
    def heartbeats(self) -> list[mesh_pb2.Heartbeat]:
        return [f.heartbeat for f in self.frames if f.HasField("heartbeat")]


class FakeCoordinator(mesh_pb2_grpc.MeshServiceServicer):  # type: ignore[misc]
    def __init__(self, heartbeat_interval_ms: int = 0) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.streams: list[FakeStream] = []
        self.rejections = 0  # refuse this many registrations first
        self.rejected = 0

    @property
    def last(self) -> FakeStream:
        return self.streams[-1]

    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        first = await context.read()
        if self.rejected < self.rejections:
            self.rejected += 1
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "register.agent_id: held by a newer session")
        stream = FakeStream(first.register, session=len(self.streams) + 1)
        self.streams.append(stream)
        await context.write(
            mesh_pb2.CoordinatorFrame(
                registered=mesh_pb2.Registered(
                    agent_id=first.register.agent_id,
                    session=stream.session,
                    heartbeat_interval_ms=self.heartbeat_interval_ms,
                    lease_timeout_ms=10_000,
                )
            )
        )

        async def read() -> None:
            while True:
                frame = await context.read()
                if frame is grpc.aio.EOF:
                    stream.client_closed.set()
                    return
                stream.on_frame(frame)

        reader = asyncio.create_task(read())
        try:
            while True:
                get = asyncio.create_task(stream.outbox.get())
                done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                out = get.result()
                if out is None:
                    break
                await context.write(out)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            stream.ended.set()


SERVER_OPTIONS = [
    # Let the sidecar's 10 s keepalive pings through.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
]


class FakeServer:
    def __init__(self, fake: FakeCoordinator) -> None:
        self.fake = fake
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        mesh_pb2_grpc.add_MeshServiceServicer_to_server(self.fake, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    srv = FakeServer(FakeCoordinator(heartbeat_interval_ms=50))
    await srv.start()
    yield srv
    await srv.stop()


def config(srv: FakeServer, **kw: Any) -> SidecarConfig:
    base: dict[str, Any] = {
        "coordinator": srv.address,
        "agent_id": "agent-e2e",
        "labels": {"text": 3},
        "capacity": 4,
        "version": "test",
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "drain_timeout_s": 5.0,
    }
    base.update(kw)
    return SidecarConfig(**base)


def state_of(sidecar: Sidecar) -> SidecarState:
    # A call, so type checkers do not carry a narrowed state across awaits.
    return sidecar.state


def registry(**handlers: Callable[[TaskContext], Any]) -> HandlerRegistry:
    reg = HandlerRegistry()
    for kind, fn in handlers.items():
        reg.register(kind, fn)
    return reg


async def echo(ctx: TaskContext) -> bytes:
    return ctx.payload


def task(i: int, kind: str = "echo", **kw: Any) -> mesh_pb2.Assignment:
    return mesh_pb2.Assignment(task_id=f"t{i}", attempt=1, kind=kind, payload=str(i).encode(), **kw)


async def test_register_assign_and_return_results(server: FakeServer) -> None:
    async with Sidecar(config(server), registry=registry(echo=echo)) as sidecar:
        assert await sidecar.wait_registered(5)
        assert state_of(sidecar) is SidecarState.RUNNING
        stream = server.fake.last
        reg = stream.register
        assert (reg.agent_id, dict(reg.labels), list(reg.kinds), reg.capacity, reg.version, reg.credits) == (
            "agent-e2e",
            {"text": 3},
            ["echo"],
            4,
            "test",
            4,
        )
        stream.assign(*(task(i) for i in range(10)))
        await eventually(lambda: len(stream.results) == 10, what="10 results")
        assert {r.task_id: r.outcome.output for r in stream.results} == {
            f"t{i}": str(i).encode() for i in range(10)
        }
        assert all(r.state == types_pb2.TASK_STATE_SUCCEEDED for r in stream.results)
        await eventually(lambda: stream.credits == 4, what="all credits back")
        await eventually(lambda: sidecar.connection.counters.acks_ok == 10, what="acks counted")
        # Heartbeats arrive at the coordinator's interval and carry load and memory.
        await eventually(lambda: any(h.latencies for h in stream.heartbeats), what="heartbeat with latencies")
        hb = stream.heartbeats[-1]
        assert hb.memory_rss_bytes > 0 and hb.free_slots == 4 and hb.in_flight == 0
        assert hb.latencies[0].kind == "echo" and hb.latencies[0].completed == 10
    assert state_of(sidecar) is SidecarState.STOPPED


async def test_burst_is_coalesced_into_fewer_frames(server: FakeServer) -> None:
    async def noop(ctx: TaskContext) -> None:
        return None

    async with Sidecar(config(server, capacity=64), registry=registry(echo=noop)) as sidecar:
        assert await sidecar.wait_registered(5)
        stream = server.fake.last
        stream.assign(*(task(i) for i in range(1000)))
        await eventually(lambda: len(stream.results) == 1000, what="1000 results")
        await eventually(lambda: stream.credits == 64, what="credits back to capacity")
        assert len({r.task_id for r in stream.results}) == 1000
        frames_with_results = sum(1 for f in stream.frames if f.results)
        assert frames_with_results < 1000 // 2, frames_with_results
        # Credits returned equal tasks finished: nothing granted twice, nothing lost.
        assert stream.granted == 64 + 1000


async def test_reconnect_after_coordinator_restart(server: FakeServer) -> None:
    release = asyncio.Event()

    async def slow(ctx: TaskContext) -> bytes:
        await release.wait()
        return b"late"

    async with Sidecar(config(server), registry=registry(echo=echo, slow=slow)) as sidecar:
        assert await sidecar.wait_registered(5)
        first = server.fake.last
        first.assign(task(1, "slow"))
        await eventually(lambda: sidecar.runner.in_flight == 1, what="slow task running")

        await server.stop()
        await eventually(lambda: not sidecar.connection.connected, what="disconnect noticed")
        await server.start()  # same port
        await eventually(lambda: len(server.fake.streams) == 2, what="re-registered")
        second = server.fake.last
        # One slot is still busy with the task of the old stream, which the
        # new Register says it still holds.
        assert second.register.credits == 3
        assert second.register.agent_id == "agent-e2e"
        assert [(h.task_id, h.attempt) for h in second.register.held] == [("t1", 1)]

        release.set()
        # Its result is handed over on the new stream, and its slot comes back as a credit.
        await eventually(lambda: second.credits == 4, what="credit of the old task")
        await eventually(lambda: [r.task_id for r in second.results] == ["t1"], what="t1 handed over")
        assert sidecar.connection.counters.results_dropped == 0

        second.assign(task(2))
        await eventually(lambda: [r.task_id for r in second.results] == ["t1", "t2"], what="work after reconnect")


async def test_keeps_retrying_until_coordinator_appears() -> None:
    fake = FakeCoordinator()
    srv = FakeServer(fake)
    await srv.start()
    port = srv.port
    await srv.stop()  # the port is now known but nobody listens
    sidecar = Sidecar(config(srv), registry=registry(echo=echo))
    await sidecar.start()
    try:
        await eventually(lambda: sidecar.connection.counters.connect_failures >= 2, what="failed attempts")
        srv.port = port
        await srv.start()
        assert await sidecar.wait_registered(5)
    finally:
        await sidecar.stop(1)
        await srv.stop()


async def test_refused_registration_is_logged_and_retried(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.fake.rejections = 2
    async with Sidecar(config(server), registry=registry(echo=echo)) as sidecar:
        assert await sidecar.wait_registered(5)
        assert server.fake.rejected == 2
        assert sidecar.connection.counters.connect_failures == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("ALREADY_EXISTS: register.agent_id: held by a newer session" in m for m in warnings)


async def test_graceful_drain_finishes_in_flight_and_half_closes(server: FakeServer) -> None:
    async def nap(ctx: TaskContext) -> str:
        await asyncio.sleep(0.2)
        return "done"

    sidecar = Sidecar(config(server), registry=registry(echo=nap))
    await sidecar.start()
    assert await sidecar.wait_registered(5)
    stream = server.fake.last
    stream.assign(task(1), task(2))
    await eventually(lambda: sidecar.runner.in_flight == 2, what="both running")

    stopping = asyncio.create_task(sidecar.stop())
    await eventually(lambda: stream.draining, what="draining flag sent")
    assert state_of(sidecar) is SidecarState.DRAINING
    await stopping
    assert state_of(sidecar) is SidecarState.STOPPED
    assert sorted(r.task_id for r in stream.results) == ["t1", "t2"]
    # No credits once draining: the coordinator must not send more work.
    first_draining = next(i for i, f in enumerate(stream.frames) if f.draining)
    assert all(f.credits == 0 for f in stream.frames[first_draining:])
    assert stream.client_closed.is_set()
    assert sidecar.drained_cleanly
    await sidecar.stop()  # idempotent
    await sidecar.wait_stopped()


async def test_drain_runs_assignments_that_crossed_the_draining_flag(server: FakeServer) -> None:
    sidecar = Sidecar(config(server), registry=registry(echo=echo))
    await sidecar.start()
    assert await sidecar.wait_registered(5)
    stream = server.fake.last
    loop = asyncio.get_running_loop()

    def late_answer(s: FakeStream) -> None:
        # Two tasks were assigned before the coordinator read the flag; they
        # and then the answer reach the agent a while after it started draining.
        def send() -> None:
            s.assigned += 2
            s.outbox.put_nowait(mesh_pb2.CoordinatorFrame(assignments=[task(1), task(2)]))
            s.outbox.put_nowait(mesh_pb2.CoordinatorFrame(drain=True))

        loop.call_later(0.3, send)

    stream.answer_drain = late_answer
    await asyncio.wait_for(sidecar.stop(), 10)
    assert sorted(r.task_id for r in stream.results) == ["t1", "t2"]
    assert all(r.state == types_pb2.TASK_STATE_SUCCEEDED for r in stream.results)
    assert sidecar.drained_cleanly and stream.client_closed.is_set()


async def test_drain_without_an_answer_ends_after_its_wait(server: FakeServer) -> None:
    sidecar = Sidecar(config(server), registry=registry(echo=echo))
    await sidecar.start()
    assert await sidecar.wait_registered(5)
    server.fake.last.answer_drain = lambda s: None  # a coordinator that predates the answer
    t0 = time.monotonic()
    await asyncio.wait_for(sidecar.stop(), 15)
    assert 4.5 < time.monotonic() - t0 < 10
    assert sidecar.drained_cleanly


async def test_coordinator_requested_drain_stops_sidecar(server: FakeServer) -> None:
    sidecar = Sidecar(config(server), registry=registry(echo=echo))
    await sidecar.start()
    assert await sidecar.wait_registered(5)
    server.fake.last.outbox.put_nowait(mesh_pb2.CoordinatorFrame(drain=True))
    await asyncio.wait_for(sidecar.wait_stopped(), 10)
    assert state_of(sidecar) is SidecarState.STOPPED
    assert server.fake.last.draining
    await eventually(lambda: server.fake.last.client_closed.is_set(), what="half-close")


async def test_cancel_and_stale_acks(server: FakeServer) -> None:
    started = asyncio.Event()

    async def forever(ctx: TaskContext) -> None:
        started.set()
        await asyncio.Event().wait()

    async with Sidecar(config(server), registry=registry(echo=echo, forever=forever)) as sidecar:
        assert await sidecar.wait_registered(5)
        stream = server.fake.last
        stream.assign(task(1, "forever"))
        await asyncio.wait_for(started.wait(), 5)
        stream.outbox.put_nowait(
            mesh_pb2.CoordinatorFrame(cancels=[mesh_pb2.TaskRef(task_id="t1", attempt=1)])
        )
        await eventually(lambda: stream.credits == 4, what="credit of the cancelled task")
        assert stream.results == []

        stream.ack_code = 9  # FAILED_PRECONDITION: a newer attempt owns the task
        stream.assign(task(2))
        await eventually(lambda: sidecar.connection.counters.acks_stale == 1, what="stale ack counted")


HANDLER_MODULE = """
import time

def slow(ctx):
    time.sleep(30)
    return "late"
"""


def _start_process(tmp_path: Path, address: str, *extra: str) -> subprocess.Popen[bytes]:
    (tmp_path / "e2e_handlers.py").write_text(HANDLER_MODULE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "agent_sidecar", "--coordinator", address, "--agent-id", "proc-1", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    await eventually(lambda: proc.poll() is not None, timeout_s, what="process exit")
    return proc.returncode


async def test_process_drains_on_sigterm_and_forces_on_second(server: FakeServer, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = _start_process(
        tmp_path,
        server.address,
        "--handler",
        "e2e_handlers:slow",
        "--handler",
        "repr=builtins:repr",
        "--ready-file",
        str(ready),
        "--drain-timeout",
        "60",
    )
    try:
        await eventually(ready.exists, 20, what="ready file")
        info = json.loads(ready.read_text())
        assert info["agent_id"] == "proc-1" and info["pid"] == proc.pid
        stream = server.fake.last
        stream.assign(task(1, "repr"), task(2, "slow"))
        await eventually(lambda: len(stream.results) == 1, what="repr result")
        assert stream.results[0].outcome.output.startswith(b"TaskContext(task_id='t1'")

        proc.send_signal(signal.SIGTERM)
        await eventually(lambda: stream.draining, what="draining after first signal")
        assert proc.poll() is None  # still waiting for the slow task
        proc.send_signal(signal.SIGTERM)
        assert await _wait_exit(proc, 10) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


async def test_process_clean_drain_exits_zero(server: FakeServer, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    proc = _start_process(tmp_path, server.address, "--handler", "builtins:repr", "--ready-file", str(ready))
    try:
        await eventually(ready.exists, 20, what="ready file")
        proc.send_signal(signal.SIGINT)
        assert await _wait_exit(proc, 20) == 0
        assert server.fake.last.draining
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


async def test_process_rejects_bad_handler(tmp_path: Path) -> None:
    proc = _start_process(tmp_path, "127.0.0.1:1", "--handler", "no_such_module_xyz:f")
    try:
        assert await _wait_exit(proc, 20) == 2
        assert proc.stderr is not None
        assert b"cannot import module 'no_such_module_xyz'" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
