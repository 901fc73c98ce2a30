"""The coordinator's spans of each task, derived from its state changes.

A core listener: it sees every transition and the times the core recorded,
so tracing adds no timer and no clock read to the task path. Per sampled
task it records

    swarmmesh.task <kind>      acceptance -> terminal state (child of the submitter's span)
      swarmmesh.queue          each wait in the queue
      swarmmesh.attempt <n>    assignment -> result or lost lease (parent of the sidecar's spans)

A task whose submitter sent an unsampled trace context is not traced; one
without any context starts a trace here, sampled by the configured ratio.
Either way the decision is final: an unsampled task's assignment carries no
trace context, and sidecars only record spans under a sampled one.
"""

from __future__ import annotations

from coordinator.core.model import UNSAMPLED, TaskRecord, TaskState, TaskTrace
from swarmmesh.telemetry import SpanKind, Tracer
from swarmmesh.telemetry.context import child_context, new_span_id, parent_from_pairs

_PENDING = TaskState.PENDING
_ASSIGNED = TaskState.ASSIGNED
_SUCCEEDED = TaskState.SUCCEEDED
_CANCELLED = TaskState.CANCELLED
_DEAD_LETTER = TaskState.DEAD_LETTER
_CONSUMER = SpanKind.CONSUMER
_INTERNAL = SpanKind.INTERNAL
_PRODUCER = SpanKind.PRODUCER


class TaskTracer:
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self._record = tracer.record

    def on_change(self, rec: TaskRecord, old: TaskState | None) -> None:
        if old is None:
            self._accepted(rec)
            return
        tr = rec.trace
        if tr is None or tr is UNSAMPLED:
            return
        new = rec.state
        # While the collector is failing, spans would only be dropped: skip
        # building them, but keep the context flowing to the sidecars.
        live = self.tracer.live
        if old is _PENDING:
            if live:
                end = rec.assigned_at if new is _ASSIGNED else rec.finished_at
                # The wait before attempt n (one that never came when the task ended queued).
                waited_for = rec.attempt if new is _ASSIGNED else rec.attempt + 1
                self._record(("swarmmesh.queue", tr.trace_id, new_span_id(), tr.task_span, _INTERNAL,
                              rec.queued_at, end or rec.queued_at, (("swarmmesh.attempt", waited_for),), ""))
            if new is _ASSIGNED:
                tr.attempt_span = new_span_id()
                tr.outgoing = child_context(tr.trace_id, tr.attempt_span, True, tr.tracestate)
        elif old is _ASSIGNED and live:
            self._attempt_ended(rec, tr)
        elif old is _DEAD_LETTER:
            # Requeued: the new run ends in a task span of its own, not a second copy of the first.
            tr.task_span = new_span_id()
        if new.terminal and live:
            self._finished(rec, tr)

    def _accepted(self, rec: TaskRecord) -> None:
        spec = rec.spec
        if spec.trace_unsampled or not self.tracer.live:
            # Not sampled, or the collector is failing: whatever this task
            # recorded would be dropped, so it is not traced at all.
            rec.trace = UNSAMPLED
            return
        ctx = spec.trace_context
        parent = parent_from_pairs(ctx) if ctx else None
        if parent is not None:
            if not parent.sampled:
                rec.trace = UNSAMPLED
                return
            trace_id, parent_id, tracestate = parent.trace_id, parent.span_id, parent.tracestate
        else:
            trace_id, sampled = self.tracer.new_root()
            if not sampled:
                rec.trace = UNSAMPLED
                return
            parent_id, tracestate = 0, ""
        rec.trace = TaskTrace(trace_id, parent_id, new_span_id(), tracestate)

    def _attempt_ended(self, rec: TaskRecord, tr: TaskTrace) -> None:
        new = rec.state
        attempt = rec.attempt
        agent = rec.history[attempt - 1] if 0 < attempt <= len(rec.history) else ""
        # Task-wide attributes live on the task span; each attribute costs export time.
        attrs: list[tuple[str, object]] = [
            ("swarmmesh.attempt", attempt),
            ("swarmmesh.agent.id", agent),
            ("swarmmesh.strategy", rec.route_strategy),
        ]
        error = ""
        if new is _PENDING:
            retried = rec.last_failure  # None: the lease was lost; else the attempt failed and retries
            if retried is None:
                error = f"lease lost: agent {agent} went away; the task was re-queued"
            else:
                error = retried.error or retried.error_type
                attrs.append(("swarmmesh.error.type", retried.error_type))
            end = rec.queued_at
        else:
            end = rec.finished_at or rec.queued_at
            o = rec.outcome
            if o is not None:
                attrs.append(("swarmmesh.cache.hit", o.cache_hit))
                if new is not _SUCCEEDED and new is not _CANCELLED:
                    error = o.error or o.error_type
                    attrs.append(("swarmmesh.error.type", o.error_type))
        self._record((f"swarmmesh.attempt {attempt}", tr.trace_id, tr.attempt_span, tr.task_span, _PRODUCER,
                      rec.assigned_at or rec.queued_at, end, tuple(attrs), error))

    def _finished(self, rec: TaskRecord, tr: TaskTrace) -> None:
        s = rec.spec
        o = rec.outcome
        state = rec.state
        attrs: list[tuple[str, object]] = [
            ("swarmmesh.task.id", rec.task_id),
            ("swarmmesh.task.kind", s.kind),
            ("swarmmesh.tenant", s.tenant),
            ("swarmmesh.priority", s.priority),
            ("swarmmesh.attempts", rec.attempt),
            ("swarmmesh.task.state", state.name),
        ]
        error = ""
        if o is not None:
            attrs.append(("swarmmesh.cache.hit", o.cache_hit))
            if state is not _SUCCEEDED:
                attrs.append(("swarmmesh.error.type", o.error_type))
                if state is not _CANCELLED:
                    error = o.error or o.error_type
        if rec.agent_id:
            attrs.append(("swarmmesh.agent.id", rec.agent_id))
        if s.cache_key:
            attrs.append(("swarmmesh.cache.key", s.cache_key))
        self._record((f"swarmmesh.task {s.kind}", tr.trace_id, tr.task_span, tr.parent_id, _CONSUMER,
                      rec.created_at, rec.finished_at or rec.created_at, tuple(attrs), error))
