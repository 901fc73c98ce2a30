"""A simulated mesh for the profiler's tests: the real MeshCore and Profiler, simulated agents, a hand-driven clock.

Agents take their assignments, "run" them for a service time, report results
(with the sidecar's timings), heartbeat once a second with their memory and
cache counters, and keep a per-agent cache of the keys they computed, which
`invalidate` drops as the coordinator's invalidation would (and counts it in
the totals the coordinator passes to the profiler's tick).
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from coordinator.core.balancer import BalancerConfig
from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import (
    AllocationSite,
    CacheStats,
    Heartbeat,
    Outcome,
    Registration,
    ResultIn,
    TaskSpec,
    TaskState,
)
from coordinator.profile.cache_log import CacheTotals
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.profiler import Profiler
from coordinator.profile.report import Finding, ProfileReport, Severity

T0 = 1_700_000_000.0
HIT_S = 0.001


@dataclass
class SimAgent:
    agent_id: str
    session: int
    capacity: int
    # kind -> seconds a task takes (a fixed value or a function of the rng).
    service: Callable[[str, random.Random], float]
    memory: Callable[[float], float]
    fail_rate: float = 0.0
    # Cached keys, least recently used first; at most cache_size of them.
    cache: OrderedDict[str, None] = field(default_factory=OrderedDict)
    cache_size: int = 1_000_000
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0
    allocations: Callable[[float], tuple[AllocationSite, ...]] | None = None


class Sim:
    def __init__(self, config: ProfilerConfig | None = None, strategy: str = "hybrid",
                 overrides: tuple[tuple[str, str], ...] = (), slow_start_s: float = 0.0, seed: int = 1,
                 start: float = T0) -> None:
        from coordinator.core.feedback import HealthConfig

        self.core = MeshCore(CoreConfig(
            lease_timeout_s=30.0, retention_s=600.0, max_retained=1_000_000,
            balancer=BalancerConfig(strategy=strategy, overrides=overrides),
            health=HealthConfig(slow_start_s=slow_start_s, outlier_ejection=False)))
        self.cache_totals = CacheTotals()
        self.profiler = Profiler(self.core, config or ProfilerConfig(), lambda: self.cache_totals)
        self.core.add_listener(self.profiler.on_change)
        self.now = start
        self.rng = random.Random(seed)
        self.agents: dict[str, SimAgent] = {}
        # (finish time, seq, agent id, task id, attempt, outcome state, outcome)
        self._running: list[tuple[float, int, str, str, int, int, Outcome]] = []
        self._seq = 0
        self._arrival_debt: dict[str, float] = {}
        self._next_beat = start
        self._next_tick = start

    def add_agent(self, agent_id: str, capacity: int = 4, kinds: tuple[str, ...] = (),
                  labels: dict[str, int] | None = None, service: float | Callable[[str, random.Random], float] = 0.05,
                  memory: Callable[[float], float] | None = None, version: str = "1", fail_rate: float = 0.0,
                  allocations: Callable[[float], tuple[AllocationSite, ...]] | None = None,
                  cache_size: int = 1_000_000) -> SimAgent:
        reg = Registration(agent_id, tuple(sorted((labels or {}).items())), frozenset(kinds), capacity, version,
                           capacity)
        rec, _ = self.core.register(reg, self.now)
        fn = service if callable(service) else (lambda _k, _r, s=service: s)
        agent = SimAgent(agent_id, rec.session, capacity, fn, memory or (lambda _t: 200e6), fail_rate,
                         cache_size=cache_size, allocations=allocations)
        self.agents[agent_id] = agent
        return agent

    def submit(self, kind: str, n: int = 1, **kw: object) -> None:
        if "required_labels" in kw:
            kw["required_labels"] = tuple(sorted(kw["required_labels"].items()))  # type: ignore[attr-defined]
        self.core.submit([TaskSpec(kind=kind, **kw) for _ in range(n)], self.now)  # type: ignore[arg-type]

    def submit_keys(self, kind: str, keys: list[str]) -> None:
        self.core.submit([TaskSpec(kind=kind, cache_key=k) for k in keys], self.now)

    def invalidate(self, keys: list[str], warmups: int = 0) -> int:
        """Drop these keys from every agent's cache; the number of entries dropped."""
        dropped = 0
        for agent in self.agents.values():
            for key in keys:
                if key in agent.cache:
                    del agent.cache[key]
                    agent.invalidations += 1
                    dropped += 1
        t = self.cache_totals
        self.cache_totals = CacheTotals(t.invalidations + 1, t.dropped + dropped, t.warmups + warmups)
        return dropped

    def _complete_due(self) -> None:
        done: dict[str, list[ResultIn]] = {}
        while self._running and self._running[0][0] <= self.now:
            _, _, agent_id, task_id, attempt, state, outcome = heapq.heappop(self._running)
            done.setdefault(agent_id, []).append(ResultIn(task_id, attempt, state, outcome))
        for agent_id, results in done.items():
            agent = self.agents[agent_id]
            self.core.frame(agent_id, agent.session, self.now, results, credits=len(results))

    def _start(self, agent: SimAgent, task_id: str, attempt: int) -> None:
        rec = self.core.get(task_id)
        key = rec.spec.cache_key
        if key and key in agent.cache:
            agent.cache.move_to_end(key)
            agent.hits += 1
            took = HIT_S
            outcome = Outcome(duration_us=int(HIT_S * 1e6), cache_hit=True, agent_us=int(HIT_S * 1e6) + 200,
                              cache_us=int(HIT_S * 1e6))
            state = TaskState.SUCCEEDED
        else:
            lookup = 0.0005 if key else 0.0
            run = agent.service(rec.spec.kind, self.rng)
            took = run + lookup
            failed = agent.fail_rate > 0 and self.rng.random() < agent.fail_rate
            state = TaskState.FAILED if failed else TaskState.SUCCEEDED
            outcome = Outcome(error="ValueError: bad" if failed else "",
                              error_type="handler_error" if failed else "", duration_us=int(run * 1e6),
                              agent_us=int(took * 1e6) + 200, cache_us=int(lookup * 1e6))
            if key:
                agent.misses += 1
                if not failed:
                    agent.cache[key] = None
                    if len(agent.cache) > agent.cache_size:
                        agent.cache.popitem(last=False)
                        agent.evictions += 1
        # A millisecond each way on the wire.
        self._seq += 1
        heapq.heappush(self._running, (self.now + took + 0.002, self._seq, agent.agent_id, task_id, attempt,
                                       int(state), outcome))

    def _heartbeats(self) -> None:
        for agent in self.agents.values():
            rec = self.core.registry.get(agent.agent_id)
            if rec is None:
                continue
            hb = Heartbeat(in_flight=len(rec.in_flight), free_slots=agent.capacity - len(rec.in_flight),
                           memory_rss_bytes=int(agent.memory(self.now)),
                           cache=CacheStats(hits=agent.hits, misses=agent.misses, evictions=agent.evictions,
                                            invalidations=agent.invalidations, entries=len(agent.cache)),
                           allocations=agent.allocations(self.now) if agent.allocations else ())
            self.core.frame(agent.agent_id, agent.session, self.now, heartbeat=hb)

    def run(self, seconds: float, rates: dict[str, float] | None = None,
            keys: dict[str, Callable[[random.Random], str]] | None = None, step: float = 0.01,
            spec: dict[str, dict[str, object]] | None = None) -> None:
        """Advance the clock, with Poisson-free (evenly spread) arrivals per kind at `rates` a second."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + step, 6)
            for kind, rate in (rates or {}).items():
                debt = self._arrival_debt.get(kind, 0.0) + rate * step
                n = int(debt)
                self._arrival_debt[kind] = debt - n
                if n:
                    make = (keys or {}).get(kind)
                    if make is not None:
                        self.submit_keys(kind, [make(self.rng) for _ in range(n)])
                    else:
                        self.submit(kind, n, **(spec or {}).get(kind, {}))
            self._complete_due()
            for agent_id, recs in self.core.dispatch(self.now).items():
                for rec in recs:
                    self._start(self.agents[agent_id], rec.task_id, rec.attempt)
            if self.now >= self._next_beat:
                self._next_beat += 1.0
                self._heartbeats()
            if self.now >= self._next_tick:
                self._next_tick += 0.2
                self.core.tick(self.now)
                self.profiler.tick(self.now)

    def report(self, **kw: object) -> ProfileReport:
        return self.profiler.report(self.now, **kw)  # type: ignore[arg-type]


def serious(report: ProfileReport) -> list[Finding]:
    return [f for f in report.findings if f.severity >= Severity.WARNING]


def by_category(report: ProfileReport, category: str) -> list[Finding]:
    return [f for f in report.findings if f.category == category]


def figures(f: Finding) -> dict[str, float]:
    return dict(f.figures)
