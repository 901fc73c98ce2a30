"""The one place where sidecar domain values and swarmmesh.v1 messages meet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from agent_sidecar.cache.result_cache import CacheStatsSnapshot
from agent_sidecar.handlers import TaskContext
from agent_sidecar.metrics import KindStats
from swarmmesh.v1 import mesh_pb2, types_pb2

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED
FAILED = types_pb2.TASK_STATE_FAILED

# TaskOutcome.error_type values produced by the sidecar itself.
ERR_HANDLER = "handler_error"
ERR_DEADLINE = "deadline_exceeded"
ERR_NO_HANDLER = "no_handler"
ERR_OVER_CAPACITY = "over_capacity"

# gRPC canonical codes that ResultAck.code carries.
ACK_OK = 0
ACK_INVALID_ARGUMENT = 3
ACK_NOT_FOUND = 5
ACK_PERMISSION_DENIED = 7
ACK_FAILED_PRECONDITION = 9


def context_from_assignment(
    a: mesh_pb2.Assignment, agent_id: str, received_at: float, trace_context: Mapping[str, str] | None = None
) -> TaskContext:
    """Build the handler's view of an assignment; `received_at` is time.monotonic().
    `trace_context`, when given, replaces the assignment's (it names the handler's span)."""
    return TaskContext(
        task_id=a.task_id,
        attempt=a.attempt,
        kind=a.kind,
        payload=a.payload,
        content_type=a.content_type,
        tenant=a.tenant,
        priority=a.priority,
        # timeout_ms is "time left when sent"; measuring from receipt ignores the
        # one-way network delay, which is small against any useful timeout.
        deadline=received_at + a.timeout_ms / 1000.0 if a.timeout_ms > 0 else None,
        trace_context=dict(a.trace_context) if trace_context is None else trace_context,
        agent_id=agent_id,
        cache_key=a.cache_key,
        dependencies=tuple(a.dependencies),
    )


def success_to_proto(
    task_id: str, attempt: int, output: bytes, content_type: str, duration_us: int, cache_hit: bool = False
) -> mesh_pb2.TaskResult:
    outcome = types_pb2.TaskOutcome(output=output, content_type=content_type, duration_us=duration_us)
    if cache_hit:
        # Only when set: every keyword costs a little on the hot path.
        outcome.cache_hit = True
    return mesh_pb2.TaskResult(task_id=task_id, attempt=attempt, state=SUCCEEDED, outcome=outcome)


def failure_to_proto(
    task_id: str, attempt: int, error: str, error_type: str, duration_us: int = 0
) -> mesh_pb2.TaskResult:
    return mesh_pb2.TaskResult(
        task_id=task_id,
        attempt=attempt,
        state=FAILED,
        outcome=types_pb2.TaskOutcome(error=error, error_type=error_type, duration_us=duration_us),
    )


def latencies_to_proto(stats: Mapping[str, KindStats]) -> list[types_pb2.KindLatency]:
    return [
        types_pb2.KindLatency(kind=kind, ewma_ms=s.ewma_ms, completed=s.completed, failed=s.failed)
        for kind, s in sorted(stats.items())
    ]


def register_to_proto(
    *,
    agent_id: str,
    labels: Mapping[str, int],
    kinds: Iterable[str],
    capacity: int,
    version: str,
    credits: int,
    cache_epoch: str = "",
    cache_seq: int = 0,
    held: Iterable[tuple[str, int]] = (),
) -> mesh_pb2.Register:
    """`held`: (task_id, attempt) of each attempt still held from an earlier stream."""
    return mesh_pb2.Register(
        agent_id=agent_id,
        labels=dict(labels),
        kinds=list(kinds),
        capacity=capacity,
        version=version,
        credits=credits,
        cache_epoch=cache_epoch,
        cache_seq=cache_seq,
        held=[mesh_pb2.TaskRef(task_id=t, attempt=a) for t, a in held],
    )


def heartbeat_to_proto(
    *,
    in_flight: int,
    free_slots: int,
    latencies: Mapping[str, KindStats],
    memory_rss_bytes: int,
    cache: CacheStatsSnapshot | None = None,
    allocations: Sequence[tuple[str, int, int]] = (),
) -> mesh_pb2.Heartbeat:
    hb = mesh_pb2.Heartbeat(
        in_flight=in_flight,
        free_slots=free_slots,
        latencies=latencies_to_proto(latencies),
        memory_rss_bytes=memory_rss_bytes,
    )
    if cache is not None:
        hb.cache.CopyFrom(cache_stats_to_proto(cache))
    if allocations:
        hb.allocations.extend(types_pb2.AllocationSite(where=w, size_bytes=size, count=n) for w, size, n in allocations)
    return hb


def cache_stats_to_proto(s: CacheStatsSnapshot) -> types_pb2.CacheStats:
    return types_pb2.CacheStats(
        hits=s.hits,
        misses=s.misses,
        evictions=s.evictions,
        invalidations=s.invalidations,
        bytes=s.bytes,
        entries=s.entries,
        errors=s.errors,
    )


def invalidations_from_proto(items: Iterable[mesh_pb2.Invalidation]) -> list[tuple[int, tuple[str, ...]]]:
    return [(i.seq, tuple(i.dependencies)) for i in items]


def invalidation_report_to_proto(seq: int, dropped: int) -> mesh_pb2.InvalidationReport:
    return mesh_pb2.InvalidationReport(seq=seq, dropped=dropped)


def register_frame(register: mesh_pb2.Register) -> mesh_pb2.SidecarFrame:
    return mesh_pb2.SidecarFrame(register=register)


def outbound_frame(
    results: Sequence[mesh_pb2.TaskResult],
    credits: int,
    draining: bool,
    heartbeat: mesh_pb2.Heartbeat | None,
    reports: Sequence[mesh_pb2.InvalidationReport],
) -> mesh_pb2.SidecarFrame:
    """One frame of everything the outbox gathered while the previous write was in flight."""
    frame = mesh_pb2.SidecarFrame(results=results, credits=credits, draining=draining)
    if heartbeat is not None:
        frame.heartbeat.CopyFrom(heartbeat)
    if reports:
        frame.invalidation_reports.extend(reports)
    return frame
