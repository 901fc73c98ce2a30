"""What the core learns from results and heartbeats, and how agent health
(slow start, outlier ejection, stalls) shapes where work goes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coordinator.core.feedback import Feedback, HealthConfig
from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import (
    AgentRecord,
    AgentState,
    Heartbeat,
    KindLatency,
    Outcome,
    Registration,
    ResultIn,
    StatusCode,
    TaskSpec,
    TaskState,
)


def core_with(**health: object) -> MeshCore:
    # Leases never expire here: these tests advance the clock without heartbeats.
    return MeshCore(CoreConfig(lease_timeout_s=1e9, health=HealthConfig(**health)))  # type: ignore[arg-type]


def join(core: MeshCore, agent_id: str, now: float, capacity: int = 4) -> AgentRecord:
    agent, _ = core.register(Registration(agent_id, (), frozenset(), capacity, "1", capacity), now)
    return agent


def run(core: MeshCore, n: int, now: float, took: dict[str, float] | None = None, fail: set[str] = frozenset(),
        kind: str = "k") -> dict[str, int]:
    """Submit n tasks, dispatch, and report each one `took[agent]` seconds later."""
    took = took or {}
    core.submit([TaskSpec(kind=kind) for _ in range(n)], now)
    counts: dict[str, int] = {}
    for agent_id, recs in core.dispatch(now).items():
        counts[agent_id] = len(recs)
        agent = core.registry.get(agent_id)
        assert agent is not None
        state = TaskState.FAILED if agent_id in fail else TaskState.SUCCEEDED
        us = int(took.get(agent_id, 0.01) * 1e6)  # the sidecar reports handler time
        outcome = (Outcome(error="boom", error_type="handler_error", duration_us=us) if agent_id in fail
                   else Outcome(duration_us=us))
        core.frame(agent_id, agent.session, now + took.get(agent_id, 0.01),
                   [ResultIn(r.task_id, r.attempt, state, outcome) for r in recs], credits=len(recs))
    return counts


def test_estimates_rise_fast_and_fall_slowly() -> None:
    core = core_with()
    a = join(core, "a", 0)
    run(core, 1, 0, {"a": 0.010})
    assert core.feedback.estimate(a, "k") == pytest.approx(0.010)
    run(core, 1, 1, {"a": 0.110})
    up = core.feedback.estimate(a, "k")
    run(core, 1, 2, {"a": 0.010})
    down = core.feedback.estimate(a, "k")
    assert up is not None and down is not None
    assert (up - 0.010) / (0.110 - 0.010) == pytest.approx(0.1)  # a slower sample: 10% of the way up
    assert (up - down) / (up - 0.010) == pytest.approx(0.05)  # a faster one: 5% of the way down


def test_cache_hits_and_cancellations_teach_nothing_about_speed() -> None:
    core = core_with()
    a = join(core, "a", 0)
    [sub] = core.submit([TaskSpec(kind="k")], 0)
    core.dispatch(0)
    core.frame("a", a.session, 5.0, [ResultIn(sub.task_id, 1, TaskState.SUCCEEDED, Outcome(cache_hit=True))],
               credits=1)
    assert core.feedback.estimate(a, "k") is None
    # A handler cut short by a cancel ran for however long it had, not for as long as the task takes.
    [sub] = core.submit([TaskSpec(kind="k")], 6.0)
    core.dispatch(6.0)
    cancelled = Outcome(error="cancelled", error_type="cancelled", duration_us=2_000_000)
    [ack] = core.frame("a", a.session, 8.0, [ResultIn(sub.task_id, 1, TaskState.CANCELLED, cancelled)], credits=1)
    assert ack.code == StatusCode.OK and core.get(sub.task_id).state == TaskState.CANCELLED
    assert core.feedback.estimate(a, "k") is None


def test_heartbeats_seed_only_kinds_the_coordinator_has_not_measured() -> None:
    core = core_with()
    a = join(core, "a", 0)
    run(core, 1, 0, {"a": 0.050})
    hb = Heartbeat(latencies=(KindLatency("k", 1.0, 10, 0), KindLatency("other", 20.0, 10, 0)))
    core.frame("a", a.session, 1, heartbeat=hb)
    assert core.feedback.estimate(a, "k") == pytest.approx(0.050)
    assert core.feedback.estimate(a, "other") == pytest.approx(0.020)
    run(core, 1, 2, {"a": 0.002}, kind="other")  # the first measurement replaces the seed
    assert core.feedback.estimate(a, "other") == pytest.approx(0.002)


def test_latency_aware_routing_learns_which_agent_is_fast() -> None:
    core = core_with()
    join(core, "fast", 0, capacity=8)
    join(core, "slow", 0, capacity=8)
    took = {"fast": 0.01, "slow": 0.05}
    for i in range(20):
        run(core, 2, i, took)
    counts = run(core, 4, 30, took)
    assert counts == {"fast": 4}


def test_light_tasks_one_at_a_time_stay_on_one_agent_and_real_work_spreads() -> None:
    core = core_with()
    for name in "abcd":
        join(core, name, 0, capacity=8)
    # Handlers of 2 µs: the estimates are the dispatch overhead plus next to nothing.
    light = [run(core, 1, 1 + i * 0.01, dict.fromkeys("abcd", 2e-6)) for i in range(40)]
    assert len({agent for counts in light[4:] for agent in counts}) == 1
    core = core_with()
    for name in "abcd":
        join(core, name, 0, capacity=8)
    heavy = [run(core, 1, 1 + i * 0.01, dict.fromkeys("abcd", 0.005)) for i in range(40)]
    assert len({agent for counts in heavy[4:] for agent in counts}) == 4


def test_an_agent_joining_a_running_fleet_ramps_up() -> None:
    core = core_with(slow_start_s=10.0)
    join(core, "old", 0, capacity=10)
    assert core.registry.get("old").allowed == 10  # type: ignore[union-attr]
    new = join(core, "new", 20.0, capacity=10)
    assert new.allowed == 1  # 10% floor
    core.tick(20.0)
    core.tick(25.0)
    assert new.allowed == 5
    core.tick(31.0)
    assert new.allowed == 10


def test_a_fleet_starting_together_skips_slow_start() -> None:
    core = core_with(slow_start_s=10.0)
    agents = [join(core, f"a{i}", 0.0 + i * 0.1, capacity=8) for i in range(3)]
    assert [a.allowed for a in agents] == [8, 8, 8]


def test_repeated_failures_eject_an_agent_then_it_is_probed_back() -> None:
    core = core_with(eject_consecutive=3, eject_base_s=5.0, slow_start_s=10.0)
    join(core, "good", 0)
    bad = join(core, "bad", 0)
    for i in range(6):
        run(core, 2, i * 0.1, fail={"bad"})
    assert bad.allowed == 0 and bad.stats.ejections == 1
    counts = run(core, 4, 1.0)
    assert "bad" not in counts
    core.tick(1.0)
    core.tick(6.5)  # ejection over: back through slow start, one slot to begin with
    assert bad.allowed == 1
    assert run(core, 8, 7.0).get("bad") == 1


def test_failures_everywhere_mean_bad_tasks_not_a_bad_agent() -> None:
    core = core_with(eject_consecutive=3)
    agents = [join(core, n, 0) for n in "abc"]
    core.tick(0)
    for i in range(5):
        run(core, 3, i, fail={"a", "b", "c"})
        core.tick(i + 0.5)
    assert sum(a.allowed == 0 for a in agents) <= 1  # the fleet median stops further ejections


def test_never_more_than_half_the_fleet_is_ejected() -> None:
    core = core_with(eject_consecutive=2)
    agents = [join(core, n, 0) for n in "abcd"]
    for i in range(4):
        run(core, 8, i, fail={"a", "b", "c"})
    assert sum(a.allowed == 0 for a in agents) == 2


def test_when_every_eligible_agent_is_ejected_work_still_flows() -> None:
    core = core_with(eject_consecutive=2)
    join(core, "a", 0)
    run(core, 1, 0)  # a succeeds: failures on b are b's, not the tasks'
    b, _ = core.register(Registration("b", (("gpu", 1),), frozenset(), 4, "1", 4), 0)
    for i in range(3):
        core.submit([TaskSpec(kind="k", required_labels=(("gpu", 1),))], i)
        for agent_id, recs in core.dispatch(i).items():
            core.frame(agent_id, b.session, i, [ResultIn(r.task_id, r.attempt, TaskState.FAILED,
                                                         Outcome(error="x", error_type="handler_error"))
                                                for r in recs], credits=len(recs))
    assert b.allowed == 0
    core.submit([TaskSpec(kind="k", required_labels=(("gpu", 1),))], 5)
    assert list(core.dispatch(5)) == ["b"]  # panic mode: the only capable agent is used anyway


def test_a_stalled_agent_is_not_waited_for() -> None:
    core = core_with()
    fast = join(core, "fast", 0, capacity=2)
    join(core, "slow", 0, capacity=2)
    for i in range(30):
        run(core, 2, i, {"fast": 0.01, "slow": 0.05})
    # fast takes two tasks and never answers.
    core.submit([TaskSpec(kind="k") for _ in range(2)], 40.0)
    assert {a: len(r) for a, r in core.dispatch(40.0).items()} == {"fast": 2}
    assert len(fast.in_flight) == 2
    core.submit([TaskSpec(kind="k")], 41.0)
    assert core.dispatch(41.0) == {}  # waiting for fast, which looks 5x faster
    core.tick(40.9)
    assert core.dispatch(41.0) == {}  # under a second of silence is jitter
    core.tick(41.5)
    assert list(core.dispatch(41.5)) == ["slow"]  # over a second, and 4x its estimate: stalled


def test_an_unused_slow_estimate_drifts_back_so_the_agent_is_probed() -> None:
    core = core_with(latency_forget_s=10.0)
    a = join(core, "a", 0, capacity=8)
    b = join(core, "b", 0, capacity=8)
    c = join(core, "c", 0, capacity=8)
    for i in range(10):
        run(core, 3, i, {"a": 0.01, "b": 0.01, "c": 0.2})
    core.tick(10)
    before = core.feedback.estimate(c, "k")
    for t in range(11, 60):
        core.tick(float(t))
    after = core.feedback.estimate(c, "k")
    assert before is not None and after is not None and after < before / 3
    # Fast agents do not drift up toward a slower median.
    assert core.feedback.estimate(a, "k") == pytest.approx(0.01)
    assert core.feedback.estimate(b, "k") == pytest.approx(0.01)


def test_slow_start_is_decided_without_walking_a_young_fleet_again() -> None:
    # A cold start of n agents must not cost n passes over the fleet (n² work).
    fleet: list[AgentRecord] = []
    visits = [0]

    def walk() -> Iterator[AgentRecord]:
        for a in fleet:
            visits[0] += 1
            yield a

    fb = Feedback(walk, HealthConfig(slow_start_s=10.0))

    def arrive(agent_id: str, now: float) -> AgentRecord:
        a = AgentRecord(agent_id, {}, frozenset(), 4, "1", 1, connected_at=now, last_seen=now)
        fleet.append(a)
        fb.on_register(a, now)
        return a

    cold = [arrive(f"a{i}", i * 0.001) for i in range(2000)]
    assert all(a.allowed == 4 for a in cold), "a fleet starting together skips slow start"
    assert visits[0] < 2 * len(cold)
    late = arrive("late", 12.0)
    assert late.allowed == 1, "the first agents have served 10 s: a newcomer ramps"


def test_a_newcomer_skips_slow_start_when_only_draining_agents_are_old() -> None:
    core = core_with(slow_start_s=10.0)
    old = join(core, "old", 0.0, capacity=10)
    core.registry.set_state(old, AgentState.DRAINING)
    assert join(core, "new", 20.0, capacity=10).allowed == 10
    assert join(core, "newer", 31.0, capacity=10).allowed == 1, "'new' has served 11 s"


def test_tick_visits_only_agents_it_has_work_for() -> None:
    # An idle fleet of thousands must not cost every tick a walk over all of it.
    fleet: list[AgentRecord] = []
    fb = Feedback(lambda: iter(fleet), HealthConfig(slow_start_s=10.0))

    def arrive(agent_id: str, now: float) -> AgentRecord:
        a = AgentRecord(agent_id, {}, frozenset(), 4, "1", 1, connected_at=now, last_seen=now)
        fleet.append(a)
        fb.on_register(a, now)
        return a

    for i in range(1000):
        arrive(f"a{i}", 0.0)
    fb.tick(1.0, 0.2, {})
    assert fb._watched == {}, "a cold fleet at full capacity has nothing to upkeep"
    ramping = arrive("late", 20.0)
    worker = fleet[7]
    fb.on_result(worker, "k", False, 0.01, 20.0)
    assert set(fb._watched) == {"late", "a7"}
    fb.tick(25.0, 0.2, {})
    assert 1 < ramping.allowed < 4, "the newcomer's ramp still advances"
    fb.tick(31.0, 0.2, {})
    assert ramping.allowed == 4
    assert set(fb._watched) == {"a7"}, "done ramping; a7 keeps estimates to refresh"
    worker.state = AgentState.GONE
    fb.tick(32.0, 0.2, {})
    assert fb._watched == {}
