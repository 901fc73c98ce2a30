"""Busy time from the attempts themselves: bursts between samples, waits judged against their own time."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from coordinator.core.model import TaskSpec
from coordinator.profile.occupancy import HORIZON_S, MINUTE, Grid, Occupancy, add_running, fold_floor
from coordinator.profile.report import Severity
from tests.unit.profile_mesh import T0, Sim, by_category, figures


def brute(intervals: list[tuple[float, float]], t0: float, t1: float) -> float:
    return sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in intervals)


def test_occupancy_matches_the_intervals_second_by_second_and_minute_by_minute() -> None:
    rng = random.Random(5)
    now = T0 + 600.3
    occ = Occupancy(fold_floor(T0))
    intervals: list[tuple[float, float]] = []
    t = T0
    while t < now - 1:
        t += rng.expovariate(3.0)
        # Mostly short attempts, some running for minutes (long ones finish late, after folds).
        length = rng.expovariate(10.0) if rng.random() < 0.9 else rng.uniform(1, 240)
        intervals.append((t, min(t + length, now)))
    intervals.sort(key=lambda iv: iv[1])
    done = 0
    for step in range(int(T0) + 10, int(now) + 1, 10):
        while done < len(intervals) and intervals[done][1] <= step:
            occ.add(*intervals[done])
            done += 1
        occ.fold(fold_floor(step))
    while done < len(intervals):
        occ.add(*intervals[done])
        done += 1
    grid = Grid.over(T0 + 30.5, now, fold_floor(now))
    starts = grid.starts()
    values = occ.values(grid)
    assert len(values) == len(starts) - 1 and starts[0] == math.ceil((T0 + 30.5) / MINUTE) * MINUTE
    assert starts[-1] == now
    assert {round(b - a, 6) for a, b in itertools.pairwise(starts)} <= {MINUTE, 1.0, 0.3}
    for i, v in enumerate(values):
        assert v == pytest.approx(brute(intervals, starts[i], starts[i + 1]), abs=1e-6)
    # Attempts still running add up to the end of the grid.
    running = [now - 0.25, now - 3.5, starts[0] - 100]
    add_running(values, starts, running)
    expected = [brute(intervals + [(a, now) for a in running], starts[i], starts[i + 1])
                for i in range(len(values))]
    assert values == pytest.approx(expected, abs=1e-6)
    # Minutes beyond the horizon go.
    later = now + HORIZON_S + 600
    occ.fold(fold_floor(later))
    assert not any(occ.values(Grid.over(0, later, fold_floor(later))))


def test_a_burst_between_two_samples_is_saturation_not_a_stall() -> None:
    # Two agents of one slot each run 140 tasks of 6 ms in their first 0.85 s: no 1 Hz
    # sample ever sees them busy, yet every task waited for a slot.
    sim = Sim()
    for name in ("v1", "v2"):
        sim.add_agent(name, capacity=1, kinds=("vision",), service=0.004)
    sim.submit("vision", 280)
    sim.run(1.0, step=0.001)
    sim.run(3.0)
    report = sim.report()
    assert not by_category(report, "queue_stall"), [f.summary for f in report.findings]
    [f] = by_category(report, "saturated_kind")
    assert f.subject == "vision" and "busy while they waited" in f.summary
    # Idle only between a result and the next assignment (a step of the simulated clock).
    assert figures(f)["utilization"] > 0.85
    busy = {a.agent_id: a.utilization for a in report.agents}
    # 140 x 6 ms of each agent's 4 s.
    assert busy["v1"] == pytest.approx(0.21, abs=0.03) and busy["v2"] == pytest.approx(0.21, abs=0.03)


def test_a_burst_is_still_saturation_after_it_ended_within_the_window() -> None:
    # One slot, 120 tasks of 50 ms at once: 6 s of work, then 20 s of quiet.
    sim = Sim()
    sim.add_agent("vis", capacity=1, kinds=("vision",), service=0.048)
    sim.submit("vision", 120)
    sim.run(26)
    report = sim.report()
    [f] = by_category(report, "saturated_kind")
    fig = figures(f)
    # About 7 s of work in 26 s (the simulated clock moves in 10 ms steps).
    assert fig["utilization"] > 0.95 and 0.2 < fig["window_utilization"] < 0.3
    assert not by_category(report, "queue_stall")
    [agent] = report.agents
    assert agent.utilization == pytest.approx(fig["window_utilization"])


def test_tasks_queued_before_any_agent_was_there_are_a_stall() -> None:
    sim = Sim()
    sim.submit("job", 40)
    sim.run(5)
    sim.add_agent("late", capacity=8, kinds=("job",), service=0.05)
    sim.run(5)
    [f] = by_category(sim.report(), "queue_stall")
    assert f.severity == Severity.INFO and "queued before agents became ready" in f.summary
    assert figures(f)["utilization"] < 0.1


def test_attempts_still_running_count_as_busy() -> None:
    sim = Sim()
    sim.add_agent("slow", capacity=2, service=30.0)
    sim.core.submit([TaskSpec(kind="long") for _ in range(2)], sim.now)
    sim.run(10)
    [agent] = sim.report().agents
    assert agent.succeeded == 0 and agent.utilization > 0.95


def test_agents_that_joined_since_the_last_sample_offer_their_slots_to_a_report() -> None:
    from coordinator.core.mesh import CoreConfig, MeshCore
    from coordinator.core.model import Outcome, Registration, ResultIn, TaskState
    from coordinator.profile.config import ProfilerConfig
    from coordinator.profile.profiler import Profiler

    core = MeshCore(CoreConfig())
    profiler = Profiler(core, ProfilerConfig())
    core.add_listener(profiler.on_change)
    profiler.tick(T0)  # sampled before any agent exists
    agent, _ = core.register(Registration("a", (), frozenset(), 2, "1", 2), T0 + 0.1)
    # A short burst that keeps both slots busy, all before the next once-a-second sample.
    core.submit([TaskSpec("k") for _ in range(40)], T0 + 0.1)
    t = T0 + 0.1
    while core.queue_depth or agent.in_flight:
        for rec in core.dispatch(t).get("a", []):
            core.frame("a", agent.session, t + 0.01, [ResultIn(rec.task_id, 1, TaskState.SUCCEEDED,
                                                                Outcome(duration_us=9_000))], credits=1)
        t += 0.01
    report = profiler.report(t)
    [a] = report.agents
    assert a.utilization > 0.5, a  # not "0% busy": its slots count from its connection
    assert not any(f.category == "queue_stall" for f in report.findings)
