"""Runner: bounded concurrency, outcomes, deadlines, cancels and latency stats."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from agent_sidecar.handlers import HandlerRegistry, TaskContext
from agent_sidecar.metrics import KindStats, LatencyTracker
from agent_sidecar.runner.runner import Runner
from swarmmesh.v1 import mesh_pb2, types_pb2
from tests.support import eventually

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED
FAILED = types_pb2.TASK_STATE_FAILED


class Sink:
    """Collects what the runner hands to the connection."""

    def __init__(self) -> None:
        self.calls: list[tuple[mesh_pb2.TaskResult | None, int]] = []

    def __call__(self, result: mesh_pb2.TaskResult | None, credits: int) -> None:
        self.calls.append((result, credits))

    @property
    def results(self) -> list[mesh_pb2.TaskResult]:
        return [r for r, _ in self.calls if r is not None]

    @property
    def credits(self) -> int:
        return sum(c for _, c in self.calls)

    def result(self, task_id: str) -> mesh_pb2.TaskResult:
        (found,) = [r for r in self.results if r.task_id == task_id]
        return found


def assignment(
    task_id: str, kind: str = "k", payload: bytes = b"", timeout_ms: int = 0
) -> mesh_pb2.Assignment:
    return mesh_pb2.Assignment(task_id=task_id, attempt=1, kind=kind, payload=payload, timeout_ms=timeout_ms)


def make_runner(
    handlers: dict[str, Callable[[TaskContext], object]], capacity: int = 4
) -> tuple[Runner, Sink]:
    reg = HandlerRegistry()
    for kind, fn in handlers.items():
        reg.register(kind, fn)
    sink = Sink()
    return Runner(reg, capacity=capacity, agent_id="agent-1", on_result=sink), sink


@pytest.fixture
async def cleanup() -> AsyncIterator[list[Runner]]:
    runners: list[Runner] = []
    yield runners
    for r in runners:
        await r.stop(0)


async def test_sync_and_async_success(cleanup: list[Runner]) -> None:
    async def aecho(ctx: TaskContext) -> dict[str, object]:
        return {"echo": ctx.text(), "agent": ctx.agent_id}

    def secho(ctx: TaskContext) -> str:
        assert threading.current_thread() is not threading.main_thread()  # never on the loop
        return ctx.text().upper()

    runner, sink = make_runner({"a": aecho, "s": secho})
    cleanup.append(runner)
    runner.submit(assignment("t1", "a", b"hi"))
    runner.submit(assignment("t2", "s", b"hi"))
    await eventually(lambda: len(sink.results) == 2)
    r1, r2 = sink.result("t1"), sink.result("t2")
    assert r1.state == SUCCEEDED and r1.attempt == 1
    assert r1.outcome.output == b'{"echo":"hi","agent":"agent-1"}'
    assert r1.outcome.content_type == "application/json"
    assert r2.outcome.output == b"HI" and r2.outcome.content_type == "text/plain"
    assert sink.credits == 2
    assert runner.in_flight == 0 and runner.free_slots == 4


async def test_concurrency_never_exceeds_capacity(cleanup: list[Runner]) -> None:
    lock = threading.Lock()
    active = 0
    peak = 0

    def work(ctx: TaskContext) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1

    runner, sink = make_runner({"k": work}, capacity=3)
    cleanup.append(runner)
    # Behave like the coordinator: one assignment per credit held
    # (the initial 3 plus every credit returned so far).
    sent = 0
    while sent < 30:
        while sent < min(30, 3 + sink.credits):
            runner.submit(assignment(f"t{sent}"))
            sent += 1
        assert runner.in_flight <= 3
        await asyncio.sleep(0.002)
    await eventually(lambda: len(sink.results) == 30)
    assert peak <= 3
    assert all(r.state == SUCCEEDED for r in sink.results)


async def test_assignment_beyond_capacity_fails_without_credit(cleanup: list[Runner]) -> None:
    gate = asyncio.Event()

    async def wait(ctx: TaskContext) -> None:
        await gate.wait()

    runner, sink = make_runner({"k": wait}, capacity=2)
    cleanup.append(runner)
    for i in range(3):
        runner.submit(assignment(f"t{i}"))
    assert runner.in_flight == 2
    over = sink.result("t2")
    assert over.state == FAILED and over.outcome.error_type == "over_capacity"
    assert sink.calls == [(over, 0)]
    gate.set()
    await eventually(lambda: len(sink.results) == 3)
    assert sink.credits == 2


@pytest.mark.parametrize("is_async", [True, False])
async def test_exception_becomes_failed_result(cleanup: list[Runner], is_async: bool) -> None:
    def boom(ctx: TaskContext) -> None:
        raise ValueError("boom")

    async def aboom(ctx: TaskContext) -> None:
        raise ValueError("boom")

    runner, sink = make_runner({"k": aboom if is_async else boom})
    cleanup.append(runner)
    runner.submit(assignment("t1"))
    await eventually(lambda: len(sink.results) == 1)
    r = sink.result("t1")
    assert r.state == FAILED
    assert r.outcome.error == "ValueError: boom"
    assert r.outcome.error_type == "handler_error"
    assert sink.credits == 1
    stats = runner.latency.get("k")
    assert stats is not None and stats.failed == 1 and stats.completed == 0


async def test_unconvertible_return_value_is_a_handler_error(cleanup: list[Runner]) -> None:
    async def coro(ctx: TaskContext) -> None:
        return None

    runner, sink = make_runner({"obj": lambda ctx: object(), "coro": lambda ctx: coro(ctx)})
    cleanup.append(runner)
    runner.submit(assignment("t1", "obj"))
    runner.submit(assignment("t2", "coro"))
    await eventually(lambda: len(sink.results) == 2)
    assert sink.result("t1").outcome.error.startswith("TypeError: handler returned object")
    assert "async def" in sink.result("t2").outcome.error


async def test_unknown_kind_is_no_handler(cleanup: list[Runner]) -> None:
    runner, sink = make_runner({"k": lambda ctx: None})
    cleanup.append(runner)
    runner.submit(assignment("t1", "unknown"))
    r = sink.result("t1")
    assert r.state == FAILED and r.outcome.error_type == "no_handler"
    assert "unknown" in r.outcome.error
    assert sink.credits == 1


async def test_async_deadline_cancels_handler(cleanup: list[Runner]) -> None:
    cancelled = asyncio.Event()

    async def slow(ctx: TaskContext) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner, sink = make_runner({"k": slow})
    cleanup.append(runner)
    started = time.monotonic()
    runner.submit(assignment("t1", timeout_ms=50))
    await eventually(lambda: len(sink.results) == 1)
    assert time.monotonic() - started < 2
    r = sink.result("t1")
    assert r.state == FAILED and r.outcome.error_type == "deadline_exceeded"
    assert r.outcome.duration_us >= 40_000
    assert cancelled.is_set()
    assert sink.calls == [(r, 1)]


async def test_async_handler_that_swallows_cancel_still_misses_deadline(cleanup: list[Runner]) -> None:
    async def stubborn(ctx: TaskContext) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "too late"
        return "never"

    runner, sink = make_runner({"k": stubborn})
    cleanup.append(runner)
    runner.submit(assignment("t1", timeout_ms=20))
    await eventually(lambda: len(sink.results) == 1)
    assert sink.result("t1").outcome.error_type == "deadline_exceeded"


async def test_sync_deadline_reports_now_and_frees_slot_when_thread_returns(cleanup: list[Runner]) -> None:
    release = threading.Event()
    saw_cancel = threading.Event()

    def stuck(ctx: TaskContext) -> str:
        release.wait(10)
        if ctx.cancelled():
            saw_cancel.set()
        return "late"

    runner, sink = make_runner({"k": stuck}, capacity=2)
    cleanup.append(runner)
    runner.submit(assignment("t1", timeout_ms=50))
    await eventually(lambda: len(sink.results) == 1)
    r = sink.result("t1")
    assert r.outcome.error_type == "deadline_exceeded"
    # Reported at once, but the thread still holds the slot and its credit.
    assert sink.calls == [(r, 0)]
    assert runner.in_flight == 1 and runner.busy_threads == 1
    release.set()
    await eventually(lambda: sink.credits == 1)
    assert sink.calls[-1] == (None, 1)  # the late return value is discarded
    assert saw_cancel.is_set()
    assert runner.in_flight == 0
    await eventually(lambda: runner.busy_threads == 0)


async def test_cancel_async_task_sends_no_result(cleanup: list[Runner]) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(ctx: TaskContext) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner, sink = make_runner({"k": slow})
    cleanup.append(runner)
    runner.submit(assignment("t1"))
    await started.wait()
    assert runner.cancel("t1", 1)
    assert not runner.cancel("t1", 1)  # already withdrawn
    assert not runner.cancel("t1", 2)  # not this attempt
    await eventually(lambda: sink.credits == 1)
    assert cancelled.is_set()
    assert sink.calls == [(None, 1)]
    assert runner.in_flight == 0


async def test_cancel_sync_task_frees_slot_when_thread_returns(cleanup: list[Runner]) -> None:
    entered = threading.Event()

    def polite(ctx: TaskContext) -> str:
        entered.set()
        while not ctx.cancelled():
            time.sleep(0.001)
        return "ignored"

    runner, sink = make_runner({"k": polite})
    cleanup.append(runner)
    runner.submit(assignment("t1"))
    await asyncio.to_thread(entered.wait, 5)
    assert runner.cancel("t1", 1)
    await eventually(lambda: sink.credits == 1)
    assert sink.calls == [(None, 1)]


async def test_duplicate_assignment_is_ignored(cleanup: list[Runner]) -> None:
    gate = asyncio.Event()

    async def wait(ctx: TaskContext) -> None:
        await gate.wait()

    runner, sink = make_runner({"k": wait})
    cleanup.append(runner)
    runner.submit(assignment("t1"))
    runner.submit(assignment("t1"))
    assert runner.in_flight == 1 and runner.counters.duplicates == 1
    gate.set()
    await eventually(lambda: len(sink.results) == 1)


async def test_stop_waits_for_grace_then_cancels() -> None:
    async def quick(ctx: TaskContext) -> str:
        await asyncio.sleep(0.01)
        return "ok"

    async def forever(ctx: TaskContext) -> None:
        await asyncio.Event().wait()

    runner, sink = make_runner({"quick": quick, "forever": forever})
    runner.submit(assignment("t1", "quick"))
    runner.submit(assignment("t2", "forever"))
    await runner.stop(0.5)
    assert [r.task_id for r in sink.results] == ["t1"]  # finished within grace; t2 reports nothing
    assert runner.counters.abandoned == 1
    assert runner.in_flight == 0
    runner.submit(assignment("t3", "quick"))  # closed: dropped, the coordinator re-queues it
    assert runner.in_flight == 0 and runner.counters.rejected_closed == 1
    await runner.stop(0)  # idempotent


async def test_wait_idle(cleanup: list[Runner]) -> None:
    gate = asyncio.Event()

    async def wait(ctx: TaskContext) -> None:
        await gate.wait()

    runner, _ = make_runner({"k": wait})
    cleanup.append(runner)
    assert await runner.wait_idle(0)
    runner.submit(assignment("t1"))
    assert not await runner.wait_idle(0.01)
    gate.set()
    assert await runner.wait_idle(1)


def test_ewma_and_counts() -> None:
    s = KindStats()
    s.observe(10.0, ok=True)
    assert s.ewma_ms == 10.0  # the first sample seeds the average
    s.observe(20.0, ok=True)
    assert s.ewma_ms == pytest.approx(12.0)  # 10 + 0.2 * (20 - 10)
    s.observe(0.0, ok=False)
    assert s.ewma_ms == pytest.approx(9.6)
    assert (s.completed, s.failed) == (2, 1)

    t = LatencyTracker()
    t.observe("a", 5_000, ok=True)
    snap = t.snapshot()
    assert snap["a"].ewma_ms == pytest.approx(5.0)
    t.observe("a", 15_000, ok=True)
    assert snap["a"].ewma_ms == pytest.approx(5.0)  # snapshots are copies
    assert t.snapshot()["a"].ewma_ms == pytest.approx(7.0)


async def test_runner_feeds_latency(cleanup: list[Runner]) -> None:
    async def nap(ctx: TaskContext) -> None:
        await asyncio.sleep(0.02)

    runner, sink = make_runner({"k": nap})
    cleanup.append(runner)
    for i in range(3):
        runner.submit(assignment(f"t{i}"))
    await eventually(lambda: len(sink.results) == 3)
    stats = runner.latency.get("k")
    assert stats is not None and stats.completed == 3
    assert 15 <= stats.ewma_ms < 1000
    assert all(r.outcome.duration_us >= 15_000 for r in sink.results)


async def test_an_exception_that_names_its_error_type_reports_it(cleanup: list[Runner]) -> None:
    class Transient(Exception):
        error_type = "transient"

    class Rambling(Exception):
        error_type = "x" * 65

    def flaky(ctx: TaskContext) -> None:
        raise Transient("try again")

    def odd(ctx: TaskContext) -> None:
        raise Rambling("no")

    runner, sink = make_runner({"k": flaky, "o": odd})
    cleanup.append(runner)
    runner.submit(assignment("t1"))
    runner.submit(assignment("t2", kind="o"))
    await eventually(lambda: len(sink.results) == 2)
    first = sink.result("t1").outcome
    assert (first.error_type, first.error) == ("transient", "Transient: try again")
    assert sink.result("t2").outcome.error_type == "handler_error"
