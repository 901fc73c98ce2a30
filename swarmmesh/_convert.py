"""The client's wire boundary: protobuf messages <-> domain dataclasses.

The only module of the client that reads or builds ``swarmmesh.v1`` messages.
Naming: ``x_to_proto`` / ``x_from_proto``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from swarmmesh.errors import InvalidArgument
from swarmmesh.types import (
    AgentInfo,
    AgentProfile,
    AgentState,
    CacheStats,
    ClusterStats,
    Finding,
    Forecast,
    HistoryPoint,
    InvalidateResult,
    KindLatency,
    KindProfile,
    PayloadLike,
    PhaseStats,
    Profile,
    Severity,
    SubmittedTask,
    TaskInfo,
    TaskOutcome,
    TaskSpec,
    TaskState,
)
from swarmmesh.v1 import profile_pb2, tasks_pb2, types_pb2

_D = TypeVar("_D")

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain"

_TASK_STATE_PREFIX = "TASK_STATE_"
_AGENT_STATE_PREFIX = "AGENT_STATE_"


# -- payloads -----------------------------------------------------------------


def encode_payload(payload: PayloadLike, content_type: str = "") -> tuple[bytes, str]:
    """Turn a user payload into ``(bytes, content_type)``.

    bytes-like values pass through untouched; ``str`` becomes UTF-8 with
    ``text/plain``; dicts, lists and tuples become compact JSON with
    ``application/json``. An explicit ``content_type`` always wins.
    """
    if payload is None:
        return b"", content_type
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload), content_type
    if isinstance(payload, str):
        return payload.encode("utf-8"), content_type or TEXT_CONTENT_TYPE
    if isinstance(payload, Mapping | list | tuple):
        try:
            text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"payload is not JSON-serialisable: {exc}") from None
        return text.encode("utf-8"), content_type or JSON_CONTENT_TYPE
    raise TypeError(
        f"payload must be bytes, str, dict or list, not {type(payload).__name__} "
        "(encode it yourself and pass bytes with a content_type)"
    )


# -- enums and timestamps -----------------------------------------------------


# Looked up once per task received: the enum's Name() is slow in comparison.
_TASK_STATES: dict[int, TaskState] = {}


def task_state_from_proto(value: int) -> TaskState:
    state = _TASK_STATES.get(value)
    if state is None:
        try:
            name = str(types_pb2.TaskState.Name(value))
        except ValueError:  # a state newer than this client
            return TaskState.UNSPECIFIED
        state = _TASK_STATES[value] = TaskState(name.removeprefix(_TASK_STATE_PREFIX))
    return state


def task_state_to_proto(state: TaskState | str) -> types_pb2.TaskState:
    value = types_pb2.TaskState.Value(_TASK_STATE_PREFIX + TaskState.parse(state).value)
    return cast("types_pb2.TaskState", value)


def agent_state_from_proto(value: int) -> AgentState:
    try:
        name = str(types_pb2.AgentState.Name(value))
    except ValueError:
        return AgentState.UNSPECIFIED
    return AgentState(name.removeprefix(_AGENT_STATE_PREFIX))


def _timestamp(msg: Any, name: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    ts = getattr(msg, name)
    return _fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)


_fromtimestamp = datetime.fromtimestamp
_new = object.__new__


def _frozen(cls: type[_D], values: dict[str, Any]) -> _D:
    """A frozen dataclass built without its ``__init__``, which sets each field through
    ``object.__setattr__`` and so doubled the cost of converting a finished task (it runs
    once per task a client waits for). `values` must name every field: the tests check."""
    obj: _D = _new(cls)
    obj.__dict__.update(values)
    return obj


# -- tasks --------------------------------------------------------------------


def _labels(value: Mapping[str, int], field: str) -> dict[str, int]:
    if not value:
        return {}
    out: dict[str, int] = {}
    for name, level in value.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"{field}: label names must be non-empty strings")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 0xFFFFFFFF:
            raise InvalidArgument(f"{field}[{name!r}]: level must be a non-negative integer, got {level!r}")
        out[name] = level
    return out


def task_spec_to_proto(spec: TaskSpec) -> types_pb2.TaskSpec:
    """Build a ``types_pb2.TaskSpec``; raises InvalidArgument/TypeError on bad values."""
    payload, content_type = encode_payload(spec.payload, spec.content_type)
    if isinstance(spec.dependencies, str):
        raise TypeError("dependencies must be a sequence of strings, not a single string")
    try:
        # Only non-default fields: this runs once per task submitted, and an
        # empty map or list argument still costs a Python-level copy.
        msg = types_pb2.TaskSpec(kind=spec.kind, payload=payload, content_type=content_type)
        if spec.required_labels:
            msg.required_labels.update(_labels(spec.required_labels, "required_labels"))
        if spec.preferred_labels:
            msg.preferred_labels.update(_labels(spec.preferred_labels, "preferred_labels"))
        if spec.priority:
            msg.priority = spec.priority
        if spec.tenant:
            msg.tenant = spec.tenant
        if spec.timeout_ms:
            msg.timeout_ms = spec.timeout_ms
        if spec.idempotency_key:
            msg.idempotency_key = spec.idempotency_key
        if spec.cache_key:
            msg.cache_key = spec.cache_key
        if spec.dependencies:
            msg.dependencies.extend(spec.dependencies)
        if spec.trace_context:
            msg.trace_context.update(spec.trace_context)
        if spec.max_attempts:
            msg.max_attempts = spec.max_attempts
        return msg
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"task spec for kind {spec.kind!r}: {exc}") from None


def task_spec_from_proto(msg: types_pb2.TaskSpec) -> TaskSpec:
    return _frozen(TaskSpec, {
        "kind": msg.kind,
        "payload": msg.payload,
        "content_type": msg.content_type,
        "required_labels": dict(msg.required_labels) if msg.required_labels else {},
        "preferred_labels": dict(msg.preferred_labels) if msg.preferred_labels else {},
        "priority": msg.priority,
        "tenant": msg.tenant,
        "timeout_ms": msg.timeout_ms,
        "idempotency_key": msg.idempotency_key,
        "cache_key": msg.cache_key,
        "dependencies": tuple(msg.dependencies) if msg.dependencies else (),
        "trace_context": dict(msg.trace_context) if msg.trace_context else {},
        "max_attempts": msg.max_attempts,
    })


def submit_request_to_proto(specs: Iterable[TaskSpec]) -> tasks_pb2.SubmitTasksRequest:
    return tasks_pb2.SubmitTasksRequest(tasks=[task_spec_to_proto(s) for s in specs])


def submitted_from_proto(msg: tasks_pb2.SubmittedTask) -> SubmittedTask:
    # Once per task submitted: built as task_from_proto builds a TaskInfo (see _frozen).
    return _frozen(SubmittedTask, {
        "task_id": msg.task_id,
        "deduplicated": msg.deduplicated,
        "state": task_state_from_proto(msg.state),
    })


def outcome_from_proto(msg: types_pb2.TaskOutcome) -> TaskOutcome:
    return _frozen(TaskOutcome, {
        "output": msg.output,
        "content_type": msg.content_type,
        "error": msg.error,
        "error_type": msg.error_type,
        "duration_us": msg.duration_us,
        "cache_hit": msg.cache_hit,
    })


def task_from_proto(msg: types_pb2.Task) -> TaskInfo:
    return _frozen(TaskInfo, {
        "task_id": msg.task_id,
        "state": task_state_from_proto(msg.state),
        "spec": task_spec_from_proto(msg.spec),
        "attempt": msg.attempt,
        "agent_id": msg.agent_id,
        "outcome": outcome_from_proto(msg.outcome) if msg.HasField("outcome") else None,
        "created_at": _timestamp(msg, "created_at"),
        "assigned_at": _timestamp(msg, "assigned_at"),
        "finished_at": _timestamp(msg, "finished_at"),
        "pending_reason": msg.pending_reason,
        "strategy": msg.strategy,
        "routing_reason": msg.routing_reason,
    })


# -- agents and stats ---------------------------------------------------------


def kind_latency_from_proto(msg: types_pb2.KindLatency) -> KindLatency:
    return KindLatency(kind=msg.kind, ewma_ms=msg.ewma_ms, completed=msg.completed, failed=msg.failed)


def cache_stats_from_proto(msg: types_pb2.CacheStats) -> CacheStats:
    return CacheStats(
        hits=msg.hits,
        misses=msg.misses,
        evictions=msg.evictions,
        invalidations=msg.invalidations,
        bytes=msg.bytes,
        entries=msg.entries,
        errors=msg.errors,
    )


def agent_from_proto(msg: types_pb2.Agent) -> AgentInfo:
    return AgentInfo(
        agent_id=msg.agent_id,
        state=agent_state_from_proto(msg.state),
        labels=dict(msg.labels),
        kinds=tuple(msg.kinds),
        capacity=msg.capacity,
        version=msg.version,
        in_flight=msg.in_flight,
        completed=msg.completed,
        failed=msg.failed,
        connected_at=_timestamp(msg, "connected_at"),
        last_seen=_timestamp(msg, "last_seen"),
        latencies=tuple(kind_latency_from_proto(k) for k in msg.latencies),
        memory_rss_bytes=msg.memory_rss_bytes,
        cache=cache_stats_from_proto(msg.cache) if msg.HasField("cache") else None,
        peer=msg.peer,
    )


def stats_from_proto(msg: tasks_pb2.ClusterStats) -> ClusterStats:
    return ClusterStats(
        tasks_by_state=dict(msg.tasks_by_state),
        queue_depth=msg.queue_depth,
        agents_ready=msg.agents_ready,
        agents_draining=msg.agents_draining,
        capacity_total=msg.capacity_total,
        in_flight=msg.in_flight,
        submitted_total=msg.submitted_total,
        succeeded_total=msg.succeeded_total,
        failed_total=msg.failed_total,
        cancelled_total=msg.cancelled_total,
        stale_results_total=msg.stale_results_total,
        reassigned_total=msg.reassigned_total,
        deduplicated_total=msg.deduplicated_total,
        evicted_total=msg.evicted_total,
        uptime_s=msg.uptime_s,
        agents=tuple(agent_from_proto(a) for a in msg.agents),
        invalidations_total=msg.invalidations_total,
        invalidation_epoch=msg.invalidation_epoch,
        invalidation_seq=msg.invalidation_seq,
        warmups_total=msg.warmups_total,
        retried_total=msg.retried_total,
        dead_lettered_total=msg.dead_lettered_total,
        requeued_total=msg.requeued_total,
    )


def invalidate_result_from_proto(msg: tasks_pb2.InvalidateResponse) -> InvalidateResult:
    return InvalidateResult(
        seq=msg.seq,
        dropped=msg.dropped,
        agents_answered=msg.agents_answered,
        agents_total=msg.agents_total,
        warmups_submitted=msg.warmups_submitted,
    )


# -- the profile ------------------------------------------------------------------

_SEVERITY_PREFIX = "SEVERITY_"


def severity_from_proto(value: int) -> Severity:
    try:
        name = str(profile_pb2.Finding.Severity.Name(value))
    except ValueError:  # a severity newer than this client
        return Severity.UNSPECIFIED
    return Severity(name.removeprefix(_SEVERITY_PREFIX))


def phase_from_proto(msg: profile_pb2.PhaseStats) -> PhaseStats:
    return PhaseStats(phase=msg.phase, count=msg.count, mean_ms=msg.mean_ms, p50_ms=msg.p50_ms,
                      p90_ms=msg.p90_ms, p99_ms=msg.p99_ms, max_ms=msg.max_ms, share=msg.share)


def kind_profile_from_proto(msg: profile_pb2.KindProfile) -> KindProfile:
    return KindProfile(
        kind=msg.kind, succeeded=msg.succeeded, failed=msg.failed, throughput_per_s=msg.throughput_per_s,
        phases=tuple(phase_from_proto(p) for p in msg.phases), cache_lookups=msg.cache_lookups,
        cache_hit_rate=msg.cache_hit_rate, queued=msg.queued, agents=msg.agents, capacity=msg.capacity,
        in_flight=msg.in_flight,
    )


def agent_profile_from_proto(msg: profile_pb2.AgentProfile) -> AgentProfile:
    return AgentProfile(
        agent_id=msg.agent_id, succeeded=msg.succeeded, failed=msg.failed,
        phases=tuple(phase_from_proto(p) for p in msg.phases), utilization=msg.utilization,
        capacity=msg.capacity, memory_rss_bytes=msg.memory_rss_bytes,
        memory_growth_bytes_per_s=msg.memory_growth_bytes_per_s, slowdown=msg.slowdown,
        cache_hit_rate=msg.cache_hit_rate,
    )


def finding_from_proto(msg: profile_pb2.Finding) -> Finding:
    return Finding(severity=severity_from_proto(msg.severity), category=msg.category, subject=msg.subject,
                   summary=msg.summary, recommendations=tuple(msg.recommendations),
                   figures=dict(sorted(msg.figures.items())))


def forecast_from_proto(msg: profile_pb2.Forecast) -> Forecast:
    return Forecast(metric=msg.metric, current=msg.current, slope_per_hour=msg.slope_per_hour,
                    seconds_to_threshold=msg.seconds_to_threshold, threshold=msg.threshold, summary=msg.summary)


def history_point_from_proto(msg: profile_pb2.HistoryPoint) -> HistoryPoint:
    return HistoryPoint(
        at=_timestamp(msg, "at"), span_s=msg.span_s, queue_depth=msg.queue_depth, in_flight=msg.in_flight,
        capacity=msg.capacity, agents_ready=msg.agents_ready, throughput_per_s=msg.throughput_per_s,
        failures_per_s=msg.failures_per_s, p99_total_ms=msg.p99_total_ms, cache_hit_rate=msg.cache_hit_rate,
    )


def profile_from_proto(msg: profile_pb2.Profile) -> Profile:
    return Profile(
        generated_at=_timestamp(msg, "generated_at"),
        window_s=msg.window_s,
        kinds=tuple(kind_profile_from_proto(k) for k in msg.kinds),
        agents=tuple(agent_profile_from_proto(a) for a in msg.agents),
        findings=tuple(finding_from_proto(f) for f in msg.findings),
        forecasts=tuple(forecast_from_proto(f) for f in msg.forecasts),
        history=tuple(history_point_from_proto(h) for h in msg.history),
    )


def profile_request_to_proto(
    window: float | None, kind: str, agent_id: str, history_points: int
) -> profile_pb2.GetProfileRequest:
    """Checked here too, so a caller's mistake is named without a round trip."""
    if window is not None and not (0 < window <= 3600):  # also rejects NaN
        raise InvalidArgument(f"window: {window!r} must be more than 0 and at most 3600 seconds (None = default)")
    if isinstance(history_points, bool) or not isinstance(history_points, int) or not 0 <= history_points <= 10_000:
        raise InvalidArgument(f"history_points: {history_points!r} must be an integer from 0 to 10000")
    return profile_pb2.GetProfileRequest(window_s=window or 0.0, kind=kind, agent_id=agent_id,
                                         history_points=history_points)
