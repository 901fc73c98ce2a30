"""The experiments: each a set of runs (a scenario and a strategy) compared in one table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from coordinator.core.fairness import FairnessConfig
from coordinator.core.mesh import CoreConfig
from simulator.model import Scenario, SimAgentSpec, Slowdown, Stream

LATENCY_STRATEGIES = ("oracle", "hybrid", "performance", "least-loaded", "round-robin")


@dataclass(frozen=True, slots=True)
class Run:
    label: str
    scenario: Scenario
    strategy: str  # a core strategy name, or "oracle"


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    title: str
    runs: tuple[Run, ...]
    # The stream whose latency the table reports next to the overall figures.
    focus: str = ""


def _fleet(slowness: list[float], capacity: int = 4, **kw: object) -> tuple[SimAgentSpec, ...]:
    return tuple(SimAgentSpec(f"agent-{i}", capacity, s, **kw) for i, s in enumerate(slowness))  # type: ignore[arg-type]


def _poisson_at(fleet_scenario: Scenario, load: float) -> float:
    return load * fleet_scenario.capacity_per_s()


def w5(duration: float) -> Experiment:
    """Heterogeneous speeds (up to 8x), one agent turning 5x slower halfway, 80% load."""
    agents = list(_fleet([1, 1, 1, 2, 2, 4, 4, 8]))
    agents[3] = replace(agents[3], slowdowns=(Slowdown(duration / 2, float("inf"), 5.0),))
    base = Scenario("w5", "", tuple(agents), (), duration_s=duration)
    sc = replace(base, streams=(Stream("work", rate=_poisson_at(base, 0.8)),),
                 title="W5: 8 agents x 4 slots, slowness 1,1,1,2,2,4,4,8 (agent-3 turns 5x slower at half time), "
                       "Poisson arrivals at 80% of capacity, 20 ms mean service on the fastest, lognormal sizes")
    return Experiment("w5", sc.title, tuple(Run(s, sc, s) for s in LATENCY_STRATEGIES))


def slow_agent(duration: float) -> Experiment:
    """Linkerd's experiment: equal agents, one of them 10x slower for the middle third."""
    agents = list(_fleet([1, 1, 1, 1], capacity=8))
    agents[0] = replace(agents[0], slowdowns=(Slowdown(duration / 3, 2 * duration / 3, 10.0),))
    base = Scenario("slow-agent", "", tuple(agents), (), duration_s=duration, size_sigma=0.3)
    sc = replace(base, streams=(Stream("work", rate=_poisson_at(base, 0.5)),),
                 title="Slow agent: 4 equal agents x 8 slots, agent-0 10x slower for the middle third, "
                       "Poisson arrivals at 50% of capacity, 20 ms mean service, lognormal sizes (sigma 0.3)")
    return Experiment("slow-agent", sc.title, tuple(Run(s, sc, s) for s in LATENCY_STRATEGIES))


def fairness(duration: float) -> Experiment:
    """Two equal-weight tenants, one offering 10x the other; both want more than half."""
    fleet = _fleet([1] * 8)
    base = Scenario("fairness", "", fleet, (), duration_s=duration,
                    core=CoreConfig(fairness=FairnessConfig(max_pending_per_tenant=1000)))
    cap = base.capacity_per_s()
    sc = replace(base, streams=(Stream("steady", rate=0.6 * cap, tenant="steady"),
                                Stream("flood", rate=6.0 * cap, tenant="flood")),
                 title="Fairness: 8 equal agents x 4 slots; tenant 'steady' offers 60% of capacity, tenant "
                       "'flood' 600%; equal weights; at most 1000 pending per tenant (then RESOURCE_EXHAUSTED)")
    fifo = replace(sc, single_tenant=True,
                   core=CoreConfig(fairness=FairnessConfig(max_pending_per_tenant=2000)))
    return Experiment("fairness", sc.title, (
        Run("hybrid, fair share", sc, "hybrid"),
        Run("hybrid, one queue (FIFO)", fifo, "hybrid"),
    ), focus="steady")


