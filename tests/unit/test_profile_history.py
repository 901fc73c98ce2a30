"""History across restarts, its downsampling, a file that fails, and the forecasts drawn from it."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskSpec, TaskState
from coordinator.profile import forecast
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.history import HistoryStore
from coordinator.profile.profiler import Profiler
from coordinator.profile.report import HistoryPoint, Severity
from tests.unit.profile_mesh import Sim, by_category

T = 1_700_000_000.0


def point(at: float, queue: float = 0.0, span: float = 10.0, p99: float = 5.0, hit: float = 0.5,
          in_flight: float = 4.0, capacity: float = 8.0) -> HistoryPoint:
    return HistoryPoint(at=at, span_s=span, queue_depth=queue, in_flight=in_flight, capacity=capacity,
                        agents_ready=2, throughput_per_s=100, failures_per_s=1, p99_total_ms=p99, cache_hit_rate=hit)


def run_mesh(prof: Profiler, core: MeshCore, start: float, seconds: int, queued: int) -> float:
    """One agent finishing 5 tasks a second, with `queued` tasks that nobody can run waiting."""
    if queued:
        core.submit([TaskSpec(kind="stuck", required_labels=(("gpu", 1),)) for _ in range(queued)], start)
    now = start
    agent = core.registry.get("a")
    assert agent is not None
    for _ in range(seconds * 5):
        now += 0.2
        # Whatever ran since the last step finishes now (a 200 ms round trip).
        results = [ResultIn(t, a, TaskState.SUCCEEDED, Outcome(duration_us=150_000, agent_us=190_000))
                   for t, a in agent.in_flight.items()]
        core.frame("a", agent.session, now, results, credits=len(results))
        core.submit([TaskSpec(kind="k")], now)
        core.dispatch(now)
        core.tick(now)
        prof.tick(now)
    return now


def new_profiler(path: Path) -> tuple[MeshCore, Profiler]:
    core = MeshCore(CoreConfig(lease_timeout_s=60))
    prof = Profiler(core, ProfilerConfig(history_path=str(path), history_interval_s=10))
    core.add_listener(prof.on_change)
    core.register(Registration("a", (), frozenset(), 4, "1", 4), T)
    return core, prof


def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    core, prof = new_profiler(path)
    now = run_mesh(prof, core, T, 60, queued=7)
    first = prof.report(now, history_points=100).history
    assert len(first) == 5  # 60 s in 10 s rows, the sixth still being built
    assert [round(p.at - T) for p in first] == [0, 10, 20, 30, 40]
    for p in first[1:]:
        assert p.span_s == pytest.approx(10, abs=0.25)
        assert p.queue_depth == pytest.approx(7) and p.capacity == pytest.approx(4)
        assert p.agents_ready == pytest.approx(1) and p.throughput_per_s == pytest.approx(5, abs=0.3)
        assert p.failures_per_s == 0 and p.p99_total_ms == pytest.approx(200, abs=1)
        assert p.in_flight == pytest.approx(1)
    prof.close()
    prof.close()  # idempotent
    assert prof.report(now, history_points=10).history == ()
    # A new coordinator on the same file sees the old points (and the row close() flushed).
    core2, prof2 = new_profiler(path)
    assert prof2.history.persistent
    later = run_mesh(prof2, core2, now + 300, 30, queued=0)
    history = prof2.report(later, history_points=1000).history
    assert len(history) == 6 + 2
    assert history[:5] == first
    assert history[-1].queue_depth == 0 and history[0].queue_depth == pytest.approx(7)
    assert [p.at for p in history] == sorted(p.at for p in history)
    assert [p.at for p in prof2.report(later, history_points=3).history] == [p.at for p in history[-3:]]
    prof2.close()


def test_downsampling_and_retention(tmp_path: Path) -> None:
    store = HistoryStore(str(tmp_path / "h.sqlite"), retention_s=3 * 86400)
    now = 1_699_999_800.0  # on a 10-minute boundary, so merged rows line up with the test's hours
    # Two hours of 10 s rows, the older hour with queue 100 and p99 rising.
    for i in range(720):
        at = now - 7200 + i * 10
        store.add(point(at, queue=100 if at < now - 3600 else 5, p99=float(i), hit=1.0 if i % 2 else 0.0),
                  10, lookups=10 if i % 2 else 30)
    # A row four days old: past retention.
    store.add(point(now - 4 * 86400), 10, 1)
    # Two days old rows: 10-minute tier.
    for i in range(120):
        store.add(point(now - 2 * 86400 + i * 10, queue=1), 10, 1)
    store.compact(now)
    old = store.since(0)
    assert min(p.at for p in old) >= now - 3 * 86400
    two_days = [p for p in old if p.at < now - 86400]
    assert len(two_days) == 2 and all(p.span_s == 600 and p.queue_depth == 1 for p in two_days)
    hour = [p for p in old if now - 7200 <= p.at < now - 3600]
    assert len(hour) == 60 and all(p.span_s == pytest.approx(60) for p in hour)
    assert all(p.queue_depth == pytest.approx(100) for p in hour)
    # p99 keeps the worst of the six merged rows; the hit rate is weighed by lookups.
    assert hour[0].p99_total_ms == 5 and hour[-1].p99_total_ms == 359
    assert hour[0].cache_hit_rate == pytest.approx(30 / 120)
    recent = [p for p in old if p.at >= now - 3600]
    assert len(recent) == 360 and all(p.span_s == 10 for p in recent)
    store.compact(now)  # nothing more to merge
    assert len(store.since(0)) == len(old)
    store.close()


def test_a_corrupt_history_file_warns_once_and_keeps_history_in_memory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        store = HistoryStore(str(path))
        store.add(point(T), 10, 0)
        store.add(point(T + 10), 10, 0)
        store.compact(T + 20)
    assert not store.persistent
    assert [p.at for p in store.recent(10)] == [T, T + 10]
    assert len([r for r in caplog.records if "history" in r.getMessage()]) == 1
    store.close()


def test_a_file_that_fails_later_falls_back_to_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = HistoryStore(str(tmp_path / "h.sqlite"))
    store.add(point(T), 10, 0)
    store._db.execute("DROP TABLE points")  # what a disk error mid-run looks like to us: every statement fails
    with caplog.at_level(logging.WARNING):
        store.add(point(T + 10), 10, 0)
        store.add(point(T + 20), 10, 0)
    assert not store.persistent and [p.at for p in store.recent(5)] == [T + 20]
    assert len(caplog.records) == 1
    store.close()


def test_in_memory_history_by_default() -> None:
    store = HistoryStore("")
    store.add(point(T), 10, 0)
    assert not store.persistent and store.count() == 1
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store._db.execute("SELECT 1")


def test_queue_forecast_extrapolates_a_growing_queue() -> None:
    # 1,200 tasks/h: 20 a minute, for 30 minutes of one-minute points.
    history = [point(T + 60 * i, queue=100 + 20 * i, span=60) for i in range(30)]
    now = T + 1800
    f = forecast.queue_depth(history, now, 690.0, 10_000.0)  # on the line
    assert f.slope_per_hour == pytest.approx(1200)
    assert f.seconds_to_threshold == pytest.approx((10_000 - 690) / (1200 / 3600))
    assert f.summary == "queue grows 1,200 tasks/h: at this trend it exceeds 10,000 in 7.8 h; add capacity"
    shrinking = forecast.queue_depth([point(T + 60 * i, queue=1000 - 10 * i, span=60) for i in range(30)],
                                     now, 700.0, 10_000.0)
    assert shrinking.seconds_to_threshold == -1 and shrinking.slope_per_hour < 0
    assert "shrinking" in shrinking.summary
    over = forecast.queue_depth(history, now, 20_000.0, 10_000.0)
    assert over.seconds_to_threshold == 0 and "above 10,000" in over.summary
    young = forecast.queue_depth(history[-2:], now, 700.0, 10_000.0)
    assert young.seconds_to_threshold == -1 and "not enough history" in young.summary
    assert forecast.queue_threshold(0, 16) == 160 and forecast.queue_threshold(0, 2) == 100
    assert forecast.queue_threshold(5000, 16) == 5000


def test_utilization_forecast() -> None:
    rising = [point(T + 60 * i, in_flight=2 + 0.1 * i, capacity=10, span=60) for i in range(30)]
    f = forecast.utilization(rising, T + 1800, 0.5)
    assert f.threshold == 1.0 and f.slope_per_hour == pytest.approx(0.6, rel=0.05)
    assert f.seconds_to_threshold == pytest.approx(0.5 / 0.6 * 3600, rel=0.05)
    assert "fully busy in" in f.summary
    flat = forecast.utilization([point(T + 60 * i, in_flight=5, capacity=10, span=60) for i in range(30)],
                                T + 1800, 0.5)
    assert flat.seconds_to_threshold == -1
    assert forecast.utilization([], T, 1.0).seconds_to_threshold == 0


def test_a_steadily_growing_queue_becomes_a_finding() -> None:
    sim = Sim(ProfilerConfig(forecast_queue_depth=2000))
    sim.add_agent("a", capacity=2, service=0.1)
    # Capacity 20/s, demand 21/s: the queue grows ~1 a second, 3,600 an hour.
    sim.run(600, rates={"k": 21})
    report = sim.report()
    queue = next(f for f in report.forecasts if f.metric == "queue_depth")
    served = report.kinds[0].throughput_per_s
    assert 15 < served < 20
    assert queue.slope_per_hour == pytest.approx((21 - served) * 3600, rel=0.15)
    [f] = by_category(report, "queue_growth")
    assert f.severity == Severity.CRITICAL and "exceeds 2,000 in" in f.summary
    assert dict(f.figures)["seconds_to_threshold"] == pytest.approx(queue.seconds_to_threshold)
