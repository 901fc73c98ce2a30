"""What a simulated run is made of: agents, arrival streams, a scenario."""

from __future__ import annotations

from dataclasses import dataclass, field

from coordinator.core.mesh import CoreConfig


@dataclass(frozen=True, slots=True)
class Slowdown:
    """From `start` to `end` (seconds), the agent's service times are multiplied by `factor`."""

    start: float
    end: float
    factor: float


@dataclass(frozen=True, slots=True)
class SimAgentSpec:
    agent_id: str
    capacity: int = 4
    # Service time multiplier: 1 is the fastest agent, 8 one that is 8x slower.
    slowness: float = 1.0
    labels: tuple[tuple[str, int], ...] = ()
    slowdowns: tuple[Slowdown, ...] = ()
    # Share of tasks that fail on this agent (for outlier ejection).
    error_rate: float = 0.0
    # Joins the fleet at this time (seconds), for slow start.
    joins_at: float = 0.0

    def slowness_at(self, t: float) -> float:
        s = self.slowness
        for d in self.slowdowns:
            if d.start <= t < d.end:
                s *= d.factor
        return s


@dataclass(frozen=True, slots=True)
class Stream:
    """Tasks of one kind arriving as a Poisson process (open loop), or, with
    `closed` > 0, a client that keeps that many tasks outstanding (closed loop)."""

    name: str
    rate: float = 0.0  # tasks per second (open loop)
    kind: str = "work"
    tenant: str = "default"
    priority: int = 0
    start: float = 0.0
    end: float = float("inf")
    closed: int = 0
    preferred_labels: tuple[tuple[str, int], ...] = ()
    # With cache_keys > 0, each task gets a key drawn from Zipf(1.0) over that many keys.
    cache_keys: int = 0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    agents: tuple[SimAgentSpec, ...]
    streams: tuple[Stream, ...]
    duration_s: float = 60.0
    # Tasks submitted before this are not measured (estimates are still learning).
    warmup_s: float = 2.0
    # Mean service time of the fastest agent, seconds, and the spread of task
    # sizes (sigma of a lognormal with mean 1).
    base_service_s: float = 0.02
    size_sigma: float = 0.5
    # A cache hit takes this fraction of the service time.
    cache_hit_factor: float = 0.1
    cache_entries: int = 0  # per agent, LRU; 0 = no cache model
    core: CoreConfig = field(default_factory=CoreConfig)
    # Submit every stream under one tenant (the queue's order is then plain
    # priority and FIFO); metrics still tell the streams' tenants apart.
    single_tenant: bool = False

    def capacity_per_s(self, t: float = 0.0) -> float:
        """Tasks per second the fleet completes when every slot is busy, at time t."""
        return sum(a.capacity / (self.base_service_s * a.slowness_at(t)) for a in self.agents)
