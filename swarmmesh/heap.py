"""When the swarmmesh processes' garbage collector walks their long-lived heap.

A coordinator with thousands of agents holds a few hundred thousand
long-lived objects (every stream's grpc.aio state, its tasks and records),
and every idle stream's pending read lives for a whole heartbeat period, long
enough to reach CPython's oldest generation. CPython then runs a full
collection each time that generation has grown by a quarter; with 5,000
agents that was a 350 ms pause every few seconds, which every task in flight
waited through.

`HeapPolicy` freezes the heap every tenth of a second: frozen objects are
still freed by reference counting the moment their last reference goes, the
collector just stops walking them. CPython's own young collections still run
between two freezes and find the short-lived cycles. A full collection, the
only thing that finds cycles among frozen objects, runs when the heap has
doubled (plus a floor) since the last one, as Go's collector does by default,
so garbage cycles never take more than about the live heap's size, and a
heap that keeps its size is never walked again. A full collection is a long
pause (200 ms at 600,000 objects), so the rule keeps them few while a fleet
grows: a geometric series, not one each time a quarter more has arrived.

The heap is measured in the allocator's blocks (`sys.getallocatedblocks`, a
walk over its pools: a fraction of a millisecond), not by counting the
frozen objects, which walks them all and took 80 ms in a coordinator with
5,000 agents.

`SWARMMESH_HEAP=python` leaves CPython's own schedule in place (the frozen
start-up heap aside).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time

log = logging.getLogger(__name__)

FREEZE_EVERY_S = 0.1
MEASURE_EVERY_S = 1.0
GROWTH = 1.0  # a full collection once the heap has grown by this share of its size after the last
FLOOR = 250_000  # allocator blocks: small heaps grow by at least this much before a full collection


def managed() -> bool:
    return os.environ.get("SWARMMESH_HEAP", "managed").strip().lower() != "python"


class HeapPolicy:
    """Freeze the heap often; collect it fully when it has grown.

    start() once the process has started up, inside its event loop (imports
    and servers are the first frozen heap); stop() on the way out.
    """

    def __init__(self, *, freeze_every_s: float = FREEZE_EVERY_S, measure_every_s: float = MEASURE_EVERY_S,
                 growth: float = GROWTH, floor: int = FLOOR) -> None:
        self._freeze_every = freeze_every_s
        self._measure_every = measure_every_s
        self._growth = growth
        self._floor = floor
        self._base = 0
        self._measured_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._started = False
        self.full_collections = 0
        self.full_collection_s = 0.0  # the last one's duration

    @property
    def limit(self) -> int:
        """The heap's size (allocator blocks) from which the next full collection is due."""
        return int(self._base * (1 + self._growth)) + self._floor

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        gc.collect()
        gc.freeze()
        self._base = sys.getallocatedblocks()
        self._measured_at = time.monotonic()
        if managed():
            self._timer = asyncio.get_running_loop().call_later(self._freeze_every, self._tick)

    def stop(self) -> None:
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __enter__(self) -> HeapPolicy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._freeze_every, self._tick)
        gc.freeze()
        now = time.monotonic()
        if now - self._measured_at < self._measure_every:
            return
        self._measured_at = now
        blocks = sys.getallocatedblocks()
        if blocks > self.limit:
            self._collect(blocks)

    def _collect(self, before: int) -> None:
        """A full collection over everything, frozen or not, then freeze the survivors.
        `before`: the heap's size in blocks, just measured."""
        t0 = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._base = sys.getallocatedblocks()
        self.full_collections += 1
        self.full_collection_s = time.perf_counter() - t0
        log.info("full garbage collection: %d unreachable objects, heap %d -> %d blocks, %.0f ms",
                 found, before, self._base, self.full_collection_s * 1e3)
