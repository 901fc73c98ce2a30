"""The client's part of a task's trace: one `swarmmesh.submit <kind>` span per task.

A task continues the caller's trace: the trace context given in its spec, or
else the OpenTelemetry span active where submit() was called. Otherwise it
starts a trace, sampled by OTEL_TRACES_SAMPLER(_ARG). An unsampled decision
travels on too, so no later hop samples a trace that lacks its start: a task
the caller gave a context keeps it (flag 00), and the others go without one
in a submission marked as decided (SessionSubmit.trace_decided, the
session's form of SubmitTasks' TRACE_DECIDED_HEADER metadata).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace as otel_trace

from swarmmesh.telemetry import SpanKind, Tracer
from swarmmesh.telemetry.context import (
    TRACEPARENT,
    TRACESTATE,
    TraceParent,
    format_traceparent,
    new_span_id,
    parent_from_pairs,
)
from swarmmesh.v1 import types_pb2

_PRODUCER = int(SpanKind.PRODUCER)
# (index in the request, trace id, span id, parent span id)
Pending = tuple[int, int, int, int]


def current_parent() -> TraceParent | None:
    """The caller's active OpenTelemetry span, if any (cheap: ~0.3 µs)."""
    ctx = otel_trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return TraceParent(ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled, ctx.trace_state.to_header())


class SubmitTracing:
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def prepare(self, msgs: Sequence[types_pb2.TaskSpec], parents: Sequence[TraceParent | None]
                ) -> tuple[list[Pending], float]:
        """Give each task its trace context; returns the sampled ones and the start time.

        While the collector is failing, this client's spans would be dropped:
        it starts no trace and adds no span of its own, so the tasks cost the
        mesh nothing to trace, and a task of a caller's trace carries the
        caller's own context (its trace goes on, without a submit span)."""
        tracer = self.tracer
        live = tracer.live
        pending: list[Pending] = []
        for i, msg in enumerate(msgs):
            tc = msg.trace_context
            parent = parent_from_pairs(tc) if tc else parents[i]
            if parent is None:
                if not live:
                    continue  # no trace: the submission's trace_decided marks it unsampled
                trace_id, sampled = tracer.new_root()
                parent_id, tracestate = 0, ""
            else:
                trace_id, sampled, parent_id, tracestate = parent.trace_id, parent.sampled, parent.span_id, \
                    parent.tracestate
            if not sampled:
                # Sent without a context: the submission's trace_decided says what that means.
                continue
            if not live:
                if not tc:
                    tc[TRACEPARENT] = format_traceparent(trace_id, parent_id, True)
                    if tracestate:
                        tc[TRACESTATE] = tracestate
                continue
            span_id = new_span_id()
            tc[TRACEPARENT] = format_traceparent(trace_id, span_id, True)
            if tracestate:
                tc[TRACESTATE] = tracestate
            pending.append((i, trace_id, span_id, parent_id))
        return pending, time.time()

    def finish(self, pending: list[Pending], msgs: Sequence[types_pb2.TaskSpec], start: float,
               results: Sequence[Any] | None, error: str = "") -> None:
        """Record the submit spans once the call answered (`results`) or failed (`error`)."""
        if not self.tracer.live:
            return  # the collector is failing: the spans would only be dropped
        end = time.time()
        record = self.tracer.record
        for i, trace_id, span_id, parent_id in pending:
            msg = msgs[i]
            attrs: list[tuple[str, Any]] = [
                ("swarmmesh.task.kind", msg.kind),
                ("swarmmesh.tenant", msg.tenant or "default"),
                ("swarmmesh.priority", msg.priority),
            ]
            if results is not None:
                r = results[i]
                attrs.append(("swarmmesh.task.id", r.task_id))
                if r.deduplicated:
                    attrs.append(("swarmmesh.deduplicated", True))
            record((f"swarmmesh.submit {msg.kind}", trace_id, span_id, parent_id, _PRODUCER, start, end,
                    tuple(attrs), error))
