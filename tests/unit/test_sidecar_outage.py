"""A coordinator outage as the sidecar's connection sees it, without sockets: nothing finished is dropped.

Each test runs `ConnectionManager._session` over fake streams (sidecar_fakes.py):
a stream that ends stands for a coordinator that died, the next stream for
the one that came back on the same address.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import grpc
import pytest

from agent_sidecar.connection import manager
from agent_sidecar.connection.held import MAX_CARRIES
from agent_sidecar.connection.manager import ConnectionManager
from agent_sidecar.wire import success_to_proto
from swarmmesh.v1 import mesh_pb2
from tests.support import eventually
from tests.unit.sidecar_fakes import FakeCall, FakeStub, assign, assignment, make_conn

HELD_LOG = "agent_sidecar.connection"


def gated() -> tuple[dict[str, asyncio.Event], Any]:
    """An async handler that finishes each task when the test sets its gate."""
    gates: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def handler(ctx: Any) -> bytes:
        await gates[ctx.task_id].wait()
        return ctx.task_id.encode()

    return gates, handler


async def up(conn: ConnectionManager, stub: FakeStub) -> asyncio.Task[bool]:
    """Run the next stream until it is registered."""
    session = asyncio.create_task(conn._session(stub))  # type: ignore[arg-type]
    await eventually(lambda: conn.connected, what="registered")
    return session


async def down(conn: ConnectionManager, call: FakeCall, session: asyncio.Task[bool]) -> None:
    """The coordinator goes away under the stream."""
    call.end()
    with pytest.raises(ConnectionError, match="coordinator restarting"):
        await session
    assert not conn.connected


def held(call: FakeCall) -> list[tuple[str, int]]:
    return [(h.task_id, h.attempt) for h in call.register.held]


def keep_results(conn: ConnectionManager, *task_ids: str) -> None:
    """Results finished while no stream is up (their slots already free)."""
    assign(conn, *task_ids)
    for t in task_ids:
        conn.outbox.push_result(success_to_proto(t, 1, b"", "", 1), 0)


async def test_work_finished_during_an_outage_is_handed_over_first() -> None:
    gates, handler = gated()
    conn, runner = make_conn(capacity=4, handler=handler)
    first, second = FakeCall(), FakeCall()
    stub = FakeStub(first, second)
    session = await up(conn, stub)
    first.deliver(assignment("t1"))
    first.deliver(assignment("t2"))
    await eventually(lambda: runner.in_flight == 2, what="both running")

    await down(conn, first, session)
    assert runner.in_flight == 2  # the stream dropping cancels nothing
    gates["t1"].set()
    await eventually(lambda: runner.in_flight == 1, what="t1 finished offline")
    assert conn.outbox.results_queued == 1 and conn.counters.results_kept == 1

    session = await up(conn, stub)
    assert sorted(held(second)) == [("t1", 1), ("t2", 1)]
    # t1's slot is free again, t2's is not: each is granted exactly once.
    assert second.register.credits == 3
    await eventually(lambda: second.results == [("t1", 1)], what="t1 handed over")
    assert second.frames[1].results[0].outcome.output == b"t1"
    gates["t2"].set()
    await eventually(lambda: second.results == [("t1", 1), ("t2", 1)], what="t2 reported on the new stream")
    await eventually(lambda: second.credits == 4, what="t2's credit")
    c = conn.counters
    assert (c.results_handed_over, c.results_dropped) == (1, 0)
    await down(conn, second, session)
    await runner.stop(0)


async def test_results_the_coordinator_had_not_answered_are_kept() -> None:
    conn, runner = make_conn(capacity=4)
    first, second = FakeCall(), FakeCall()
    stub = FakeStub(first, second)
    session = await up(conn, stub)
    for t in ("t1", "t2", "t3"):
        first.deliver(assignment(t))
    await eventually(lambda: len(first.results) == 3, what="three results written")
    # Answered in the order read: t1 recorded, t2 rejected; t3 never answered.
    first.deliver(mesh_pb2.CoordinatorFrame(recorded=1))
    first.deliver(mesh_pb2.CoordinatorFrame(acks=[mesh_pb2.ResultAck(task_id="t2", attempt=1, code=9)]))
    await eventually(lambda: conn.outbox.held.unanswered == 1, what="two answered")
    await down(conn, first, session)

    session = await up(conn, stub)
    assert held(second) == [("t3", 1)]
    await eventually(lambda: second.results == [("t3", 1)], what="t3 sent again")
    await down(conn, second, session)
    await runner.stop(0)


async def test_a_full_buffer_warns_once_and_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    conn, runner = make_conn(capacity=4, held_results_max=2)
    with caplog.at_level(logging.WARNING, logger=HELD_LOG):
        keep_results(conn, "t1", "t2", "t3", "t4", "t5")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "from now on are dropped" in warnings[0], warnings
    c = conn.counters
    assert (c.results_kept, c.results_dropped_full, c.results_dropped) == (2, 3, 3)

    caplog.clear()
    call = FakeCall()
    with caplog.at_level(logging.WARNING, logger=HELD_LOG):
        session = await up(conn, FakeStub(call))
    assert [r.getMessage() for r in caplog.records] == [
        "3 finished result(s) were dropped while the coordinator was unreachable, beyond the 2 kept"
    ]
    await eventually(lambda: call.results == [("t1", 1), ("t2", 1)], what="the kept two")
    await down(conn, call, session)
    await runner.stop(0)


async def test_rejected_handed_over_results_are_counted_quietly(caplog: pytest.LogCaptureFixture) -> None:
    conn, runner = make_conn(capacity=4)
    keep_results(conn, "t1", "t2", "t3")
    calls = FakeCall(), FakeCall()
    stub = FakeStub(*calls)
    session = await up(conn, stub)
    await eventually(lambda: len(calls[0].results) == 3, what="handed over")
    acks = [mesh_pb2.ResultAck(task_id=t, attempt=1, code=code) for t, code in (("t1", 5), ("t2", 7), ("t3", 9))]
    with caplog.at_level(logging.DEBUG, logger=HELD_LOG):
        calls[0].deliver(mesh_pb2.CoordinatorFrame(acks=acks))
        await eventually(lambda: conn.counters.handed_over_rejected == 3, what="rejections counted")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert conn.outbox.held.unanswered == 0
    # A result of this stream's own assignment is still worth a warning when refused.
    calls[0].deliver(assignment("t4"))
    await eventually(lambda: len(calls[0].results) == 4, what="t4 written")
    with caplog.at_level(logging.WARNING, logger=HELD_LOG):
        calls[0].deliver(mesh_pb2.CoordinatorFrame(acks=[mesh_pb2.ResultAck(task_id="t4", attempt=1, code=5)]))
        await eventually(lambda: conn.counters.acks_not_found == 2, what="t4 rejected")
    assert any("rejected result t4#1" in r.getMessage() for r in caplog.records)
    await down(conn, calls[0], session)

    # Answered is answered: nothing is sent again.
    session = await up(conn, stub)
    assert held(calls[1]) == []
    await down(conn, calls[1], session)
    assert calls[1].results == []
    await runner.stop(0)


async def test_register_lists_at_most_capacity_results_first() -> None:
    gates, handler = gated()
    conn, runner = make_conn(capacity=2, handler=handler)
    conn._handle_frame(assignment("run"))
    keep_results(conn, "r1", "r2", "r3")
    call = FakeCall()
    session = await up(conn, FakeStub(call))
    assert held(call) == [("r1", 1), ("r2", 1)]
    await eventually(lambda: call.results == [("r1", 1), ("r2", 1), ("r3", 1)], what="all three sent")
    gates["run"].set()
    await eventually(lambda: len(call.results) == 4, what="the running one reports")
    await down(conn, call, session)
    await runner.stop(0)


async def test_a_result_whose_streams_keep_ending_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    conn, runner = make_conn(capacity=2)
    keep_results(conn, "t1")
    calls = [FakeCall() for _ in range(MAX_CARRIES + 2)]
    stub = FakeStub(*calls)
    with caplog.at_level(logging.WARNING, logger=HELD_LOG):
        for call in calls[:-1]:
            session = await up(conn, stub)
            await eventually(lambda call=call: call.results == [("t1", 1)], what="t1 sent")  # type: ignore[misc]
            await down(conn, call, session)
    assert conn.counters.results_dropped == 1
    assert any("the stream ended 4 times" in r.getMessage() for r in caplog.records)
    session = await up(conn, stub)
    assert held(calls[-1]) == []
    await down(conn, calls[-1], session)
    assert calls[-1].results == []
    await runner.stop(0)


async def test_backoff_starts_over_after_a_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    conn, runner = make_conn(coordinator="127.0.0.1:1")
    failures: list[int] = []
    attempts = 0
    hang = asyncio.Event()

    def delay(rng: object, n: int, initial_s: float, max_s: float) -> float:
        failures.append(n)
        return 0.0

    async def session(stub: object) -> bool:
        nonlocal attempts
        attempts += 1
        if attempts > 4:
            await hang.wait()
        # The third attempt registers, then its coordinator goes away to restart.
        conn._session_registered = attempts == 3
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                   details="coordinator restarting")

    monkeypatch.setattr(manager, "backoff_delay", delay)
    monkeypatch.setattr(conn, "_session", session)
    conn.start()
    await eventually(lambda: attempts == 5, what="five attempts")
    await conn.close(1)
    assert failures == [0, 1, 0, 1]
    assert conn.counters.connect_failures == 3
    await runner.stop(0)
