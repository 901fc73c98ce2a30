"""Each agent over time: the slots it held, its memory, its cache's events, where it allocates.

Busy time is credited from the finished attempts themselves (`credit`, in
the profiler's batches): each held one slot of its agent from assignment to
result (occupancy.py). The slots an agent offered come from its sessions:
capacity from when it connected until it was gone. Attempts still running
are added at report time, up to then. The rest is read from the registry
and each agent's latest heartbeat (memory, cache counters, allocation
sites); a heartbeat is read once, when the record's `heartbeat_at` has
moved (a heartbeat that repeats the one before counts: it is another
reading of the same memory and counters).

The shell reads the fleet in rounds, a part each second, at most
`per_s` agents a second: a fleet up to that size is read every second,
5,000 agents with the default 1,000 every 5 s. Reading an agent costs the
coordinator a few microseconds, most of it fetching the agent's records
into the CPU cache, so a whole large fleet every second was the largest
thing the coordinator did beside reading heartbeats. What a round loses is
resolution: memory points and cache events come per round (counters are
cumulative, so no event is missed). A disconnected agent's slots still end
when its record left the registry, which the record keeps; the round that
notices closes its track. A report reads the whole fleet first.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from coordinator.core.model import (
    AgentRecord,
    AgentState,
    AllocationSite,
    CacheStats,
    Heartbeat,
    TaskRecord,
    TaskState,
)
from coordinator.profile.cache_log import sum_since
from coordinator.profile.occupancy import HORIZON_S, Grid, Occupancy, add_running, fold_floor

# Allocation snapshots are kept at most this often (the sidecar computes them every ~10 s).
ALLOC_STEP_S = 30.0
FORGET_GONE_S = 3600.0

_CANCELLED = TaskState.CANCELLED
_GONE = AgentState.GONE


@dataclass(slots=True)
class Span:
    """One stretch of an agent's connection with one capacity."""

    start: float
    capacity: int
    end: float = math.inf


@dataclass(slots=True)
class AgentTrack:
    agent_id: str
    session: int
    held: Occupancy
    capacity: int = 0
    version: str = ""
    connected_at: float = 0.0
    spans: list[Span] = field(default_factory=list)
    # (t, resident bytes), since the current session began.
    memory: deque[tuple[float, float]] = field(default_factory=deque)
    rss: int = 0
    allocations: deque[tuple[float, tuple[AllocationSite, ...]]] = field(default_factory=deque)
    # (t, evictions, invalidations, errors) increments seen in heartbeats.
    cache_events: deque[tuple[float, int, int, int]] = field(default_factory=lambda: deque(maxlen=4096))
    heartbeat: Heartbeat | None = None
    heartbeat_at: float = 0.0  # the record's heartbeat_at when it was last read
    # The registry's record last read: once it has left, when it did.
    record: AgentRecord | None = None
    gone_at: float | None = None

    def slots(self, starts: Sequence[float]) -> list[float]:
        """Slot-seconds the agent offered in each segment (`starts`: Grid.starts())."""
        out = [0.0] * (len(starts) - 1)
        for span in self.spans:
            for i in range(len(out)):
                lo, hi = max(starts[i], span.start), min(starts[i + 1], span.end)
                if hi > lo:
                    out[i] += span.capacity * (hi - lo)
        return out

    def cache_since(self, start: float) -> tuple[int, int, int]:
        """Evictions, invalidated entries and cache errors reported since `start`."""
        return sum_since(self.cache_events, start)


