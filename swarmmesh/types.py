"""Domain types of the client API: frozen dataclasses, free of wire details.

Conversion to and from the generated protobuf classes lives in
:mod:`swarmmesh._convert` only; nothing else in the client touches ``*_pb2``
messages, so callers never need to.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

# Re-exported: the profile's types live in their own module.
from swarmmesh.types_profile import (
    AgentProfile,
    Finding,
    Forecast,
    HistoryPoint,
    KindProfile,
    PhaseStats,
    Profile,
    Severity,
)

__all__ = [
    "AgentInfo",
    "AgentProfile",
    "AgentState",
    "CacheStats",
    "ClusterStats",
    "Finding",
    "Forecast",
    "HistoryPoint",
    "InvalidateResult",
    "KindLatency",
    "KindProfile",
    "PayloadLike",
    "PhaseStats",
    "Profile",
    "Severity",
    "SubmittedTask",
    "TaskInfo",
    "TaskOutcome",
    "TaskPage",
    "TaskSpec",
    "TaskState",
]

#: What ``submit`` accepts as a payload: raw bytes, text (sent as UTF-8,
#: ``text/plain``), or a JSON-serialisable dict/list (``application/json``).
PayloadLike: TypeAlias = (
    bytes | bytearray | memoryview | str | Mapping[str, Any] | list[Any] | tuple[Any, ...] | None
)


class TaskState(enum.StrEnum):
    """Lifecycle of a task (``swarmmesh.v1.TaskState`` without its prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    #: failed with an error its kind retries, every attempt spent (or lost with
    #: every agent that held it); ``requeue`` sends it back.
    DEAD_LETTER = "DEAD_LETTER"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @classmethod
    def parse(cls, value: str | TaskState) -> TaskState:
        """Accept ``"failed"``, ``"FAILED"`` or ``"TASK_STATE_FAILED"`` (and ``"dead-letter"``)."""
        if isinstance(value, TaskState):
            return value
        name = value.strip().upper().replace("-", "_").removeprefix("TASK_STATE_")
        if name == "CANCELED":
            name = "CANCELLED"
        try:
            return cls[name]
        except KeyError:
            choices = ", ".join(s.value.lower() for s in cls if s is not cls.UNSPECIFIED)
            raise ValueError(f"unknown task state {value!r} (choose from {choices})") from None


_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.DEAD_LETTER})


class AgentState(enum.StrEnum):
    """Lifecycle of an agent in the coordinator's registry."""

    UNSPECIFIED = "UNSPECIFIED"
    CONNECTING = "CONNECTING"
    READY = "READY"
    DRAINING = "DRAINING"
    GONE = "GONE"


@dataclass(frozen=True)
class TaskSpec:
    """One task to submit (see ``swarmmesh.v1.TaskSpec`` for field semantics).

    ``payload`` may be bytes, text or a JSON-serialisable dict/list; the
    content type is filled in accordingly when left empty.
    """

    kind: str
    payload: PayloadLike = b""
    content_type: str = ""
    #: label name -> minimum level (0 = any level); every one must match.
    required_labels: Mapping[str, int] = field(default_factory=dict)
    #: label name -> desired level; only steers the balancer.
    preferred_labels: Mapping[str, int] = field(default_factory=dict)
    #: higher runs first, -1000..1000.
    priority: int = 0
    tenant: str = ""
    #: budget from acceptance to result in milliseconds; 0 = coordinator default.
    timeout_ms: int = 0
    idempotency_key: str = ""
    cache_key: str = ""
    dependencies: Sequence[str] = ()
    #: W3C trace context ("traceparent", "tracestate").
    trace_context: Mapping[str, str] = field(default_factory=dict)
    #: hand-outs allowed when agents die holding the task; 0 = coordinator default.
    max_attempts: int = 0


@dataclass(frozen=True)
class SubmittedTask:
    task_id: str
    #: True when the idempotency key matched an existing task.
    deduplicated: bool
    state: TaskState


@dataclass(frozen=True)
class TaskOutcome:
    """What came of the final attempt of a task."""

    output: bytes = b""
    content_type: str = ""
    #: human-readable error; empty on success.
    error: str = ""
    #: machine-readable class, e.g. "handler_error", "deadline_exceeded".
    error_type: str = ""
    #: handler wall time in microseconds, as measured by the sidecar.
    duration_us: int = 0
    cache_hit: bool = False


