"""How the CLI shows domain objects: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from swarmmesh._table import age, format_bytes, format_duration, format_kv, format_table, truncate
from swarmmesh.types import AgentInfo, CacheStats, ClusterStats, InvalidateResult, SubmittedTask, TaskInfo

__all__ = [
    "agents_table",
    "dumps",
    "invalidate_text",
    "labels_text",
    "stats_text",
    "submitted_table",
    "task_detail",
    "tasks_table",
    "to_jsonable",
]


def to_jsonable(obj: Any) -> Any:
    """Domain objects -> JSON-compatible values.

    Bytes become text when they are valid UTF-8 (JSON payloads are embedded
    as JSON), else ``{"base64": ...}``; datetimes become ISO 8601 strings.
    """
    if isinstance(obj, TaskInfo):
        data = _dataclass_dict(obj)
        data["ok"] = obj.ok
        data["latency_s"] = obj.latency_s
        return data
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _dataclass_dict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray | memoryview):
        return _bytes_jsonable(bytes(obj), "")
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    return obj


def _dataclass_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    content_type = getattr(obj, "content_type", "")
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bytes):
            out[f.name] = _bytes_jsonable(value, content_type)
        else:
            out[f.name] = to_jsonable(value)
    return out


def _bytes_jsonable(data: bytes, content_type: str) -> Any:
    if content_type.startswith("application/json") and data:
        try:
            return json.loads(data)
        except ValueError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False)


def labels_text(labels: Mapping[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def _payload_text(data: bytes, content_type: str, limit: int | None) -> str:
    if not data:
        return "(empty)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({format_bytes(len(data))} binary, {content_type or 'no content type'})"
    if limit is not None:
        return truncate(text, limit)
    if content_type.startswith("application/json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return text


def _handler_time(task: TaskInfo) -> str:
    if task.outcome is None or not task.outcome.duration_us:
        return "-"
    return format_duration(task.outcome.duration_us / 1e6)


def _result_text(task: TaskInfo, limit: int) -> str:
    if task.pending_reason and not task.terminal:
        return truncate(task.pending_reason, limit)
    if task.error:
        prefix = f"[{task.error_type}] " if task.error_type else ""
        return truncate(prefix + task.error, limit)
    if task.outcome is None:
        return ""
    return _payload_text(task.output, task.outcome.content_type, limit)


def tasks_table(tasks: Sequence[TaskInfo], *, result_width: int = 48) -> str:
    rows = [
        (
            t.task_id,
            t.kind,
            t.state.value,
            t.agent_id or "-",
            t.attempt,
            age(t.created_at),
            format_duration(t.latency_s),
            _handler_time(t),
            _result_text(t, result_width),
        )
        for t in tasks
    ]
    headers = ("TASK ID", "KIND", "STATE", "AGENT", "ATTEMPT", "CREATED", "LATENCY", "HANDLER", "RESULT")
    return format_table(headers, rows, align="llllrrrrl")


def submitted_table(submitted: Sequence[SubmittedTask]) -> str:
    rows = [(s.task_id, s.state.value, "yes" if s.deduplicated else "") for s in submitted]
    return format_table(("TASK ID", "STATE", "DEDUPLICATED"), rows)


def task_detail(task: TaskInfo) -> str:
    spec = task.spec
    pairs: list[tuple[str, object]] = [
        ("task", task.task_id),
        ("kind", spec.kind),
        ("state", task.state.value),
        ("agent", task.agent_id or "-"),
        ("attempt", task.attempt),
        ("tenant", spec.tenant or "default"),
        ("priority", spec.priority),
        ("required labels", labels_text(spec.required_labels)),
    ]
    if spec.preferred_labels:
        pairs.append(("preferred labels", labels_text(spec.preferred_labels)))
    if spec.idempotency_key:
        pairs.append(("idempotency key", spec.idempotency_key))
    if spec.cache_key:
        pairs.append(("cache key", spec.cache_key))
    if spec.dependencies:
        pairs.append(("dependencies", ", ".join(spec.dependencies)))
    pairs += [
        ("created", task.created_at.isoformat() if task.created_at else "-"),
        ("assigned", task.assigned_at.isoformat() if task.assigned_at else "-"),
        ("finished", task.finished_at.isoformat() if task.finished_at else "-"),
        ("latency", format_duration(task.latency_s)),
    ]
    if task.pending_reason:
        pairs.append(("pending reason", task.pending_reason))
    if task.strategy:
        pairs.append(("routed by", f"{task.strategy}: {task.routing_reason}"))
    payload = spec.payload if isinstance(spec.payload, bytes) else b""
    pairs.append(("payload", _payload_text(payload, spec.content_type, 200)))
    if task.outcome is not None:
        pairs.append(("handler time", _handler_time(task)))
        pairs.append(("cache hit", task.outcome.cache_hit))
        if task.error or task.error_type:
            pairs.append(("error type", task.error_type or "-"))
            pairs.append(("error", task.error or "-"))
        if task.output or not task.error:
            pairs.append(("output", _payload_text(task.output, task.outcome.content_type, None)))
    return format_kv(pairs)


def _hit_rate(cache: CacheStats | None) -> str:
    return f"{cache.hit_rate * 100:.0f}%" if cache and (cache.hits or cache.misses) else "-"


def _cache_entries(cache: CacheStats | None) -> str:
    if cache is None or not (cache.entries or cache.bytes):
        return "-"
    return f"{cache.entries} ({format_bytes(cache.bytes)})"


def agents_table(agents: Sequence[AgentInfo]) -> str:
    rows = []
    for a in agents:
        cache = a.cache
        rows.append(
            (
                a.agent_id,
                a.state.value,
                labels_text(a.labels),
                truncate(",".join(a.kinds) or "*", 40),
                f"{a.in_flight}/{a.capacity}",
                a.completed,
                a.failed,
                _hit_rate(cache),
                _cache_entries(cache),
                cache.errors if cache and cache.errors else "-",
                format_bytes(a.memory_rss_bytes) if a.memory_rss_bytes else "-",
                age(a.last_seen),
            )
        )
    headers = ("AGENT", "STATE", "LABELS", "KINDS", "BUSY", "DONE", "FAILED", "CACHE HIT", "CACHED",
               "CACHE ERR", "RSS", "LAST SEEN")
    return format_table(headers, rows, align="llllrrrrrrrr")


def cache_text(cache: CacheStats) -> str:
    """One line: the mesh's (or one agent's) cache counters."""
    return (
        f"hit rate {_hit_rate(cache)} ({cache.hits} hits, {cache.misses} misses), "
        f"{cache.entries} entries, {format_bytes(cache.bytes)}, {cache.evictions} evicted, "
        f"{cache.invalidations} invalidated, {cache.errors} errors"
    )


def invalidate_text(result: InvalidateResult) -> str:
    missing = result.agents_total - result.agents_answered
    text = (
        f"invalidation #{result.seq}: {result.dropped} cached result(s) dropped; "
        f"{result.agents_answered} of {result.agents_total} agent(s) answered"
    )
    if missing:
        text += f" ({missing} did not answer in time; they apply it all the same)"
    if result.warmups_submitted:
        text += f"; {result.warmups_submitted} popular result(s) resubmitted to warm the caches"
    return text


def stats_text(stats: ClusterStats) -> str:
    by_state = ", ".join(f"{k.lower()}={v}" for k, v in sorted(stats.tasks_by_state.items())) or "-"
    pairs: list[tuple[str, object]] = [
        ("uptime", format_duration(stats.uptime_s)),
        ("agents", f"{stats.agents_ready} ready, {stats.agents_draining} draining"),
        ("capacity", f"{stats.in_flight} in flight / {stats.capacity_total} slots"),
        ("queue depth", stats.queue_depth),
        ("tasks retained", by_state),
        ("submitted", stats.submitted_total),
        ("succeeded", stats.succeeded_total),
        ("failed", stats.failed_total),
        ("cancelled", stats.cancelled_total),
        ("dead letters", f"{stats.dead_lettered_total} ({stats.retried_total} attempts retried, "
                         f"{stats.requeued_total} requeued)"),
        ("deduplicated", stats.deduplicated_total),
        ("reassigned", stats.reassigned_total),
        ("stale results", stats.stale_results_total),
        ("evicted", stats.evicted_total),
        ("result cache", cache_text(stats.cache)),
        ("invalidations", f"{stats.invalidations_total} (log {stats.invalidation_epoch or '-'}#{stats.invalidation_seq})"),
        ("warm-ups", stats.warmups_total),
    ]
    text = format_kv(pairs)
    if stats.agents:
        text += "\n\n" + agents_table(stats.agents)
    return text
