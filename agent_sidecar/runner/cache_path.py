"""The path of a cacheable assignment: lookup, single-flight, store, refresh-ahead.

The runner hands an assignment here when it carries a cache key (or its kind
is cacheable); everything else never touches this module.

* **Hit**: a fresh entry is answered at once with `cache_hit` set; the
  handler is not called.
* **Single-flight**: while one attempt computes a key, identical ones wait for
  it and get the same outcome (output with `cache_hit`, or the same handler
  error). Each waiter keeps its own deadline and can be cancelled on its own.
  If the computing attempt ends without an outcome (deadline, cancel), one of
  the waiters computes instead.
* **Store**: a success is stored with its kind's TTL and its dependencies
  (the task's plus those the handler declared with `ctx.depends_on`), after
  the result has been handed back, so the store never delays it.
* **Refresh-ahead**: a hit in the last `refresh_fraction` of an entry's TTL,
  on an entry hit at least `REFRESH_MIN_HITS` times since it was stored,
  recomputes it in the background, so hot keys never fall off a cliff.
  Refreshes run outside the slots (whose credits the coordinator already
  holds), on their own threads, and start only while the number running is
  below both `refresh_max` and the runner's free slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from agent_sidecar import wire
from agent_sidecar.cache.entry import Entry
from agent_sidecar.cache.result_cache import ResultCache, derive_key
from agent_sidecar.handlers import HandlerEntry, TaskContext, context_for_rerun, dependencies_of, to_output
from agent_sidecar.metrics import LatencyTracker
from agent_sidecar.runner.outcomes import RunnerCounters, call_sync, deadline_result
from agent_sidecar.runner.slot import Slot
from agent_sidecar.threads import HandlerThreads
from swarmmesh.v1 import mesh_pb2

log = logging.getLogger(__name__)

REFRESH_MIN_HITS = 2
# Keys whose hits since their last store are remembered for refresh-ahead.
HOT_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    output: bytes = b""
    content_type: str = ""
    error: str = ""
    error_type: str = ""


@dataclass(slots=True)
class _Flight:
    # Resolves to the outcome to share, or None: the computing attempt gave
    # none (deadline, cancel), so a waiter should compute instead.
    done: asyncio.Future[_Outcome | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class AttemptRunner(Protocol):
    """What the cache path needs of the runner it serves (the Runner is one).

    Named here, by the side that uses it, so that this module does not import
    the runner that holds it.
    """

    counters: RunnerCounters
    latency: LatencyTracker

    @property
    def free_slots(self) -> int: ...

    async def execute(self, slot: Slot) -> mesh_pb2.TaskResult | None:
        """Run the slot's handler: what a miss comes to."""
        ...


