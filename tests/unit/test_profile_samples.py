"""Recording attempts: what each phase measures, what the listener counts, and bounded memory at any rate."""

from __future__ import annotations

import random

import pytest

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskSpec, TaskState
from coordinator.profile import profiler
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.percentiles import Weighted
from coordinator.profile.profiler import Profiler
from coordinator.profile.samples import COARSE_PER_S

T = 1_700_000_000.0


def mesh(capacity: int = 4, agents: tuple[str, ...] = ("a",), **cfg: object) -> tuple[MeshCore, Profiler]:
    core = MeshCore(CoreConfig(lease_timeout_s=5.0, retention_s=10_000, max_retained=1_000_000))
    prof = Profiler(core, ProfilerConfig(**cfg))  # type: ignore[arg-type]
    core.add_listener(prof.on_change)
    for agent_id in agents:
        core.register(Registration(agent_id, (), frozenset(), capacity, "1", capacity), T)
    return core, prof


def finish(core: MeshCore, agent_id: str, now: float, outcome: Outcome, state: TaskState = TaskState.SUCCEEDED
           ) -> None:
    agent = core.registry.get(agent_id)
    assert agent is not None
    results = [ResultIn(t, a, state, outcome) for t, a in list(agent.in_flight.items())]
    core.frame(agent_id, agent.session, now, results, credits=len(results))


def phases(prof: Profiler, now: float, **kw: object) -> dict[str, float]:
    [kind] = prof.report(now, **kw).kinds  # type: ignore[arg-type]
    return {p.phase: p.mean_ms for p in kind.phases}


def test_phases_split_the_attempt() -> None:
    core, prof = mesh()
    core.submit([TaskSpec(kind="k")], T)
    core.dispatch(T + 0.5)  # half a second in the queue
    finish(core, "a", T + 0.8, Outcome(duration_us=200_000, agent_us=250_000, cache_us=30_000))
    got = phases(prof, T + 1)
    assert got["queue"] == pytest.approx(500, abs=0.01)
    assert got["transport"] == pytest.approx(50, abs=0.01)  # 300 ms round trip, 250 ms at the agent
    assert got["cache"] == pytest.approx(30, abs=0.01)
    assert got["execution"] == pytest.approx(200, abs=0.01)
    assert got["total"] == pytest.approx(800, abs=0.01)


def test_old_sidecar_without_agent_time_and_cache_hits() -> None:
    core, prof = mesh()
    core.submit([TaskSpec(kind="k")], T)
    core.dispatch(T)
    # No agent_us: transport is the round trip less handler and cache time.
    finish(core, "a", T + 0.3, Outcome(duration_us=200_000, cache_us=20_000))
    got = phases(prof, T + 1)
    assert got["transport"] == pytest.approx(80, abs=0.01)
    core2, prof2 = mesh()
    core2.submit([TaskSpec(kind="k", cache_key="x")], T)
    core2.dispatch(T)
    # A hit ran no handler; an old sidecar reports the lookup as duration_us.
    finish(core2, "a", T + 0.1, Outcome(duration_us=3_000, cache_hit=True, agent_us=4_000))
    got = phases(prof2, T + 1)
    assert got["execution"] == 0 and got["cache"] == pytest.approx(3, abs=0.01)
    [kind] = prof2.report(T + 1).kinds
    assert kind.cache_lookups == 1 and kind.cache_hit_rate == 1.0


def test_lost_lease_is_not_a_finished_attempt_and_the_next_wait_starts_at_requeue() -> None:
    core, prof = mesh(agents=("a", "b"))
    core.submit([TaskSpec(kind="k", max_attempts=1 + 1)], T)
    out = core.dispatch(T + 1)
    first = next(iter(out))
    agent = core.registry.get(first)
    assert agent is not None
    core.disconnect(first, agent.session, T + 2)  # back to the queue at T + 2
    other = "b" if first == "a" else "a"
    core.dispatch(T + 2.25)
    finish(core, other, T + 3, Outcome(duration_us=100_000, agent_us=100_000))
    report = prof.report(T + 4)
    [kind] = report.kinds
    assert kind.succeeded == 1 and kind.failed == 0
    assert {p.phase: p.mean_ms for p in kind.phases}["queue"] == pytest.approx(250, abs=0.01)
    assert [a.agent_id for a in report.agents if a.succeeded] == [other]


