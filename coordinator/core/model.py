"""Domain types of the coordinator core: plain data, no sockets, no clocks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def per_task(cls: type[_T]) -> type[_T]:
    """A frozen dataclass to type checkers (mypy flags any assignment to a field), a plain one
    at run time. Frozen dataclasses set each field through object.__setattr__ in __init__,
    which made them 2-6x dearer to build (TaskSpec 1.57 against 0.28 µs), and the core builds
    several per task: a spec per submission, an outcome and a result per result. Hashable
    on their fields, as frozen ones are."""
    made: Any = dataclass(slots=True, unsafe_hash=True)(cls)
    return made  # type: ignore[no-any-return]


class TaskState(enum.IntEnum):
    # Values match swarmmesh.v1.TaskState so the wire boundary is a plain int cast.
    PENDING = 1
    ASSIGNED = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5
    # Failed with an error its kind retries, with every attempt spent (see
    # coordinator/core/retry.py). Terminal, until a requeue sends it back.
    DEAD_LETTER = 6

    @property
    def terminal(self) -> bool:
        return self >= TaskState.SUCCEEDED


class AgentState(enum.IntEnum):
    CONNECTING = 1
    READY = 2
    DRAINING = 3
    GONE = 4


class StatusCode(enum.IntEnum):
    """gRPC canonical codes used by the core to classify a caller's mistake."""

    OK = 0
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9


class CoreError(Exception):
    """A caller's mistake, with the gRPC status the shell should answer with.

    retry_after_ms > 0 is a hint for over-limit errors: when a retry is likely
    to be accepted (the shell sends it as `grpc-retry-pushback-ms`)."""

    def __init__(self, code: StatusCode, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


@per_task
class TaskSpec:
    kind: str
    payload: bytes = b""
    content_type: str = ""
    required_labels: tuple[tuple[str, int], ...] = ()
    preferred_labels: tuple[tuple[str, int], ...] = ()
    priority: int = 0
    tenant: str = "default"
    timeout_ms: int = 0
    idempotency_key: str = ""
    cache_key: str = ""
    dependencies: tuple[str, ...] = ()
    trace_context: tuple[tuple[str, str], ...] = ()
    max_attempts: int = 0
    # The submitter traces, and decided not to sample this task (it sent no
    # trace context for it in a call marked swarmmesh-trace-decided).
    trace_unsampled: bool = False


@per_task
class Outcome:
    output: bytes = b""
    content_type: str = ""
    error: str = ""
    error_type: str = ""
    duration_us: int = 0
    cache_hit: bool = False
    # Sidecar wall time from receiving the assignment to having the result, and
    # the part of it spent in the cache lookup, in microseconds (0 = not reported).
    agent_us: int = 0
    cache_us: int = 0


@dataclass(slots=True)
class TaskTrace:
    """A sampled task's place in its trace (ids as ints, W3C sizes)."""

    trace_id: int
    # The submitter's span; 0 when the trace starts at the coordinator.
    parent_id: int
    task_span: int
    tracestate: str = ""
    # The current attempt's span, and the trace context its assignment carries.
    attempt_span: int = 0
    outgoing: dict[str, str] = field(default_factory=dict)


# A task whose trace is not sampled: nothing is recorded, and its assignments
# carry no trace context (sidecars never start traces of their own).
UNSAMPLED = TaskTrace(0, 0, 0)


@dataclass(slots=True)
class TaskRecord:
    """One task's mutable state. Only MeshCore changes it (see MeshCore._transition)."""

    task_id: str
    spec: TaskSpec
    seq: int
    created_at: float
    deadline: float | None
    max_attempts: int
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    agent_id: str = ""
    session: int = 0
    # The agent that held the last revoked lease: lets a late result be told
    # "superseded" rather than "never yours".
    last_agent: str = ""
    # Agent id per attempt (index attempt - 1): who held which lease.
    history: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    assigned_at: float | None = None
    finished_at: float | None = None
    # When the current (or last) wait in the queue began: acceptance, or the
    # moment a lost lease put the task back.
    queued_at: float = 0.0
    # While a retry waits out its backoff: when it may be queued again. Such a
    # task is PENDING but in no queue (see coordinator/core/retry.py).
    retry_at: float | None = None
    # What the last failed attempt that was retried (or the dead letter that was
    # requeued) ended with: the outcome proper is set only once terminal.
    last_failure: Outcome | None = None
    # Attempts made before the task was last requeued: max_attempts counts from here.
    run_start: int = 0
    # Set when the task's trace is sampled (see coordinator/tracing.py).
    trace: TaskTrace | None = None
    # Queue entry token: a heap entry is live only while it matches (a task can
    # be re-queued, and the queue keeps stale entries until they surface).
    qtoken: int = 0
    # Why the last assignment went where it went: the strategy's name, a reason
    # (a constant string, formatted only when someone asks), the winning score
    # and how many agents had a free slot.
    route_strategy: str = ""
    route_reason: str = ""
    route_score: float = 0.0
    route_candidates: int = 0


@dataclass(frozen=True, slots=True)
class KindLatency:
    kind: str
    ewma_ms: float
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0
    bytes: int = 0
    entries: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class AllocationSite:
    """One source line's live allocations in an agent's process (tracemalloc)."""

    where: str  # "file.py:123"
    size_bytes: int
    count: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    in_flight: int = 0
    free_slots: int = 0
    latencies: tuple[KindLatency, ...] = ()
    memory_rss_bytes: int = 0
    cache: CacheStats = CacheStats()
    # Largest first; empty unless the sidecar runs with --tracemalloc-top.
    allocations: tuple[AllocationSite, ...] = ()


@dataclass(frozen=True, slots=True)
class Registration:
    agent_id: str
    labels: tuple[tuple[str, int], ...]
    kinds: frozenset[str]
    capacity: int
    version: str
    credits: int
    peer: str = ""
    # (task_id, attempt) of the assignments the agent still holds from before
    # it registered: after a coordinator restart its new session adopts those
    # it held under the recovered leases (see coordinator/core/recovery.py).
    held: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True)
