"""The profiler: where the mesh's time goes, what limits it, and what to do about it.

Three entry points, all on the coordinator's event loop, none with a clock
of its own (time is passed in):

* `on_change` is a MeshCore listener, called on every task transition. It
  only keeps a reference to records that finished an attempt (or failed in
  the queue) and to tasks just accepted; see samples.py for why that is safe.
* `tick` runs with the coordinator's ticker (every ~0.2 s): it accounts for
  those records (phases, and the slots they held: busy time is credited
  from the attempts themselves, not sampled), notes the coordinator's cache
  totals (invalidations, warm-ups; read through `cache_totals`, so the
  profiler knows nothing of the service that keeps them), and once a second
  samples the queue and unroutable classes, and reads a part of the fleet
  (agents' sessions, memory and cache counters; fleet.py says why in
  parts); every `history_interval_s` it writes one history row.
* `report` turns one window of that into a ProfileReport: phases per kind
  and agent, findings (diagnosis.py, agent_health.py) and forecasts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from coordinator.core.mesh import MeshCore
from coordinator.core.model import AgentState, TaskRecord, TaskState
from coordinator.core.registry import RouteKey
from coordinator.profile import forecast
from coordinator.profile.cache_log import CacheLog, CacheTotals
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.fleet import Fleet
from coordinator.profile.history import HistoryStore
from coordinator.profile.insight import Insight
from coordinator.profile.report import PHASES, TOTAL, HistoryPoint, ProfileReport
from coordinator.profile.samples import Recorder
from coordinator.profile.window import aggregate

__all__ = ["Profiler", "ProfilerConfig"]

SAMPLE_EVERY_S = 1.0
SAMPLE_STEP = 100  # agents sampled between two yields to the event loop (a slice: well under 1 ms)
# Longest gap between samples credited to a history row (a stalled ticker proves nothing).
MAX_GAP_S = 10.0
COMPACT_EVERY_S = 60.0
MAX_WINDOW_S = 3600.0
# Records held between ticks at most; beyond it the listener accounts for them itself.
DRAIN_AT = 8192

_ASSIGNED = TaskState.ASSIGNED
_PENDING = TaskState.PENDING
_FAILED = TaskState.FAILED
_READY = AgentState.READY
_TOTAL = PHASES.index(TOTAL)


@dataclass(slots=True)
class _Interval:
    """Running sums for the history row being built."""

    start: float
    finished: int
    failed: int
    time: float = 0.0
    queue: float = 0.0
    in_flight: float = 0.0
    capacity: float = 0.0
    ready: float = 0.0


class Profiler:
    def __init__(self, core: MeshCore, config: ProfilerConfig,
                 cache_totals: Callable[[], CacheTotals] | None = None) -> None:
        """`cache_totals`: the coordinator's running cache totals (invalidations, warm-ups), when it has them."""
        self._core = core
        self._cfg = config
        self._cache_totals = cache_totals
        self._done: list[TaskRecord] = []
        self._arrived: list[TaskRecord] = []
        self._rec = Recorder(config.samples_per_s, config.key_memory_s, config.max_cache_keys,
                             config.popularity_half_life_s)
        self._fleet = Fleet(config.leak_window_s, config.agents_read_per_s)
        self._cache = CacheLog()
        self._history = HistoryStore(config.history_path, config.history_retention_s)
        self._started: float | None = None
        self._sampled_at: float | None = None
        self._compacted_at = 0.0
        self._interval: _Interval | None = None
        # Routing class -> when it was first seen with tasks queued and no ready agent.
        self._unroutable: dict[RouteKey, float] = {}
        self._closed = False

    @property
    def config(self) -> ProfilerConfig:
        return self._cfg

    @property
    def history(self) -> HistoryStore:
        return self._history

    # -- hot path ------------------------------------------------------------------

    def on_change(self, rec: TaskRecord, old: TaskState | None) -> None:
        if old is _ASSIGNED:
            # A lost lease (back to PENDING) is not a finished attempt.
            if rec.state is not _PENDING:
                done = self._done
                done.append(rec)
                if len(done) >= DRAIN_AT:
                    self._drain()
        elif old is None:
            arrived = self._arrived
            arrived.append(rec)
            if len(arrived) >= DRAIN_AT:
                self._drain()
        elif rec.state is _FAILED:
            # Expired while queued: a failure of its kind with no agent.
            self._done.append(rec)

    def _drain(self) -> None:
        done, arrived = self._done, self._arrived
        if not done and not arrived:
            return
        self._done, self._arrived = [], []
        if self._started is None and arrived:
            self._started = arrived[0].created_at
        self._rec.drain(done, arrived)
        if done:
            self._fleet.credit(done)

    # -- ticker --------------------------------------------------------------------

    def tick(self, now: float) -> None:
        for _ in self.tick_steps(now):
            pass

    def tick_steps(self, now: float) -> Iterator[None]:
        """tick() in slices of SAMPLE_STEP agents: the shell runs one slice per
        turn of its loop, so sampling 5,000 agents is not a 20-40 ms stall."""
        if self._closed:
            return
        self._drain()
        self._note_cache(now)
        if self._started is None:
            self._started = now
        if self._sampled_at is None or now - self._sampled_at >= SAMPLE_EVERY_S:
            yield from self._sample(now)
        iv = self._interval
        if iv is not None and now - iv.start >= self._cfg.history_interval_s:
            self._write_history(now, iv)
        if now - self._compacted_at >= COMPACT_EVERY_S:
            self._compacted_at = now
            self._history.compact(now)

    def _note_cache(self, now: float) -> None:
        if self._cache_totals is not None:
            self._cache.note(now, self._cache_totals())

    def _new_interval(self, now: float) -> _Interval:
        c = self._core.counters
        return _Interval(now, c.succeeded + c.failed, c.failed)

    def _sample(self, now: float) -> Iterator[None]:
        core = self._core
        dt = 0.0 if self._sampled_at is None else min(max(0.0, now - self._sampled_at), MAX_GAP_S)
        self._sampled_at = now
        yield from self._fleet.sample_steps(now, core.registry.live, SAMPLE_STEP)
        agents = core.registry.live()
        if self._interval is None:
            self._interval = self._new_interval(now)
        iv = self._interval
        iv.time += dt
        iv.queue += core.queue_depth * dt
        in_flight = capacity = ready = 0
        for i, a in enumerate(agents):
            if i and not i % SAMPLE_STEP:
                yield
            in_flight += len(a.in_flight)
            if a.state == _READY:
                capacity += a.capacity
                ready += 1
        iv.in_flight += in_flight * dt
        iv.capacity += capacity * dt
        iv.ready += ready * dt
        self._rec.expire(now)
        self._track_unroutable(now)

    def _track_unroutable(self, now: float) -> None:
        registry = self._core.registry
        queued = self._core.queued_by_class()
        for key in [k for k in self._unroutable if k not in queued]:
            del self._unroutable[key]
        for key in queued:
            if registry.eligible(key):
                self._unroutable.pop(key, None)
            else:
                self._unroutable.setdefault(key, now)

    def _write_history(self, now: float, iv: _Interval) -> None:
        live = self._live_totals()
        span = now - iv.start

        def avg(total: float, current: float) -> float:
            return total / iv.time if iv.time > 0 else current

        c = self._core.counters
        everything = aggregate(self._rec.window(iv.start, now)).all
        point = HistoryPoint(
            at=iv.start, span_s=span, queue_depth=avg(iv.queue, self._core.queue_depth),
            in_flight=avg(iv.in_flight, live[0]), capacity=avg(iv.capacity, live[1]),
            agents_ready=avg(iv.ready, live[2]),
            throughput_per_s=(c.succeeded + c.failed - iv.finished) / span if span > 0 else 0.0,
            failures_per_s=(c.failed - iv.failed) / span if span > 0 else 0.0,
            p99_total_ms=everything.quantile(_TOTAL, 0.99) * 1e3 if everything.groups else 0.0,
            cache_hit_rate=everything.hit_rate)
        self._history.add(point, self._cfg.history_interval_s, everything.lookups)
        self._interval = self._new_interval(now)

    def _live_totals(self) -> tuple[int, int, int]:
        """(in flight, capacity of ready agents, ready agents) right now."""
        agents = self._core.registry.live()
        ready = [a for a in agents if a.state == _READY]
        return sum(len(a.in_flight) for a in agents), sum(a.capacity for a in ready), len(ready)

    # -- report ------------------------------------------------------------------------

    def report(self, now: float, window_s: float = 0.0, kind: str = "", agent_id: str = "",
               history_points: int = 0) -> ProfileReport:
        """Profile of the last `window_s` seconds (0 = the configured window), optionally of one kind or agent."""
        self._drain()
        self._note_cache(now)
        if not self._closed:
            if self._sampled_at is None:
                for _ in self._sample(now):
                    pass
            else:
                # Agents that connected since the last sample offer slots from
                # their connection on; without this a report right after a
                # short burst would see their busy time against no slots at all.
                self._fleet.sample(now, self._core.registry.live())
        window = min(window_s if window_s > 0 else self._cfg.window_s, MAX_WINDOW_S)
        start = now - window
        span = window if self._started is None else max(1.0, min(window, now - self._started))
        insight = Insight(self._core, self._cfg, self._fleet, self._rec, now, start, span, self._unroutable,
                          self._cache.since(start))
        kinds, agents, findings = insight.build(kind, agent_id)
        in_flight, capacity, _ = self._live_totals()
        past = self._history.since(now - self._cfg.forecast_window_s)
        queue = self._core.queue_depth
        threshold = forecast.queue_threshold(self._cfg.forecast_queue_depth, capacity)
        forecasts = (forecast.queue_depth(past, now, queue, threshold),
                     forecast.utilization(past, now, in_flight / capacity if capacity else 0.0))
        if not kind and not agent_id:
            findings = insight.with_queue_growth(findings, forecasts[0])
        return ProfileReport(
            generated_at=now, window_s=window, kinds=kinds, agents=agents, findings=findings,
            forecasts=forecasts, history=tuple(self._history.recent(history_points)))

    def close(self) -> None:
        """Write the history row in progress (up to the last sample) and close the store; idempotent."""
        if self._closed:
            return
        self._drain()
        iv, last = self._interval, self._sampled_at
        if iv is not None and last is not None and last > iv.start:
            self._write_history(last, iv)
        self._closed = True
        self._history.close()
