"""Runs assignments through handlers with at most `capacity` attempts in flight.

Credits: every slot released gives one credit back through the result
callback, exactly once per accepted assignment, at the moment the slot is
really free again. That is not always the moment the result is known:

* A sync handler runs in a worker thread that Python cannot kill. When its
  deadline passes, the FAILED/deadline_exceeded result is reported at once
  (credits 0), but the slot and its credit come back only when the thread
  returns. Otherwise the coordinator could hand out more work than there are
  threads, and the pool would silently queue it.
* A cancelled attempt reports no result; its credit comes back when the async
  handler has unwound (or the sync thread has returned).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from agent_sidecar import wire
from agent_sidecar.handlers import HandlerRegistry, request_cancel, to_output
from agent_sidecar.metrics import LatencyTracker
from agent_sidecar.runner.cache_path import CachePath
from agent_sidecar.runner.outcomes import (
    RunnerCounters,
    call_sync,
    deadline_result,
    handler_error_result,
    success_result,
)
from agent_sidecar.runner.slot import Slot, TaskKey
from agent_sidecar.threads import HandlerThreads
from agent_sidecar.tracing import AttemptTimes, AttemptTracer
from swarmmesh.v1 import mesh_pb2

# The package's name, which these messages have always been logged under.
log = logging.getLogger("agent_sidecar.runner")

# (result or None, credits freed). Called on the event loop; must not block.
ResultCallback = Callable[["mesh_pb2.TaskResult | None", int], None]


class Runner:
    """Bounded executor of Assignments; results and credits go to `on_result`."""

    def __init__(
        self,
        registry: HandlerRegistry,
        *,
        capacity: int,
        agent_id: str,
        on_result: ResultCallback,
        latency: LatencyTracker | None = None,
        cache: CachePath | None = None,
        tracer: AttemptTracer | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity}")
        self._registry = registry
        self._capacity = capacity
        self._agent_id = agent_id
        self._on_result = on_result
        self._cache = cache
        self._tracer = tracer
        self.latency = latency if latency is not None else LatencyTracker()
        # One thread per slot, so a sync handler never waits for a thread and
        # the slot count stays the only limit.
        self._threads = HandlerThreads(capacity)
        self._slots: dict[TaskKey, Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False  # no new assignments
        self._aborting = False  # in-flight work is being cancelled for good
        self.counters = RunnerCounters()

    # --- state seen by heartbeats and registration ---------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_flight(self) -> int:
        return len(self._slots)

    @property
    def free_slots(self) -> int:
        return self._capacity - len(self._slots)

    @property
    def busy_threads(self) -> int:
        """Sync handler calls still executing, including ones given up on."""
        return self._threads.busy

    # --- inputs from the connection --------------------------------------------

    def submit(self, a: mesh_pb2.Assignment) -> None:
        """Start one assignment, or fail it at once if it cannot be taken."""
        if self._closed:
            # The stream is about to close; the coordinator re-queues the task.
            self.counters.rejected_closed += 1
            log.debug("runner closed; dropping assignment %s#%d", a.task_id, a.attempt)
            return
        key = (a.task_id, a.attempt)
        if key in self._slots:
            # Failing it would fail the copy that is running; ignoring it is safe.
            self.counters.duplicates += 1
            log.warning("duplicate assignment %s#%d ignored", a.task_id, a.attempt)
            return
        if len(self._slots) >= self._capacity:
            # The coordinator sent more than the credits it held. Queueing would
            # hide work from its balancer; fail it and give back no credit, since
            # no slot was taken.
            self.counters.over_capacity += 1
            level = logging.WARNING if self.counters.over_capacity in (1, 10, 100) else logging.DEBUG
            log.log(
                level,
                "assignment beyond capacity %d (%d so far)",
                self._capacity,
                self.counters.over_capacity,
            )
            self._emit(
                wire.failure_to_proto(
                    a.task_id, a.attempt, f"agent is at capacity ({self._capacity})", wire.ERR_OVER_CAPACITY
                ),
                0,
            )
            return
        entry = self._registry.lookup(a.kind)
        if entry is None:
            self.counters.no_handler += 1
            log.debug("no handler for kind %r (task %s#%d)", a.kind, a.task_id, a.attempt)
            self._emit(
                wire.failure_to_proto(
                    a.task_id, a.attempt, f"no handler for kind {a.kind!r}", wire.ERR_NO_HANDLER
                ),
                1,
            )
            return
        received_ns = time.perf_counter_ns()
        trace = None
        if self._tracer is not None and a.trace_context:
            trace, handler_context = self._tracer.begin(a.trace_context, received_ns, time.time())
            ctx = wire.context_from_assignment(a, self._agent_id, time.monotonic(), handler_context)
        else:
            ctx = wire.context_from_assignment(a, self._agent_id, time.monotonic())
        slot = Slot(key=key, ctx=ctx, entry=entry, received_ns=received_ns, trace=trace)
        cache = self._cache
        if cache is not None and (a.cache_key or a.kind in cache.cacheable_kinds):
            slot.cached = True
        self._slots[key] = slot
        self._idle.clear()
        self.counters.started += 1
        task = asyncio.create_task(self._run(slot))
        slot.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, task_id: str, attempt: int) -> bool:
        """Withdraw a running attempt; False if it is not running here.

        No result is sent for it; the credit returns when the slot frees.
        """
        slot = self._slots.get((task_id, attempt))
        if slot is None or slot.cancelled:
            return False
        slot.cancelled = True
        self.counters.cancelled += 1
        request_cancel(slot.ctx)
        # A sync thread cannot be interrupted: it keeps its slot until it
        # returns, and its result is then discarded.
        if (slot.entry.is_async or slot.waiting) and slot.task is not None:
            slot.task.cancel()
        return True

    # --- lifecycle ------------------------------------------------------------

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until no slot is taken; False if `timeout_s` seconds passed first."""
        if not self._slots:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Take no new assignments; in-flight ones continue."""
        self._closed = True

    async def stop(self, grace: float) -> None:
        """Stop taking work, let in-flight attempts run up to `grace` seconds, cancel the rest.

        Cancelled attempts report nothing: the coordinator re-queues them when
        the stream closes. Sync threads still running are abandoned (counted in
        `counters.abandoned`); they are daemon threads and do not hold the
        process open.
        """
        self._closed = True
        if self._tasks and grace > 0:
            await asyncio.wait(set(self._tasks), timeout=grace)
        self._aborting = True
        for slot in self._slots.values():
            request_cancel(slot.ctx)
        leftover = [t for t in self._tasks if not t.done()]
        for t in leftover:
            t.cancel()
        if leftover:
            self.counters.abandoned += len(leftover)
            log.warning("stopping with %d task(s) still running; they were cancelled", len(leftover))
            await asyncio.gather(*leftover, return_exceptions=True)
        self._threads.shutdown()

    # --- execution ------------------------------------------------------------

    async def _run(self, slot: Slot) -> None:
        result: mesh_pb2.TaskResult | None = None
        try:
            if slot.cached:
                assert self._cache is not None
                result = await self._cache.run(slot, self)
            elif slot.entry.is_async:
                result = await self._run_async(slot)
            else:
                result = await self._run_sync(slot)
        except asyncio.CancelledError:
            if self._aborting or not slot.cancelled:
                raise
            # Our own cancel() asked for this; the task ends normally.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        finally:
            del self._slots[slot.key]
            if not self._slots:
                self._idle.set()
            send = result if not (slot.cancelled or slot.reported or self._aborting) else None
            if send is not None:
                done_ns = time.perf_counter_ns()
                o = send.outcome
                o.agent_us = (done_ns - slot.received_ns) // 1000
                if slot.cache_ns:
                    o.cache_us = slot.cache_ns // 1000
                if slot.trace is not None:
                    self._trace(slot, send, done_ns)
            self._emit(send, 1)

    def _trace(self, slot: Slot, result: mesh_pb2.TaskResult, done_ns: int) -> None:
        assert self._tracer is not None and slot.trace is not None
        o = result.outcome
        times = AttemptTimes(done_ns, slot.handler_ns, o.duration_us if slot.handler_ns else 0,
                             slot.cache_start_ns, slot.cache_ns)
        self._tracer.end(slot.trace, slot.key[1], slot.ctx.kind, times, o.cache_hit, o.error)

    async def execute(self, slot: Slot) -> mesh_pb2.TaskResult | None:
        """Run the slot's handler; the cache path calls this on a miss."""
        if slot.entry.is_async:
            return await self._run_async(slot)
        return await self._run_sync(slot)

    async def _run_async(self, slot: Slot) -> mesh_pb2.TaskResult | None:
        ctx = slot.ctx
        start = slot.handler_ns = time.perf_counter_ns()
        timer = asyncio.timeout(ctx.deadline - time.monotonic()) if ctx.deadline is not None else None
        try:
            if timer is None:
                value = await slot.entry.fn(ctx)
            else:
                async with timer:
                    value = await slot.entry.fn(ctx)
            # A handler that swallowed the cancellation still missed its deadline.
            if timer is not None and timer.expired():
                return deadline_result(slot, start, self.counters, self.latency)
            output, content_type = to_output(value)
        except TimeoutError as exc:
            if timer is not None and timer.expired():
                return deadline_result(slot, start, self.counters, self.latency)
            return handler_error_result(slot, start, exc, self.counters, self.latency)
        except Exception as exc:
            return handler_error_result(slot, start, exc, self.counters, self.latency)
        return success_result(slot, start, output, content_type, self.counters, self.latency)

    async def _run_sync(self, slot: Slot) -> mesh_pb2.TaskResult | None:
        ctx = slot.ctx
        start = slot.handler_ns = time.perf_counter_ns()
        fut = self._threads.submit(call_sync, slot.entry.fn, ctx)
        # A timer rather than asyncio.wait(timeout=): most tasks carry a
        # deadline, and a timer handle is the cheapest way to watch one.
        timer = (
            asyncio.get_running_loop().call_later(
                max(0.0, ctx.deadline - time.monotonic()), self._sync_deadline, slot, start
            )
            if ctx.deadline is not None
            else None
        )
        try:
            output, content_type = await fut
        except Exception as exc:
            if slot.reported:
                return None
            return handler_error_result(slot, start, exc, self.counters, self.latency)
        finally:
            if timer is not None:
                timer.cancel()
        if slot.reported:
            return None
        return success_result(slot, start, output, content_type, self.counters, self.latency)

    def _sync_deadline(self, slot: Slot, start_ns: int) -> None:
        # Report now; the slot (and its credit) stays taken until the thread
        # returns, and whatever it returns then is discarded.
        request_cancel(slot.ctx)
        if slot.cancelled or slot.reported:
            return
        slot.reported = True
        self._emit(deadline_result(slot, start_ns, self.counters, self.latency), 0)

    def _emit(self, result: mesh_pb2.TaskResult | None, credits: int) -> None:
        try:
            self._on_result(result, credits)
        except Exception:
            # The callback only queues; if it fails the stream is broken anyway
            # and the next registration recomputes credits from free slots.
            log.exception("result callback failed")
