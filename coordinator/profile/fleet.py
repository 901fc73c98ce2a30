"""Each agent over time: how busy it was, its memory, its cache's events, where it allocates.

Sampled by the profiler about once a second from the registry (busy slots)
and from the latest heartbeat (memory, cache counters, allocation sites); a
heartbeat is read once, when the record's heartbeat object changes.

Busy time is kept as running sums of busy and available slot-seconds with
snapshots, one a second for five minutes and one every 30 s for an hour, so
utilization over any window is the difference of two interpolated sums.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field

from coordinator.core.model import AgentRecord, AllocationSite, CacheStats, Heartbeat

FINE_SNAPS = 300
COARSE_STEP_S = 30.0
COARSE_SNAPS = 125
# Longest gap between samples credited as busy time (a stalled ticker proves nothing).
MAX_GAP_S = 10.0
# Allocation snapshots are kept at most this often (the sidecar computes them every ~10 s).
ALLOC_STEP_S = 30.0
FORGET_GONE_S = 3600.0

Snap = tuple[float, float, float]  # (t, busy slot-seconds, available slot-seconds), cumulative


def _t(s: Snap) -> float:
    return s[0]


@dataclass(slots=True)
class AgentTrack:
    agent_id: str
    session: int
    capacity: int = 0
    version: str = ""
    connected_at: float = 0.0
    busy: float = 0.0
    slots: float = 0.0
    fine: deque[Snap] = field(default_factory=lambda: deque(maxlen=FINE_SNAPS))
    coarse: deque[Snap] = field(default_factory=lambda: deque(maxlen=COARSE_SNAPS))
    # (t, resident bytes), since the current session began.
    memory: deque[tuple[float, float]] = field(default_factory=deque)
    rss: int = 0
    allocations: deque[tuple[float, tuple[AllocationSite, ...]]] = field(default_factory=deque)
    # (t, evictions, invalidations, errors) increments seen in heartbeats.
    cache_events: deque[tuple[float, int, int, int]] = field(default_factory=lambda: deque(maxlen=4096))
    heartbeat: Heartbeat | None = None
    gone_at: float | None = None

    def _at(self, t: float) -> Snap | None:
        """The running sums at time t, interpolated between snapshots."""
        snaps = self.fine if self.fine and t >= self.fine[0][0] else self.coarse
        if not snaps:
            snaps = self.fine
        if not snaps:
            return None
        i = bisect_right(snaps, t, key=_t)
        if i == 0:
            return snaps[0]
        if i == len(snaps):
            return snaps[-1]
        (t0, b0, s0), (t1, b1, s1) = snaps[i - 1], snaps[i]
        f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        return t, b0 + f * (b1 - b0), s0 + f * (s1 - s0)

    def utilization(self, start: float, end: float) -> float:
        """Busy slots / capacity over [start, end] (the part of it the agent was connected); 0..1."""
        a, b = self._at(start), self._at(end)
        if a is None or b is None or b[2] <= a[2]:
            return 0.0
        return min(1.0, max(0.0, (b[1] - a[1]) / (b[2] - a[2])))

    def cache_since(self, start: float) -> tuple[int, int, int]:
        """Evictions, invalidated entries and cache errors reported since `start`."""
        ev = inv = err = 0
        for t, e, i, r in reversed(self.cache_events):
            if t < start:
                break
            ev += e
            inv += i
            err += r
        return ev, inv, err


class Fleet:
    def __init__(self, leak_window_s: float) -> None:
        self.tracks: dict[str, AgentTrack] = {}
        self._leak_window = leak_window_s
        # ~150 memory points per leak window: enough for a fit, bounded per agent.
        self._mem_step = max(1.0, leak_window_s / 150)
        self._last: float | None = None

    def sample(self, now: float, agents: list[AgentRecord]) -> None:
        dt = 0.0 if self._last is None else min(max(0.0, now - self._last), MAX_GAP_S)
        self._last = now
        live = set()
        for agent in agents:
            live.add(agent.agent_id)
            track = self.tracks.get(agent.agent_id)
            if track is None:
                track = self.tracks[agent.agent_id] = AgentTrack(agent.agent_id, agent.session)
            if track.session != agent.session:
                # Another process (or a reconnect): its memory starts a new trace.
                track.session = agent.session
                track.memory.clear()
                track.allocations.clear()
            track.gone_at = None
            track.capacity = agent.capacity
            track.version = agent.version
            track.connected_at = agent.connected_at
            track.busy += len(agent.in_flight) * dt
            track.slots += agent.capacity * dt
            snap = (now, track.busy, track.slots)
            track.fine.append(snap)
            if not track.coarse or now - track.coarse[-1][0] >= COARSE_STEP_S:
                track.coarse.append(snap)
            hb = agent.heartbeat
            if hb is not track.heartbeat:
                self._heartbeat(track, hb, now)
        for agent_id, track in list(self.tracks.items()):
            if agent_id in live:
                continue
            if track.gone_at is None:
                track.gone_at = now
            elif now - track.gone_at > FORGET_GONE_S:
                del self.tracks[agent_id]

    def _heartbeat(self, track: AgentTrack, hb: Heartbeat, now: float) -> None:
        prev = track.heartbeat.cache if track.heartbeat is not None else None
        track.heartbeat = hb
        if hb.memory_rss_bytes:
            track.rss = hb.memory_rss_bytes
            mem = track.memory
            if not mem or now - mem[-1][0] >= self._mem_step:
                mem.append((now, float(hb.memory_rss_bytes)))
            keep = 1.5 * self._leak_window
            while mem and mem[0][0] < now - keep:
                mem.popleft()
        if prev is not None:
            _cache_events(track, prev, hb.cache, now)
        if hb.allocations:
            allocs = track.allocations
            if not allocs or now - allocs[-1][0] >= ALLOC_STEP_S:
                allocs.append((now, hb.allocations))
            while len(allocs) > 2 and allocs[1][0] <= now - self._leak_window:
                allocs.popleft()


def _cache_events(track: AgentTrack, prev: CacheStats, cur: CacheStats, now: float) -> None:
    # Counters restart with the sidecar: a fall is a restart, not negative events.
    ev = cur.evictions - prev.evictions
    inv = cur.invalidations - prev.invalidations
    err = cur.errors - prev.errors
    if ev > 0 or inv > 0 or err > 0:
        track.cache_events.append((now, max(0, ev), max(0, inv), max(0, err)))