class CachePath:
    """Runs cacheable assignments for a Runner against a ResultCache."""

    def __init__(self, cache: ResultCache) -> None:
        self.cache = cache
        self.config = cache.config
        self.cacheable_kinds = cache.config.cacheable_kinds
        self._flights: dict[str, _Flight] = {}
        self._hot: OrderedDict[str, int] = OrderedDict()
        self._refreshes: set[asyncio.Task[None]] = set()
        self._threads = HandlerThreads(max(1, self.config.refresh_max), name="swarmmesh-refresh")
        self._closed = False

    async def stop(self) -> None:
        """Cancel background refreshes and let their threads go."""
        self._closed = True
        for task in self._refreshes:
            task.cancel()
        if self._refreshes:
            await asyncio.gather(*self._refreshes, return_exceptions=True)
        self._threads.shutdown()

    # --- one assignment ---------------------------------------------------------------

    async def run(self, slot: Slot, runner: AttemptRunner) -> mesh_pb2.TaskResult | None:
        ctx = slot.ctx
        key = ctx.cache_key or derive_key(ctx.kind, ctx.content_type, ctx.payload)
        start = time.perf_counter_ns()
        counters = self.cache.counters
        while True:
            flight = self._flights.get(key)
            if flight is None:
                slot.waiting = True
                looked = time.perf_counter_ns()
                if not slot.cache_start_ns:
                    slot.cache_start_ns = looked
                try:
                    entry, generation = await self.cache.lookup(key)
                finally:
                    slot.waiting = False
                    slot.cache_ns += time.perf_counter_ns() - looked
                if entry is not None:
                    counters.hits += 1
                    self._note_hit(key, entry, slot, runner, generation)
                    return self._hit(slot, runner, entry.output, entry.content_type, start)
                flight = self._flights.get(key)  # one may have started during the lookup
                if flight is None:
                    counters.misses += 1
                    return await self._lead(slot, runner, key, generation)
            shared = await self._follow(slot, runner, flight, start)
            if shared is not None:
                return shared
            if slot.ctx.cancelled():
                return None

    def _hit(
        self, slot: Slot, runner: AttemptRunner, output: bytes, content_type: str, start_ns: int
    ) -> mesh_pb2.TaskResult:
        runner.counters.succeeded += 1
        duration_us = (time.perf_counter_ns() - start_ns) // 1000
        return wire.success_to_proto(slot.key[0], slot.key[1], output, content_type, duration_us, cache_hit=True)

    async def _lead(
        self, slot: Slot, runner: AttemptRunner, key: str, generation: int
    ) -> mesh_pb2.TaskResult | None:
        flight = _Flight()
        self._flights[key] = flight
        result: mesh_pb2.TaskResult | None = None
        try:
            result = await runner.execute(slot)
            return result
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            shared = _outcome_of(result)
            flight.done.set_result(shared)
            if shared is not None and shared.ok:
                ctx = slot.ctx
                self._hot.pop(key, None)
                self.cache.store_result(
                    key, shared.output, shared.content_type, self.config.ttl_for(ctx.kind),
                    dependencies_of(ctx), generation,
                )

    async def _follow(
        self, slot: Slot, runner: AttemptRunner, flight: _Flight, start_ns: int
    ) -> mesh_pb2.TaskResult | None:
        """Wait for the attempt computing the same key; None when it gave no outcome."""
        remaining = slot.ctx.remaining()
        slot.waiting = True
        try:
            # Shielded: a waiter's cancel or deadline must not cancel the shared future.
            if remaining is None:
                shared = await asyncio.shield(flight.done)
            else:
                async with asyncio.timeout(max(0.0, remaining)):
                    shared = await asyncio.shield(flight.done)
        except TimeoutError:
            return deadline_result(slot, start_ns, runner.counters, runner.latency)
        finally:
            slot.waiting = False
        if shared is None:
            return None
        self.cache.counters.coalesced += 1
        task_id, attempt = slot.key
        if shared.ok:
            self.cache.counters.hits += 1
            return self._hit(slot, runner, shared.output, shared.content_type, start_ns)
        runner.counters.failed += 1
        duration_us = (time.perf_counter_ns() - start_ns) // 1000
        return wire.failure_to_proto(task_id, attempt, shared.error, shared.error_type, duration_us)

    # --- refresh-ahead ------------------------------------------------------------------

    def _note_hit(self, key: str, entry: Entry, slot: Slot, runner: AttemptRunner, generation: int) -> None:
        hot = self._hot
        hits = hot.pop(key, 0) + 1
        hot[key] = hits
        if len(hot) > HOT_KEYS:
            hot.popitem(last=False)
        fraction = self.config.refresh_fraction
        if not fraction or not entry.expires_at or hits < REFRESH_MIN_HITS or self._closed:
            return
        ttl = entry.expires_at - entry.stored_at
        if self.cache.clock() < entry.expires_at - ttl * fraction or key in self._flights:
            return
        running = max(len(self._refreshes), self._threads.busy)
        if running >= min(self.config.refresh_max, runner.free_slots):
            return
        hot.pop(key, None)
        flight = _Flight()
        self._flights[key] = flight
        task = asyncio.create_task(self._refresh(key, flight, slot.ctx, slot.entry, ttl, generation))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _refresh(
        self, key: str, flight: _Flight, ctx: TaskContext, handler: HandlerEntry, ttl: float, generation: int
    ) -> None:
        # attempt 0 tells a handler this is a background refresh, not an assignment.
        rctx = context_for_rerun(ctx, attempt=0, deadline=time.monotonic() + ttl)
        outcome: _Outcome | None = None
        try:
            if handler.is_async:
                async with asyncio.timeout(ttl):
                    output, content_type = to_output(await handler.fn(rctx))
            else:
                output, content_type = await self._threads.submit(call_sync, handler.fn, rctx)
            outcome = _Outcome(True, output, content_type)
            self.cache.counters.refreshes += 1
            self.cache.store_result(
                key, output, content_type, self.config.ttl_for(ctx.kind), dependencies_of(rctx), generation
            )
        except Exception as exc:
            self.cache.counters.refresh_failures += 1
            log.debug("refresh of cache key %r failed: %s: %s", key, type(exc).__name__, exc)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.done.set_result(outcome)


def _outcome_of(result: mesh_pb2.TaskResult | None) -> _Outcome | None:
    """What identical waiting attempts may reuse: a success, or a handler's own error."""
    if result is None:
        return None
    o = result.outcome
    if result.state == wire.SUCCEEDED:
        return _Outcome(True, o.output, o.content_type)
    if o.error_type == wire.ERR_HANDLER:
        return _Outcome(False, error=o.error, error_type=o.error_type)
    return None

