"""The single-criterion strategies: round-robin, least-loaded, performance-aware
and expertise match. Cache affinity and the hybrid default have their own modules.

Ties rotate (the scan starts at a moving offset) so that equal agents share
work evenly instead of the first one taking every tie.
"""

from __future__ import annotations

import random

from coordinator.core.balancer import (
    EXPERTISE,
    FASTEST,
    LEAST_LOADED,
    ONLY,
    ROTATION,
    SAMPLED,
    BalancerConfig,
    Pool,
    expertise_match,
    wait_or_run,
    worth_waiting,
)
from coordinator.core.model import AgentRecord, TaskRecord


class RoundRobin:
    """Each agent with a free slot in turn; blind to speed and load beyond the
    free slot itself (credits already keep a slow agent from piling up work)."""

    name = "round-robin"
    uses_latency = False

    def __init__(self, config: BalancerConfig, rng: random.Random) -> None:
        self._turn = 0

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        if not ready:
            return None
        self._turn += 1
        pool.reason = ROTATION
        pool.score = 0.0
        return ready[self._turn % len(ready)]


class LeastLoaded:
    """Fewest assignments in flight relative to allowed concurrency, counted by
    the coordinator itself (heartbeats lag). Power of two choices beyond
    full_scan_limit candidates."""

    name = "least-loaded"
    uses_latency = False

    def __init__(self, config: BalancerConfig, rng: random.Random) -> None:
        self._turn = 0
        self._limit = config.full_scan_limit
        self._rng = rng

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        n = len(ready)
        if n <= 1:
            if not n:
                return None
            pool.reason, pool.score = ONLY, 0.0
            return ready[0]
        panic = pool.panic
        if n > self._limit:
            i = self._rng.randrange(n)
            j = self._rng.randrange(n - 1)
            a, b = ready[i], ready[j + 1 if j >= i else j]
            la = len(a.in_flight) / (a.capacity if panic else a.allowed)
            lb = len(b.in_flight) / (b.capacity if panic else b.allowed)
            pool.reason = SAMPLED
            if lb < la:
                a, la = b, lb
            pool.score = la
            return a
        self._turn += 1
        start = self._turn % n
        best = ready[start]
        best_load = len(best.in_flight) / (best.capacity if panic else best.allowed)
        for i in range(1, n):
            a = ready[(start + i) % n]
            load = len(a.in_flight) / (a.capacity if panic else a.allowed)
            if load < best_load:
                best, best_load = a, load
        pool.reason = LEAST_LOADED
        pool.score = best_load
        return best


class PerformanceAware:
    """Lowest expected completion: the learned service time for this agent and
    kind (peak-sensitive, see feedback.py) times (1 + in flight / capacity),
    the in-flight count being the coordinator's own, so an agent that merely
    looked idle in a stale heartbeat is not flooded. May leave a task queued
    for a much faster busy agent (balancer.wait_or_run)."""

    name = "performance"
    uses_latency = True

    def __init__(self, config: BalancerConfig, rng: random.Random) -> None:
        self._turn = 0
        self._limit = config.full_scan_limit
        self._ratio = config.wait_for_faster
        self._patience = config.patience
        self._min_gain = config.wait_min_gain_s
        self._rng = rng

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        n = len(ready)
        if not n:
            return None
        est = pool.est
        panic = pool.panic
        if n > self._limit:
            i = self._rng.randrange(n)
            j = self._rng.randrange(n - 1)
            best, b = ready[i], ready[j + 1 if j >= i else j]
            best_est, b_est = est[best.agent_id], est[b.agent_id]
            best_cost = best_est * (1.0 + len(best.in_flight) / (best.capacity if panic else best.allowed))
            b_cost = b_est * (1.0 + len(b.in_flight) / (b.capacity if panic else b.allowed))
            if b_cost < best_cost:
                best, best_est, best_cost = b, b_est, b_cost
        else:
            self._turn += 1
            start = self._turn % n
            best = ready[start]
            best_est = est[best.agent_id]
            best_cost = best_est * (1.0 + len(best.in_flight) / (best.capacity if panic else best.allowed))
            for i in range(1, n):
                a = ready[(start + i) % n]
                e = est[a.agent_id]
                cost = e * (1.0 + len(a.in_flight) / (a.capacity if panic else a.allowed))
                if cost < best_cost:
                    best, best_est, best_cost = a, e, cost
        pool.reason = FASTEST if n > 1 else ONLY
        pool.score = best_cost
        if not worth_waiting(best_est, pool.fastest, self._ratio, self._min_gain):
            return best
        return wait_or_run(pool, best, best_est, est, self._ratio, self._patience, self._min_gain)


class ExpertiseMatch:
    """Required labels already filtered the pool (routing classes); among the
    agents left, the best match of the task's preferred labels and levels wins,
    then the least loaded. Without preferred labels this is least-loaded."""

    name = "expertise"
    uses_latency = False

    def __init__(self, config: BalancerConfig, rng: random.Random) -> None:
        self._turn = 0
        self._fallback = LeastLoaded(config, rng)

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        n = len(ready)
        if not task.spec.preferred_labels or n <= 1:
            return self._fallback.pick(task, pool)
        panic = pool.panic
        self._turn += 1
        start = self._turn % n
        best: AgentRecord | None = None
        best_match = -1.0
        best_load = 0.0
        for i in range(n):
            a = ready[(start + i) % n]
            match = expertise_match(task, a.labels)
            load = len(a.in_flight) / (a.capacity if panic else a.allowed)
            if match > best_match or (match == best_match and load < best_load):
                best, best_match, best_load = a, match, load
        pool.reason = EXPERTISE if best_match > 0 else LEAST_LOADED
        pool.score = best_match
        return best