def priority(duration: float) -> Experiment:
    """High-priority p99 with and without a low-priority flood."""
    fleet = _fleet([1] * 8)
    base = Scenario("priority", "", fleet, (), duration_s=duration)
    cap = base.capacity_per_s()
    high = Stream("high", rate=0.3 * cap, priority=10)
    low = Stream("low", rate=0.55 * cap, priority=0)
    burst = Stream("burst", rate=4.0 * cap, priority=0, start=duration / 3, end=duration / 3 + 1.0)
    alone = replace(base, streams=(high,))
    flooded = replace(base, streams=(high, low, burst))
    title = ("Priority: 8 equal agents x 4 slots; 'high' (priority 10) at 30% of capacity, alone or with "
             "a low-priority flood: 'low' (priority 0) at 55% plus a 1 s 'burst' at 400% a third of the way in")
    return Experiment("priority", title, (
        Run("hybrid, high alone", alone, "hybrid"),
        Run("hybrid, high + low flood", flooded, "hybrid"),
        Run("hybrid, no priorities", replace(flooded, core=CoreConfig(
            fairness=FairnessConfig(priority_step_s=0.0))), "hybrid"),
    ), focus="high")


def aging(duration: float) -> Experiment:
    """A closed-loop high-priority client keeps the fleet saturated; low priority must still run."""
    fleet = _fleet([1] * 8)
    bound = 2.0
    aged = CoreConfig(fairness=FairnessConfig(priority_step_s=1.0, aging_bound_s=bound))
    strict = CoreConfig(fairness=FairnessConfig(priority_step_s=1e6, aging_bound_s=1e12))
    base = Scenario("aging", "", fleet, (), duration_s=duration, warmup_s=0.0, core=aged)
    cap = base.capacity_per_s()
    sc = replace(base, streams=(Stream("high", closed=64, priority=10, end=duration),
                                Stream("low", rate=0.02 * cap, priority=0)),
                 title=f"Aging: 8 equal agents x 4 slots; a client keeps 64 priority-10 tasks outstanding "
                       f"(saturating), 'low' (priority 0) at 2% of capacity; aging bound {bound:g} s")
    return Experiment("aging", sc.title, (
        Run(f"hybrid, aging bound {bound:g} s", sc, "hybrid"),
        Run("hybrid, strict priority", replace(sc, core=strict), "hybrid"),
    ), focus="low")


def cache(duration: float) -> Experiment:
    """Zipf-distributed cache keys; a hit costs a tenth of a miss."""
    fleet = _fleet([1] * 8)
    base = Scenario("cache", "", fleet, (), duration_s=duration, cache_entries=200)
    sc = replace(base, streams=(Stream("work", rate=0.7 * base.capacity_per_s(), cache_keys=5000),),
                 title="Cache: 8 equal agents x 4 slots, LRU of 200 results each; keys Zipf(1.0) over 5,000; "
                       "a hit takes 10% of the service time; Poisson arrivals at 70% of (miss) capacity")
    return Experiment("cache", sc.title, tuple(
        Run(s, sc, s) for s in ("hybrid", "cache-affinity", "least-loaded", "round-robin")))


def errors(duration: float) -> Experiment:
    """One agent fails half of its tasks: outlier ejection takes it out, then probes it."""
    agents = list(_fleet([1] * 8))
    agents[0] = replace(agents[0], error_rate=0.5)
    base = Scenario("errors", "", tuple(agents), (), duration_s=duration)
    sc = replace(base, streams=(Stream("work", rate=0.6 * base.capacity_per_s()),),
                 title="Errors: 8 equal agents x 4 slots, agent-0 fails half of its tasks; Poisson arrivals "
                       "at 60% of capacity")
    no_eject = replace(sc, core=replace(sc.core, health=replace(sc.core.health, outlier_ejection=False)))
    return Experiment("errors", sc.title, (
        Run("hybrid, outlier ejection", sc, "hybrid"),
        Run("hybrid, no ejection", no_eject, "hybrid"),
    ))


EXPERIMENTS: dict[str, Callable[[float], Experiment]] = {
    "w5": w5,
    "slow-agent": slow_agent,
    "fairness": fairness,
    "priority": priority,
    "aging": aging,
    "cache": cache,
    "errors": errors,
}
DEFAULT_DURATION_S = 60.0
