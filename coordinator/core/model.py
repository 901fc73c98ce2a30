"""Domain types of the coordinator core: plain data, no sockets, no clocks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class TaskState(enum.IntEnum):
    # Values match swarmmesh.v1.TaskState so the wire boundary is a plain int cast.
    PENDING = 1
    ASSIGNED = 2
    SUCCEEDED = 3
    FAILED = 4
    CANCELLED = 5

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
    """A caller's mistake, with the gRPC status the shell should answer with."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Outcome:
    output: bytes = b""
    content_type: str = ""
    error: str = ""
    error_type: str = ""
    duration_us: int = 0
    cache_hit: bool = False


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
class Heartbeat:
    in_flight: int = 0
    free_slots: int = 0
    latencies: tuple[KindLatency, ...] = ()
    memory_rss_bytes: int = 0
    cache: CacheStats = CacheStats()


@dataclass(frozen=True, slots=True)
class Registration:
    agent_id: str
    labels: tuple[tuple[str, int], ...]
    kinds: frozenset[str]
    capacity: int
    version: str
    credits: int
    peer: str = ""


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

    @property
    def load(self) -> float:
        return len(self.in_flight) / self.capacity if self.capacity else 1.0


@dataclass(frozen=True, slots=True)
class ResultIn:
    """A result as an agent reported it (state is the raw wire int, validated by the core)."""

    task_id: str
    attempt: int
    state: int
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Ack:
    task_id: str
    attempt: int
    code: StatusCode
    message: str = ""


@dataclass(frozen=True, slots=True)
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
