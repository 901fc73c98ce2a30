"""Cache affinity: send a task with a cache key to the agent most likely to
hold the result, without letting a hot key overload that agent.

Rendezvous (highest random weight) hashing ranks the pool's agents per key:
when an agent joins or leaves, only the keys it ranks first for move. The
ranking walks on past an agent without a free slot or whose load is above
(1 + slack) times the pool's average, as in "consistent hashing with bounded
loads" (Mirrokni, Thorup and Zadimoghaddam, 2018): a hot key spills over to
its second-ranked agent, which then warms its cache for the same key.
Hashes are CRC32-based, not Python's per-process `hash`, so rankings are the
same across coordinator restarts and simulated runs.
"""

from __future__ import annotations

import math
import random
import zlib

from coordinator.core.balancer import CACHE_OWNER, BalancerConfig, Pool, has_free_slot
from coordinator.core.model import AgentRecord, AgentState, TaskRecord
from coordinator.core.strategies import LeastLoaded

_M64 = (1 << 64) - 1
_MAX_SEEDS = 10_000


def _mix(x: int) -> int:
    # splitmix64's finalizer: spreads CRC32's 32 bits over 64.
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class Rendezvous:
    def __init__(self, slack: float = 0.25) -> None:
        self.slack = slack
        self._seeds: dict[str, int] = {}

    def _seed(self, agent_id: str) -> int:
        seed = self._seeds.get(agent_id)
        if seed is None:
            if len(self._seeds) >= _MAX_SEEDS:
                self._seeds.clear()
            seed = self._seeds[agent_id] = _mix(zlib.crc32(agent_id.encode()) | 1 << 40)
        return seed

    def ranked(self, key: str, agents: list[AgentRecord]) -> list[AgentRecord]:
        """Agents from most to least preferred for key."""
        kh = _mix(zlib.crc32(key.encode()))
        return [a for _, _, a in sorted(((_mix(kh ^ self._seed(a.agent_id)), i, a) for i, a in enumerate(agents)),
                                     reverse=True)]

    def first(self, key: str, agents: list[AgentRecord]) -> AgentRecord | None:
        """The agent key maps to when load does not matter."""
        kh = _mix(zlib.crc32(key.encode()))
        return max(agents, key=lambda a: _mix(kh ^ self._seed(a.agent_id)), default=None)

    def bounded(self, key: str, pool: Pool) -> AgentRecord | None:
        """The best-ranked agent for key that has a free slot and is within the load bound."""
        agents = pool.agents
        kh = _mix(zlib.crc32(key.encode()))
        seed = self._seed
        total_in = 0
        total_cap = 0
        best: AgentRecord | None = None
        best_h = -1
        for a in agents:
            total_in += len(a.in_flight)
            total_cap += pool.cap(a)
            h = _mix(kh ^ seed(a.agent_id))
            if h > best_h:
                best, best_h = a, h
        if best is None or total_cap <= 0:
            return None
        bound = (total_in + 1) / total_cap * (1.0 + self.slack)
        if has_free_slot(best, pool) and len(best.in_flight) + 1 <= math.ceil(bound * pool.cap(best)):
            return best
        for a in self.ranked(key, agents)[1:]:
            if has_free_slot(a, pool) and len(a.in_flight) + 1 <= math.ceil(bound * pool.cap(a)):
                return a
        return None


class CacheAffinity:
    """The key's bounded-load rendezvous owner; least-loaded for tasks without
    a cache key, or when every agent ranked for the key is full or over the bound."""

    name = "cache-affinity"
    uses_latency = False

    def __init__(self, config: BalancerConfig, rng: random.Random) -> None:
        self.hashing = Rendezvous(config.cache_load_slack)
        self._fallback = LeastLoaded(config, rng)

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        key = task.spec.cache_key
        if key and pool.ready:
            owner = self.hashing.bounded(key, pool)
            if owner is not None:
                pool.reason = CACHE_OWNER
                pool.score = 0.0
                return owner
        return self._fallback.pick(task, pool)

    def owner(self, key: str, agents: list[AgentRecord]) -> AgentRecord | None:
        """Where tasks with this cache key go when nothing is overloaded (for cache warm-up)."""
        return self.hashing.first(key, [a for a in agents if a.state == AgentState.READY])
