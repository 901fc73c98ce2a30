"""Slots held over time, from the intervals that held them: exact busy time without sampling.

Every finished attempt held one slot of its agent from assignment to result.
Sampling the slots in use once a second misses what starts and ends between
two samples (a burst of short tasks reads as an idle agent), so busy time is
credited from the intervals themselves.

`Occupancy.add(a, b)` costs O(1) whatever the interval's length: the partial
seconds at either end are added to those seconds, the whole seconds between
them become a +1/-1 step (a difference array). Seconds before `floor`, a
whole minute that the owner moves forward, are folded into per-minute sums;
minutes older than the horizon are dropped, so memory stays at a few hundred
entries per agent however long it runs.

A `Grid` is the time a report reads, cut into segments that match what is
stored: whole minutes before the floor, seconds from it on.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

MINUTE = 60
# Seconds kept at one-second resolution before they are folded into minutes.
FINE_S = 120
# Seconds of minutes kept at all (the longest report window, and a minute of slack).
HORIZON_S = 3600 + MINUTE


def fold_floor(now: float) -> int:
    """The floor for this time: the start of the minute two minutes back."""
    return (int(now) - FINE_S) // MINUTE * MINUTE


@dataclass(frozen=True, slots=True)
class Grid:
    """Minutes [first_minute, floor), then seconds [first_second, last_second]: segment boundaries."""

    first_minute: int  # index (start / 60)
    floor: int
    first_second: int
    last_second: int
    now: float

    @staticmethod
    def over(start: float, now: float, floor: int) -> Grid:
        """Segments whose start is in [start, now], as a report window rounds to whole buckets."""
        first = max(math.ceil(start / MINUTE), (floor - HORIZON_S) // MINUTE)
        return Grid(first, floor, max(floor, math.ceil(start)), int(now), now)

    def starts(self) -> list[float]:
        """Start of every segment, ascending, then the end of the last (capped at now)."""
        out = [float(m * MINUTE) for m in range(self.first_minute, self.floor // MINUTE)]
        out.extend(float(s) for s in range(self.first_second, self.last_second + 1))
        out.append(min(self.now, float(self.last_second + 1)))
        return out


class Occupancy:
    __slots__ = ("_floor", "_level", "_minutes", "_part", "_step")

    def __init__(self, floor: int) -> None:
        # Seconds before it are in _minutes; _level is the sum of the steps folded so far.
        self._floor = floor
        self._level = 0
        self._minutes: dict[int, float] = {}
        # Second -> slot-seconds of intervals that began or ended in it (the rest is in steps).
        self._part: dict[int, float] = {}
        self._step: dict[int, int] = {}

    def add(self, a: float, b: float) -> None:
        """One slot held from a to b (seconds). Runs for every finished attempt: keep it lean."""
        if b <= a:
            return
        floor = self._floor
        if a < floor:
            self._add_minutes(a, min(b, floor))
            if b <= floor:
                return
            a = floor
        sa = int(a)
        sb = int(b)
        part = self._part
        if sa == sb:
            part[sa] = part.get(sa, 0.0) + (b - a)
            return
        part[sa] = part.get(sa, 0.0) + (sa + 1 - a)
        if b > sb:
            part[sb] = part.get(sb, 0.0) + (b - sb)
        if sb > sa + 1:
            step = self._step
            step[sa + 1] = step.get(sa + 1, 0) + 1
            step[sb] = step.get(sb, 0) - 1

    def _add_minutes(self, a: float, b: float) -> None:
        minutes = self._minutes
        oldest = (self._floor - HORIZON_S) // MINUTE
        for m in range(max(int(a) // MINUTE, oldest), math.ceil(b / MINUTE)):
            lo, hi = max(a, m * MINUTE), min(b, (m + 1) * MINUTE)
            if hi > lo:
                minutes[m] = minutes.get(m, 0.0) + (hi - lo)

    def fold(self, floor: int) -> None:
        """Move the floor up to `floor` (a whole minute): seconds before it become minute sums."""
        old = self._floor
        if floor <= old:
            return
        part, step, minutes = self._part, self._step, self._minutes
        oldest = floor - HORIZON_S
        start = max(old, oldest)
        level = self._level
        # A floor that jumped past the horizon: what lies before it only moves the level.
        for s in [s for s in step if s < start]:
            level += step.pop(s)
        for s in [s for s in part if s < start]:
            del part[s]
        if level or any(s < floor for s in part) or any(s < floor for s in step):
            for s in range(start, floor):
                if step:
                    level += step.pop(s, 0)
                v = level + part.pop(s, 0.0) if part else float(level)
                if v:
                    m = s // MINUTE
                    minutes[m] = minutes.get(m, 0.0) + v
        self._level = level
        self._floor = floor
        for m in [m for m in minutes if m < oldest // MINUTE]:
            del minutes[m]

    def values(self, grid: Grid) -> list[float]:
        """Slot-seconds held in each segment of the grid (the grid's floor must be this one's)."""
        out = [self._minutes.get(m, 0.0) for m in range(grid.first_minute, grid.floor // MINUTE)]
        part, step = self._part, self._step
        level = self._level
        first = grid.first_second
        for s in range(self._floor, first):
            level += step.get(s, 0)
        for s in range(first, grid.last_second + 1):
            level += step.get(s, 0)
            out.append(level + part.get(s, 0.0))
        return out


def add_running(values: list[float], starts: Sequence[float], running: Sequence[float]) -> None:
    """Add attempts still running (each holding a slot from its assignment until now) to `values`.

    `starts` are the grid's segment starts plus its end (Grid.starts()).
    """
    if not running or not values:
        return
    end = starts[-1]
    n = len(values)
    # covered[i]: attempts that held a slot through the whole of segment i.
    covered = [0] * (n + 1)
    for a in running:
        if a >= end:
            continue
        i = bisect_right(starts, a, 0, n) - 1
        if i < 0:
            covered[0] += 1
            continue
        values[i] += min(starts[i + 1], end) - a
        covered[i + 1] += 1
    level = 0
    for i in range(n):
        level += covered[i]
        if level:
            values[i] += level * (starts[i + 1] - starts[i])
