"""The wire boundary: swarmmesh.v1 messages to and from core domain types."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.timestamp_pb2 import Timestamp

from coordinator.core.model import (
    AgentRecord,
    AllocationSite,
    CacheStats,
    CoreError,
    Heartbeat,
    KindLatency,
    Outcome,
    Registration,
    ResultIn,
    StatusCode,
    TaskRecord,
    TaskSpec,
    TaskState,
)
from swarmmesh.v1 import mesh_pb2, types_pb2

_TASK_STATES = {s.value for s in TaskState}


def wire_enum(value: int) -> Any:
    """Core enums share their numbers with the wire enums; the generated
    stubs type those as their own classes, which a plain int satisfies at run time."""
    return value


def _labels(m: object) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(m.items())) if m else ()  # type: ignore[attr-defined]


def task_spec_from_proto(p: types_pb2.TaskSpec, trace_decided: bool = False) -> TaskSpec:
    """`trace_decided`: the call said its tasks without a trace context are not sampled."""
    return TaskSpec(
        kind=p.kind,
        payload=p.payload,
        content_type=p.content_type,
        required_labels=_labels(p.required_labels),
        preferred_labels=_labels(p.preferred_labels),
        priority=p.priority,
        tenant=p.tenant or "default",
        timeout_ms=p.timeout_ms,
        idempotency_key=p.idempotency_key,
        cache_key=p.cache_key,
        dependencies=tuple(p.dependencies) if p.dependencies else (),
        trace_context=_pairs(p.trace_context) if p.trace_context else (),
        max_attempts=p.max_attempts,
        trace_unsampled=trace_decided and not p.trace_context,
    )


def task_states_from_proto(values: list[int], field: str = "states") -> list[TaskState]:
    out = []
    for i, v in enumerate(values):
        if v not in _TASK_STATES:
            raise CoreError(StatusCode.INVALID_ARGUMENT, f"{field}[{i}]: {v} is not a known TaskState")
        out.append(TaskState(v))
    return out


def timestamp_to_proto(t: float, into: Timestamp) -> None:
    """Write `t` (seconds since the epoch) into the message's Timestamp field `into`."""
    # Direct field writes: FromNanoseconds costs several times more, per task.
    secs = int(t)
    into.seconds = secs
    into.nanos = int((t - secs) * 1e9)


# Conversions below run once or twice per task on the hot path, so they set
# only fields that differ from the proto defaults: an empty map update or
# repeated extend still costs a Python-level call.

def spec_to_proto(s: TaskSpec, p: types_pb2.TaskSpec, *, payload: bool = True) -> None:
    p.kind = s.kind
    if payload and s.payload:
        p.payload = s.payload
    if s.content_type:
        p.content_type = s.content_type
    if s.required_labels:
        p.required_labels.update(s.required_labels)
    if s.preferred_labels:
        p.preferred_labels.update(s.preferred_labels)
    if s.priority:
        p.priority = s.priority
    p.tenant = s.tenant
    if s.timeout_ms:
        p.timeout_ms = s.timeout_ms
    if s.idempotency_key:
        p.idempotency_key = s.idempotency_key
    if s.cache_key:
        p.cache_key = s.cache_key
    if s.dependencies:
        p.dependencies.extend(s.dependencies)
    if s.trace_context:
        p.trace_context.update(s.trace_context)
    if s.max_attempts:
        p.max_attempts = s.max_attempts


def outcome_to_proto(o: Outcome, p: types_pb2.TaskOutcome, *, payload: bool = True) -> None:
    if payload and o.output:
        p.output = o.output
    if o.content_type:
        p.content_type = o.content_type
    if o.error:
        p.error = o.error
        p.error_type = o.error_type
    if o.duration_us:
        p.duration_us = o.duration_us
    if o.cache_hit:
        p.cache_hit = True
    if o.agent_us:
        p.agent_us = o.agent_us
    if o.cache_us:
        p.cache_us = o.cache_us


def task_to_proto(rec: TaskRecord, *, payloads: bool = True, pending_reason: str = "",
                  routing_reason: str = "", into: RepeatedCompositeFieldContainer[types_pb2.Task] | None = None
                  ) -> types_pb2.Task:
    """`into`: the repeated field of a response to build the message in (copying one in costs
    a third as much again as building it)."""
    new = types_pb2.Task if into is None else into.add
    p = new(task_id=rec.task_id, state=wire_enum(rec.state), attempt=rec.attempt, agent_id=rec.agent_id)
    spec_to_proto(rec.spec, p.spec, payload=payloads)
    if rec.outcome is not None:
        outcome_to_proto(rec.outcome, p.outcome, payload=payloads)
    timestamp_to_proto(rec.created_at, p.created_at)
    if rec.assigned_at is not None:
        timestamp_to_proto(rec.assigned_at, p.assigned_at)
    if rec.finished_at is not None:
        timestamp_to_proto(rec.finished_at, p.finished_at)
    if pending_reason:
        p.pending_reason = pending_reason
    if routing_reason:
        # Only in the detail view: formatting it for every watched update would cost per task.
        p.strategy = rec.route_strategy
        p.routing_reason = routing_reason
    return p


