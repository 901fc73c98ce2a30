"""swarmmesh.telemetry: W3C context, OTEL_* configuration, sampling, OTLP encoding, the exporter's bounds."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from swarmmesh.telemetry import SpanKind, Tracer, TracingConfig, format_traceparent, parse_traceparent
from swarmmesh.telemetry.context import child_context, parent_from_pairs, unsampled
from swarmmesh.telemetry.exporter import SpanExporter
from swarmmesh.telemetry.wire import SpanEncoder

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_round_trip() -> None:
    p = parse_traceparent(TP, "vendor=x")
    assert p is not None
    assert p.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736 and p.span_id == 0x00F067AA0BA902B7
    assert p.sampled and p.tracestate == "vendor=x"
    assert format_traceparent(p.trace_id, p.span_id, True) == TP
    assert child_context(p.trace_id, 7, False, "a=b") == {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000007-00", "tracestate": "a=b"}


@pytest.mark.parametrize("bad", [
    "", "garbage", TP.upper(), TP[:-1], TP + "-extra",  # version 00 is exactly 55 chars
    "ff" + TP[2:],  # version ff is invalid
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
])
def test_malformed_traceparent_is_ignored(bad: str) -> None:
    assert parse_traceparent(bad) is None


def test_future_versions_may_append_fields() -> None:
    p = parse_traceparent("01" + TP[2:] + "-what-ever")
    assert p is not None and p.sampled


def test_unsampled_parent_is_recognised_without_parsing() -> None:
    off = TP[:-2] + "00"
    assert unsampled(off) and not unsampled(TP)
    parent = parent_from_pairs((("traceparent", off),))
    assert parent is not None and not parent.sampled
    parent = parent_from_pairs({"traceparent": TP, "tracestate": "k=v"})
    assert parent is not None and parent.sampled and parent.tracestate == "k=v"
    assert parent_from_pairs({}) is None


def test_config_reads_the_standard_variables() -> None:
    cfg = TracingConfig.from_env("svc", env={
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector:4317",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:1",
        "OTEL_EXPORTER_OTLP_HEADERS": "Api-Key=s%20ecret,x=1",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_SERVICE_NAME": "mine",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
    })
    assert cfg.enabled and cfg.endpoint_set
    assert (cfg.target, cfg.secure) == ("collector:4317", True)
    assert cfg.headers == (("api-key", "s ecret"), ("x", "1"))
    assert cfg.timeout_s == 2.5 and cfg.gzip
    assert cfg.sample_ratio == 0.25 and cfg.max_queue == 100
    assert cfg.service_name == "mine" and ("service.name", "mine") in cfg.resource


@pytest.mark.parametrize(("env", "enabled"), [
    ({}, True),
    ({"OTEL_SDK_DISABLED": "true"}, False),
    ({"OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_TRACES_EXPORTER": "console"}, False),
])
def test_config_on_and_off(env: dict[str, str], enabled: bool) -> None:
    cfg = TracingConfig.from_env("svc", env=env)
    assert cfg.enabled is enabled
    assert cfg.service_name == "svc" and not cfg.endpoint_set and cfg.target == "localhost:4317"


def test_flags_win_over_the_environment() -> None:
    cfg = TracingConfig.from_env("svc", endpoint="127.0.0.1:9", sample_ratio=0.0,
                                 env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1", "OTEL_TRACES_SAMPLER": "always_on"})
    # Without a scheme, TLS unless OTEL_EXPORTER_OTLP_INSECURE=true (as OpenTelemetry's exporter reads it).
    assert (cfg.target, cfg.secure) == ("127.0.0.1:9", True)
    assert cfg.sample_ratio == 0.0
    assert not TracingConfig.from_env("svc", enabled=False, env={}).enabled


def test_root_sampling_is_a_ratio_of_trace_ids_and_agrees_across_tracers() -> None:
    a = Tracer(TracingConfig(enabled=False, sample_ratio=0.1))
    b = Tracer(TracingConfig(enabled=False, sample_ratio=0.1))
    decisions = [a.new_root() for _ in range(20_000)]
    share = sum(s for _, s in decisions) / len(decisions)
    assert 0.08 < share < 0.12
    assert all(b.sampled(tid) == s for tid, s in decisions)
    assert not Tracer(TracingConfig(enabled=False, sample_ratio=0.0)).new_root()[1]
    assert Tracer(TracingConfig(enabled=False, sample_ratio=1.0)).new_root()[1]


def _set(kv: Any, v: Any) -> None:
    if isinstance(v, str):
        kv.value.string_value = v
    elif isinstance(v, bool):
        kv.value.bool_value = v
    elif isinstance(v, int):
        kv.value.int_value = v
    else:
        kv.value.double_value = v


def _reference(spans: list[Any], cfg: TracingConfig, version: str) -> trace_service_pb2.ExportTraceServiceRequest:
    """The request built with the protobuf API: what the wire encoder must produce."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for key, v in cfg.resource:
        _set(rs.resource.attributes.add(key=key), v)
    ss = rs.scope_spans.add()
    ss.scope.name = "swarmmesh"
    ss.scope.version = version
    for name, tid, sid, pid, kind, start, end, attrs, error in spans:
        sp = ss.spans.add(trace_id=tid.to_bytes(16, "big"), span_id=sid.to_bytes(8, "big"), name=name, kind=kind,
                          start_time_unix_nano=int(start * 1e9),
                          end_time_unix_nano=max(int(end * 1e9), int(start * 1e9)))
        if pid:
            sp.parent_span_id = pid.to_bytes(8, "big")
        for key, v in attrs:
            _set(sp.attributes.add(key=key), v)
        if error:
            sp.status.code = sp.status.STATUS_CODE_ERROR
            sp.status.message = error
    return req


