"""A broken, ended or closed session stream: what its waiting callers get, that the next
call opens a new one, and that no task of the old one is left behind."""

from __future__ import annotations

import asyncio
import gc

import grpc
import pytest

from swarmmesh import errors
from swarmmesh.client import AsyncClient
from swarmmesh.testing import FakeCoordinator, SessionScript, rpc_error
from swarmmesh.types import TaskSpec
from swarmmesh.v1 import tasks_pb2
from tests.support import eventually


async def test_with_retries_off_a_broken_stream_fails_pending_submits_and_the_next_submit_reopens() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False, hold={"w"})]
    c = AsyncClient(channel=fake.channel(), reconnect_timeout=0)
    pending = asyncio.create_task(c.submit("k"))
    waiting = asyncio.create_task(c.wait("w"))
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].held_submits) == 1
                     and len(fake.sessions[0].watches) == 1)
    first = fake.sessions[0]
    first.fail(rpc_error(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    with pytest.raises(errors.Unavailable, match="connection reset"):
        await pending
    with pytest.raises(errors.Unavailable, match="connection reset"):
        await waiting  # no progress on that session: no rewatch
    assert await c.submit("k", "again") == "t1"
    assert len(fake.sessions) == 2
    assert [len(s.tasks) for s in fake.sessions[1].submits] == [1]


async def break_under_a_pending_submit(error: BaseException | None, match: str | None = None
                                       ) -> tuple[FakeCoordinator, AsyncClient]:
    """A client whose first session ends (with `error`, or cleanly) while a submit waits for
    its ack; that submit must fail with Unavailable."""
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False)]
    c = AsyncClient(channel=fake.channel())
    pending = asyncio.create_task(c.submit("k"))
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].held_submits) == 1)
    fake.sessions[0].fail(error)
    with pytest.raises(errors.Unavailable, match=match):
        await pending
    return fake, c


async def test_a_stream_that_ends_cleanly_fails_pending_submits() -> None:
    fake, c = await break_under_a_pending_submit(None, "ended the session")
    assert await c.submit("k") == "t1"
    assert len(fake.sessions) == 2


async def test_a_failed_write_maps_its_error_and_the_next_submit_reopens() -> None:
    fake = FakeCoordinator()
    fake.session_script = [
        SessionScript(write_error=rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "frame too large"))
    ]
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.ResourceExhausted, match="frame too large"):
        await c.submit("k")
    assert await c.submit("k") == "t1"
    assert len(fake.sessions) == 2


async def test_closed_client_refuses_calls() -> None:
    c = AsyncClient(channel=FakeCoordinator().channel())
    await c.close()
    await c.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await c.get("x")
    with pytest.raises(RuntimeError, match="closed"):
        await c.submit("k")
    with pytest.raises(RuntimeError, match="closed"):
        await c.wait("x")


async def test_close_cancels_the_session_and_fails_what_waits_on_it() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False, hold={"w"})]
    c = AsyncClient(channel=fake.channel())
    pending = asyncio.create_task(c.submit("k"))
    waiting = asyncio.create_task(c.wait("w"))
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].writes) >= 1
                     and len(fake.sessions[0].held_submits) == 1 and len(fake.sessions[0].watches) == 1)
    session = c._session
    assert session is not None
    await c.close()
    assert fake.sessions[0].cancelled
    with pytest.raises(errors.Unavailable, match="closed"):
        await pending
    with pytest.raises(errors.Unavailable, match="closed"):
        await waiting
    assert session._writer.done() and session._reader.done()
    await c.close()  # idempotent
    assert len(fake.sessions) == 1
    with pytest.raises(RuntimeError, match="closed"):
        await c.submit("k")


async def test_concurrent_submit_many_each_get_their_own_error() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel(), reconnect_timeout=0)  # the break is the error to get
    a = asyncio.create_task(c.submit_many([TaskSpec("k", "a0"), TaskSpec("k", "a1")], batch_size=1))
    b = asyncio.create_task(c.submit_many([TaskSpec("k", "b0"), TaskSpec("k", "b1")], batch_size=1))
    accept = fake.accept
    held = []

    def hold_second_batches(sub):
        if sub.tasks[0].payload.endswith(b"1"):
            held.append(sub)
            return tasks_pb2.SessionAck(id=0)  # unanswered: the batch stays pending
        return accept(sub)

    fake.accept = hold_second_batches
    await eventually(lambda: len(held) == 2)
    fake.sessions[0].fail(rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))
    ea = await asyncio.gather(a, return_exceptions=True)
    eb = await asyncio.gather(b, return_exceptions=True)
    ea, eb = ea[0], eb[0]
    ida = {t for t, s in fake.accepted.items() if s.payload == b"a0"}
    idb = {t for t, s in fake.accepted.items() if s.payload == b"b0"}
    assert ea is not eb and len(ea.__notes__) == 1
    assert ea.accepted_task_ids == tuple(ida)
    assert eb.accepted_task_ids == tuple(idb)


async def test_a_write_error_ends_the_broken_sessions_tasks() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(write_error=rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))]
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.Unavailable):
        await c.submit("k")
    old = c._session
    assert await c.submit("k") == "t1"  # a new session
    await c.close()
    assert old._writer.done()


async def test_a_read_error_ends_the_broken_sessions_writer() -> None:
    _, c = await break_under_a_pending_submit(rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))
    old = c._session
    assert await c.submit("k") == "t1"  # a new session replaces it
    await c.close()  # closes only the new one
    assert old._writer.done()


async def test_close_during_as_completed_after_progress_raises_unavailable() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"b"})]
    c = AsyncClient(channel=fake.channel())
    stream = c.as_completed(["a", "b"])
    assert (await anext(stream)).task_id == "a"
    nxt = asyncio.create_task(anext(stream))
    await eventually(lambda: "b" in c._session._routes and not nxt.done())
    await c.close()
    exc = (await asyncio.gather(nxt, return_exceptions=True))[0]
    assert isinstance(exc, errors.Unavailable)


async def test_no_session_task_is_left_pending(caplog: pytest.LogCaptureFixture) -> None:
    fake, c = await break_under_a_pending_submit(rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))
    assert await c.submit("k") == "t1"
    fake.sessions.pop(0)
    for _ in range(3):
        gc.collect()
    assert not any("destroyed but it is pending" in r.getMessage() for r in caplog.records)
    await c.close()
