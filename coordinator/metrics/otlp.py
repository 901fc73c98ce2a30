"""OTLP metrics push: the catalog as observable instruments of an
OpenTelemetry `MeterProvider`, exported periodically to a collector.

The SDK's `PeriodicExportingMetricReader` runs on its own thread: every
`OTEL_METRIC_EXPORT_INTERVAL` ms it calls the instruments' callbacks (which
read one shared snapshot, taken on the event loop) and hands the result to
the OTLP exporter. A slow or absent collector costs that thread retries and
a log line, never the event loop or the task path.

The SDK has no observable histogram, and recording each task into a
synchronous one would put its cost on the task path. So the phase latencies,
already counted in cumulative buckets, join each export as real OTLP
histograms (explicit bounds, cumulative temporality) through a thin exporter
wrapper. Everything honours the standard variables: OTEL_EXPORTER_OTLP_*
(endpoint, protocol, headers, timeout), OTEL_METRIC_EXPORT_INTERVAL and
_TIMEOUT, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from coordinator.metrics.catalog import CATALOG, HISTOGRAMS, MetricDef
from coordinator.metrics.latency import BOUNDS
from coordinator.metrics.snapshot import MeshSnapshot

log = logging.getLogger(__name__)

SCOPE = "swarmmesh.coordinator"
DEFAULT_SERVICE_NAME = "swarmmesh-coordinator"


def resource_from_env() -> Resource:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, with our service name
    when neither names one (an explicit setting always wins)."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _protocol(env: Mapping[str, str]) -> str:
    return (env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc").strip().lower()


def _exporter_from_env(env: Mapping[str, str], endpoint: str) -> MetricExporter:
    """The OTLP exporter the protocol variable asks for; `endpoint` (a base URL
    such as http://collector:4317) replaces OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT when set."""
    if _protocol(env).startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

        return HttpExporter(endpoint=endpoint.rstrip("/") + "/v1/metrics") if endpoint else HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

    return GrpcExporter(endpoint=endpoint) if endpoint else GrpcExporter()


class WithHistograms(MetricExporter):
    """Passes every export on to `inner`, with the phase histograms added."""

    def __init__(self, inner: MetricExporter, source: Callable[[], MeshSnapshot], resource: Resource,
                 start_ns: int) -> None:
        # The reader takes its temporality and aggregation preferences from
        # its exporter's attributes, so pass the inner exporter's on.
        super().__init__(preferred_temporality=getattr(inner, "_preferred_temporality", None),
                         preferred_aggregation=getattr(inner, "_preferred_aggregation", None))
        self.inner = inner
        self._source = source
        self._resource = resource
        self._start_ns = start_ns

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
               ) -> MetricExportResult:
        try:
            extra = histogram_metrics(self._source(), self._start_ns, time.time_ns())
        except Exception:  # the rest of the export is still worth sending
            log.warning("metrics: no latency histograms in this export", exc_info=True)
            extra = []
        if extra:
            metrics_data = _with_metrics(metrics_data, extra, self._resource)
        return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _with_metrics(data: MetricsData, extra: list[Metric], resource: Resource) -> MetricsData:
    """`data` with `extra` in our scope. Into the scope's own entry when there is
    one: the OTLP encoder keys scopes by name, so a second entry would replace it."""
    rms = list(data.resource_metrics)
    if not rms:
        return MetricsData([ResourceMetrics(resource, [ScopeMetrics(InstrumentationScope(SCOPE), extra, "")], "")])
    first = rms[0]
    scopes = list(first.scope_metrics)
    for i, sm in enumerate(scopes):
        if sm.scope.name == SCOPE:
            scopes[i] = ScopeMetrics(sm.scope, [*sm.metrics, *extra], sm.schema_url)
            break
    else:
        scopes.append(ScopeMetrics(InstrumentationScope(SCOPE), extra, ""))
    rms[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
    return MetricsData(rms)


def histogram_metrics(snap: MeshSnapshot, start_ns: int, now_ns: int) -> list[Metric]:
    out: list[Metric] = []
    for h in HISTOGRAMS:
        points = []
        for ph in snap.latency:
            if ph.phase != h.phase:
                continue
            per_bucket = [c - (ph.cumulative[i - 1] if i else 0) for i, c in enumerate(ph.cumulative)]
            points.append(HistogramDataPoint(
                attributes={"kind": ph.kind}, start_time_unix_nano=start_ns, time_unix_nano=now_ns,
                count=ph.count, sum=ph.sum_s, bucket_counts=per_bucket, explicit_bounds=list(BOUNDS),
                # Not tracked (it would cost the task path); OTLP leaves them optional.
                min=None, max=None,  # type: ignore[arg-type]
            ))
        if points:
            out.append(Metric(h.name, h.help, "s", HistogramData(points, AggregationTemporality.CUMULATIVE)))
    return out


def _callback(d: MetricDef, source: Callable[[], MeshSnapshot]
              ) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(zip(d.labels, labels, strict=True))) for labels, value in d.read(source())]

    return observe


class OtlpMetrics:
    """A private MeterProvider (never the global one) with the catalog's instruments."""

    def __init__(self, source: Callable[[], MeshSnapshot], endpoint: str = "",
                 exporter: MetricExporter | None = None) -> None:
        """exporter: replaces the OTLP exporter the environment asks for (tests)."""
        self._source = source
        self._env = os.environ
        self._endpoint = endpoint
        self._exporter = exporter
        self._provider: MeterProvider | None = None

    def start(self) -> None:
        resource = resource_from_env()
        inner = self._exporter or _exporter_from_env(self._env, self._endpoint)
        exporter = WithHistograms(inner, self._source, resource, time.time_ns())
        reader = PeriodicExportingMetricReader(exporter)
        # shutdown_on_exit=False: stop() shuts it down with a bound; an atexit
        # hook could hold a dying process for the export timeout.
        provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
        meter = provider.get_meter(SCOPE)
        for d in CATALOG:
            make = meter.create_observable_counter if d.type == "counter" else meter.create_observable_gauge
            make(d.name, callbacks=[_callback(d, self._source)], unit=d.unit, description=d.help)
        self._provider = provider
        log.info("metrics: pushing OTLP (%s) every %s ms", _protocol(self._env),
                 self._env.get("OTEL_METRIC_EXPORT_INTERVAL", "60000"))

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        return self._provider.force_flush(int(timeout_s * 1000)) if self._provider is not None else True

    def stop(self, timeout_s: float = 2.0) -> None:
        """One last export, then close. Blocking: call it off the event loop."""
        provider, self._provider = self._provider, None
        if provider is not None:
            provider.shutdown(timeout_millis=timeout_s * 1000)