@dataclass(frozen=True)
class TaskInfo:
    """A task as the coordinator knows it."""

    task_id: str
    state: TaskState
    spec: TaskSpec
    #: 1 for the first hand-out, +1 for each one after (a lost lease, or a retry).
    #: A requeue does not restart it.
    attempt: int = 0
    #: agent holding (ASSIGNED) or having finished (terminal) the task.
    agent_id: str = ""
    #: set once the task is terminal.
    outcome: TaskOutcome | None = None
    created_at: datetime | None = None
    assigned_at: datetime | None = None
    finished_at: datetime | None = None
    #: why a PENDING task is waiting.
    pending_reason: str = ""
    #: the balancing strategy that chose the agent, and why (filled by ``get``).
    strategy: str = ""
    routing_reason: str = ""

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def ok(self) -> bool:
        """True when the task succeeded."""
        return self.state is TaskState.SUCCEEDED

    @property
    def output(self) -> bytes:
        return self.outcome.output if self.outcome else b""

    @property
    def error(self) -> str:
        return self.outcome.error if self.outcome else ""

    @property
    def error_type(self) -> str:
        return self.outcome.error_type if self.outcome else ""

    @property
    def latency_s(self) -> float | None:
        """Coordinator-side time from acceptance to result, in seconds."""
        if self.created_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.created_at).total_seconds()

    def output_text(self, encoding: str = "utf-8") -> str:
        return self.output.decode(encoding)

    def output_json(self) -> Any:
        """The output decoded as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.output)


@dataclass(frozen=True)
class TaskPage:
    """Result of ``list_tasks`` and ``requeue``: newest first, and how many matched in all."""

    tasks: tuple[TaskInfo, ...]
    total: int

    def __iter__(self) -> Iterator[TaskInfo]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True)
class KindLatency:
    kind: str
    #: moving average of handler wall time, milliseconds.
    ewma_ms: float
    completed: int
    failed: int


@dataclass(frozen=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0
    bytes: int = 0
    entries: int = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


@dataclass(frozen=True)
class AgentInfo:
    agent_id: str
    state: AgentState
    labels: Mapping[str, int] = field(default_factory=dict)
    #: kinds the agent handles; empty = every kind.
    kinds: tuple[str, ...] = ()
    capacity: int = 0
    version: str = ""
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    connected_at: datetime | None = None
    last_seen: datetime | None = None
    latencies: tuple[KindLatency, ...] = ()
    memory_rss_bytes: int = 0
    cache: CacheStats | None = None
    peer: str = ""


@dataclass(frozen=True)
class ClusterStats:
    #: task counts by state name ("PENDING", ...), retained tasks only.
    tasks_by_state: Mapping[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    agents_ready: int = 0
    agents_draining: int = 0
    capacity_total: int = 0
    in_flight: int = 0
    submitted_total: int = 0
    succeeded_total: int = 0
    failed_total: int = 0
    cancelled_total: int = 0
    stale_results_total: int = 0
    reassigned_total: int = 0
    deduplicated_total: int = 0
    evicted_total: int = 0
    uptime_s: float = 0.0
    agents: tuple[AgentInfo, ...] = ()
    #: Invalidate calls accepted, and the invalidation log's epoch and newest seq.
    invalidations_total: int = 0
    invalidation_epoch: str = ""
    invalidation_seq: int = 0
    #: warm-up tasks submitted for popular cache keys.
    warmups_total: int = 0
    #: failed attempts retried, tasks that became dead letters, dead letters requeued.
    retried_total: int = 0
    dead_lettered_total: int = 0
    requeued_total: int = 0

    @property
    def cache(self) -> CacheStats:
        """The agents' cache statistics summed (hit rate over the whole mesh)."""
        totals = [a.cache for a in self.agents if a.cache is not None]
        return CacheStats(
            hits=sum(c.hits for c in totals),
            misses=sum(c.misses for c in totals),
            evictions=sum(c.evictions for c in totals),
            invalidations=sum(c.invalidations for c in totals),
            bytes=sum(c.bytes for c in totals),
            entries=sum(c.entries for c in totals),
            errors=sum(c.errors for c in totals),
        )


@dataclass(frozen=True)
class InvalidateResult:
    """What a mesh-wide invalidation did."""

    #: position in the coordinator's invalidation log.
    seq: int
    #: cached results dropped, summed over the agents that answered in time.
    dropped: int
    agents_answered: int
    #: agents connected when it was sent; the others catch up when they reconnect.
    agents_total: int
    #: popular results resubmitted to warm the caches again.
    warmups_submitted: int = 0