def test_failures_by_the_coordinator_are_counted_not_timed() -> None:
    core, prof = mesh()
    # Expires in the queue (no agent ever took it): a failure of the kind, no agent.
    core.submit([TaskSpec(kind="late", timeout_ms=500, required_labels=(("gpu", 1),))], T)
    core.tick(T + 1)
    # Lost with its last lease: the failure belongs to the agent that held it.
    core.submit([TaskSpec(kind="lost", max_attempts=1)], T + 1)
    core.dispatch(T + 1)
    agent = core.registry.get("a")
    assert agent is not None
    core.disconnect("a", agent.session, T + 2)
    report = prof.report(T + 3)
    kinds = {k.kind: k for k in report.kinds}
    assert kinds["late"].failed == 1 and kinds["late"].phases == ()
    late = next(b.pairs[("late", "")] for b in prof._rec.window(T - 1, T + 3) if ("late", "") in b.pairs)
    assert late.errors == {"expired_in_queue": 1}
    assert kinds["lost"].failed == 1 and kinds["lost"].phases == ()
    assert [(a.agent_id, a.failed) for a in report.agents] == [("a", 1)]


def test_weighted_quantiles_match_the_expanded_values() -> None:
    rng = random.Random(7)
    w = Weighted()
    expanded: list[float] = []
    for weight in (1, 2, 8, 8, 64):
        values = [rng.expovariate(1.0) for _ in range(rng.randrange(5, 200))]
        w.add(weight, values)
        expanded.extend(v for v in values for _ in range(weight))
    expanded.sort()
    for q in (0.01, 0.5, 0.9, 0.99, 1.0):
        rank = max(0, -(-int(q * len(expanded) * 1e9) // int(1e9)) - 1)
        assert w.quantiles((q,))[0] == expanded[rank]
    assert w.mean() == pytest.approx(sum(expanded) / len(expanded))
    assert w.max() == expanded[-1] and w.weight() == len(expanded)
    assert Weighted().quantiles((0.5,)) == [0.0]


def test_high_rate_keeps_exact_counts_and_bounded_samples() -> None:
    core, prof = mesh(capacity=10_000, agents=("a", "b"), samples_per_s=256)
    rng = random.Random(3)
    for second in range(3):
        now = T + second
        for _ in range(2):
            core.submit([TaskSpec(kind="k") for _ in range(10_000)], now)
        core.dispatch(now)
        for agent_id in ("a", "b"):
            agent = core.registry.get(agent_id)
            assert agent is not None
            results = [ResultIn(t, a, TaskState.SUCCEEDED,
                                Outcome(duration_us=int(rng.uniform(1, 3) * 1000), agent_us=3_000))
                       for t, a in agent.in_flight.items()]
            core.frame(agent_id, agent.session, now + 0.5, results, credits=len(results))
        prof.tick(now + 0.6)
    [kind] = prof.report(T + 3).kinds
    assert kind.succeeded == 60_000
    execution = {p.phase: p for p in kind.phases}["execution"]
    assert execution.count == pytest.approx(60_000, rel=0.05)
    assert 1.9 < execution.p50_ms < 2.1 and 2.7 < execution.p90_ms < 2.9
    kept = sum(len(ps.samples or ()) for b in prof._rec.window(T - 10, T + 10) for ps in b.pairs.values())
    assert kept <= 3 * 2 * 256


def test_old_seconds_fold_into_minutes_and_an_hour_is_the_limit() -> None:
    core, prof = mesh(capacity=100)
    now = T
    for _ in range(200):  # 200 s at 50 attempts a second
        core.submit([TaskSpec(kind="k") for _ in range(50)], now)
        core.dispatch(now)
        finish(core, "a", now + 0.5, Outcome(duration_us=10_000, agent_us=10_000))
        now += 1
        prof.tick(now)
    report = prof.report(now, window_s=600)
    assert report.kinds[0].succeeded == 200 * 50
    fine = prof._rec._fine
    coarse = prof._rec._coarse
    assert fine and coarse and min(fine) > now - 125
    for b in coarse.values():
        assert b.kept <= COARSE_PER_S * 60 * 2
    prof.tick(now + 4000)
    assert prof.report(now + 4000, window_s=3600).kinds == ()
    assert prof._rec.window(0, 1e12) == []  # dropped, not merely outside the report's window


def test_cache_key_memory_is_bounded() -> None:
    core, prof = mesh(capacity=1000, max_cache_keys=500)
    core.submit([TaskSpec(kind="k", cache_key=f"key{i}") for i in range(1000)], T)
    core.dispatch(T)
    finish(core, "a", T + 1, Outcome(duration_us=1000, agent_us=1000))
    prof.tick(T + 1)
    assert len(prof._rec._keys) == 500
    assert "key999" in prof._rec._keys and "key0" not in prof._rec._keys


def test_arrivals_and_listener_cost_nothing_for_other_transitions() -> None:
    core, prof = mesh()
    core.submit([TaskSpec(kind="k") for _ in range(3)], T)
    core.dispatch(T)  # PENDING -> ASSIGNED: nothing kept
    assert len(prof._arrived) == 3 and prof._done == []
    core.cancel([r.task_id for r in core.list_tasks()[0]], T + 1)
    prof.tick(T + 1)
    assert prof.report(T + 2, window_s=10).kinds == ()  # cancelled attempts are not results
    assert sum(b.arrivals.get("k", 0) for b in prof._rec.window(T - 1, T + 2)) == 3


def test_sampling_a_large_fleet_yields_between_slices_and_sees_every_agent(monkeypatch: pytest.MonkeyPatch
                                                                           ) -> None:
    ids = tuple(f"a{i}" for i in range(2 * profiler.SAMPLE_STEP + 7))
    core, prof = mesh(agents=ids)
    twin_core, twin = mesh(agents=ids)

    def unsliced(now: float) -> None:
        # The reference walks the whole fleet in one slice: what slicing loses or counts twice shows up.
        with monkeypatch.context() as m:
            m.setattr(profiler, "SAMPLE_STEP", len(ids) + 1)
            assert sum(1 for _ in twin.tick_steps(now)) == 0

    def sampled(p: Profiler) -> object:
        # Compared after each tick, not in a report: a report reads the whole fleet itself and
        # a later round may read what an earlier one missed, either hiding a missed agent.
        tracks = {t.agent_id: (t.spans, t.capacity, t.connected_at, t.gone_at) for t in p._fleet.tracks.values()}
        return tracks, p._interval

    # Two pauses (three slices) in the walk over the agents, and two more in the totals over them.
    assert sum(1 for _ in prof.tick_steps(T + 1)) == 4
    unsliced(T + 1)
    assert sampled(prof) == sampled(twin)
    core.registry.remove(core.registry.get("a0"), T + 2)  # type: ignore[arg-type]
    twin_core.registry.remove(twin_core.registry.get("a0"), T + 2)  # type: ignore[arg-type]
    for _ in prof.tick_steps(T + 2.5):
        pass
    unsliced(T + 2.5)
    assert sampled(prof) == sampled(twin)
    got = {a.agent_id: a for a in prof.report(T + 3).agents}
    want = {a.agent_id: a for a in twin.report(T + 3).agents}
    assert got == want
    assert set(got) == set(ids) - {"a0"}  # a0 seen gone by the later, sliced sample


def test_a_report_before_the_first_tick_samples_the_fleet_itself() -> None:
    core, prof = mesh(capacity=1)
    core.submit([TaskSpec(kind="k")], T)
    core.dispatch(T)
    finish(core, "a", T + 0.5, Outcome(duration_us=500_000))
    [agent] = prof.report(T + 1).agents  # no tick has run: the report takes the first sample
    assert agent.utilization == pytest.approx(0.5)
