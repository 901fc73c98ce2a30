"""Client: the AsyncClient API on its own loop, against swarmmesh.testing's fake."""

from __future__ import annotations

import threading

import grpc
import pytest

from swarmmesh import errors
from swarmmesh.sync_client import Client
from swarmmesh.testing import FakeChannel, FakeCoordinator, SessionScript, rpc_error
from swarmmesh.types import TaskSpec, TaskState
from swarmmesh.v1 import types_pb2


def test_sync_client_wraps_the_async_one() -> None:
    fake = FakeCoordinator()
    fake.listed_total = 7
    fake.agents = [types_pb2.Agent(agent_id="a1", state=types_pb2.AGENT_STATE_READY)]
    fake.failing["GetStats"] = rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
    with Client(channel_factory=fake.channel) as c:
        assert c.submit("k", "x") == "t1"
        assert [s.task_id for s in c.submit_many([TaskSpec("k")] * 3, batch_size=2)] == ["t2", "t3", "t4"]
        assert c.get("z").task_id == "z"
        assert c.wait("q").ok
        assert list(c.wait_all(["b", "a", "b"])) == ["b", "a"]
        assert [t.task_id for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
        assert c.list_tasks("failed").total == 7
        assert c.cancel(["a"])[0].state is TaskState.CANCELLED
        assert c.agents()[0].agent_id == "a1"
        assert c.drain_agent("a1").agent_id == "a1"
        with pytest.raises(errors.Unavailable):
            c.stats()
        with pytest.raises(errors.InvalidArgument, match="kind: is required"):
            c.submit("")
        (call,) = fake.sessions  # everything went over one session
        assert [len(s.tasks) for s in call.submits] == [1, 2, 1, 1]
        assert [list(w.task_ids) for w in call.watches] == [["q"], ["b", "a"], ["a", "b", "c"]]
        assert not call.cancelled
    assert call.cancelled  # closing the client cancelled the session
    c.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        c.get("x")
    with pytest.raises(RuntimeError, match="closed"):
        c.submit("k")


def test_sync_wait_timeout() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a"})]
    with Client(channel_factory=fake.channel) as c:
        with pytest.raises(errors.WaitTimeout, match="1 of 1"):
            c.wait("a", timeout=0.05)


def test_sync_as_completed_break_stops_routing() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"b"})]
    with Client(channel_factory=fake.channel) as c:
        stream = c.as_completed(["a", "b"])
        assert next(stream).task_id == "a"
        stream.close()
        session = c._async._session
        assert session is not None and "b" not in session._routes
        (call,) = fake.sessions
        assert not call.cancelled
        assert c.wait("c").task_id == "c"  # the session keeps working
        assert len(fake.sessions) == 1


def test_sync_as_completed_raises_watch_errors() -> None:
    fake = FakeCoordinator()
    fake.max_watched = 1
    with Client(channel_factory=fake.channel) as c:
        with pytest.raises(errors.ResourceExhausted, match="limit of 1"):
            list(c.as_completed(["a", "b"]))
        fake.unknown = {"nope"}
        with pytest.raises(errors.NotFound, match="'nope'"):
            c.wait("nope")


def test_sync_submit_reopens_after_a_broken_session() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(write_error=rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))]
    with Client(channel_factory=fake.channel) as c:
        with pytest.raises(errors.Unavailable, match="reset"):
            c.submit("k")
        assert c.submit("k") == "t1"
        assert len(fake.sessions) == 2


def test_a_channel_from_the_factory_is_made_on_the_clients_loop_and_closed_with_it() -> None:
    fake = FakeCoordinator()
    made: list[tuple[FakeChannel, str]] = []

    def factory() -> FakeChannel:
        made.append((fake.channel(), threading.current_thread().name))
        return made[-1][0]

    with Client(channel_factory=factory) as c:
        assert c.submit("k") == "t1"
        ((channel, thread),) = made
        assert thread == "swarmmesh-client" and not channel.closed
    assert channel.closed
