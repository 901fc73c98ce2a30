"""The sidecar's spans of each attempt, under the coordinator's attempt span.

    swarmmesh.execute <kind>     assignment received -> result ready
      swarmmesh.cache            the result-cache lookup (tasks with a cache key)
      swarmmesh.handler <kind>   the handler call; the handler's own trace
                                 context (TaskContext.trace_context) names it

The coordinator decides whether a task is traced (it starts the trace when
the submitter did not) and sends a trace context only for sampled tasks, so
the sidecar never starts a trace of its own.

Times are taken once per attempt with the monotonic clock (the runner needs
them anyway for the outcome's agent_us) and placed on the wall clock from the
one reading at receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swarmmesh.telemetry import SpanKind, Tracer
from swarmmesh.telemetry.context import child_context, new_span_id, parent_from_pairs

_CONSUMER = int(SpanKind.CONSUMER)
_INTERNAL = int(SpanKind.INTERNAL)


@dataclass(slots=True)
class AttemptTrace:
    trace_id: int
    parent_id: int  # the coordinator's attempt span
    execute_span: int
    handler_span: int
    received_wall: float  # unix seconds at receipt
    received_ns: int  # time.perf_counter_ns() at receipt


@dataclass(frozen=True, slots=True)
class AttemptTimes:
    """What the runner measured (perf_counter_ns values; 0 = did not happen)."""

    done_ns: int
    handler_start_ns: int = 0
    handler_us: int = 0
    cache_start_ns: int = 0
    cache_ns: int = 0


class AttemptTracer:
    def __init__(self, tracer: Tracer, agent_id: str) -> None:
        self.tracer = tracer
        self.agent_id = agent_id
        self._record = tracer.record

    def begin(self, trace_context: Mapping[str, str], received_ns: int, received_wall: float
              ) -> tuple[AttemptTrace | None, Mapping[str, str]]:
        """The attempt's trace (None when not sampled) and the context its handler sees."""
        if not self.tracer.live:
            return None, trace_context  # the collector is failing: nothing would be exported
        parent = parent_from_pairs(trace_context)
        if parent is None or not parent.sampled:
            return None, trace_context
        t = AttemptTrace(parent.trace_id, parent.span_id, new_span_id(), new_span_id(), received_wall,
                         received_ns)
        return t, child_context(parent.trace_id, t.handler_span, True, parent.tracestate)

    def end(self, t: AttemptTrace, attempt: int, kind: str, times: AttemptTimes,
            cache_hit: bool, error: str) -> None:
        if not self.tracer.live:
            return  # the collector is failing: the spans would only be dropped
        base_wall, base_ns = t.received_wall, t.received_ns
        record = self._record
        if times.cache_start_ns:
            start = base_wall + (times.cache_start_ns - base_ns) / 1e9
            record(("swarmmesh.cache", t.trace_id, new_span_id(), t.execute_span, _INTERNAL,
                    start, start + times.cache_ns / 1e9, (("swarmmesh.cache.hit", cache_hit),), ""))
        if times.handler_start_ns:
            start = base_wall + (times.handler_start_ns - base_ns) / 1e9
            record((f"swarmmesh.handler {kind}", t.trace_id, t.handler_span, t.execute_span, _INTERNAL,
                    start, start + times.handler_us / 1e6, (), error))
        attrs: tuple[tuple[str, Any], ...] = (
            ("swarmmesh.task.kind", kind),
            ("swarmmesh.attempt", attempt),
            ("swarmmesh.agent.id", self.agent_id),
            ("swarmmesh.cache.hit", cache_hit),
        )
        record((f"swarmmesh.execute {kind}", t.trace_id, t.execute_span, t.parent_id, _CONSUMER,
                base_wall, base_wall + (times.done_ns - base_ns) / 1e9, attrs, error))
