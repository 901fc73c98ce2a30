import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_ASSIGNED: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
    TASK_STATE_DEAD_LETTER: _ClassVar[TaskState]

class AgentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATE_UNSPECIFIED: _ClassVar[AgentState]
    AGENT_STATE_CONNECTING: _ClassVar[AgentState]
    AGENT_STATE_READY: _ClassVar[AgentState]
    AGENT_STATE_DRAINING: _ClassVar[AgentState]
    AGENT_STATE_GONE: _ClassVar[AgentState]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_ASSIGNED: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_CANCELLED: TaskState
TASK_STATE_DEAD_LETTER: TaskState
AGENT_STATE_UNSPECIFIED: AgentState
AGENT_STATE_CONNECTING: AgentState
AGENT_STATE_READY: AgentState
AGENT_STATE_DRAINING: AgentState
AGENT_STATE_GONE: AgentState

class TaskSpec(_message.Message):
    __slots__ = ("kind", "payload", "content_type", "required_labels", "preferred_labels", "priority", "tenant", "timeout_ms", "idempotency_key", "cache_key", "dependencies", "trace_context", "max_attempts")
    class RequiredLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PreferredLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_LABELS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_LABELS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    payload: bytes
    content_type: str
    required_labels: _containers.ScalarMap[str, int]
    preferred_labels: _containers.ScalarMap[str, int]
    priority: int
    tenant: str
    timeout_ms: int
    idempotency_key: str
    cache_key: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    trace_context: _containers.ScalarMap[str, str]
    max_attempts: int
    def __init__(self, kind: _Optional[str] = ..., payload: _Optional[bytes] = ..., content_type: _Optional[str] = ..., required_labels: _Optional[_Mapping[str, int]] = ..., preferred_labels: _Optional[_Mapping[str, int]] = ..., priority: _Optional[int] = ..., tenant: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., cache_key: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class TaskOutcome(_message.Message):
    __slots__ = ("output", "content_type", "error", "error_type", "duration_us", "cache_hit", "agent_us", "cache_us")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    DURATION_US_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    AGENT_US_FIELD_NUMBER: _ClassVar[int]
    CACHE_US_FIELD_NUMBER: _ClassVar[int]
    output: bytes
    content_type: str
    error: str
    error_type: str
    duration_us: int
    cache_hit: bool
    agent_us: int
    cache_us: int
    def __init__(self, output: _Optional[bytes] = ..., content_type: _Optional[str] = ..., error: _Optional[str] = ..., error_type: _Optional[str] = ..., duration_us: _Optional[int] = ..., cache_hit: _Optional[bool] = ..., agent_us: _Optional[int] = ..., cache_us: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "spec", "state", "attempt", "agent_id", "outcome", "created_at", "assigned_at", "finished_at", "pending_reason", "strategy", "routing_reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    spec: TaskSpec
    state: TaskState
    attempt: int
    agent_id: str
    outcome: TaskOutcome
    created_at: _timestamp_pb2.Timestamp
    assigned_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    pending_reason: str
    strategy: str
    routing_reason: str
    def __init__(self, task_id: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., state: _Optional[_Union[TaskState, str]] = ..., attempt: _Optional[int] = ..., agent_id: _Optional[str] = ..., outcome: _Optional[_Union[TaskOutcome, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pending_reason: _Optional[str] = ..., strategy: _Optional[str] = ..., routing_reason: _Optional[str] = ...) -> None: ...

class KindLatency(_message.Message):
    __slots__ = ("kind", "ewma_ms", "completed", "failed")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EWMA_MS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    ewma_ms: float
    completed: int
    failed: int
    def __init__(self, kind: _Optional[str] = ..., ewma_ms: _Optional[float] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ("hits", "misses", "evictions", "invalidations", "bytes", "entries", "errors")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    INVALIDATIONS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    hits: int
    misses: int
    evictions: int
    invalidations: int
    bytes: int
    entries: int
    errors: int
    def __init__(self, hits: _Optional[int] = ..., misses: _Optional[int] = ..., evictions: _Optional[int] = ..., invalidations: _Optional[int] = ..., bytes: _Optional[int] = ..., entries: _Optional[int] = ..., errors: _Optional[int] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("agent_id", "labels", "kinds", "capacity", "version", "state", "in_flight", "completed", "failed", "connected_at", "last_seen", "latencies", "memory_rss_bytes", "cache", "peer", "allocations")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LATENCIES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    labels: _containers.ScalarMap[str, int]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    version: str
    state: AgentState
    in_flight: int
    completed: int
    failed: int
    connected_at: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    latencies: _containers.RepeatedCompositeFieldContainer[KindLatency]
    memory_rss_bytes: int
    cache: CacheStats
    peer: str
    allocations: _containers.RepeatedCompositeFieldContainer[AllocationSite]
    def __init__(self, agent_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, int]] = ..., kinds: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., version: _Optional[str] = ..., state: _Optional[_Union[AgentState, str]] = ..., in_flight: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., connected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latencies: _Optional[_Iterable[_Union[KindLatency, _Mapping]]] = ..., memory_rss_bytes: _Optional[int] = ..., cache: _Optional[_Union[CacheStats, _Mapping]] = ..., peer: _Optional[str] = ..., allocations: _Optional[_Iterable[_Union[AllocationSite, _Mapping]]] = ...) -> None: ...

class AllocationSite(_message.Message):
    __slots__ = ("where", "size_bytes", "count")
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    where: str
    size_bytes: int
    count: int
    def __init__(self, where: _Optional[str] = ..., size_bytes: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...
