"""Hybrid, the default strategy: one cost per candidate that weighs what the
single-criterion strategies each look at alone.

    cost = expected service time for the kind           (performance-aware)
         * (1 + load_weight * in flight / capacity)     (least-loaded)
         * (1 + expertise_weight * (1 - label match))   (expertise, if the task prefers labels)
         * (1 + cache_weight * [not the key's owner])   (cache affinity, if the task has a cache key)

The cost is in seconds, so the weights read as "how many service times is
this worth". Lowest cost wins; it may still wait for a much faster busy agent
(balancer.wait_or_run), except when it is the key's owner: a cache hit on a
slower agent usually beats a miss on a faster one.

A light task (a handler of microseconds) is the exception: it stays on the
agent that took the previous task while that agent has few in flight
(BalancerConfig.warm_in_flight), since for it an agent already awake beats
the cheapest idle one.
"""

from __future__ import annotations

import random

from coordinator.core.affinity import Rendezvous
from coordinator.core.balancer import (
    CACHE_OWNER,
    EXPERTISE,
    FASTEST,
    ONLY,
    WARM,
    BalancerConfig,
    Pool,
    expertise_match,
    wait_or_run,
    worth_waiting,
)
from coordinator.core.model import AgentRecord, AgentState, TaskRecord


class Hybrid:
    name = "hybrid"
    uses_latency = True

    def __init__(self, config: BalancerConfig, rng: random.Random) -> None:
        self._load = config.load_weight
        self._expertise = config.expertise_weight
        self._cache = config.cache_weight
        self._limit = config.full_scan_limit
        self._ratio = config.wait_for_faster
        self._patience = config.patience
        self._min_gain = config.wait_min_gain_s
        self._rng = rng
        self._turn = 0
        self._warm_limit = config.warm_in_flight
        self._light = config.light_task_s
        # The agent the last common-case pick chose: awake, if it still has work.
        self._warm: AgentRecord | None = None
        self.hashing = Rendezvous(config.cache_load_slack)

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        n = len(ready)
        if not n:
            return None
        spec = task.spec
        est = pool.est
        panic = pool.panic
        w_load = self._load
        if n <= self._limit and not spec.cache_key and not spec.preferred_labels:
            # The common case, kept to plain arithmetic per candidate.
            self._turn += 1
            start = self._turn % n
            best = ready[start]
            best_est = est[best.agent_id]
            best_cost = best_est * (1.0 + w_load * len(best.in_flight) / (best.capacity if panic else best.allowed))
            warm = self._warm
            warm_ready = best is warm
            for i in range(1, n):
                a = ready[(start + i) % n]
                if a is warm:
                    warm_ready = True
                e = est[a.agent_id]
                cost = e * (1.0 + w_load * len(a.in_flight) / (a.capacity if panic else a.allowed))
                if cost < best_cost:
                    best, best_est, best_cost = a, e, cost
            if (warm_ready and warm is not best and warm is not None and len(warm.in_flight) < self._warm_limit
                    and est[warm.agent_id] - pool.overhead < self._light):
                pool.reason = WARM
                pool.score = est[warm.agent_id] * (1.0 + w_load * len(warm.in_flight) / pool.cap(warm))
                return warm
            pool.reason = FASTEST if n > 1 else ONLY
            pool.score = best_cost
            if (worth_waiting(best_est, pool.fastest, self._ratio, self._min_gain)
                    and wait_or_run(pool, best, best_est, est, self._ratio, self._patience, self._min_gain) is None):
                return None
            self._warm = best
            return best
        return self._general(task, pool)

    def _general(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        n = len(ready)
        spec = task.spec
        est = pool.est
        panic = pool.panic
        w_load, w_exp, w_cache = self._load, self._expertise, self._cache
        target = self.hashing.bounded(spec.cache_key, pool) if spec.cache_key and w_cache > 0 else None
        prefers = bool(spec.preferred_labels) and w_exp > 0
        if n > self._limit:
            i = self._rng.randrange(n)
            j = self._rng.randrange(n - 1)
            candidates = [ready[i], ready[j + 1 if j >= i else j]]
            if target is not None:
                candidates.append(target)
            start = 0
        else:
            candidates = ready
            self._turn += 1
            start = self._turn % n
        m = len(candidates)
        best: AgentRecord = candidates[start]
        best_est = best_cost = best_match = 0.0
        worst_match = 1.0
        for i in range(m):
            a = candidates[(start + i) % m]
            e = est[a.agent_id]
            cost = e * (1.0 + w_load * len(a.in_flight) / (a.capacity if panic else a.allowed))
            match = 1.0
            if prefers:
                match = expertise_match(task, a.labels)
                worst_match = min(worst_match, match)
                cost *= 1.0 + w_exp * (1.0 - match)
            if target is not None and a is not target:
                cost *= 1.0 + w_cache
            if i == 0 or cost < best_cost:
                best, best_est, best_cost, best_match = a, e, cost, match
        pool.score = best_cost
        if best is target:
            pool.reason = CACHE_OWNER
            return best
        pool.reason = EXPERTISE if prefers and best_match > worst_match else FASTEST
        if not worth_waiting(best_est, pool.fastest, self._ratio, self._min_gain):
            return best
        return wait_or_run(pool, best, best_est, est, self._ratio, self._patience, self._min_gain)

    def owner(self, key: str, agents: list[AgentRecord]) -> AgentRecord | None:
        """Where tasks with this cache key go when nothing is overloaded (for cache warm-up)."""
        return self.hashing.first(key, [a for a in agents if a.state == AgentState.READY])
