"""One accepted attempt as the runner holds it, from receipt until its slot is free.

A `Slot` is the state every path of an attempt reads and marks: the runner
(credits, cancels, deadlines), the outcome builders (what the result says) and
the cache path (waiting, lookup times). Its own module so that those three
share it without importing one another.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agent_sidecar.handlers import HandlerEntry, TaskContext
from agent_sidecar.tracing import AttemptTrace

# (task_id, attempt): an attempt's identity on the stream.
TaskKey = tuple[str, int]


@dataclass(slots=True, eq=False)
class Slot:
    key: TaskKey
    ctx: TaskContext
    entry: HandlerEntry
    task: asyncio.Task[None] | None = None
    # A result already went out (deadline passed while a sync thread still runs).
    reported: bool = False
    # The coordinator withdrew this attempt; its result must not be sent.
    cancelled: bool = False
    # Goes through the result cache (cache_path.CachePath).
    cached: bool = False
    # Only waiting (cache lookup, an identical attempt's result): a cancel may
    # interrupt it even when the handler is a sync function.
    waiting: bool = False
    # time.perf_counter_ns() readings: receipt, handler start, cache lookup
    # start, and the lookup's duration (0 = did not happen).
    received_ns: int = 0
    handler_ns: int = 0
    cache_start_ns: int = 0
    cache_ns: int = 0
    trace: AttemptTrace | None = None
