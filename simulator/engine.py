"""The event loop: simulated clients and agents around a real MeshCore.

Events sit in a heap ordered by (time, sequence). After every batch of
events sharing a timestamp the loop calls `core.dispatch(now)`, as the
coordinator's shell does after each frame, and turns each assignment into a
completion event at now + service time. The core's ticker runs every
`tick_s` of simulated time. Nothing reads a real clock.

Common random numbers: every task's size (its service time on the fastest
agent, before any slowdown) is drawn when it arrives, from a stream that does
not depend on where it runs. So all strategies face the same tasks, and
differences come from their decisions alone.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from coordinator.core.balancer import Strategy
from coordinator.core.mesh import MeshCore
from coordinator.core.model import (
    CoreError,
    Heartbeat,
    KindLatency,
    Outcome,
    Registration,
    ResultIn,
    TaskSpec,
    TaskState,
)
from simulator.metrics import RunResult, TaskSample
from simulator.model import Scenario, SimAgentSpec, Stream

_ARRIVE, _DONE, _TICK, _JOIN, _BEAT = 0, 1, 2, 3, 4
_BEAT_S = 1.0  # sidecars heartbeat every second; a silent agent's lease would expire
_HIT = Outcome(output=b"", duration_us=1, cache_hit=True)


@dataclass(slots=True)
class _Task:
    stream: int
    submitted: float
    size: float
    cache_key: str
    assigned: float = 0.0


class _Agent:
    def __init__(self, spec: SimAgentSpec) -> None:
        self.spec = spec
        self.session = 0
        self.busy_s = 0.0
        self.done = 0
        self.cache: OrderedDict[str, None] = OrderedDict()
        # What a sidecar reports in heartbeats: its own EWMA of handler time per kind.
        self.ewma_ms: dict[str, float] = {}


def _zipf_cdf(n: int, s: float = 1.0) -> list[float]:
    weights = [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(weights)
    out, acc = [], 0.0
    for w in weights:
        acc += w / total
        out.append(acc)
    return out


class Simulation:
    def __init__(self, scenario: Scenario, strategy: str | Callable[[Simulation], Strategy], seed: int = 1,
                 tick_s: float = 0.2) -> None:
        self.scenario = scenario
        self.now = 0.0
        self.tick_s = tick_s
        cfg = scenario.core
        if isinstance(strategy, str):
            cfg = replace(cfg, balancer=replace(cfg.balancer, strategy=strategy, seed=seed))
            self.core = MeshCore(cfg, rng=random.Random(f"{seed}/retries"))
            self.strategy_name = strategy
        else:
            self.core = MeshCore(cfg, strategy(self), random.Random(f"{seed}/retries"))
            self.strategy_name = self.core.strategy.name
        self._agents = {a.agent_id: _Agent(a) for a in scenario.agents}
        self._arrivals = random.Random(f"{seed}/arrivals")
        self._outcomes = random.Random(f"{seed}/outcomes")
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self._tasks: dict[str, _Task] = {}
        self._closed_open: dict[int, int] = {}
        # A client told RESOURCE_EXHAUSTED honours the retry hint: until then
        # its new tasks are shed without asking the coordinator.
        self._blocked_until: dict[int, float] = {}
        self._zipf = {i: _zipf_cdf(s.cache_keys) for i, s in enumerate(scenario.streams) if s.cache_keys}
        self.result = RunResult(scenario.name, self.strategy_name, scenario.duration_s, scenario.warmup_s)

    # -- the world as the oracle sees it ---------------------------------------

    def true_mean(self, agent_id: str, kind: str) -> float:
        return self.scenario.base_service_s * self._agents[agent_id].spec.slowness_at(self.now)

    # -- events ------------------------------------------------------------------

    def _at(self, t: float, what: int, data: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, what, data))

    def run(self) -> RunResult:
        sc = self.scenario
        for agent in self._agents.values():
            self._at(agent.spec.joins_at, _JOIN, agent)
        for i, s in enumerate(sc.streams):
            if s.closed:
                for _ in range(s.closed):
                    self._at(s.start, _ARRIVE, i)
                self._closed_open[i] = s.closed
            elif s.rate > 0:
                self._at(s.start + self._arrivals.expovariate(s.rate), _ARRIVE, i)
        self._at(self.tick_s, _TICK, None)
        events = self._events
        core = self.core
        # Past the end, arrivals stop and the run drains what was measured.
        hard_stop = sc.duration_s * 3 + 60
        while events:
            t = events[0][0]
            if t > hard_stop:
                break
            self.now = t
            changed = False
            while events and events[0][0] == t:
                _, _, what, data = heapq.heappop(events)
                if what == _DONE:
                    self._done(data)  # type: ignore[arg-type]
                    changed = True
                elif what == _ARRIVE:
                    changed |= self._arrive(data)  # type: ignore[arg-type]
                elif what == _BEAT:
                    self._beat(data)  # type: ignore[arg-type]
                elif what == _TICK:
                    core.tick(t)
                    changed = True
                    if t < sc.duration_s or self.result.unfinished(sc):
                        self._at(t + self.tick_s, _TICK, None)
                else:
                    self._join(data)  # type: ignore[arg-type]
                    changed = True
            if changed:
                self._dispatch()
            if t >= sc.duration_s and not self.result.unfinished(sc):
                break
        self.result.finish(self.now, {a: (g.busy_s, g.spec.capacity, g.done) for a, g in self._agents.items()},
                           sc, core.counters.submitted)
        return self.result

    def _join(self, agent: _Agent) -> None:
        s = agent.spec
        rec, _ = self.core.register(Registration(s.agent_id, s.labels, frozenset(), s.capacity, "sim", s.capacity),
                                    self.now)
        agent.session = rec.session
        self._at(self.now + _BEAT_S, _BEAT, agent)

    def _beat(self, agent: _Agent) -> None:
        lat = tuple(KindLatency(k, v, 0, 0) for k, v in agent.ewma_ms.items())
        self.core.frame(agent.spec.agent_id, agent.session, self.now,
                        heartbeat=Heartbeat(in_flight=0, free_slots=0, latencies=lat))
        if self.now < self.scenario.duration_s or self.result.unfinished(self.scenario):
            self._at(self.now + _BEAT_S, _BEAT, agent)

    def _arrive(self, i: int) -> bool:
        sc = self.scenario
        stream = sc.streams[i]
        now = self.now
        if now >= min(stream.end, sc.duration_s):
            return False
        if not stream.closed:
            self._at(now + self._arrivals.expovariate(stream.rate), _ARRIVE, i)
        return self._submit(i, stream)

    def _submit(self, i: int, stream: Stream) -> bool:
        sc = self.scenario
        if self.now < self._blocked_until.get(i, 0.0):
            self.result.rejected[stream.name] = self.result.rejected.get(stream.name, 0) + 1
            if stream.closed:
                self._at(self._blocked_until[i], _ARRIVE, i)
            return False
        sigma = sc.size_sigma
        size = math.exp(self._arrivals.gauss(-sigma * sigma / 2, sigma)) if sigma else 1.0
        key = ""
        if stream.cache_keys:
            key = f"k{_bisect(self._zipf[i], self._arrivals.random())}"
        spec = TaskSpec(kind=stream.kind, tenant="shared" if sc.single_tenant else stream.tenant,
                        priority=stream.priority, preferred_labels=stream.preferred_labels, cache_key=key)
        try:
            [sub] = self.core.submit([spec], self.now)
        except CoreError as e:
            self.result.rejected[stream.name] = self.result.rejected.get(stream.name, 0) + 1
            self._blocked_until[i] = self.now + max(e.retry_after_ms, 100) / 1000
            if stream.closed:
                self._at(self._blocked_until[i], _ARRIVE, i)
            return False
        self._tasks[sub.task_id] = _Task(i, self.now, size, key)
        self.result.submitted(stream.name, self.now)
        return True

    def _dispatch(self) -> None:
        now = self.now
        sc = self.scenario
        for agent_id, recs in self.core.dispatch(now).items():
            agent = self._agents[agent_id]
            slowness = agent.spec.slowness_at(now)
            for rec in recs:
                task = self._tasks[rec.task_id]
                task.assigned = now
                service = sc.base_service_s * slowness * task.size
                hit = False
                if sc.cache_entries and task.cache_key:
                    hit = task.cache_key in agent.cache
                    if hit:
                        agent.cache.move_to_end(task.cache_key)
                        service *= sc.cache_hit_factor
                agent.busy_s += service
                kind = rec.spec.kind
                prev = agent.ewma_ms.get(kind)
                agent.ewma_ms[kind] = service * 1000 if prev is None else prev + (service * 1000 - prev) * 0.1
                self._at(now + service, _DONE, (agent, rec.task_id, rec.attempt, hit, service))

    def _done(self, data: tuple[_Agent, str, int, bool, float]) -> None:
        agent, task_id, attempt, hit, service = data
        sc = self.scenario
        task = self._tasks[task_id]
        stream = sc.streams[task.stream]
        failed = agent.spec.error_rate > 0 and self._outcomes.random() < agent.spec.error_rate
        # Like a sidecar, report the handler's wall time.
        us = max(1, int(service * 1e6))
        outcome = (Outcome(error="simulated failure", error_type="handler_error", duration_us=us) if failed
                   else _HIT if hit else Outcome(duration_us=us))
        state = TaskState.FAILED if failed else TaskState.SUCCEEDED
        self.core.frame(agent.spec.agent_id, agent.session, self.now, [ResultIn(task_id, attempt, state, outcome)],
                        credits=1)
        agent.done += 1
        if sc.cache_entries and task.cache_key and not hit and not failed:
            agent.cache[task.cache_key] = None
            if len(agent.cache) > sc.cache_entries:
                agent.cache.popitem(last=False)
        if not self.core.get(task_id).state.terminal:
            return  # a failed attempt its kind's retry policy retries: the task comes back
        del self._tasks[task_id]
        self.result.record(TaskSample(stream.name, stream.tenant, stream.priority, task.submitted, task.assigned,
                                      self.now, agent.spec.agent_id, failed, hit))
        if stream.closed and self.now < min(stream.end, sc.duration_s):
            self._submit(task.stream, stream)


def _bisect(cdf: list[float], u: float) -> int:
    lo, hi = 0, len(cdf) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo
