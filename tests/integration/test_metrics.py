"""The coordinator's metrics from outside: a Prometheus scrape over loopback
HTTP, and an OTLP push received by an in-test collector."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from swarmmesh.v1 import types_pb2
from tests.integration.conftest import Mesh
from tests.support import assert_eventually, free_port

pytestmark = pytest.mark.integration


# An http_proxy in the environment must not capture the loopback scrape.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape(address: str) -> dict[str, list[Any]]:
    with _DIRECT.open(f"http://{address}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    # The parser names counter families without their _total suffix.
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(fams: dict[str, list[Any]], name: str, suffix: str = "", **labels: str) -> float:
    """The one sample of family `name` (its `name + suffix` series) with these labels."""
    wanted = (name + suffix,) if suffix else (name, name + "_total")
    [s] = [s for s in fams[name] if s.name in wanted and all(s.labels.get(k) == v for k, v in labels.items())]
    return float(s.value)


def test_scrape_shows_tasks_agents_queue_and_latency(mesh: Mesh) -> None:
    mesh.start_coordinator("--metrics-listen", "127.0.0.1:0")
    metrics = str(mesh.coordinator.ready()["metrics_address"]) if mesh.coordinator else ""
    assert metrics.startswith("127.0.0.1:")
    mesh.start_sidecar("m1", "--capacity", "4")
    mesh.start_sidecar("m2", "--capacity", "4")

    tasks, _ = mesh.wait_all(mesh.submit_json("metrics.echo", [{"i": i} for i in range(40)]))
    assert all(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in tasks.values())
    # Work no agent can take stays queued, and shows as such.
    mesh.submit([types_pb2.TaskSpec(kind="metrics.stuck", required_labels={"gpu": 1}) for _ in range(5)])

    fams = scrape(metrics)
    assert value(fams, "swarmmesh_tasks_submitted") == 45
    assert value(fams, "swarmmesh_tasks_succeeded") == 40
    assert value(fams, "swarmmesh_tasks_failed") == 0
    assert value(fams, "swarmmesh_queue_depth") == 5
    assert value(fams, "swarmmesh_queue_depth_by_kind", kind="metrics.stuck") == 5
    assert value(fams, "swarmmesh_tasks", state="pending") == 5
    assert value(fams, "swarmmesh_agents", state="ready") == 2
    assert value(fams, "swarmmesh_capacity_slots") == 8
    per_agent = {s.labels["agent_id"]: s.value for s in fams["swarmmesh_agent_tasks_completed"]}
    assert set(per_agent) == {"m1", "m2"} and sum(per_agent.values()) == 40
    assert value(fams, "swarmmesh_agent_capacity_slots", agent_id="m1") == 4
    for phase in ("queue_wait", "round_trip", "handler", "submit_to_finish"):
        name = f"swarmmesh_task_{phase}_seconds"
        assert value(fams, name, "_count", kind="metrics.echo") == 40, name
        assert value(fams, name, "_bucket", kind="metrics.echo", le="+Inf") == 40, name
    # Heartbeats bring each sidecar's memory within a second or so.
    assert_eventually(lambda: value(scrape(metrics), "swarmmesh_agent_memory_rss_bytes", agent_id="m2") > 0,
                      what="memory from heartbeats")


class _Collector(metrics_service_pb2_grpc.MetricsServiceServicer):
    """An OTLP metrics receiver that keeps every request."""

    def __init__(self) -> None:
        self.requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()

    def Export(self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: grpc.ServicerContext
               ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        with self._lock:
            self.requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def latest(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The metrics (by name) and resource attributes of the newest request."""
        with self._lock:
            if not self.requests:
                return {}, {}
            req = self.requests[-1]
        metrics = {m.name: m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        resource = {a.key: a.value.string_value for a in req.resource_metrics[0].resource.attributes}
        return metrics, resource


@pytest.fixture
def collector() -> Iterator[tuple[_Collector, int]]:
    servicer = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(None).wait(5)


def _push_env(port: int) -> dict[str, str]:
    return {"OTEL_SDK_DISABLED": "false", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_METRIC_EXPORT_INTERVAL": "500",
            "OTEL_SERVICE_NAME": "coordinator-under-test"}


def test_otlp_push_reaches_a_collector(mesh: Mesh, collector: tuple[_Collector, int]) -> None:
    receiver, port = collector
    mesh.start_coordinator(env=_push_env(port))
    mesh.start_sidecar("p1")
    tasks, _ = mesh.wait_all(mesh.submit_json("metrics.pushed", [{"i": i} for i in range(12)]))
    assert len(tasks) == 12

    def pushed() -> tuple[dict[str, Any], dict[str, str]] | None:
        metrics, resource = receiver.latest()
        done = metrics.get("swarmmesh_tasks_succeeded")
        return (metrics, resource) if done is not None and done.sum.data_points[0].as_int == 12 else None

    metrics, resource = assert_eventually(pushed, what="an export that counts the 12 tasks")
    assert resource["service.name"] == "coordinator-under-test"
    assert metrics["swarmmesh_tasks_succeeded"].sum.is_monotonic
    agents = {p.attributes[0].value.string_value: p.as_int
              for p in metrics["swarmmesh_agent_tasks_completed"].sum.data_points}
    assert agents == {"p1": 12}
    [point] = metrics["swarmmesh_task_round_trip_seconds"].histogram.data_points
    assert point.attributes[0].value.string_value == "metrics.pushed" and point.count == 12
    assert sum(point.bucket_counts) == 12 and len(point.bucket_counts) == len(point.explicit_bounds) + 1


def test_a_collector_that_is_down_costs_nothing_visible(mesh: Mesh) -> None:
    mesh.start_coordinator(env=_push_env(free_port()))  # nobody listens there
    mesh.start_sidecar("d1")
    started = time.monotonic()
    tasks, _ = mesh.wait_all(mesh.submit_json("metrics.unheard", [{"i": i} for i in range(50)]))
    assert len(tasks) == 50 and all(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in tasks.values())
    assert time.monotonic() - started < 20
    assert mesh.coordinator is not None
    stopping = time.monotonic()
    assert mesh.coordinator.stop() == 0
    # The last export to nowhere is abandoned after the short shutdown bound.
    assert time.monotonic() - stopping < 10, mesh.coordinator.output()
