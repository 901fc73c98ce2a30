"""The coordinator's own record of cache invalidations and warm-ups, over time.

The shell passes its running totals to every profiler tick (`CacheTotals`,
from the invalidation log, the agents' reports and warm-up); the increments
are kept with the time they were seen, for an hour. Those totals start with
the coordinator, as this record does, so nothing is lost to a baseline:
sidecars' heartbeat counters can only be read as differences, from an
agent's second heartbeat on, and lag a heartbeat behind.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.profile.occupancy import HORIZON_S


@dataclass(frozen=True, slots=True)
class CacheTotals:
    """Running totals since the coordinator started."""

    # Invalidations accepted (swarmmesh invalidate).
    invalidations: int = 0
    # Cache entries agents reported dropping for them.
    dropped: int = 0
    # Warm-up tasks submitted for popular keys.
    warmups: int = 0


class CacheLog:
    def __init__(self) -> None:
        self._last = CacheTotals()
        # (t, invalidations, dropped, warm-ups) increments.
        self._events: deque[tuple[float, int, int, int]] = deque()

    def note(self, now: float, totals: CacheTotals) -> None:
        last = self._last
        if totals == last:
            return
        self._last = totals
        # A total that falls belongs to another source (a new coordinator object): start over from it.
        inv = totals.invalidations - last.invalidations
        dropped = totals.dropped - last.dropped
        warm = totals.warmups - last.warmups
        self._events.append((now, max(0, inv), max(0, dropped), max(0, warm)))
        while self._events and self._events[0][0] < now - HORIZON_S:
            self._events.popleft()

    def since(self, start: float) -> CacheTotals:
        """What happened from `start` on."""
        return CacheTotals(*sum_since(self._events, start))


def sum_since(events: Sequence[tuple[float, int, int, int]], start: float) -> tuple[int, int, int]:
    """The sums of three counts over (t, a, b, c) increments, oldest first, from `start` on."""
    a = b = c = 0
    for t, x, y, z in reversed(events):
        if t < start:
            break
        a += x
        b += y
        c += z
    return a, b, c
