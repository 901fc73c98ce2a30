"""Metrics without sockets: phase histograms over a real MeshCore, the snapshot,
its Prometheus rendering and its OTLP rendering into an in-memory exporter."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    Histogram,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from coordinator import flags
from coordinator.core.mesh import MeshCore
from coordinator.core.model import (
    CacheStats,
    Heartbeat,
    Outcome,
    Registration,
    ResultIn,
    TaskSpec,
    TaskState,
)
from coordinator.metrics.latency import BOUNDS, OTHER, PhaseLatency
from coordinator.metrics.otlp import OtlpMetrics
from coordinator.metrics.prometheus import registry_for
from coordinator.metrics.service import otlp_wanted
from coordinator.metrics.snapshot import LoopSnapshots, MeshSnapshot, take_snapshot


def _mesh() -> tuple[MeshCore, PhaseLatency, int]:
    core = MeshCore()
    latency = PhaseLatency()
    core.add_listener(latency.on_change)
    agent, _ = core.register(Registration("a1", (), frozenset(), 4, "1", 4), 0.0)
    return core, latency, agent.session


def _run(core: MeshCore, session: int, kind: str, submit_at: float, assign_at: float, done_at: float,
         outcome: Outcome, state: TaskState = TaskState.SUCCEEDED) -> str:
    [s] = core.submit([TaskSpec(kind)], submit_at)
    assert core.dispatch(assign_at)
    core.frame("a1", session, done_at, [ResultIn(s.task_id, 1, state, outcome)], credits=1)
    return s.task_id


def _by(snap: MeshSnapshot) -> dict[tuple[str, str], Any]:
    return {(h.kind, h.phase): h for h in snap.latency}


def test_each_phase_lands_in_its_bucket_per_kind() -> None:
    core, latency, session = _mesh()
    _run(core, session, "ocr", 10.0, 10.002, 10.5, Outcome(duration_us=300_000))
    _run(core, session, "ocr", 20.0, 20.0, 20.02, Outcome(duration_us=10_000))
    _run(core, session, "embed", 30.0, 31.0, 31.001, Outcome(duration_us=50))
    h = _by(take_snapshot(core, latency))
    qw = h[("ocr", "queue_wait")]
    assert qw.count == 2 and qw.sum_s == pytest.approx(0.002)
    # 0.0 s waits go to the first bucket; 0.002 s to le=0.0025.
    assert qw.cumulative[0] == 1 and qw.cumulative[BOUNDS.index(0.0025)] == 2
    rt = h[("ocr", "round_trip")]
    assert rt.cumulative[BOUNDS.index(0.025)] == 1 and rt.cumulative[BOUNDS.index(0.5)] == 2
    assert h[("ocr", "handler")].sum_s == pytest.approx(0.31)
    assert h[("ocr", "submit_to_finish")].sum_s == pytest.approx(0.52)
    assert h[("embed", "queue_wait")].cumulative[BOUNDS.index(1.0)] == 1
    assert h[("embed", "handler")].cumulative[0] == 1
    assert all(x.cumulative[-1] == x.count for x in h.values())


def test_cache_hits_cut_off_runs_and_queued_cancels_skip_the_handler_phase() -> None:
    core, latency, session = _mesh()
    _run(core, session, "k", 0, 0, 0.01, Outcome(duration_us=999, cache_hit=True))
    _run(core, session, "k", 0, 0, 0.01, Outcome(error="late", error_type="deadline_exceeded", duration_us=5),
         TaskState.FAILED)
    _run(core, session, "k", 0, 0, 0.01, Outcome(error="boom", error_type="handler_error", duration_us=7),
         TaskState.FAILED)
    [s] = core.submit([TaskSpec("k")], 1.0)
    core.cancel([s.task_id], 3.0)  # never assigned: only its total time counts
    h = _by(take_snapshot(core, latency))
    assert h[("k", "round_trip")].count == 3
    assert h[("k", "handler")].count == 1 and h[("k", "handler")].sum_s == pytest.approx(7e-6)
    assert h[("k", "submit_to_finish")].count == 4


def test_kinds_beyond_the_cap_share_other() -> None:
    core, _, session = _mesh()
    latency = PhaseLatency(max_kinds=2)
    core.add_listener(latency.on_change)
    for kind in ("a", "b", "c", "d"):
        _run(core, session, kind, 0, 0, 0.001, Outcome(duration_us=1))
    totals = {h.kind: h.count for h in latency.snapshot() if h.phase == "submit_to_finish"}
    assert totals == {"a": 1, "b": 1, OTHER: 2}


def _busy_core() -> tuple[MeshCore, PhaseLatency]:
    core, latency, session = _mesh()
    core.register(Registration("a2", (), frozenset(), 2, "1", 0), 0.0)  # no credits: takes nothing
    _run(core, session, "ocr", 0, 0, 0.05, Outcome(duration_us=40_000))
    core.submit([TaskSpec("ocr"), TaskSpec("ocr"), TaskSpec("embed")], 1.0)
    core.dispatch(1.0)  # a1 has 3 credits left: all three go to it
    core.submit([TaskSpec("ocr")], 1.0)  # ... and this one waits
    core.frame("a1", session, 1.1, heartbeat=Heartbeat(memory_rss_bytes=123_456,
                                                       cache=CacheStats(hits=3, misses=1, bytes=2048, entries=2)))
    core.drain("a2")
    return core, latency


def test_snapshot_reads_queue_agents_counters_and_cache() -> None:
    core, latency = _busy_core()
    snap = take_snapshot(core, latency, now=2.0)
    assert snap.queue_depth == 1 and dict(snap.queued_by_kind) == {"ocr": 1}
    assert dict(snap.tasks_by_state) == {"pending": 1, "assigned": 3, "succeeded": 1, "failed": 0, "cancelled": 0,
                                       "dead_letter": 0}
    assert dict(snap.counters)["submitted"] == 5 and dict(snap.counters)["succeeded"] == 1
    assert dict(snap.agents_by_state) == {"ready": 1, "draining": 1}
    assert snap.capacity_slots == 6 and snap.in_flight == 3
    assert snap.cache_hit_ratio == pytest.approx(0.75)
    a1, a2 = snap.agents
    assert (a1.agent_id, a1.in_flight, a1.completed, a1.memory_rss_bytes, a1.cache.bytes) == ("a1", 3, 1, 123_456, 2048)
    assert a1.load == pytest.approx(0.75) and not a1.ejected
    assert a2.state == "draining"
    assert len(take_snapshot(core, latency, max_agents=1).agents) == 1


def _samples(text: str) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_prometheus_rendering_parses_back_with_the_values() -> None:
    core, latency = _busy_core()
    text = generate_latest(registry_for(lambda: take_snapshot(core, latency))).decode()
    fams = _samples(text)
    # The parser strips _total from counter family names.
    assert fams["swarmmesh_tasks_submitted"][0].value == 5
    assert fams["swarmmesh_tasks_succeeded"][0].value == 1
    assert fams["swarmmesh_queue_depth"][0].value == 1
    assert {s.labels["kind"]: s.value for s in fams["swarmmesh_queue_depth_by_kind"]} == {"ocr": 1}
    assert {s.labels["state"]: s.value for s in fams["swarmmesh_agents"]} == {"ready": 1, "draining": 1}
    assert {s.labels["agent_id"]: s.value for s in fams["swarmmesh_agent_in_flight"]} == {"a1": 3, "a2": 0}
    assert fams["swarmmesh_agent_cache_hits"][0].value == 3
    assert fams["swarmmesh_cache_hit_ratio"][0].value == pytest.approx(0.75)
    hist = {(s.name, s.labels.get("le")): s.value for s in fams["swarmmesh_task_round_trip_seconds"]
            if s.labels["kind"] == "ocr"}
    assert hist[("swarmmesh_task_round_trip_seconds_count", None)] == 1
    assert hist[("swarmmesh_task_round_trip_seconds_bucket", "0.025")] == 0
    assert hist[("swarmmesh_task_round_trip_seconds_bucket", "0.05")] == 1
    assert hist[("swarmmesh_task_round_trip_seconds_bucket", "+Inf")] == 1
    if sys.platform.startswith("linux"):  # the process collector reads /proc: elsewhere it reports nothing
        assert fams["process_cpu_seconds"][0].value > 0 and fams["process_resident_memory_bytes"][0].value > 0


class _Memory(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.exports: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
               ) -> MetricExportResult:
        self.exports.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _metrics(data: MetricsData) -> dict[str, Any]:
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_otlp_rendering_has_the_catalog_and_real_histograms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")  # tests/conftest.py turns the SDK off
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    core, latency = _busy_core()
    memory = _Memory()
    otlp = OtlpMetrics(lambda: take_snapshot(core, latency), exporter=memory)
    otlp.start()
    try:
        assert otlp.force_flush()
    finally:
        otlp.stop(timeout_s=2.0)
    got = _metrics(memory.exports[0])
    assert memory.exports[0].resource_metrics[0].resource.attributes["service.name"] == "swarmmesh-coordinator"
    [submitted] = got["swarmmesh_tasks_submitted"].data.data_points
    assert submitted.value == 5 and got["swarmmesh_tasks_submitted"].data.is_monotonic
    by_agent = {p.attributes["agent_id"]: p.value for p in got["swarmmesh_agent_in_flight"].data.data_points}
    assert by_agent == {"a1": 3, "a2": 0}
    hist = got["swarmmesh_task_round_trip_seconds"]
    assert isinstance(hist.data, Histogram) and hist.unit == "s"
    [point] = [p for p in hist.data.data_points if p.attributes == {"kind": "ocr"}]
    assert point.count == 1 and sum(point.bucket_counts) == 1 and list(point.explicit_bounds) == list(BOUNDS)
    # On the wire, histograms and instruments travel together (the encoder keys
    # scopes by name: a second entry for our scope would replace the first).
    wire = encode_metrics(memory.exports[0])
    names = {m.name for rm in wire.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"swarmmesh_tasks_submitted", "swarmmesh_task_round_trip_seconds"} <= names


@pytest.mark.parametrize(("mode", "env", "want"), [
    ("auto", {}, False),
    ("auto", {"OTEL_METRICS_EXPORTER": "none"}, False),
    ("auto", {"OTEL_METRICS_EXPORTER": "console,otlp"}, True),
    ("on", {}, True),
    ("off", {"OTEL_METRICS_EXPORTER": "otlp"}, False),
    ("on", {"OTEL_SDK_DISABLED": "true"}, False),
])
def test_otlp_push_is_off_unless_asked(mode: str, env: dict[str, str], want: bool) -> None:
    assert otlp_wanted(mode, env) is want


@pytest.mark.parametrize("argv", [
    ["--metrics-listen", "9464"], ["--metrics-listen", "host:port"], ["--otlp-metrics", "yes"],
])
def test_bad_metrics_settings_are_refused(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        flags.from_args(argv, {})
    assert "error:" in capsys.readouterr().err


def test_metrics_settings_from_env() -> None:
    cfg = flags.from_args([], {"SWARMMESH_METRICS_LISTEN": "[::1]:0", "SWARMMESH_OTLP_METRICS": "on"})
    assert (cfg.metrics.listen, cfg.metrics.otlp) == ("[::1]:0", "on")


async def test_snapshots_for_other_threads_are_taken_on_the_loop() -> None:
    core, latency = _busy_core()
    taken_on: list[threading.Thread] = []

    def take() -> MeshSnapshot:
        taken_on.append(threading.current_thread())
        return take_snapshot(core, latency)

    snaps = LoopSnapshots(asyncio.get_running_loop(), take, timeout=5.0)
    first = await asyncio.to_thread(snaps.get)
    again = await asyncio.to_thread(snaps.get)
    assert first is again and taken_on == [threading.current_thread()]  # shared while fresh


async def test_a_loop_that_does_not_answer_fails_the_read_fast() -> None:
    core, latency = _busy_core()
    timeout = 0.5
    snaps = LoopSnapshots(asyncio.get_running_loop(), lambda: take_snapshot(core, latency), timeout=timeout)
    blocked = threading.Event()
    # (exception type or None, seconds taken) per read; asserted here, as a failure
    # raised in the reading thread would not fail the test.
    reads: list[tuple[type[BaseException] | None, float]] = []

    def read_while_the_loop_is_blocked() -> None:
        blocked.wait()
        for _ in range(2):
            start = time.monotonic()
            try:
                snaps.get()
                reads.append((None, time.monotonic() - start))
            except BaseException as e:
                reads.append((type(e), time.monotonic() - start))

    t = threading.Thread(target=read_while_the_loop_is_blocked)
    t.start()
    blocked.set()
    t.join(5)  # blocks the loop on purpose
    assert not t.is_alive()
    (first, first_s), (again, again_s) = reads
    # Bounded by the reader's own timeout, far below the 5 s default and the join.
    assert first is TimeoutError and first_s < 2.5
    # At once, without waiting on the loop again (that would take another timeout).
    assert again is TimeoutError and again_s < timeout