SPANS = [
    ("swarmmesh.task noop", (1 << 127) + 5, 6, 0, int(SpanKind.CONSUMER), 1.5, 2.0,
     (("s", "v"), ("b", True), ("no", False), ("i", 4), ("neg", -3), ("big", 2**40), ("f", 0.5), ("u", "ünï")), ""),
    ("child", 5, (1 << 64) - 1, 6, int(SpanKind.INTERNAL), 1.6, 1.55, (), "it broke: " + "x" * 300),
    ("n" * 200, 7, 8, 9, int(SpanKind.PRODUCER), 1e9, 1e9 + 1, (("swarmmesh.task.id", "t-1"),), ""),
]


def test_wire_encoder_matches_the_official_messages() -> None:
    cfg = TracingConfig(resource=(("service.name", "svc"), ("n", 3)))
    encoder = SpanEncoder(cfg.resource, "swarmmesh", "1.2")
    for _ in range(2):  # the second time from the attribute cache
        got = trace_service_pb2.ExportTraceServiceRequest.FromString(encoder.encode(SPANS))
        assert got == _reference(SPANS, cfg, "1.2")
    (rs,) = got.resource_spans
    root = rs.scope_spans[0].spans[0]
    values = {kv.key: kv.value for kv in root.attributes}
    assert values["neg"].int_value == -3 and values["u"].string_value == "ünï"
    child = rs.scope_spans[0].spans[1]
    assert child.end_time_unix_nano == child.start_time_unix_nano  # an end before the start is clamped
    assert child.status.code == child.status.STATUS_CODE_ERROR


class _Export:
    """Stands in for the channel's Export call (it receives encoded bytes)."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.calls: list[int] = []

    def __call__(self, request: bytes, timeout: float, metadata: Any) -> None:
        msg = trace_service_pb2.ExportTraceServiceRequest.FromString(request)
        self.calls.append(len(msg.resource_spans[0].scope_spans[0].spans) if msg.resource_spans else 0)
        if self.fail:
            raise _Unavailable()


class _Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


def _span(i: int) -> Any:
    return ("s", 1, i + 1, 0, 1, 0.0, 1.0, (), "")


def test_exporter_queue_is_bounded_and_counts_drops() -> None:
    e = SpanExporter(TracingConfig(max_queue=10, max_batch=4))
    for i in range(15):
        e.add(_span(i))
    assert e.queued == 10 and e.dropped == 5


def test_a_failing_collector_is_backed_off_without_encoding() -> None:
    e = SpanExporter(TracingConfig(max_queue=100, max_batch=4))
    stub = _Export(fail=True)
    for i in range(12):
        e.add(_span(i))
    e._export_one(stub, stopping=False)  # type: ignore[arg-type]
    assert stub.calls == [4] and e.dropped == 4 and e.failed_exports == 1
    assert not e.healthy  # recorders (Tracer.live) now skip building spans
    # While backing off, batches are dropped before any encoding or call.
    e._export_one(stub, stopping=False)  # type: ignore[arg-type]
    assert stub.calls == [4] and e.dropped == 8
    # The back-off ended: an empty export probes the collector; still down, the back-off doubles.
    e._probe(stub)
    assert stub.calls == [4, 0] and not e.healthy and e.failed_exports == 2
    stub.fail = False
    e._probe(stub)
    assert stub.calls == [4, 0, 0] and e.healthy
    e._export_one(stub, stopping=False)  # type: ignore[arg-type]
    assert stub.calls == [4, 0, 0, 4] and e.exported == 4 and e.queued == 0


def test_a_disabled_tracer_records_nothing_and_starts_no_thread() -> None:
    t = Tracer.disabled()
    before = set(threading.enumerate())
    t.start()
    try:
        assert set(threading.enumerate()) - before == set()
        t.span("x", 1, 2, 0, SpanKind.INTERNAL, 0.0, 1.0)
        # An exporter would hold the span until its thread sends it.
        assert t.stats() == {"exported": 0, "dropped": 0, "queued": 0, "failed_exports": 0}
        assert t.exporter is None
    finally:
        t.stop()


def test_a_tracer_is_live_while_its_collector_answers() -> None:
    t = Tracer(TracingConfig())
    assert t.live and t.exporter is not None
    t.exporter.healthy = False
    assert not t.live
    assert Tracer.disabled().live  # nothing to export: recording is the no-op itself


def test_only_if_configured_needs_an_endpoint() -> None:
    assert not TracingConfig.from_env("svc", only_if_configured=True, env={}).enabled
    cfg = TracingConfig.from_env("svc", only_if_configured=True, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert cfg.enabled and cfg.target == "c:4317" and ("service.name", "svc") in cfg.resource
    assert TracingConfig.from_env("svc", only_if_configured=True, endpoint="http://c:1", env={}).enabled
