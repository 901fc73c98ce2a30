"""How busy agents were, read for one report: over its window, and while a kind's tasks waited.

A kind whose tasks wait is saturated if its agents were busy *while those
tasks waited*, whatever they did for the rest of the window: a burst that
filled every slot for ten seconds of a sixty-second window is saturation,
not a stall at 17% busy. So each wait (from the samples: queue time and
assignment time) is laid over the agents' utilization second by second, and
the kind's figure is the utilization averaged over all its waiting time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from coordinator.core.mesh import MeshCore
from coordinator.core.model import AgentRecord, CoreError
from coordinator.profile.fleet import Fleet
from coordinator.profile.samples import Sample

# (busy slot-seconds, offered slot-seconds) per segment of the grid.
Series = tuple[list[float], list[float]]


class BusyView:
    def __init__(self, core: MeshCore, fleet: Fleet, live: dict[str, AgentRecord], start: float, now: float,
                 samples: Iterable[tuple[int, list[Sample]]]) -> None:
        self._core = core
        self._fleet = fleet
        self._live = live
        # The grid reaches back to the earliest wait that ended in the window.
        earliest = start
        for _, group in samples:
            for s in group:
                if s[6] - s[0] < earliest:
                    earliest = s[6] - s[0]
        self._grid = fleet.grid(earliest, now)
        self._starts = self._grid.starts()
        # Segments from here on are the window's.
        self._first = bisect_left(self._starts, start, 0, len(self._starts) - 1)
        self._series: dict[str, Series | None] = {}

    def _running(self, agent_id: str) -> list[float]:
        """When the attempts the agent holds now were assigned."""
        agent = self._live.get(agent_id)
        if agent is None:
            return []
        out = []
        for task_id in agent.in_flight:
            try:
                at = self._core.get(task_id).assigned_at
            except CoreError:
                continue
            if at is not None:
                out.append(at)
        return out

    def series(self, agent_id: str) -> Series | None:
        if agent_id not in self._series:
            track = self._fleet.tracks.get(agent_id)
            self._series[agent_id] = None if track is None else (
                self._fleet.busy(track, self._grid, self._starts, self._running(agent_id)),
                track.slots(self._starts))
        return self._series[agent_id]

    def utilization(self, agent_ids: Iterable[str]) -> float:
        """Busy slot-seconds / offered slot-seconds of these agents over the window, 0..1."""
        busy = slots = 0.0
        first = self._first
        for agent_id in agent_ids:
            got = self.series(agent_id)
            if got is not None:
                busy += sum(got[0][first:])
                slots += sum(got[1][first:])
        return min(1.0, busy / slots) if slots > 0 else 0.0

    def while_waiting(self, agent_ids: Iterable[str], samples: Iterable[tuple[int, list[Sample]]]) -> float:
        """The agents' utilization averaged over the time these attempts waited in the queue, 0..1;
        -1 when none of them waited within the grid."""
        starts = self._starts
        n = len(starts) - 1
        busy = [0.0] * n
        slots = [0.0] * n
        for agent_id in agent_ids:
            got = self.series(agent_id)
            if got is not None:
                for i in range(n):
                    busy[i] += got[0][i]
                    slots[i] += got[1][i]
        # Integral of utilization from the grid's start to each boundary.
        integral = [0.0] * (n + 1)
        for i in range(n):
            u = min(1.0, busy[i] / slots[i]) if slots[i] > 0 else 0.0
            integral[i + 1] = integral[i] + u * (starts[i + 1] - starts[i])
        lo, hi = starts[0], starts[-1]

        def at(t: float) -> float:
            i = min(max(0, bisect_right(starts, t) - 1), n - 1)
            width = starts[i + 1] - starts[i]
            f = (t - starts[i]) / width if width > 0 else 0.0
            return integral[i] + f * (integral[i + 1] - integral[i])

        num = den = 0.0
        if n <= 0:
            return -1.0
        for weight, group in samples:
            for s in group:
                # The wait, clipped to the grid: [queued, assigned].
                a, b = max(s[6] - s[0], lo), min(s[6], hi)
                if b <= a:
                    continue
                num += weight * (at(b) - at(a))
                den += weight * (b - a)
        return num / den if den > 0 else -1.0
