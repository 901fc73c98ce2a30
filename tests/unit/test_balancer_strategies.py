"""Each strategy against hand-built pools: ties, empty fleets, agents that left,
labels nobody has, sampling in large fleets, waiting for a faster agent."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from coordinator.core.affinity import CacheAffinity, Rendezvous
from coordinator.core.balancer import (
    CACHE_OWNER,
    EXPERTISE,
    OVERFLOW,
    WAITING,
    WARM,
    BalancerConfig,
    Pool,
    Strategy,
    expertise_match,
    wait_or_run,
)
from coordinator.core.hybrid import Hybrid
from coordinator.core.model import AgentRecord, AgentState, TaskRecord, TaskSpec
from coordinator.core.strategies import ExpertiseMatch, LeastLoaded, PerformanceAware, RoundRobin

KEY = ("k", ())
ALL = (RoundRobin, LeastLoaded, PerformanceAware, ExpertiseMatch, CacheAffinity, Hybrid)


def agent(agent_id: str, capacity: int = 4, busy: int = 0, labels: dict[str, int] | None = None,
          allowed: int | None = None) -> AgentRecord:
    a = AgentRecord(agent_id, dict(labels or {}), frozenset(), capacity, "1", 1, 0.0, 0.0,
                    credits=capacity - busy, allowed=capacity if allowed is None else allowed)
    a.in_flight = {f"{agent_id}-t{i}": 1 for i in range(busy)}
    return a


def task(**kw: object) -> TaskRecord:
    for name in ("preferred_labels", "required_labels"):
        if name in kw:
            kw[name] = tuple(sorted(kw[name].items()))  # type: ignore[attr-defined]
    return TaskRecord("t", TaskSpec(kind="k", **kw), 1, 0.0, None, 5)  # type: ignore[arg-type]


def pool(strategy: Strategy, agents: list[AgentRecord], est: dict[str, float] | None = None,
         queued: int = 1, overhead: float = 0.0) -> Pool:
    ready = [a for a in agents if a.credits > 0 and len(a.in_flight) < a.allowed]
    p = Pool(KEY, strategy, agents, ready, {KEY: queued})
    p.est = est if est is not None else {a.agent_id: 0.01 for a in agents}
    p.fastest = min(p.est[a.agent_id] for a in agents) if agents else 0.0
    p.overhead = overhead
    return p


def assign(picked: AgentRecord | None) -> AgentRecord:
    """What MeshCore._assign does to the agent a pick chose."""
    assert picked is not None
    picked.in_flight[f"{picked.agent_id}-x{len(picked.in_flight)}"] = 1
    picked.credits -= 1
    return picked


def make(cls: type, **cfg: object) -> Strategy:
    return cls(BalancerConfig(**cfg), random.Random(0))  # type: ignore[no-any-return]


@pytest.mark.parametrize("cls", ALL)
def test_empty_fleet_picks_nothing(cls: type) -> None:
    s = make(cls)
    assert s.pick(task(), pool(s, [])) is None
    full = [agent("a", busy=4), agent("b", busy=4)]
    assert s.pick(task(cache_key="x"), pool(s, full)) is None


@pytest.mark.parametrize("cls", ALL)
def test_equal_agents_share_ties_evenly(cls: type) -> None:
    s = make(cls)
    agents = [agent(n) for n in "abcd"]
    counts = Counter(s.pick(task(), pool(s, agents)).agent_id for _ in range(400))  # type: ignore[union-attr]
    assert set(counts) == set("abcd") and min(counts.values()) >= 80


@pytest.mark.parametrize("cls", ALL)
def test_an_agent_that_left_is_never_picked(cls: type) -> None:
    s = make(cls)
    agents = [agent(n) for n in "abc"]
    for _ in range(5):  # give stateful strategies something to remember
        s.pick(task(cache_key="x"), pool(s, agents))
    gone = agents.pop(1)
    gone.state, gone.credits = AgentState.GONE, 0
    for i in range(50):
        picked = s.pick(task(cache_key=f"k{i}"), pool(s, agents))
        assert picked is not None and picked is not gone


@pytest.mark.parametrize("cls", ALL)
def test_an_agent_gone_between_pool_and_pick_is_skipped(cls: type) -> None:
    # The pool was built with b ready; b then lost its session (credits 0).
    s = make(cls)
    a, b = agent("a"), agent("b")
    p = pool(s, [a, b])
    p.ready.remove(b)
    b.state, b.credits = AgentState.GONE, 0
    for _ in range(10):
        assert s.pick(task(), p) is a


@pytest.mark.parametrize("cls", ALL)
def test_preferred_labels_nobody_has_still_route(cls: type) -> None:
    s = make(cls)
    agents = [agent("a", labels={"math": 1}), agent("b")]
    assert s.pick(task(preferred_labels={"vision": 3}), pool(s, agents)) in agents


def test_round_robin_ignores_load() -> None:
    s = make(RoundRobin)
    agents = [agent("idle"), agent("busy", busy=3)]
    picks = Counter(s.pick(task(), pool(s, agents)).agent_id for _ in range(100))  # type: ignore[union-attr]
    assert picks["busy"] == 50


def test_least_loaded_counts_own_in_flight_relative_to_allowed() -> None:
    s = make(LeastLoaded)
    # Same in-flight count, but b is ramping up (allowed 2 of 8): it is fuller.
    a, b = agent("a", capacity=8, busy=1), agent("b", capacity=8, busy=1, allowed=2)
    assert s.pick(task(), pool(s, [a, b])) is a


def test_least_loaded_samples_two_in_large_fleets() -> None:
    s = make(LeastLoaded, full_scan_limit=4)
    agents = [agent(f"a{i}", capacity=10, busy=i % 10) for i in range(40)]
    picks = [s.pick(task(), pool(s, agents)) for _ in range(2000)]
    loads = [len(p.in_flight) for p in picks if p is not None]
    # Power of two choices: far better than random (mean 4.5), not always the minimum.
    assert sum(loads) / len(loads) < 3.5 and max(loads) > 0


def test_performance_prefers_the_faster_agent_until_it_is_much_busier() -> None:
    s = make(PerformanceAware)
    fast, slow = agent("fast", capacity=8), agent("slow", capacity=8)
    est = {"fast": 0.010, "slow": 0.030}
    assert s.pick(task(), pool(s, [fast, slow], est)) is fast
    fast.in_flight = {f"t{i}": 1 for i in range(7)}
    fast.credits = 1
    # 0.010 * (1 + 7/8) = 0.019 still beats an idle 0.030.
    assert s.pick(task(), pool(s, [fast, slow], est)) is fast


def test_stale_heartbeat_does_not_flood_an_agent_that_looked_idle() -> None:
    s = make(PerformanceAware)
    a, b = agent("a", capacity=4), agent("b", capacity=4)
    a.heartbeat = b.heartbeat  # both reported idle a while ago
    est = {"a": 0.01, "b": 0.01}
    picks = Counter()
    for _ in range(6):
        p = pool(s, [a, b], est)
        chosen = s.pick(task(), p)
        assert chosen is not None
        picks[chosen.agent_id] += 1
        chosen.in_flight[f"x{sum(picks.values())}"] = 1  # what MeshCore._assign does
        chosen.credits -= 1
    assert picks == {"a": 3, "b": 3}


def test_wait_or_run_waits_for_a_much_faster_busy_agent_then_overflows() -> None:
    fast, slow = agent("fast", capacity=4, busy=4), agent("slow", capacity=4)
    est = {"fast": 0.01, "slow": 0.08}
    s = make(PerformanceAware, patience=1.0)
    # Threshold: k >= 0.08 * (4 / 0.01) - 4 = 28 tasks queued.
    p = pool(s, [fast, slow], est, queued=5)
    assert s.pick(task(), p) is None and p.spare is None and p.reason == WAITING
    p = pool(s, [fast, slow], est, queued=28)
    assert s.pick(task(), p) is None and p.spare is slow and p.reason == OVERFLOW
    # A free fast slot: no waiting at all.
    fast.in_flight.clear()
    fast.credits = 4
    assert s.pick(task(), pool(s, [fast, slow], est, queued=1)) is fast


def test_wait_or_run_ignores_small_differences() -> None:
    a, b = agent("a", busy=4), agent("b")
    p = pool(make(PerformanceAware), [a, b], {"a": 0.010, "b": 0.014})
    assert wait_or_run(p, b, 0.014, p.est, 1.5) is b
    assert wait_or_run(p, b, 0.014, p.est, 0.0) is b  # 0 = never wait
    # 3x slower, but only by 2 ms: jitter, not speed.
    p = pool(make(PerformanceAware), [a, b], {"a": 0.001, "b": 0.003})
    assert wait_or_run(p, b, 0.003, p.est, 1.5, min_gain=0.005) is b
    assert wait_or_run(p, b, 0.003, p.est, 1.5, min_gain=0.0) is None


def test_expertise_prefers_the_best_match_then_the_least_loaded() -> None:
    s = make(ExpertiseMatch)
    novice = agent("novice", labels={"vision": 1})
    expert = agent("expert", labels={"vision": 3}, busy=2)
    expert2 = agent("expert2", labels={"vision": 4}, busy=1)
    p = pool(s, [novice, expert, expert2])
    assert s.pick(task(preferred_labels={"vision": 3}), p) is expert2 and p.reason == EXPERTISE
    assert expertise_match(task(preferred_labels={"vision": 3, "ocr": 2}), {"vision": 1}) == pytest.approx(1 / 6)


def test_rendezvous_moves_only_the_keys_of_an_agent_that_leaves() -> None:
    h = Rendezvous()
    agents = [agent(f"a{i}") for i in range(5)]
    keys = [f"key-{i}" for i in range(500)]
    before = {k: h.first(k, agents).agent_id for k in keys}  # type: ignore[union-attr]
    assert len(set(before.values())) == 5
    left = agents.pop(2)
    after = {k: h.first(k, agents).agent_id for k in keys}  # type: ignore[union-attr]
    moved = [k for k in keys if before[k] != after[k]]
    assert moved and all(before[k] == left.agent_id for k in moved)


def test_cache_affinity_sends_a_key_to_one_agent_and_spills_a_hot_key() -> None:
    s = make(CacheAffinity)
    agents = [agent(f"a{i}", capacity=8) for i in range(4)]
    p = pool(s, agents)
    owner = s.pick(task(cache_key="hot"), p)
    assert owner is not None and p.reason == CACHE_OWNER
    assert all(s.pick(task(cache_key="hot"), pool(s, agents)) is owner for _ in range(5))
    # The owner is at 4/8 while the others idle: over (1 + 0.25) x average, so the key spills.
    owner.in_flight = {f"t{i}": 1 for i in range(4)}
    owner.credits = 4
    spilled = s.pick(task(cache_key="hot"), pool(s, agents))
    assert spilled is not None and spilled is not owner
    assert s.owner("hot", agents) is owner  # warm-up still names the unloaded owner


def test_hybrid_weighs_cache_expertise_and_speed() -> None:
    s = make(Hybrid)
    a, b = agent("a", labels={"gpu": 2}), agent("b")
    est = {"a": 0.02, "b": 0.01}
    assert s.pick(task(), pool(s, [a, b], est)) is b
    # Preferring a label a has (weight 1: "missing it costs one service time").
    assert s.pick(task(preferred_labels={"gpu": 2}), pool(s, [a, b], est)) is a
    key = next(k for k in (f"k{i}" for i in range(100)) if s.owner(k, [a, b]) is a)
    # Holding the key halves the cost (weight 1), so a 1.5x slower owner wins...
    est["a"] = 0.015
    p = pool(s, [a, b], est)
    assert s.pick(task(cache_key=key), p) is a and p.reason == CACHE_OWNER
    # ...and a 3x slower one does not.
    est["a"] = 0.03
    assert s.pick(task(cache_key=key), pool(s, [a, b], est)) is b


class Scored(dict[str, float]):
    """Estimates that remember which agents a pick costed: every cost starts from one."""

    def __init__(self, est: dict[str, float]) -> None:
        super().__init__(est)
        self.looked_up: list[str] = []

    def __getitem__(self, agent_id: str) -> float:
        self.looked_up.append(agent_id)
        return super().__getitem__(agent_id)


def test_hybrid_samples_in_large_fleets_but_keeps_the_cache_owner_in_view() -> None:
    s = make(Hybrid, full_scan_limit=4)
    agents = [agent(f"a{i}") for i in range(30)]
    owner = s.owner("key", agents)
    assert owner is not None
    for _ in range(20):
        est = Scored({a.agent_id: 0.01 for a in agents})
        p = pool(s, agents, est)
        est.looked_up.clear()  # building the pool read every estimate
        assert s.pick(task(cache_key="key"), p) is owner
        assert owner.agent_id in est.looked_up and len(est.looked_up) <= 4


OVERHEAD = 0.002  # HealthConfig.dispatch_overhead_s, part of every estimate


def test_hybrid_keeps_light_tasks_on_the_agent_already_working_up_to_a_bound() -> None:
    s = make(Hybrid, warm_in_flight=3)
    agents = [agent(n, capacity=8) for n in "abcd"]
    est = {"a": OVERHEAD + 2e-6, "b": OVERHEAD + 1e-6, "c": OVERHEAD + 3e-6, "d": OVERHEAD + 4e-6}
    p = pool(s, agents, est, overhead=OVERHEAD)
    first = assign(s.pick(task(), p))
    assert first.agent_id == "b"  # the cheapest, as without the rule
    reasons = []
    for _ in range(2):
        p = pool(s, agents, est, overhead=OVERHEAD)
        assert assign(s.pick(task(), p)) is first
        reasons.append(p.reason)
    assert reasons == [WARM, WARM]
    # Three in flight: the bound is reached, and the cheapest idle agent takes
    # the next task and is the one kept busy from then on.
    second = assign(s.pick(task(), pool(s, agents, est, overhead=OVERHEAD)))
    assert second.agent_id == "a"
    assert assign(s.pick(task(), pool(s, agents, est, overhead=OVERHEAD))) is second
    # The first agent, idle again, is one idle agent among others: the task
    # goes to the one working now.
    first.in_flight.clear()
    first.credits = first.capacity
    assert s.pick(task(), pool(s, agents, est, overhead=OVERHEAD)) is second


def test_hybrid_spreads_tasks_whose_handlers_take_real_time() -> None:
    s = make(Hybrid)
    agents = [agent(n, capacity=8) for n in "abcd"]
    est = {a.agent_id: OVERHEAD + 0.005 for a in agents}
    picked = [assign(s.pick(task(), pool(s, agents, est, overhead=OVERHEAD))).agent_id for _ in range(4)]
    assert sorted(picked) == list("abcd")


def test_hybrid_spreads_light_tasks_when_warm_in_flight_is_zero() -> None:
    s = make(Hybrid, warm_in_flight=0)
    agents = [agent(n, capacity=8) for n in "abcd"]
    est = {a.agent_id: OVERHEAD + 1e-6 for a in agents}
    picked = [assign(s.pick(task(), pool(s, agents, est, overhead=OVERHEAD))).agent_id for _ in range(4)]
    assert sorted(picked) == list("abcd")


def test_hybrid_leaves_the_warm_agent_once_it_has_no_free_slot_or_is_gone() -> None:
    s = make(Hybrid)
    a, b = agent("a", capacity=2), agent("b", capacity=2)
    est = {"a": OVERHEAD, "b": OVERHEAD + 1e-6}
    warm = assign(s.pick(task(), pool(s, [a, b], est, overhead=OVERHEAD)))
    assert warm is a
    assign(s.pick(task(), pool(s, [a, b], est, overhead=OVERHEAD)))  # a's second and last slot
    assert s.pick(task(), pool(s, [a, b], est, overhead=OVERHEAD)) is b
    a.in_flight.clear()
    a.state, a.credits = AgentState.GONE, 0
    assert s.pick(task(), pool(s, [a, b], est, overhead=OVERHEAD)) is b
