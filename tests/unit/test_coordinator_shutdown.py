"""A coordinator shutting down, piece by piece and without sockets: new work refused with
UNAVAILABLE and a retry hint, in-flight work let finish, streams ended so that clients and
sidecars reconnect, and agents' leases kept for the next run."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from coordinator.core.mesh import MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskSpec, TaskState
from coordinator.service.cache_sync import CacheSync
from coordinator.service.effects import AgentSessions
from coordinator.service.mesh_service import MeshService
from coordinator.service.session import ClientSession, serve
from coordinator.service.shutdown import RESTARTING, RETRY_AFTER_MS, Shutdown, drained
from coordinator.service.task_service import TaskService
from coordinator.service.watch import WatchHub
from swarmmesh.v1 import tasks_pb2, types_pb2
from tests.support import eventually

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
HINT = (("grpc-retry-pushback-ms", str(RETRY_AFTER_MS)),)


class Aborted(Exception):
    pass


class Context:
    """The servicer context of one call: what it reads is queued by the test, what it writes
    and the status it is aborted with are kept."""

    def __init__(self) -> None:
        self.reads: asyncio.Queue[Any] = asyncio.Queue()
        self.written: list[Any] = []
        self.aborted: tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]] | None = None

    async def read(self) -> Any:
        return await self.reads.get()

    async def write(self, msg: Any) -> None:
        self.written.append(msg)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self.aborted = (code, details, tuple(trailing_metadata))
        raise Aborted(details)

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return self.aborted is not None

    def invocation_metadata(self) -> tuple[()]:
        return ()


class Stream:
    """Stands in for an agent's stream in the table of open ones."""

    def __init__(self, agent_id: str, session: int) -> None:
        self.agent_id = agent_id
        self.session = session
        self.assigned: list[str] = []
        self.close_status: tuple[grpc.StatusCode, str] | None = None

    def send_assignments(self, recs: list[Any], now: float) -> None:
        self.assigned += [r.task_id for r in recs]

    def close(self, code: grpc.StatusCode, message: str) -> None:
        self.close_status = (code, message)


def mesh() -> tuple[MeshCore, AgentSessions, WatchHub, CacheSync, Shutdown]:
    core = MeshCore()
    hub = WatchHub()
    core.add_listener(hub.on_change)
    agents = AgentSessions(core)
    return core, agents, hub, CacheSync(core, agents), Shutdown()


def submit(item_id: int) -> tasks_pb2.SessionRequest:
    return tasks_pb2.SessionRequest(submits=[tasks_pb2.SessionSubmit(id=item_id, tasks=[types_pb2.TaskSpec(kind="k")])])


async def test_a_session_submit_after_the_stop_began_is_refused_with_a_retry_hint_and_a_watch_still_served() -> None:
    core, agents, hub, cache_sync, shutdown = mesh()
    sess = ClientSession(core, agents, hub, cache_sync, None, shutdown)
    sess.handle(submit(1))
    shutdown.begin()
    sess.handle(submit(2))
    [accepted] = [a.tasks[0].task_id for a in sess._acks if a.id == 1]
    sess.handle(tasks_pb2.SessionRequest(watches=[tasks_pb2.SessionWatch(id=3, task_ids=[accepted])]))
    response = sess.take()
    assert response is not None
    ok, refused, watched = response.acks
    assert ok.code == 0 and watched.code == 0
    assert (refused.id, refused.code, refused.message, refused.retry_after_ms) == (2, 14, RESTARTING, RETRY_AFTER_MS)
    assert len(core.list_tasks((), "", "", "", 10)[0]) == 1
    sess.close()


async def test_calls_and_streams_that_begin_during_the_stop_are_refused_with_a_retry_hint() -> None:
    core, agents, hub, cache_sync, shutdown = mesh()
    tasks = TaskService(core, agents, hub, cache_sync, 0.0, shutdown=shutdown)
    shutdown.begin()
    calls = {
        "SubmitTasks": lambda c: tasks.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[types_pb2.TaskSpec(kind="k")]), c),
        "Session": lambda c: tasks.Session(None, c),
        "WatchTasks": lambda c: anext(tasks.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=["x"]), c)),
        "Connect": lambda c: MeshService(core, agents, cache_sync, 1.0, shutdown).Connect(None, c),
    }
    for name, call in calls.items():
        context = Context()
        with pytest.raises(Aborted):
            await call(context)
        assert context.aborted == (UNAVAILABLE, RESTARTING, HINT), name
    assert core.list_tasks((), "", "", "", 10)[1] == 0