class KindStat:
    """What the coordinator has learned about one agent running one task kind."""

    # Seconds from assignment to result: rises fast on a slower sample, falls slowly.
    estimate: float
    samples: int = 0
    # When the estimate last moved (a sample, or decay while the agent sat unused).
    updated_at: float = 0.0
    # Seeded from a heartbeat rather than measured by the coordinator.
    from_heartbeat: bool = False


@dataclass(slots=True)
class AgentStats:
    """Per agent id, kept across its sessions: latency per kind and health."""

    kinds: dict[str, KindStat] = field(default_factory=dict)
    # Decaying share of recent results that failed, and the current run of failures.
    failure_rate: float = 0.0
    consecutive_failures: int = 0
    results: int = 0
    last_result_at: float = 0.0
    ejected_until: float = 0.0
    ejections: int = 0
    last_ejected_at: float = 0.0
    # Slow start: the allowed concurrency ramps up from ramp_from to ramp_until.
    ramp_from: float = 0.0
    ramp_until: float = 0.0


@dataclass(slots=True)
class AgentRecord:
    agent_id: str
    labels: dict[str, int]
    kinds: frozenset[str]
    capacity: int
    version: str
    session: int
    connected_at: float
    last_seen: float
    peer: str = ""
    state: AgentState = AgentState.READY
    credits: int = 0
    # task_id -> attempt, for the assignments this session holds.
    in_flight: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0
    heartbeat: Heartbeat = Heartbeat()
    # When the latest heartbeat arrived, one that repeated the one before included.
    heartbeat_at: float = 0.0
    # Concurrency the balancer lets this agent have: its capacity, less while
    # it is in slow start, 0 while it is ejected as an outlier.
    allowed: int = 0
    stats: AgentStats = field(default_factory=AgentStats)
    # When this session left the registry (disconnected, lease expired, or fenced by a newer one).
    left_at: float | None = None

    @property
    def load(self) -> float:
        return len(self.in_flight) / self.capacity if self.capacity else 1.0


@per_task
class ResultIn:
    """A result as an agent reported it (state is the raw wire int, validated by the core)."""

    task_id: str
    attempt: int
    state: int
    outcome: Outcome


@per_task
class Ack:
    task_id: str
    attempt: int
    code: StatusCode
    message: str = ""


@per_task
class Submitted:
    task_id: str
    deduplicated: bool
    state: TaskState


@dataclass(slots=True)
class Counters:
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    stale_results: int = 0
    reassigned: int = 0
    deduplicated: int = 0
    evicted: int = 0
    # Failed attempts sent back to wait for another; tasks that spent their
    # attempts on errors that retry; dead letters sent back by a client.
    retried: int = 0
    dead_lettered: int = 0
    requeued: int = 0
