"""The profiler's findings on a simulated mesh: each planted problem is named, a healthy mesh gets none."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterator

from coordinator.core.model import AllocationSite
from coordinator.profile.agent_health import ExecTime, slow_agent, slowdowns
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.report import PHASES, Severity
from tests.unit.profile_mesh import T0, Sim, by_category, figures, serious


def healthy_mesh(seed: int = 1) -> Sim:
    """Four agents at ~35% load, unique cache keys on one kind, memory flat, noisy or sawtooth."""
    noise = random.Random(seed)
    sim = Sim(seed=seed)
    memories = [
        lambda t: 250e6 + noise.gauss(0, 4e6),
        lambda t: 250e6 + 120e6 * (((t - T0) % 45) / 45),  # garbage collection sawtooth
        lambda t: 250e6 + 150e6 * min(1.0, (t - T0) / 90) + noise.gauss(0, 1e6),  # warm-up, then flat
        lambda t: 250e6 + noise.gauss(0, 25e6),  # noisy
    ]
    for i, memory in enumerate(memories):
        sim.add_agent(f"a{i}", capacity=4, service=lambda _k, r: r.uniform(0.03, 0.07), memory=memory)
    return sim


# Search queries never repeat: nothing for a cache to hit, and nothing wrong with it.
UNIQUE: Iterator[int] = itertools.count()


def run_healthy(sim: Sim, seconds: float) -> None:
    sim.run(seconds, rates={"resize": 60, "search": 30}, keys={"search": lambda _r: f"q{next(UNIQUE)}"})


def test_healthy_mesh_has_no_warning_from_startup_on() -> None:
    sim = healthy_mesh()
    for _ in range(8):  # every minute for 8 minutes: startup, warm-up, steady state
        run_healthy(sim, 60)
        report = sim.report()
        assert serious(report) == [], [f.summary for f in report.findings]
        assert not by_category(report, "slow_agent")  # not even as idle slots
        assert not by_category(report, "dispatch_bound")
    kinds = {k.kind: k for k in report.kinds}
    assert set(kinds) == {"resize", "search"}
    resize = kinds["resize"]
    # 60 one-second buckets, give or take the one the window starts in.
    assert abs(resize.succeeded - 3600) <= 60 and resize.failed == 0
    assert abs(resize.throughput_per_s - 60) < 1
    assert [p.phase for p in resize.phases] == list(PHASES)
    phases = {p.phase: p for p in resize.phases}
    assert 40 < phases["execution"].p50_ms < 60 and phases["execution"].max_ms <= 70.5
    assert phases["queue"].share < 0.1 and phases["execution"].share > 0.7
    assert phases["total"].share == 1.0
    search = kinds["search"]
    assert abs(search.cache_lookups - 1800) <= 30 and search.cache_hit_rate == 0.0  # unique keys: nothing to hit
    assert resize.agents == 4 and resize.capacity == 16 and resize.queued == 0
    for agent in report.agents:
        assert 0.2 < agent.utilization < 0.6
        assert agent.memory_rss_bytes > 0
        assert 0.5 < agent.slowdown < 2.0


def test_saturated_kind_is_named_with_agents_to_add() -> None:
    sim = Sim()
    sim.add_agent("v1", capacity=2, kinds=("vision",), labels={"gpu": 1}, service=0.1)
    sim.add_agent("v2", capacity=2, kinds=("vision",), labels={"gpu": 1}, service=0.1)
    for i in range(3):
        sim.add_agent(f"t{i}", capacity=4, kinds=("text",), service=0.02)
    sim.run(60, rates={"vision": 60, "text": 50}, spec={"vision": {"required_labels": {"gpu": 1}}})
    report = sim.report()
    [f] = by_category(report, "saturated_kind")
    assert f.subject == "vision" and f.severity == Severity.CRITICAL
    assert "vision tasks wait" in f.summary and "the 2 agents able to run them are saturated" in f.summary
    fig = figures(f)
    assert fig["utilization"] > 0.95 and fig["queue_share"] > 0.9 and fig["agents"] == 2
    assert abs(fig["arrivals_per_s"] - 60) < 1 and 30 < fig["throughput_per_s"] < 40
    # 60/s at ~19/s per agent, for 75% utilization: 5 agents, so about 3 more.
    assert fig["agents_to_add"] == 3
    assert f.recommendations[0].startswith("add about 3 agent(s) that run vision: swarmmesh sidecar "
                                           "--kinds vision --label gpu=1")
    assert "--capacity" in f.recommendations[1]
    assert not [x for x in report.findings if x.subject == "text"]
    # The queue forecast sees the backlog too.
    queue = next(x for x in report.forecasts if x.metric == "queue_depth")
    assert queue.current > 1000 and queue.seconds_to_threshold == 0


def test_saturation_by_competing_kind_names_it() -> None:
    sim = Sim()
    for i in range(2):
        sim.add_agent(f"g{i}", capacity=2, service=lambda k, _r: 0.2 if k == "batch" else 0.05)
    sim.run(40, rates={"batch": 19, "vision": 10})
    [f] = [x for x in by_category(sim.report(), "saturated_kind") if x.subject == "vision"]
    assert any("(batch 8" in r and "lower the priority" in r for r in f.recommendations)


def test_waiting_while_agents_are_held_back_is_a_queue_stall_not_saturation() -> None:
    # Slow start holds an agent that joins a running fleet to a fraction of its slots while tasks pile up.
    sim = Sim(slow_start_s=60.0)
    sim.add_agent("old", capacity=1, kinds=("other",), service=0.01)
    sim.run(61, rates={"other": 5})
    sim.add_agent("new", capacity=20, kinds=("job",), service=0.5)
    sim.run(20, rates={"job": 8, "other": 5})
    report = sim.report()
    assert not by_category(report, "saturated_kind")
    [f] = by_category(report, "queue_stall")
    assert f.subject == "job" and f.severity == Severity.INFO  # it clears by itself
    assert "while the 1 agent able to run them is only" in f.summary and "slow start" in f.summary
    assert figures(f)["allowed"] < figures(f)["capacity"] / 2
    assert serious(report) == []  # twenty seconds of a growing queue is no trend


def test_burst_held_up_by_dispatch_turnaround_is_one_mesh_wide_finding() -> None:
    # A result lands, and the slot it frees gets its next task one dispatch pass later (two passes out of
    # three reach the agents): slots hold 1 ms handlers for 10 ms round trips, and sit a third of the time empty.
    sim = Sim()
    kinds = ("a.one", "a.two", "b.one", "b.two")
    for i in range(3):
        sim.add_agent(f"g{i}", capacity=8, service=0.001)
    dispatch = sim.core.dispatch
    passes = itertools.count()
    sim.core.dispatch = lambda now: dispatch(now) if next(passes) % 3 != 2 else {}  # type: ignore[method-assign]
    sim.run(1)
    for kind in kinds:
        sim.submit(kind, 750)
    sim.run(20)
    report = sim.report()
    assert not by_category(report, "saturated_kind") and not by_category(report, "queue_stall")
    [f] = by_category(report, "dispatch_bound")
    assert f.severity == Severity.INFO and f.subject == ""
    assert f.summary.startswith("tasks of 4 kinds (a.one, a.two, b.one and 1 more) wait ")
    assert "tasks/s, and each slot spends" in f.summary and "in handlers)" in f.summary
    fig = figures(f)
    assert fig["kinds"] == 4 and {k for k in fig if k.startswith("kind:")} == {f"kind:{k}" for k in kinds}
    assert fig["queue_share"] > 0.9 and 0.5 <= fig["busy_while_waiting"] < 0.85
    assert fig["round_trip_ms"] > 5 * fig["handler_ms"] and 0.5 < fig["handler_ms"] < 1.5
    # 24 slots, a 10 ms round trip every 15 ms: about 1,600 tasks/s.
    assert 1200 < fig["throughput_per_s"] < 2000
    assert "--capacity on those agents (now 8 slots each)" in f.recommendations[0]
    assert any("steady stream" in r for r in f.recommendations)
    assert any("coordinator's CPU" in r for r in f.recommendations)
    assert serious(report) == []


def test_unroutable_class_is_critical_after_a_while() -> None:
    sim = Sim(ProfilerConfig(unroutable_after_s=10))
    sim.add_agent("a", capacity=4, labels={"vision": 1}, service=0.01)
    sim.submit("ocr", 5, required_labels={"vision": 3})
    sim.run(5)
    assert not by_category(sim.report(), "unroutable")
    sim.run(10)
    [f] = by_category(sim.report(), "unroutable")
    assert f.severity == Severity.CRITICAL and f.subject == "ocr"
    assert "5 ocr task(s) cannot run" in f.summary and "best is 1" in f.summary
    assert "--kinds ocr --label vision=3" in f.recommendations[0]
    sim.add_agent("b", capacity=4, labels={"vision": 3}, service=0.01)
    sim.run(2)
    assert not by_category(sim.report(), "unroutable")


def test_slow_agent_with_round_robin_recommends_a_latency_aware_strategy() -> None:
    sim = Sim(overrides=(("resize", "round-robin"),))
    for i in range(3):
        sim.add_agent(f"r{i}", capacity=4, service=0.41 if i == 1 else 0.1, version="2" if i == 1 else "1")
    sim.run(60, rates={"resize": 30})
    report = sim.report()
    [f] = by_category(report, "slow_agent")
    assert f.subject == "r1" and f.severity == Severity.CRITICAL
    assert f.summary == "agent r1 is 4.1x slower than its peers on resize (p50 410 ms vs 100 ms)"
    assert abs(figures(f)["slowdown"] - 4.1) < 0.05 and figures(f)["peers"] == 2
    assert any("version 2, its peers 1" in r for r in f.recommendations)
    assert any("--strategy-overrides resize=hybrid" in r for r in f.recommendations)
    assert any("swarmmesh drain r1" in r for r in f.recommendations)
    slowdown = {a.agent_id: a.slowdown for a in report.agents}
    assert abs(slowdown["r1"] - 4.1) < 0.05 and slowdown["r0"] < 1


def test_slow_agent_under_hybrid_gets_no_strategy_advice_and_a_small_gap_is_ignored() -> None:
    def run(rate: float) -> Sim:
        sim = Sim()
        for i in range(3):
            sim.add_agent(f"r{i}", capacity=4, service=0.3 if i == 0 else 0.1)
        sim.run(60, rates={"resize": rate})
        return sim

    # Under load the slow agent has to take its share: a warning.
    [f] = by_category(run(90).report(), "slow_agent")
    assert f.subject == "r0" and f.severity == Severity.WARNING and abs(figures(f)["slowdown"] - 3) < 0.05
    assert not any("strategy" in r for r in f.recommendations)
    # With room elsewhere hybrid routes around it: only worth an info.
    [f] = by_category(run(70).report(), "slow_agent")
    assert f.severity == Severity.INFO and "already sends it little work" in f.summary
    assert figures(f)["utilization"] < 0.1 < 0.5 < figures(f)["peers_utilization"]
    # Microsecond handlers that differ by 3x are not worth a finding.
    fast = Sim()
    for i in range(3):
        fast.add_agent(f"f{i}", capacity=4, service=0.0003 if i == 0 else 0.0001)
    fast.run(30, rates={"noop": 50})
    assert not by_category(fast.report(), "slow_agent")


def leak_mesh(growth: float) -> Sim:
    noise = random.Random(3)
    sim = Sim(ProfilerConfig(leak_window_s=300, leak_min_samples=10, leak_min_growth_bytes_per_s=16384,
                             agent_memory_limit_bytes=2 * 1024**3))
    sim.add_agent("leaky", memory=lambda t: 300e6 + growth * (t - T0) + noise.gauss(0, 2e6),
                  allocations=lambda t: (
                      AllocationSite("app/handlers.py:42", int(10e6 + 0.9 * growth * (t - T0)), int(t - T0) * 10),
                      AllocationSite("json/decoder.py:353", 30_000_000, 4000)))
    sim.add_agent("steady", memory=lambda t: 300e6 + 100e6 * (((t - T0) % 60) / 60))
    return sim


def test_linear_memory_growth_is_a_leak_once_the_window_is_covered() -> None:
    sim = leak_mesh(50 * 1024)
    sim.run(200, rates={"k": 10})
    report = sim.report()
    assert not by_category(report, "memory_leak")  # 200 s of a 300 s window: too early to say
    growth = {a.agent_id: a.memory_growth_bytes_per_s for a in report.agents}
    assert 40_000 < growth["leaky"] < 60_000
    sim.run(150, rates={"k": 10})
    report = sim.report()
    [f] = by_category(report, "memory_leak")
    assert f.subject == "leaky" and f.severity == Severity.WARNING
    assert f.summary.startswith("agent leaky memory grows ") and " MiB/min (R² 0." in f.summary
    assert "reaches its 2.0 GiB limit in" in f.summary
    fig = figures(f)
    assert 45_000 < fig["growth_bytes_per_s"] < 57_000 and fig["r2"] > 0.6
    assert fig["seconds_to_limit"] > 9 * 3600
    # The site that grows is named first, with how much it grew.
    assert f.recommendations[0].startswith("largest growing allocation sites: app/handlers.py:42 +")
    assert "json/decoder.py" not in f.recommendations[0]
    assert {x.subject for x in report.findings} == {"leaky"}


def test_fast_leak_near_the_limit_is_critical() -> None:
    sim = leak_mesh(2 * 1024 * 1024)
    sim.run(320)
    [f] = by_category(sim.report(), "memory_leak")
    assert f.severity == Severity.CRITICAL
    assert "MiB/min" in f.summary and figures(f)["seconds_to_limit"] < 3600


def test_cold_cache_from_scattered_routing_and_warm_with_affinity() -> None:
    def run(strategy: str) -> Sim:
        sim = Sim(strategy=strategy)
        for i in range(4):
            sim.add_agent(f"c{i}", capacity=4, service=0.05, cache_size=100)
        sim.run(90, rates={"ocr": 40}, keys={"ocr": lambda r: f"k{r.randrange(400)}"})
        return sim

    report = run("round-robin").report()
    [f] = by_category(report, "cold_cache")
    assert f.subject == "ocr" and f.severity == Severity.WARNING
    assert "ocr tasks miss the cache on" in f.summary and "another agent than the one holding the result" in f.summary
    fig = figures(f)
    assert fig["repeat_hit_rate"] < 0.4 and fig["repeats"] > 1000 and fig["evictions"] > 0
    assert f.recommendations[0].startswith("route ocr by cache key: --strategy-overrides ocr=cache-affinity")
    assert any("--cache-size-mb" in r for r in f.recommendations)
    for strategy in ("cache-affinity", "hybrid"):
        warm = run(strategy).report()
        assert not by_category(warm, "cold_cache")
        assert warm.kinds[0].cache_hit_rate > 0.85


def test_errors_name_the_type_and_the_agent() -> None:
    sim = Sim()
    sim.add_agent("good", capacity=4, service=0.02)
    sim.add_agent("bad", capacity=4, service=0.02, fail_rate=0.9)
    sim.run(30, rates={"parse": 20})
    [f] = by_category(sim.report(), "errors")
    assert f.subject == "parse" and "mostly handler_error" in f.summary and "on agent bad" in f.summary
    assert f.recommendations[0].startswith("the failures come from agent bad")
    assert figures(f)["type:handler_error"] == figures(f)["failed"]


def test_report_filters_by_kind_and_agent() -> None:
    sim = Sim(overrides=(("resize", "round-robin"),))
    for i in range(3):
        sim.add_agent(f"r{i}", capacity=4, service=lambda k, _r, i=i: 0.4 if (i == 1 and k == "resize") else 0.05)
    sim.run(60, rates={"resize": 20, "thumb": 20})
    everything = sim.report()
    assert {k.kind for k in everything.kinds} == {"resize", "thumb"}
    only_thumb = sim.report(kind="thumb")
    assert [k.kind for k in only_thumb.kinds] == ["thumb"]
    assert only_thumb.findings == ()  # the slow agent is slow on resize only
    only_resize = sim.report(kind="resize")
    assert [f.category for f in only_resize.findings] == ["slow_agent"]
    assert only_resize.kinds[0].succeeded == everything.kinds[0].succeeded
    r1 = sim.report(agent_id="r1")
    assert [a.agent_id for a in r1.agents] == ["r1"]
    assert {k.kind for k in r1.kinds} == {"resize", "thumb"}
    assert sum(k.succeeded for k in r1.kinds) == r1.agents[0].succeeded
    assert [f.subject for f in r1.findings] == ["r1"]
    assert sim.report(agent_id="r0").findings == ()
    both = sim.report(kind="resize", agent_id="r1")
    assert both.kinds[0].succeeded == r1.agents[0].succeeded - next(k for k in r1.kinds if k.kind == "thumb").succeeded
    assert [f.subject for f in both.findings] == ["r1"]


def test_window_limits_what_is_counted() -> None:
    sim = Sim()
    sim.add_agent("a", capacity=4, service=0.01)
    sim.run(30, rates={"early": 10})
    sim.run(60, rates={"late": 10})
    assert {k.kind for k in sim.report(window_s=30).kinds} == {"late"}
    wide = {k.kind: k for k in sim.report(window_s=600).kinds}
    assert abs(wide["early"].succeeded - 300) <= 1 and abs(wide["early"].throughput_per_s - 300 / 90) < 0.1
    assert sim.report(window_s=1e9).window_s == 3600


def test_unknown_agent_or_kind_gets_no_entry_unless_a_connected_agent_can_run_the_kind() -> None:
    sim = Sim()
    sim.add_agent("ocr-1", capacity=2, kinds=("ocr",), service=0.01)
    sim.run(10, rates={"ocr": 20})
    nobody = sim.report(agent_id="nobody")
    assert nobody.agents == () and nobody.kinds == () and nobody.findings == ()
    assert sim.report(kind="no-such-kind").kinds == ()
    assert sim.report(kind="ocr", agent_id="nobody").agents == ()
    # A kind nothing ran yet, that a connected agent can run: its agents and capacity are worth showing.
    sim.add_agent("any", capacity=3, service=0.01)
    sim.run(2)
    [idle] = sim.report(kind="no-such-kind").kinds
    assert (idle.agents, idle.capacity, idle.succeeded, idle.phases) == (1, 3, 0, ())
    # An agent that was there within the window is known, with what it did.
    agent = sim.core.registry.get("ocr-1")
    assert agent is not None
    sim.core.disconnect("ocr-1", agent.session, sim.now)
    sim.run(5)
    [gone] = sim.report(agent_id="ocr-1").agents
    assert gone.succeeded > 100
    sim.run(120)
    assert sim.report(agent_id="ocr-1").agents == ()


def test_slow_agent_the_balancer_avoids_is_reported_as_idle_slots() -> None:
    # Hybrid routing sends the slow agent a probe now and then: a handful of runs in a minute,
    # under the samples the median rule needs, every one of them three times slower.
    sim = Sim()
    for i in range(3):
        sim.add_agent(f"r{i}", capacity=4, service=0.3 if i == 0 else 0.1, version="2" if i == 0 else "1")
    sim.run(60, rates={"resize": 30})
    report = sim.report()
    [f] = by_category(report, "slow_agent")
    fig = figures(f)
    assert f.subject == "r0" and f.severity == Severity.INFO
    assert 3 <= fig["samples"] < 10 and abs(fig["slowdown"] - 3) < 0.1 and fig["capacity"] == 4
    assert f.summary.startswith(f"agent r0 is 3.0x slower than its peers on resize (p50 300 ms over its "
                                f"{int(fig['samples'])} runs vs 100 ms); the balancer routes around it, so its 4 "
                                "slot(s) sit idle")
    assert any(r.startswith("drain it and replace it") and "swarmmesh drain r0" in r for r in f.recommendations)
    assert any("version 2, its peers 1" in r for r in f.recommendations)
    assert serious(report) == []


def test_avoided_agent_needs_runs_over_more_than_one_round_or_the_balancers_record() -> None:
    cfg = ProfilerConfig()
    peers = [ExecTime(f"p{i}", 0.1, 200, utilization=0.5, fastest_s=0.05, spread_s=50, capacity=4, estimate_s=0.1,
                      estimate_samples=200) for i in range(2)]

    def avoided(t: ExecTime) -> list[str]:
        return [f"{s.agent_id}:{s.p50_s:g}:{s.samples}" for s in slowdowns("k", [*peers, t], cfg) if s.avoided]

    # Four slow runs side by side and nothing since: one cold start, no verdict.
    cold = ExecTime("cold", 0.5, 4, utilization=0.01, fastest_s=0.5, spread_s=0.01, capacity=4)
    assert avoided(cold) == []
    # The same runs over several rounds (probes after the balancer forgot): slow.
    assert avoided(dataclasses.replace(cold, spread_s=20.0)) == ["cold:0.5:4"]
    # One of them fast: no verdict; nor on two runs, nor when it is as busy as its peers.
    assert avoided(dataclasses.replace(cold, spread_s=20.0, fastest_s=0.12)) == []
    assert avoided(dataclasses.replace(cold, spread_s=20.0, samples=2)) == []
    assert avoided(dataclasses.replace(cold, spread_s=20.0, utilization=0.4)) == []
    # No runs in the window: the coordinator's estimate, resting on twenty results, still says slow.
    idle = ExecTime("idle", 0.0, 0, utilization=0.0, capacity=4, estimate_s=0.4, estimate_samples=20)
    assert avoided(idle) == ["idle:0.4:0"]
    assert avoided(dataclasses.replace(idle, estimate_samples=5)) == []
    assert avoided(dataclasses.replace(idle, estimate_s=0.15)) == []
    [f] = [slow_agent(s, "hybrid", cfg) for s in slowdowns("k", [*peers, idle], cfg) if s.avoided]
    assert f is not None and f.severity == Severity.INFO and "the balancer's estimate: 400 ms vs 100 ms" in f.summary
