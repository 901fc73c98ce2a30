"""Tracing for every swarmmesh process: W3C context, sampling and OTLP export.

One trace per task crosses the client, the coordinator and the sidecar. The
OpenTelemetry SDK's span objects cost about 24 µs to create and 33 µs to
encode each; a task has six or so spans and the whole mesh spends under
100 µs per task, so spans here are plain tuples recorded on the hot path and
encoded straight into OTLP protobuf on an exporter thread. Configuration
follows the standard OTEL_* environment variables.

Modules:

config: `TracingConfig`, from the standard OTEL_* environment variables
context: W3C trace context: parse, format, new ids
tracer: `Tracer`, the one a process holds: root sampling, span recording, exporter lifecycle
exporter: ships recorded spans to an OTLP/gRPC collector from a background thread
wire: OTLP trace export requests, encoded straight to protobuf wire bytes
"""

from swarmmesh.telemetry.config import TracingConfig
from swarmmesh.telemetry.context import TraceParent, format_traceparent, parse_traceparent
from swarmmesh.telemetry.tracer import SpanKind, Tracer

__all__ = ["SpanKind", "TraceParent", "Tracer", "TracingConfig", "format_traceparent", "parse_traceparent"]
