"""The client across a coordinator outage, against swarmmesh.testing's fake: idempotency keys
on every submission, submissions sent again under them, waits watched again on new streams,
retry hints honoured, and giving up once reconnect_timeout has passed without an answer."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from swarmmesh import errors
from swarmmesh._retry import Backoff, KeyMaker, Retrying
from swarmmesh.client import AsyncClient
from swarmmesh.sync_client import Client
from swarmmesh.testing import FakeCoordinator, SessionScript, finished_task, rpc_error
from swarmmesh.types import TaskSpec
from swarmmesh.v1 import tasks_pb2, types_pb2
from tests.support import eventually

RESTARTING = "the coordinator is restarting"


def unavailable(details: str = RESTARTING, pushback_ms: int | None = None) -> grpc.aio.AioRpcError:
    trailer = grpc.aio.Metadata() if pushback_ms is None else grpc.aio.Metadata(
        ("grpc-retry-pushback-ms", str(pushback_ms)))
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), trailer, details=details)


def down(n: int) -> list[SessionScript]:
    """`n` streams of a coordinator that is away: each fails on its first write, unanswered."""
    return [SessionScript(write_error=unavailable("connection refused")) for _ in range(n)]


def client(fake: FakeCoordinator, window_s: float = 5.0) -> AsyncClient:
    c = AsyncClient(channel=fake.channel(), reconnect_timeout=window_s)
    c._backoff = Backoff(window_s=window_s, initial_s=0.002, max_s=0.01)  # quick pauses for the tests
    return c


async def reached(c: AsyncClient, fake: FakeCoordinator) -> None:
    """The client got an answer once, as after any first call to a coordinator that is up."""
    await c.wait("warm")
    assert c._session is not None and c._session.answered


# -- keys -------------------------------------------------------------------------


async def test_every_submitted_spec_carries_an_idempotency_key_and_the_callers_is_kept() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    await c.submit("k")
    await c.submit("k", idempotency_key="mine")
    await c.submit_many([TaskSpec("k")] * 3)  # the same spec three times: three tasks, three keys
    keys = [t.idempotency_key for s in fake.sessions[0].submits for t in s.tasks]
    assert keys[1] == "mine"
    made = [keys[0], *keys[2:]]
    assert all(made) and len(set(made)) == 4
    assert len(fake.accepted) == 5


def test_keys_are_unique_across_clients() -> None:
    a, b = KeyMaker(), KeyMaker()
    msgs = [types_pb2.TaskSpec(kind="k") for _ in range(4)]
    assert a.fill(msgs[:2]) == [True, True] and b.fill(msgs[2:]) == [True, True]
    assert len({m.idempotency_key for m in msgs}) == 4
    given = types_pb2.TaskSpec(kind="k", idempotency_key="x")
    assert a.fill([given]) == [False] and given.idempotency_key == "x"


# -- submissions --------------------------------------------------------------------


async def test_a_submission_whose_stream_broke_before_its_ack_is_sent_again_under_the_same_key() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False), *down(2)]
    c = client(fake)
    await reached(c, fake)
    pending = asyncio.create_task(c.submit_many([TaskSpec("k", "a"), TaskSpec("k", "b")]))
    first = fake.sessions[0]
    await eventually(lambda: len(first.held_submits) == 1)
    (sent,) = first.held_submits
    fake.accept(sent)  # committed by the coordinator, whose answer is lost with the stream
    first.fail(unavailable())
    submitted = await pending
    assert [t.task_id for t in submitted] == ["t1", "t2"]
    assert not any(t.deduplicated for t in submitted)  # the client's own resend, not another's task
    assert len(fake.accepted) == 2 and len(fake.sessions) == 4
    (resent,) = fake.sessions[3].submits
    assert [t.idempotency_key for t in resent.tasks] == [t.idempotency_key for t in sent.tasks]


async def test_a_deduplicated_answer_under_the_callers_own_key_stays_deduplicated() -> None:
    fake = FakeCoordinator()
    c = client(fake)
    first = await c.submit_many([TaskSpec("k", idempotency_key="job-1")])
    again = await c.submit_many([TaskSpec("k", idempotency_key="job-1")])
    assert first[0].task_id == again[0].task_id and again[0].deduplicated


async def test_an_unavailable_ack_is_retried_after_its_hint_on_the_same_stream() -> None:
    fake = FakeCoordinator()
    accept = fake.accept
    refused: list[float] = []
    loop = asyncio.get_running_loop()

    def shutting_down_once(sub: tasks_pb2.SessionSubmit) -> tasks_pb2.SessionAck:
        if not refused:
            refused.append(loop.time())
            return tasks_pb2.SessionAck(id=sub.id, code=grpc.StatusCode.UNAVAILABLE.value[0],
                                        message="the coordinator is shutting down", retry_after_ms=80)
        return accept(sub)

    fake.accept = shutting_down_once  # type: ignore[method-assign]
    c = client(fake)
    assert await c.submit("k") == "t1"
    assert loop.time() - refused[0] >= 0.08
    assert len(fake.sessions) == 1 and len(fake.sessions[0].submits) == 2


async def test_a_stream_ended_with_a_pushback_trailer_waits_that_long() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False)]
    c = client(fake)
    await reached(c, fake)
    loop = asyncio.get_running_loop()
    pending = asyncio.create_task(c.submit("k"))
    await eventually(lambda: len(fake.sessions[0].held_submits) == 1)
    broke = loop.time()
    fake.sessions[0].fail(unavailable(pushback_ms=100))
    assert await pending == "t1"
    assert loop.time() - broke >= 0.1 and len(fake.sessions) == 2


def test_the_pushback_trailer_becomes_retry_after_ms() -> None:
    assert errors.from_rpc_error(unavailable(pushback_ms=250)).retry_after_ms == 250
    assert errors.from_rpc_error(unavailable()).retry_after_ms == 0
    bad = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                               grpc.aio.Metadata(("grpc-retry-pushback-ms", "soon")), details="x")
    assert errors.from_rpc_error(bad).retry_after_ms == 0


async def test_a_coordinator_that_never_answered_fails_at_once() -> None:
    fake = FakeCoordinator()
    fake.session_script = down(5)
    c = client(fake)
    with pytest.raises(errors.Unavailable, match="connection refused"):
        await c.submit("k")
    with pytest.raises(errors.Unavailable, match="connection refused"):
        await c.wait("x")
    assert len(fake.sessions) == 2


async def test_a_submission_gives_up_once_reconnect_timeout_passes_without_an_answer() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(), *down(10_000)]
    c = client(fake, window_s=0.15)
    await reached(c, fake)
    fake.sessions[0].fail(unavailable())
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(errors.Unavailable, match="connection refused") as info:
        await c.submit("k")
    assert 0.1 <= loop.time() - started < 2
    assert any("reconnect_timeout=0.15" in note for note in info.value.__notes__)
    assert len(fake.sessions) > 3


async def test_errors_other_than_unavailable_are_not_retried() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False)]
    c = client(fake)
    await reached(c, fake)
    pending = asyncio.create_task(c.submit("k"))
    await eventually(lambda: len(fake.sessions[0].held_submits) == 1)
    fake.sessions[0].fail(rpc_error(grpc.StatusCode.PERMISSION_DENIED, "no entry"))
    with pytest.raises(errors.PermissionDenied):
        await pending
    with pytest.raises(errors.InvalidArgument):
        await c.submit("")
    assert len(fake.sessions) == 2


# -- waits ----------------------------------------------------------------------------


async def test_a_wait_is_watched_again_across_an_outage_with_no_progress_in_between() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a", "b"}), *down(3), SessionScript(break_after=0, error=None),
                           SessionScript(hold={"b"})]
    c = client(fake)
    waiting = asyncio.create_task(c.wait_all(["a", "b"]))
    await eventually(lambda: len(fake.sessions[0].watches) == 1)
    fake.sessions[0].fail(unavailable())
    await eventually(lambda: len(fake.sessions) == 6 and len(fake.sessions[5].watches) == 1)
    last = fake.sessions[5]
    assert list(last.watches[0].task_ids) == ["a", "b"]
    last.finish(finished_task("b"))
    result = await waiting
    assert list(result) == ["a", "b"] and all(t.ok for t in result.values())


async def test_as_completed_yields_each_task_once_across_restarts() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(break_after=1), *down(2), SessionScript(break_after=1), *down(2)]
    c = client(fake)
    seen = [t.task_id async for t in c.as_completed(["a", "b", "c"])]
    assert seen == ["a", "b", "c"]
    watched = [[list(w.task_ids) for w in s.watches] for s in fake.sessions]
    assert watched[0] == [["a", "b", "c"]] and watched[3] == [["b", "c"]] and watched[-1] == [["c"]]


async def test_a_wait_gives_up_once_reconnect_timeout_passes_without_an_answer() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a"}), *down(10_000)]
    c = client(fake, window_s=0.1)
    waiting = asyncio.create_task(c.wait("a"))
    await eventually(lambda: len(fake.sessions[0].watches) == 1)
    fake.sessions[0].fail(unavailable())
    with pytest.raises(errors.Unavailable, match="connection refused"):
        await waiting


async def test_closing_the_client_during_a_pause_ends_the_wait_with_unavailable() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a"}), *down(10_000)]
    c = client(fake)
    c._backoff = Backoff(window_s=5, initial_s=0.05, max_s=0.05)
    waiting = asyncio.create_task(c.wait("a"))
    await eventually(lambda: len(fake.sessions[0].watches) == 1)
    fake.sessions[0].fail(unavailable())
    await eventually(lambda: len(fake.sessions) >= 2)
    await c.close()
    with pytest.raises(errors.Unavailable):
        await waiting


# -- run ------------------------------------------------------------------------------------


async def test_run_submits_waits_and_returns_the_results_in_input_order_across_a_break() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"t1", "t2", "t3"}), *down(2)]
    fake.states = {"t2": types_pb2.TASK_STATE_FAILED}
    c = client(fake)
    running = asyncio.create_task(c.run([TaskSpec("k", str(i)) for i in range(3)], batch_size=2))
    await eventually(lambda: len(fake.sessions[0].watches) == 1)
    fake.sessions[0].finish(finished_task("t3"))
    fake.sessions[0].fail(unavailable())
    results = await running
    assert [t.task_id for t in results] == ["t1", "t2", "t3"]
    assert [t.ok for t in results] == [True, False, True]
    assert list(fake.sessions[3].watches[0].task_ids) == ["t1", "t2"]


def test_the_sync_client_runs_and_rides_out_a_break() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(break_after=1), *down(1)]
    with Client(channel_factory=fake.channel, reconnect_timeout=5) as c:
        results = c.run([TaskSpec("k")] * 3)
        assert [t.task_id for t in results] == ["t1", "t2", "t3"] and all(t.ok for t in results)
        assert len(fake.sessions) == 3


# -- the backoff ------------------------------------------------------------------------------


def test_pauses_grow_with_jitter_up_to_the_cap_and_a_hint_wins() -> None:
    b = Backoff(initial_s=0.1, max_s=1.0)
    assert [b.pause(n, 0, lambda: 0.0) for n in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert [b.pause(n, 0, lambda: 1.0) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.pause(9, 250, lambda: 0.0) == 0.25
    assert b.pause(0, 250, lambda: 1.0) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="reconnect_timeout"):
        Backoff(window_s=-1)


async def test_the_window_starts_again_when_the_coordinator_answers() -> None:
    now = [0.0]
    r = Retrying(Backoff(window_s=1.0, initial_s=0.2, max_s=0.2), clock=lambda: now[0], rng=lambda: 1.0)
    exc = errors.Unavailable("away")
    await r.pause(exc)  # 0.2 s of a 1 s window
    now[0] = 0.9
    with pytest.raises(errors.Unavailable) as info:
        await r.pause(exc)
    assert "gave up after 0.9 s" in info.value.__notes__[0]
    stream = object()
    r.heard_from(stream)
    await r.pause(exc)  # a whole window again
    now[0] = 1.85
    r.heard_from(stream)  # the same stream again: no new answer
    with pytest.raises(errors.Unavailable):
        await r.pause(exc)
