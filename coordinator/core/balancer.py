"""Choosing an agent for a task: the one small interface strategies plug into.

The dispatcher builds one `Pool` per routing class per dispatch pass: the
agents that may serve the class, the ones with a free slot right now, and (for
strategies that use it) each agent's expected service time for the class's
kind. A strategy's `pick` returns an agent with a free slot, or None to leave
the task queued, and says why through `pool.reason` and `pool.score`. Picks
are O(candidates) and, for a task without cache key or preferred labels,
allocate nothing; beyond `BalancerConfig.full_scan_limit` candidates,
strategies sample instead of scanning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from coordinator.core.model import AgentRecord, TaskRecord
from coordinator.core.registry import RouteKey

STRATEGY_NAMES = ("hybrid", "round-robin", "least-loaded", "performance", "expertise", "cache-affinity")


@dataclass(frozen=True, slots=True)
class BalancerConfig:
    # The strategy for every task kind without an override (one of STRATEGY_NAMES).
    strategy: str = "hybrid"
    # (kind, strategy) pairs: these kinds use another strategy.
    overrides: tuple[tuple[str, str], ...] = ()
    # Seeds the sampling of large fleets, so a simulated run is reproducible.
    seed: int = 0
    # Up to this many candidates a pick looks at all of them; beyond it, at a
    # sample of two (power of two choices) plus any agent the task has affinity for.
    full_scan_limit: int = 16
    # A latency-aware pick leaves a task queued for a busy agent only when that
    # agent is expected to be at least this many times faster than the best one
    # with a free slot, so noise between similar agents never idles a slot. 0 = never.
    wait_for_faster: float = 1.5
    # ...and only when that saves at least this many seconds per task: below
    # it, differences between agents are batching jitter, not speed.
    wait_min_gain_s: float = 0.005
    # Scales how deep the queue must be before a slower agent takes a task
    # (see wait_or_run). 1 is the depth at which that task would finish no
    # sooner by waiting; lower accepts a slower agent sooner, because a standing
    # queue delays every task behind it too. 0.5 gave the best tail and median
    # together in the simulator's W5.
    patience: float = 0.5
    # Hybrid: how strongly load, a missing preferred label and not holding the
    # task's cache key raise an agent's cost (a cost is an expected service time).
    load_weight: float = 1.0
    expertise_weight: float = 1.0
    cache_weight: float = 1.0
    # Cache affinity: a key's preferred agent takes the task only while its load
    # is at most (1 + slack) times the pool's average ("bounded loads"). 0.25
    # scattered the hottest keys of a Zipf workload over two agents and cost
    # W4 7 points of hit rate against one shared cache; 2 keeps them home.
    cache_load_slack: float = 2.0
    # Hybrid: a light task (its handler expected to take under light_task_s)
    # goes to the agent that took the previous task while that agent holds
    # fewer than warm_in_flight tasks. For such tasks the mesh's own cost per
    # task is most of their latency, and an agent that is already working
    # costs less per task than one woken from idle: fewer processes wake, so
    # fewer wait for a core. The bound keeps a busy agent from collecting a
    # queue; a CPU-bound handler at the limit waits at most (warm_in_flight -
    # 1) * light_task_s behind its neighbours. 0 = always spread.
    warm_in_flight: int = 4
    light_task_s: float = 0.0001


class Pool:
    """The agents of one routing class during one dispatch pass."""

    __slots__ = ("_depths", "agents", "est", "est_fill", "est_len", "est_src", "fastest", "generation", "ids",
                 "key", "kind", "overhead", "panic", "ready", "reason", "score", "source", "spare", "strategy")

    def __init__(self, key: RouteKey, strategy: Strategy, agents: list[AgentRecord], ready: list[AgentRecord],
                 depths: Mapping[RouteKey, int], panic: bool = False) -> None:
        self.key = key
        self.kind = key[0]
        self.strategy = strategy
        # Every agent that may serve the class (stable order), and those with a free slot.
        self.agents = agents
        self.ready = ready
        # Every agent of the pool is ejected, so ejection is ignored (as Envoy's panic threshold).
        self.panic = panic
        # agent_id -> expected seconds from assignment to result (latency-aware strategies only).
        self.est: dict[str, float] = {}
        self.fastest = 0.0
        # The part of every estimate that is not the handler's own time (see HealthConfig.dispatch_overhead_s).
        self.overhead = 0.0
        self.ids = [a.agent_id for a in agents]
        # What the dispatcher built this pool from, to reuse it while nothing changed:
        # the registry's eligible list, the health generation, the estimates
        # dict and its size, and fill-ins for agents without estimates.
        self.source: list[AgentRecord] | None = None
        self.generation = -1
        self.est_src: dict[str, float] | None = None
        self.est_len = 0
        self.est_fill: dict[str, float] | None = None
        self._depths = depths
        # Set by pick: why, and the winning score (lower is better unless the reason says otherwise).
        self.reason = ""
        self.score = 0.0
        # Set by pick when it returns None but a task deeper in the queue should
        # take this agent's free slot (see wait_or_run).
        self.spare: AgentRecord | None = None

    def queued(self) -> int:
        """Pending tasks of this class, all tenants."""
        return self._depths.get(self.key, 0)

    def cap(self, agent: AgentRecord) -> int:
        return agent.capacity if self.panic else agent.allowed


class Strategy(Protocol):
    name: str
    # True when the dispatcher should fill pool.est for this strategy.
    uses_latency: bool

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None: ...


def has_free_slot(agent: AgentRecord, pool: Pool) -> bool:
    return agent.credits > 0 and len(agent.in_flight) < pool.cap(agent)


# Reasons are constants: a pick stores one per task without formatting anything.
ROTATION = "next in rotation"
LEAST_LOADED = "least loaded (in flight / capacity)"
SAMPLED = "less loaded of two sampled agents"
FASTEST = "fastest expected completion (latency x load)"
WARM = "light task kept on the agent already working"
EXPERTISE = "best match of preferred labels"
CACHE_OWNER = "holds the cache key (rendezvous hash, bounded load)"
ONLY = "only agent with a free slot"
OVERFLOW = "slower agent used: enough tasks are queued ahead that waiting for a faster one would take longer"
WAITING = "waiting for a faster agent"


def worth_waiting(chosen_est: float, fastest: float, ratio: float, min_gain: float) -> bool:
    """Is chosen materially slower than the pool's fastest agent? (Cheap: strategies ask first.)"""
    return ratio > 0 and chosen_est > ratio * fastest and chosen_est - fastest > min_gain