def _pairs(m: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    items = tuple(m.items())
    # Sorted for a canonical spec; a lone traceparent (the usual case) needs no sort.
    return items if len(items) < 2 else tuple(sorted(items))


def assignment_to_proto(rec: TaskRecord, now: float,
                        into: RepeatedCompositeFieldContainer[mesh_pb2.Assignment] | None = None
                        ) -> mesh_pb2.Assignment:
    """`into`: the repeated field of a frame to build the message in (see task_to_proto)."""
    s = rec.spec
    new = mesh_pb2.Assignment if into is None else into.add
    a = new(task_id=rec.task_id, attempt=rec.attempt, kind=s.kind, tenant=s.tenant)
    if s.payload:
        a.payload = s.payload
    if s.content_type:
        a.content_type = s.content_type
    if rec.deadline is not None:
        # Remaining time, not an absolute deadline: agents' clocks may differ.
        a.timeout_ms = max(1, int((rec.deadline - now) * 1000))
    if s.cache_key:
        a.cache_key = s.cache_key
    if s.dependencies:
        a.dependencies.extend(s.dependencies)
    tr = rec.trace
    if tr is not None:
        if tr.outgoing:  # empty when the trace is not sampled
            a.trace_context.update(tr.outgoing)
    elif s.trace_context:
        # Tracing is off here: pass the submitter's context on.
        a.trace_context.update(s.trace_context)
    if s.priority:
        a.priority = s.priority
    return a


def registration_from_proto(r: mesh_pb2.Register, peer: str) -> Registration:
    return Registration(
        agent_id=r.agent_id,
        labels=_labels(r.labels),
        kinds=frozenset(r.kinds),
        capacity=r.capacity,
        version=r.version,
        credits=r.credits,
        peer=peer,
        held=tuple((h.task_id, h.attempt) for h in r.held),
    )


def _outcome_from_proto(p: types_pb2.TaskOutcome) -> Outcome:
    # Positional: this runs once per result.
    return Outcome(p.output, p.content_type, p.error, p.error_type, p.duration_us, p.cache_hit, p.agent_us,
                   p.cache_us)


def results_from_proto(items: Iterable[mesh_pb2.TaskResult]) -> list[ResultIn]:
    return [ResultIn(r.task_id, r.attempt, r.state, _outcome_from_proto(r.outcome)) for r in items]


def heartbeat_from_proto(h: mesh_pb2.Heartbeat) -> Heartbeat:
    c = h.cache
    return Heartbeat(
        in_flight=h.in_flight,
        free_slots=h.free_slots,
        latencies=tuple(KindLatency(k.kind, k.ewma_ms, k.completed, k.failed) for k in h.latencies),
        memory_rss_bytes=h.memory_rss_bytes,
        cache=CacheStats(c.hits, c.misses, c.evictions, c.invalidations, c.bytes, c.entries, c.errors),
        allocations=tuple(AllocationSite(s.where, s.size_bytes, s.count) for s in h.allocations)
        if h.allocations else (),
    )


def agent_to_proto(a: AgentRecord) -> types_pb2.Agent:
    hb = a.heartbeat
    c = hb.cache
    p = types_pb2.Agent(
        agent_id=a.agent_id,
        labels=a.labels,
        kinds=sorted(a.kinds),
        capacity=a.capacity,
        version=a.version,
        state=wire_enum(a.state),
        in_flight=len(a.in_flight),
        completed=a.completed,
        failed=a.failed,
        memory_rss_bytes=hb.memory_rss_bytes,
        peer=a.peer,
        latencies=[types_pb2.KindLatency(kind=k.kind, ewma_ms=k.ewma_ms, completed=k.completed, failed=k.failed)
                   for k in hb.latencies],
        cache=types_pb2.CacheStats(hits=c.hits, misses=c.misses, evictions=c.evictions,
                                   invalidations=c.invalidations, bytes=c.bytes, entries=c.entries, errors=c.errors),
        allocations=[types_pb2.AllocationSite(where=s.where, size_bytes=s.size_bytes, count=s.count)
                     for s in hb.allocations],
    )
    timestamp_to_proto(a.connected_at, p.connected_at)
    timestamp_to_proto(a.last_seen, p.last_seen)
    return p
