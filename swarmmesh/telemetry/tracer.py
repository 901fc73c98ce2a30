"""The tracer a process holds: root sampling, span recording, exporter lifecycle."""

from __future__ import annotations

import enum
from typing import Any

from swarmmesh.telemetry.config import TracingConfig
from swarmmesh.telemetry.context import new_trace_id
from swarmmesh.telemetry.exporter import SpanExporter, SpanRecord

_LOW64 = (1 << 64) - 1


class SpanKind(enum.IntEnum):
    # Values match opentelemetry.proto.trace.v1.Span.SpanKind.
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


def _discard(span: SpanRecord) -> None:
    pass


class Tracer:
    """Records spans for export; a disabled tracer records nothing and starts no thread.

    Root decisions use the ratio on the trace id's low 64 bits, like
    OpenTelemetry's TraceIdRatioBased sampler, so every process that sees the
    same trace id with the same ratio decides the same way.
    """

    def __init__(self, config: TracingConfig, scope_version: str = "") -> None:
        self.config = config
        self.enabled = config.enabled
        self._bound = round(config.sample_ratio * (1 << 64))
        self.exporter = SpanExporter(config, scope_version) if config.enabled else None
        # The hot-path entry point: a bound method, or a no-op when disabled.
        self.record = self.exporter.add if self.exporter is not None else _discard

    @classmethod
    def disabled(cls) -> Tracer:
        return cls(TracingConfig(enabled=False))

    def start(self) -> None:
        if self.exporter is not None:
            self.exporter.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Flush queued spans for up to `timeout` seconds; idempotent."""
        if self.exporter is not None:
            self.exporter.stop(timeout)

    @property
    def live(self) -> bool:
        """Whether spans recorded now can be exported: False while the
        collector is failing, so recorders skip building them."""
        e = self.exporter
        return e is None or e.healthy

    def sampled(self, trace_id: int) -> bool:
        return (trace_id & _LOW64) < self._bound

    def new_root(self) -> tuple[int, bool]:
        """A new trace id and whether this process samples it."""
        tid = new_trace_id()
        return tid, (tid & _LOW64) < self._bound

    def span(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_id: int,
        kind: SpanKind,
        start: float,
        end: float,
        attributes: tuple[tuple[str, Any], ...] = (),
        error: str = "",
    ) -> None:
        """Record a finished span (times in unix seconds)."""
        self.record((name, trace_id, span_id, parent_id, int(kind), start, end, attributes, error))

    def stats(self) -> dict[str, int]:
        e = self.exporter
        if e is None:
            return {"exported": 0, "dropped": 0, "queued": 0, "failed_exports": 0}
        return {"exported": e.exported, "dropped": e.dropped, "queued": e.queued, "failed_exports": e.failed_exports}