def wait_or_run(pool: Pool, chosen: AgentRecord, chosen_est: float, est: Mapping[str, float],
                ratio: float, patience: float = 0.5, min_gain: float = 0.0) -> AgentRecord | None:
    """Run the task on `chosen` now, or leave it queued for a busy faster agent.

    Expected completion if it waits, for the k-th task in line: k slots must
    free up among the agents at least `ratio` times faster than chosen (they
    free at rate R = sum of capacity / service time), then it runs for their
    rate-weighted mean service time C / R. So running now wins once
    k >= chosen_est * R - C (times `patience`: a task that waits also holds
    up every task behind it, which its own expected completion does not
    count). When the head should wait but the queue is that deep, a task from the back of the queue takes chosen's slot instead
    (pool.spare): the head keeps its place for the faster agent, and the
    newest, lowest-priority task is the one that pays for the slower one. This
    is the threshold rule for heterogeneous servers (Lin and Kumar, 1984).
    Only agents `ratio` times faster and `min_gain` seconds faster count
    (see worth_waiting).
    """
    if not worth_waiting(chosen_est, pool.fastest, ratio, min_gain):
        return chosen
    c_sum = r_sum = 0.0
    for a in pool.agents:
        s = est.get(a.agent_id, chosen_est)
        if s * ratio < chosen_est and s > 0:
            if has_free_slot(a, pool):
                # A faster agent is free: the strategy preferred chosen for another reason.
                return chosen
            c = pool.cap(a)
            c_sum += c
            r_sum += c / s
    if r_sum <= 0:
        return chosen
    threshold = math.ceil(patience * (chosen_est * r_sum - c_sum))
    if threshold <= 1:
        return chosen
    pool.reason = WAITING
    if pool.queued() >= threshold:
        pool.spare = chosen
        pool.reason = OVERFLOW
    return None


def expertise_match(task: TaskRecord, labels: Mapping[str, int]) -> float:
    """How well an agent's labels meet the task's preferred labels, 0..1:
    full credit at or above the wanted level, partial credit below it."""
    pref = task.spec.preferred_labels
    total = 0.0
    for name, want in pref:
        have = labels.get(name)
        if have is None:
            continue
        total += 1.0 if have >= want else have / want
    return total / len(pref)