class Fleet:
    def __init__(self, leak_window_s: float, per_s: int = 1000) -> None:
        """per_s: agents read a second at most by `sample_steps` (see the module's note)."""
        self.tracks: dict[str, AgentTrack] = {}
        self._leak_window = leak_window_s
        # ~150 memory points per leak window: enough for a fit, bounded per agent.
        self._mem_step = max(1.0, leak_window_s / 150)
        # Every track's Occupancy folds at this floor (None before the first event).
        self.floor: int | None = None
        self._per_s = per_s
        # The round in progress: the live agents when it began, the next to read, how many a call.
        self._round: list[AgentRecord] = []
        self._next = 0
        self._part = 0

    def _track(self, agent_id: str, session: int, now: float) -> AgentTrack:
        if self.floor is None:
            self.floor = fold_floor(now)
        track = self.tracks[agent_id] = AgentTrack(agent_id, session, Occupancy(self.floor))
        return track

    def credit(self, finished: list[TaskRecord]) -> None:
        """Busy time of attempts that ended: a slot of their agent from assignment to result."""
        tracks = self.tracks
        held: dict[str, Occupancy] = {}
        for rec in finished:
            a = rec.assigned_at
            b = rec.finished_at
            if a is None or b is None:
                continue
            agent = rec.agent_id
            if not agent:
                # Lost with its agent's lease; anything else agentless never held a slot
                # (it expired or was cancelled in the queue).
                o = rec.outcome
                if rec.state is _CANCELLED or o is None or o.error_type != "lease_lost":
                    continue
                agent = rec.last_agent
            occ = held.get(agent)
            if occ is None:
                track = tracks.get(agent)
                if track is None:
                    track = self._track(agent, rec.session, b)
                occ = held[agent] = track.held
            occ.add(a, b)

    def sample(self, now: float, agents: list[AgentRecord]) -> None:
        """Read every agent of `agents` (the live fleet) now; close the tracks of the others."""
        self._fold(now)
        self._read(now, agents)
        self._sweep(now, {a.agent_id for a in agents})

    def sample_steps(self, now: float, live: Callable[[], list[AgentRecord]], step: int) -> Iterator[None]:
        """Read the next part of the round, pausing (yielding) after every `step`
        agents: the shell lets other work run in between, so a large fleet is
        never one long stall. Called once a second; `live` gives the live agents.
        A round of n agents takes ceil(n / per_s) calls; at its end the tracks
        of agents no longer live are closed."""
        self._fold(now)
        if self._next >= len(self._round):
            self._round = live()
            self._next = 0
            rounds = -(-len(self._round) // self._per_s)
            self._part = -(-len(self._round) // rounds) if rounds else 0
        agents, end = self._round, min(len(self._round), self._next + self._part)
        while self._next < end:
            upto = min(end, self._next + step)
            self._read(now, agents[self._next:upto])
            self._next = upto
            if upto < end:
                yield
        if self._next >= len(agents):
            self._round = []
            self._sweep(now, {a.agent_id for a in live()})

    def _fold(self, now: float) -> None:
        if self.floor is None:
            self.floor = fold_floor(now)
        floor = fold_floor(now)
        if floor > self.floor:
            self.floor = floor
            for each in self.tracks.values():
                each.held.fold(floor)

    def _read(self, now: float, agents: list[AgentRecord]) -> None:
        for agent in agents:
            if agent.state is _GONE:  # disconnected since the round began: the sweep closes it
                continue
            track = self.tracks.get(agent.agent_id)
            if track is None:
                track = self._track(agent.agent_id, agent.session, now)
            spans = track.spans
            if track.session != agent.session or not spans:
                # Another process (or a reconnect): its memory starts a new trace.
                if track.session != agent.session:
                    track.memory.clear()
                    track.allocations.clear()
                track.session = agent.session
                if spans and spans[-1].end > agent.connected_at:
                    spans[-1].end = max(spans[-1].start, agent.connected_at)
                spans.append(Span(agent.connected_at, agent.capacity))
            elif spans[-1].end != math.inf or spans[-1].capacity != agent.capacity:
                if spans[-1].end == math.inf:
                    spans[-1].end = now
                spans.append(Span(now, agent.capacity))
            while len(spans) > 1 and spans[0].end < now - HORIZON_S:
                del spans[0]
            track.gone_at = None
            track.record = agent
            track.capacity = agent.capacity
            track.version = agent.version
            track.connected_at = agent.connected_at
            if agent.heartbeat_at != track.heartbeat_at:
                track.heartbeat_at = agent.heartbeat_at
                self._heartbeat(track, agent.heartbeat, now)

    def _sweep(self, now: float, live: set[str]) -> None:
        """Close the tracks of agents not in `live`, at the time their record left the registry."""
        for agent_id, track in list(self.tracks.items()):
            if agent_id in live:
                continue
            if track.gone_at is None:
                left = track.record.left_at if track.record is not None else None
                end = now if left is None else min(now, left)
                spans = track.spans
                if spans and spans[-1].end == math.inf:
                    spans[-1].end = max(spans[-1].start, end)
                track.gone_at = end
            elif now - track.gone_at > FORGET_GONE_S:
                del self.tracks[agent_id]

    def grid(self, start: float, now: float) -> Grid:
        """The segments a report over [start, now] reads busy time in."""
        if self.floor is None:
            self.floor = fold_floor(now)
        return Grid.over(start, now, self.floor)

    def busy(self, track: AgentTrack, grid: Grid, starts: Sequence[float], running: Sequence[float]
             ) -> list[float]:
        """Slot-seconds the agent's attempts held in each segment, those still `running` (their
        assignment times) up to the grid's end."""
        values = track.held.values(grid)
        add_running(values, starts, running)
        return values

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
    # Counters restart with the sidecar: after a fall they count from zero again.
    ev = _delta(cur.evictions, prev.evictions)
    inv = _delta(cur.invalidations, prev.invalidations)
    err = _delta(cur.errors, prev.errors)
    if ev or inv or err:
        track.cache_events.append((now, ev, inv, err))


def _delta(cur: int, prev: int) -> int:
    return cur - prev if cur >= prev else cur
