"""A real OTLP/gRPC trace receiver for tests, built from opentelemetry-proto's service definitions."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # hex
    span_id: str
    parent_id: str  # "" for a root
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: str | None  # status message when the status is ERROR

    @classmethod
    def of(cls, service: str, sp: trace_pb2.Span) -> ReceivedSpan:
        attrs: dict[str, Any] = {}
        for kv in sp.attributes:
            which = kv.value.WhichOneof("value")
            attrs[kv.key] = getattr(kv.value, which) if which else None
        error = sp.status.message if sp.status.code == trace_pb2.Status.STATUS_CODE_ERROR else None
        return cls(service, sp.name, sp.trace_id.hex(), sp.span_id.hex(), sp.parent_span_id.hex(), sp.kind,
                   sp.start_time_unix_nano, sp.end_time_unix_nano, attrs, error)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OtlpReceiver) -> None:
        self._sink = sink

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
               ) -> trace_service_pb2.ExportTraceServiceResponse:
        services = [next((kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"), "")
                    for rs in request.resource_spans]
        # Counted before the delay: a slow collector's exports may never finish within a test.
        self._sink.begin(services)
        if self._sink.delay_s:
            self._sink.wait_delay()  # a collector that is slow to answer
        got: list[ReceivedSpan] = []
        for service, rs in zip(services, request.resource_spans, strict=True):
            for ss in rs.scope_spans:
                got.extend(ReceivedSpan.of(service, sp) for sp in ss.spans)
        self._sink.add(got)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Collects every span exported to it; start() binds 127.0.0.1 on an ephemeral port."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.exports = 0
        self._started: Counter[str] = Counter()
        self._stopping = threading.Event()
        self.port = 0
        self._server: grpc.Server | None = None

    def start(self, port: int = 0) -> OtlpReceiver:
        self._stopping.clear()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        # Delayed exports end now rather than keep their threads (and the test process) alive.
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, service: str = "") -> dict[str, str]:
        """Environment that points a swarmmesh process's tracing here, exporting promptly."""
        env = tracing_env(self.endpoint)
        if service:
            env["OTEL_SERVICE_NAME"] = service
        return env

    def begin(self, services: list[str]) -> None:
        with self._lock:
            self._started.update(set(services))

    def wait_delay(self) -> None:
        self._stopping.wait(self.delay_s)

    @property
    def started(self) -> Counter[str]:
        """Export calls begun, per service name: counted on arrival, whether or not they have finished."""
        with self._lock:
            return Counter(self._started)

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)
            self.exports += 1

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        out: dict[str, list[ReceivedSpan]] = {}
        for s in self.spans:
            out.setdefault(s.trace_id, []).append(s)
        return out


def tracing_env(endpoint: str) -> dict[str, str]:
    """Environment that turns a swarmmesh process's tracing on towards `endpoint`, exporting promptly."""
    return {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def receiver() -> Iterator[OtlpReceiver]:
    """Body of a pytest fixture: a started receiver, stopped afterwards."""
    r = OtlpReceiver().start()
    try:
        yield r
    finally:
        r.stop()
