"""ConnectionManager without sockets: write coalescing, credits, backoff, acks."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from agent_sidecar.config import SidecarConfig
from agent_sidecar.connection.channel import backoff_delay, channel_options
from agent_sidecar.threads import HandlerThreads
from agent_sidecar.wire import failure_to_proto, success_to_proto
from swarmmesh.v1 import mesh_pb2
from tests.support import eventually
from tests.unit.sidecar_fakes import FakeCall, assign, assignment, make_conn


async def test_writes_are_coalesced_while_a_write_is_in_flight() -> None:
    conn, runner = make_conn()
    call = FakeCall()
    call.gate.clear()  # the first write stays in flight until we say so
    writer = asyncio.create_task(conn._write_loop(call))
    ids = [f"t{i}" for i in range(101)]
    assign(conn, *ids)
    conn.outbox.push_result(success_to_proto("t0", 1, b"", "", 1), 1)
    await asyncio.wait_for(call.writing.wait(), 1)
    for t in ids[1:]:
        conn.outbox.push_result(success_to_proto(t, 1, b"", "", 1), 1)
    conn.outbox.push_heartbeat(mesh_pb2.Heartbeat(in_flight=1))
    conn.outbox.push_heartbeat(mesh_pb2.Heartbeat(in_flight=2))  # only the latest one is sent
    assert len(call.frames) == 1
    call.gate.set()
    await eventually(lambda: len(call.frames) >= 2)
    assert [len(f.results) for f in call.frames] == [1, 100]
    assert [f.credits for f in call.frames] == [1, 100]
    assert call.frames[1].heartbeat.in_flight == 2
    assert conn.counters.frames_sent == 2 and conn.counters.results_sent == 101
    conn._half_close = True
    conn.outbox.wake()
    await asyncio.wait_for(writer, 1)
    assert call.half_closed
    await runner.stop(0)


async def test_draining_frames_grant_no_credits() -> None:
    conn, runner = make_conn()
    assign(conn, "t1")
    conn.outbox.push_result(failure_to_proto("t1", 1, "x", "handler_error"), 1)
    conn.set_draining()
    frame = conn.outbox.take_frame()
    assert frame is not None
    assert frame.draining and frame.credits == 0 and len(frame.results) == 1
    conn.outbox.push_result(None, 1)
    assert conn.outbox.take_frame() is None  # nothing to say: the drain flag already went out
    await runner.stop(0)


async def test_results_of_attempts_not_assigned_here_are_dropped() -> None:
    conn, runner = make_conn()
    conn.outbox.push_result(success_to_proto("old", 1, b"", "", 1), 1)
    assert conn.counters.results_dropped == 1
    frame = conn.outbox.take_frame()
    assert frame is not None and list(frame.results) == [] and frame.credits == 1
    await runner.stop(0)


async def test_register_grants_exactly_the_free_slots() -> None:
    gate = threading.Event()
    conn, runner = make_conn(capacity=4, handler=lambda ctx: gate.wait(5))
    conn._handle_frame(assignment("t1"))
    conn.outbox.push_result(None, 3)  # credits queued for a stream that is gone
    register = conn._new_register()
    assert register.credits == 3 and register.capacity == 4 and register.agent_id == "a"
    assert [(h.task_id, h.attempt) for h in register.held] == [("t1", 1)]
    assert conn.outbox.credits == 0
    # t1 was assigned on the old stream: its result is kept for the new one,
    # and its slot returns as a credit.
    gate.set()
    await runner.wait_idle(5)
    frame = conn.outbox.take_frame()
    assert frame is not None and frame.credits == 1 and [r.task_id for r in frame.results] == ["t1"]
    await runner.stop(0)


async def test_acks_are_counted_by_code() -> None:
    conn, runner = make_conn()
    codes = [0, 0, 9, 5, 7, 3]
    acks = [mesh_pb2.ResultAck(task_id=f"t{i}", attempt=1, code=c) for i, c in enumerate(codes)]
    conn._handle_frame(mesh_pb2.CoordinatorFrame(acks=acks))
    c = conn.counters
    assert (c.acks_ok, c.acks_stale, c.acks_not_found, c.acks_denied, c.acks_other) == (2, 1, 1, 1, 1)
    await runner.stop(0)


async def test_drain_request_calls_back_once() -> None:
    conn, runner = make_conn()
    calls: list[int] = []
    conn._on_drain_requested = lambda: calls.append(1)
    conn._handle_frame(mesh_pb2.CoordinatorFrame(drain=True))
    conn._handle_frame(mesh_pb2.CoordinatorFrame(drain=True))
    assert calls == [1]
    await runner.stop(0)


def test_backoff_is_full_jitter_capped_exponential() -> None:
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    caps = [backoff_delay(Top(), n, 0.1, 5.0) for n in range(8)]
    assert caps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    rng = random.Random(7)
    for n in range(100):
        assert 0.0 <= backoff_delay(rng, n, 0.1, 5.0) <= min(5.0, 0.1 * 2**n)


def test_channel_options() -> None:
    opts = dict(channel_options(SidecarConfig()))
    assert opts["grpc.keepalive_time_ms"] == 10_000
    assert opts["grpc.keepalive_timeout_ms"] == 5_000
    assert opts["grpc.keepalive_permit_without_calls"] == 1
    assert opts["grpc.max_send_message_length"] == opts["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.max_reconnect_backoff_ms"] == 5_000


async def test_handler_threads() -> None:
    pool = HandlerThreads(2)
    assert await pool.submit(lambda x: x * 2, 21) == 42
    with pytest.raises(ValueError, match="bad"):
        await pool.submit(lambda: (_ for _ in ()).throw(ValueError("bad")))

    def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(RuntimeError, match="SystemExit: 3"):
        await pool.submit(exits)
    many = await asyncio.gather(*(pool.submit(lambda i=i: i) for i in range(50)))
    assert many == list(range(50))
    assert pool.busy == 0
    assert len(pool._threads) <= 2
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
