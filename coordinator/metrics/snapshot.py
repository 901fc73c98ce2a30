"""One consistent reading of the coordinator, for every metrics renderer.

`take_snapshot` copies what the metrics show out of the core into frozen
values. It must run on the event loop thread, between two callbacks, so that
it never sees the core half-way through a change: the Prometheus endpoint and
the OTLP reader run on threads of their own, and `LoopSnapshots` hops over to
the loop for them and waits for the copy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from coordinator.core.mesh import MeshCore
from coordinator.core.model import AgentState, CacheStats, Counters
from coordinator.metrics.latency import OTHER, PhaseHistogram, PhaseLatency


@dataclass(frozen=True, slots=True)
class AgentSample:
    agent_id: str
    state: str  # "ready" or "draining"
    in_flight: int
    capacity: int
    # Slots the balancer lets it use now (less during slow start, 0 while ejected).
    allowed: int
    completed: int
    failed: int
    memory_rss_bytes: int
    cache: CacheStats
    ejected: bool

    @property
    def load(self) -> float:
        return self.in_flight / self.capacity if self.capacity else 1.0


@dataclass(frozen=True, slots=True)
class MeshSnapshot:
    taken_at: float  # seconds since the epoch
    queue_depth: int
    queued_by_kind: tuple[tuple[str, int], ...]
    tasks_by_state: tuple[tuple[str, int], ...]  # tasks the coordinator holds, by state name
    counters: tuple[tuple[str, int], ...]  # name -> value, as in core.model.Counters
    agents: tuple[AgentSample, ...]  # at most max_agents, by agent id
    agents_by_state: tuple[tuple[str, int], ...]  # all live agents, not only those listed
    capacity_slots: int
    in_flight: int
    cache_hits: int
    cache_misses: int
    latency: tuple[PhaseHistogram, ...]

    @property
    def cache_hit_ratio(self) -> float | None:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else None


_COUNTER_FIELDS = tuple(f.name for f in fields(Counters))


def take_snapshot(core: MeshCore, latency: PhaseLatency | None = None, now: float | None = None,
                  max_agents: int = 1000, max_kinds: int = 200) -> MeshSnapshot:
    """Copy the metrics' view of the core. O(agents + kinds); run it on the loop."""
    now = time.time() if now is None else now
    live = core.registry.live()
    by_state = {"ready": 0, "draining": 0}
    capacity = in_flight = hits = misses = 0
    for a in live:
        if a.state == AgentState.READY:
            by_state["ready"] += 1
        elif a.state == AgentState.DRAINING:
            by_state["draining"] += 1
        capacity += a.capacity
        in_flight += len(a.in_flight)
        hits += a.heartbeat.cache.hits
        misses += a.heartbeat.cache.misses
    listed = sorted(live, key=lambda a: a.agent_id)[:max_agents]
    agents = tuple(
        AgentSample(
            agent_id=a.agent_id,
            state="draining" if a.state == AgentState.DRAINING else "ready",
            in_flight=len(a.in_flight),
            capacity=a.capacity,
            allowed=a.allowed,
            completed=a.completed,
            failed=a.failed,
            memory_rss_bytes=a.heartbeat.memory_rss_bytes,
            cache=a.heartbeat.cache,
            ejected=now < a.stats.ejected_until,
        )
        for a in listed
    )
    return MeshSnapshot(
        taken_at=now,
        queue_depth=core.queue_depth,
        queued_by_kind=_cap_kinds(core.queued_by_kind(), max_kinds),
        tasks_by_state=tuple((s.name.lower(), n) for s, n in core.state_counts().items()),
        counters=tuple((name, getattr(core.counters, name)) for name in _COUNTER_FIELDS),
        agents=agents,
        agents_by_state=tuple(by_state.items()),
        capacity_slots=capacity,
        in_flight=in_flight,
        cache_hits=hits,
        cache_misses=misses,
        latency=latency.snapshot() if latency is not None else (),
    )


def _cap_kinds(counts: dict[str, int], max_kinds: int) -> tuple[tuple[str, int], ...]:
    """The max_kinds kinds with the most tasks queued; the rest summed under OTHER."""
    if len(counts) <= max_kinds:
        return tuple(sorted(counts.items()))
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    kept = dict(ranked[:max_kinds])
    kept[OTHER] = kept.get(OTHER, 0) + sum(n for _, n in ranked[max_kinds:])
    return tuple(sorted(kept.items()))


class LoopSnapshots:
    """Snapshots for threads other than the loop's.

    `get()` asks the loop for a fresh snapshot and waits up to `timeout` s for
    it; a reading younger than `max_age_s` is shared, so the many callbacks of
    one OTLP collection (and a scrape at the same moment) cost one loop turn.
    A loop too busy to answer in time makes `get()` raise TimeoutError: the
    scrape fails, which is what a wedged coordinator should look like.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, take: Callable[[], MeshSnapshot], timeout: float = 5.0,
                 max_age_s: float = 1.0) -> None:
        self._loop = loop
        self._take = take
        self.timeout = timeout
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._last: MeshSnapshot | None = None
        self._last_mono = -float("inf")

    def get(self) -> MeshSnapshot:
        with self._lock:
            now = time.monotonic()
            if now - self._last_mono < self.max_age_s:
                if self._last is None:  # the last try failed: don't wait on the loop again so soon
                    raise TimeoutError(f"no snapshot: the last attempt failed under {self.max_age_s} s ago")
                return self._last
            try:
                snap = self._fetch()
            except BaseException:
                self._last, self._last_mono = None, time.monotonic()
                raise
            self._last, self._last_mono = snap, time.monotonic()
            return snap

    def _fetch(self) -> MeshSnapshot:
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:  # e.g. a final export started from the loop itself
            return self._take()
        fut: concurrent.futures.Future[MeshSnapshot] = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(self._take())
            except BaseException as e:  # handed to the waiting thread
                fut.set_exception(e)

        self._loop.call_soon_threadsafe(run)
        try:
            return fut.result(self.timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"the event loop did not answer within {self.timeout} s") from None

