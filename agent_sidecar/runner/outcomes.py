"""What the end of an attempt becomes: the TaskResult the runner sends back.

A handler's outcome is a success, a handler error or a missed deadline. Each
builder here makes its result message, counts it in the runner's counters
(`RunnerCounters`, kept beside the builders that count in it) and records the
handler time in the per-kind latency, so the runner and the cache path (whose
waiters keep their own deadlines) report and count it the same way. `call_sync` is the worker-thread side of a sync handler, for the runner's
slots and the cache's background refreshes alike: the call, and the conversion
of its return value.

Its own module so the rules for what a result says can be read apart from the
Runner, which owns the slots, the credits and each attempt's lifecycle.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent_sidecar import wire
from agent_sidecar.handlers import TaskContext, to_output
from agent_sidecar.metrics import LatencyTracker
from agent_sidecar.runner.slot import Slot
from swarmmesh.v1 import mesh_pb2

# Logged under the runner's name, where these messages have always been.
log = logging.getLogger("agent_sidecar.runner")
# Longer error_type attributes are not a class name but something else; they read as handler_error.
MAX_ERROR_TYPE = 64


@dataclass(slots=True)
class RunnerCounters:
    """What became of the runner's attempts; every outcome below counts in it."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    deadline_exceeded: int = 0
    cancelled: int = 0
    no_handler: int = 0
    over_capacity: int = 0
    duplicates: int = 0
    rejected_closed: int = 0
    abandoned: int = 0


def success_result(
    slot: Slot,
    start_ns: int,
    output: bytes,
    content_type: str,
    counters: RunnerCounters,
    latency: LatencyTracker,
) -> mesh_pb2.TaskResult:
    duration_us = (time.perf_counter_ns() - start_ns) // 1000
    counters.succeeded += 1
    if not slot.cancelled:
        latency.observe(slot.ctx.kind, duration_us, ok=True)
    return wire.success_to_proto(slot.key[0], slot.key[1], output, content_type, duration_us)


def handler_error_result(
    slot: Slot, start_ns: int, exc: BaseException, counters: RunnerCounters, latency: LatencyTracker
) -> mesh_pb2.TaskResult:
    duration_us = (time.perf_counter_ns() - start_ns) // 1000
    counters.failed += 1
    if not slot.cancelled:
        latency.observe(slot.ctx.kind, duration_us, ok=False)
    log.debug("task %s#%d failed in handler", slot.key[0], slot.key[1], exc_info=exc)
    return wire.failure_to_proto(
        slot.key[0], slot.key[1], f"{type(exc).__name__}: {exc}", _error_type(exc), duration_us
    )


def _error_type(exc: BaseException) -> str:
    # A handler classifies its failure by giving the exception a short
    # `error_type` (e.g. "transient"): what a kind's retry policy matches on.
    named = getattr(exc, "error_type", None)
    return named if isinstance(named, str) and 0 < len(named) <= MAX_ERROR_TYPE else wire.ERR_HANDLER


def deadline_result(
    slot: Slot, start_ns: int, counters: RunnerCounters, latency: LatencyTracker
) -> mesh_pb2.TaskResult:
    duration_us = (time.perf_counter_ns() - start_ns) // 1000
    counters.deadline_exceeded += 1
    latency.observe(slot.ctx.kind, duration_us, ok=False)
    log.debug("task %s#%d exceeded its deadline", slot.key[0], slot.key[1])
    return wire.failure_to_proto(
        slot.key[0],
        slot.key[1],
        f"deadline exceeded after {duration_us / 1000:.0f} ms",
        wire.ERR_DEADLINE,
        duration_us,
    )


def call_sync(fn: Callable[[TaskContext], object], ctx: TaskContext) -> tuple[bytes, str]:
    """Runs in a worker thread; converts there too so large JSON never blocks the loop."""
    value = fn(ctx)
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if callable(close):
            close()
        raise TypeError("handler returned an awaitable from a plain function; declare it with async def")
    return to_output(value)
