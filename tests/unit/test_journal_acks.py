"""A client session's replies wait for the journal's commit; its reading does not."""

from __future__ import annotations

import asyncio

import pytest

from coordinator.core.mesh import MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskRecord, TaskState
from coordinator.service.cache_sync import CacheSync
from coordinator.service.durability import NotDurable, committed
from coordinator.service.effects import AgentSessions
from coordinator.service.session import ClientSession
from coordinator.service.watch import WatchHub
from swarmmesh.v1 import tasks_pb2, types_pb2


class Commits:
    """A journal whose commits happen when the test says."""

    def __init__(self) -> None:
        self.ticket = 0
        self.done = 0
        self.error: Exception | None = None
        self._moved = asyncio.Event()

    def record(self, rec: TaskRecord, old: TaskState | None) -> None:
        self.ticket += 1

    def commit(self, upto: int | None = None) -> None:
        self.done = self.ticket if upto is None else upto
        self._moved.set()

    async def wait_committed(self, ticket: int) -> None:
        while self.done < ticket:
            if self.error is not None:
                raise self.error
            self._moved.clear()
            await self._moved.wait()


def session() -> tuple[MeshCore, ClientSession, Commits]:
    core = MeshCore()
    commits = Commits()
    hub = WatchHub()
    core.add_listener(commits.record)
    core.add_listener(hub.on_change)
    agents = AgentSessions(core)
    return core, ClientSession(core, agents, hub, CacheSync(core, agents), commits), commits


def submit(item_id: int, n: int = 1) -> tasks_pb2.SessionRequest:
    return tasks_pb2.SessionRequest(submits=[tasks_pb2.SessionSubmit(
        id=item_id, tasks=[types_pb2.TaskSpec(kind="k") for _ in range(n)])])


async def test_acks_go_out_after_their_commit_while_the_session_keeps_reading() -> None:
    _, sess, commits = session()
    sess.handle(submit(1, 3))
    first = commits.ticket
    settling = asyncio.ensure_future(sess.settle())
    await asyncio.sleep(0)
    sess.handle(submit(2))  # read and handled while the first commit is awaited
    assert not settling.done() and sess.take() is None
    commits.commit(first)
    await asyncio.wait_for(settling, 5)
    response = sess.take()
    assert response is not None and [a.id for a in response.acks] == [1] and len(response.acks[0].tasks) == 3
    assert sess.take() is None  # ack 2 waits for the commit that holds its task
    settling = asyncio.ensure_future(sess.settle())
    await asyncio.sleep(0)
    assert not settling.done()
    commits.commit()
    await asyncio.wait_for(settling, 5)
    response = sess.take()
    assert response is not None and [a.id for a in response.acks] == [2]


async def test_a_finished_task_goes_out_after_the_commit_of_its_completion() -> None:
    core, sess, commits = session()
    agent, _ = core.register(Registration("a", (), frozenset(), 4, "1", 4), 0)
    sess.handle(submit(1))
    commits.commit()
    await sess.settle()
    response = sess.take()
    assert response is not None
    [task] = response.acks[0].tasks
    sess.handle(tasks_pb2.SessionRequest(watches=[tasks_pb2.SessionWatch(id=2, task_ids=[task.task_id])]))
    core.dispatch(0)
    core.frame("a", agent.session, 1, [ResultIn(task.task_id, 1, TaskState.SUCCEEDED, Outcome(output=b"o"))])
    settling = asyncio.ensure_future(sess.settle())
    await asyncio.sleep(0)
    assert not settling.done() and sess.take() is None
    commits.commit()
    await asyncio.wait_for(settling, 5)
    response = sess.take()
    assert response is not None and [a.id for a in response.acks] == [2]
    assert [t.task_id for t in response.finished] == [task.task_id]


async def test_without_a_journal_nothing_waits() -> None:
    core = MeshCore()
    agents = AgentSessions(core)
    sess = ClientSession(core, agents, WatchHub(), CacheSync(core, agents))
    sess.handle(submit(1))
    await asyncio.wait_for(sess.settle(), 1)
    response = sess.take()
    assert response is not None and [a.id for a in response.acks] == [1]


async def test_a_failed_commit_is_not_durable() -> None:
    commits = Commits()
    commits.ticket = 1
    commits.error = OSError("disk full")
    with pytest.raises(NotDurable, match="disk full"):
        await committed(commits)
    await committed(None)