async def test_a_session_writes_what_it_queued_then_ends_with_unavailable() -> None:
    core, agents, hub, cache_sync, shutdown = mesh()
    sess = ClientSession(core, agents, hub, cache_sync, None, shutdown)
    context = Context()
    with shutdown.stream(sess.wake):
        served = asyncio.create_task(serve(sess, context))  # type: ignore[arg-type]
        await context.reads.put(submit(1))
        await eventually(lambda: len(context.written) == 1)
        shutdown.begin()
        await context.reads.put(submit(2))
        await eventually(lambda: len(context.written) == 2)
        assert not served.done()  # open until the in-flight work is done
        shutdown.end_streams()
        with pytest.raises(Aborted):
            await served
    acks = [a for r in context.written for a in r.acks]
    assert [(a.id, a.code) for a in acks] == [(1, 0), (2, 14)]
    assert context.aborted == (UNAVAILABLE, RESTARTING, HINT)
    assert await shutdown.streams_ended(0.1)


async def test_a_watch_stream_sends_what_finished_then_ends_with_unavailable() -> None:
    core, agents, hub, cache_sync, shutdown = mesh()
    tasks = TaskService(core, agents, hub, cache_sync, 0.0, shutdown=shutdown)
    [a, b] = [s.task_id for s in core.submit([TaskSpec("k"), TaskSpec("k")], 0)]
    context = Context()
    stream = tasks.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=[a, b]), context)
    first = asyncio.create_task(anext(stream))
    await eventually(lambda: not shutdown._none_open.is_set())
    shutdown.begin()
    core.cancel([a], 1)
    assert [t.task_id for t in (await first).tasks] == [a]
    shutdown.end_streams()
    with pytest.raises(Aborted):
        await anext(stream)
    assert context.aborted == (UNAVAILABLE, RESTARTING, HINT)
    assert await shutdown.streams_ended(0.1)


async def test_streams_ended_waits_for_every_open_stream() -> None:
    shutdown = Shutdown()
    assert await shutdown.streams_ended(0)
    wakes = [asyncio.Event(), asyncio.Event()]
    with shutdown.stream(wakes[0]):
        with shutdown.stream(wakes[1]):
            shutdown.end_streams()
            assert all(w.is_set() for w in wakes) and shutdown.ending
            assert not await shutdown.streams_ended(0.01)
        assert not await shutdown.streams_ended(0.01)
    assert await shutdown.streams_ended(0.01)


async def test_a_held_mesh_assigns_nothing_and_leaving_keeps_the_agents_leases() -> None:
    core, agents, _, _, _ = mesh()
    agent, _ = core.register(Registration("a", (), frozenset(), 4, "1", 4), 0)
    stream = Stream("a", agent.session)
    agents.joined(stream)  # type: ignore[arg-type]
    [running] = [s.task_id for s in core.submit([TaskSpec("k")], 0)]
    agents.schedule_dispatch()
    agents.dispatch_now()
    assert stream.assigned == [running]
    agents.hold()
    [queued] = [s.task_id for s in core.submit([TaskSpec("k")], 0)]
    agents.schedule_dispatch()
    agents.dispatch_now()
    await asyncio.sleep(0)
    assert stream.assigned == [running] and core.get(queued).state is TaskState.PENDING

    agents.leave(UNAVAILABLE, RESTARTING)
    assert stream.close_status == (UNAVAILABLE, RESTARTING) and agents.open() == []
    agents.ended(stream)  # type: ignore[arg-type]  # as the stream's handler does when it returns
    rec = core.get(running)
    assert rec.state is TaskState.ASSIGNED and rec.attempt == 1  # not re-queued: the next run holds it
    assert core.registry.session_of("a", agent.session) is not None


async def test_drained_returns_once_no_agent_runs_a_task() -> None:
    core, agents, _, _, _ = mesh()
    agent, _ = core.register(Registration("a", (), frozenset(), 4, "1", 4), 0)
    agents.joined(Stream("a", agent.session))  # type: ignore[arg-type]
    [task_id] = [s.task_id for s in core.submit([TaskSpec("k")], 0)]
    agents.dispatch_now()
    core.dispatch(0)
    assert not await drained(core, 0.05)
    done = asyncio.create_task(drained(core, 5))
    await asyncio.sleep(0.06)
    assert not done.done()
    core.frame("a", agent.session, 1, [ResultIn(task_id, 1, TaskState.SUCCEEDED, Outcome())])
    assert await done
