from swarmmesh.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SidecarFrame(_message.Message):
    __slots__ = ("register", "results", "credits", "heartbeat", "draining", "invalidation_reports")
    REGISTER_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_REPORTS_FIELD_NUMBER: _ClassVar[int]
    register: Register
    results: _containers.RepeatedCompositeFieldContainer[TaskResult]
    credits: int
    heartbeat: Heartbeat
    draining: bool
    invalidation_reports: _containers.RepeatedCompositeFieldContainer[InvalidationReport]
    def __init__(self, register: _Optional[_Union[Register, _Mapping]] = ..., results: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ..., credits: _Optional[int] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., draining: _Optional[bool] = ..., invalidation_reports: _Optional[_Iterable[_Union[InvalidationReport, _Mapping]]] = ...) -> None: ...

class Register(_message.Message):
    __slots__ = ("agent_id", "labels", "kinds", "capacity", "version", "credits", "cache_epoch", "cache_seq", "held")
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
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    CACHE_SEQ_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    labels: _containers.ScalarMap[str, int]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    version: str
    credits: int
    cache_epoch: str
    cache_seq: int
    held: _containers.RepeatedCompositeFieldContainer[TaskRef]
    def __init__(self, agent_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, int]] = ..., kinds: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., version: _Optional[str] = ..., credits: _Optional[int] = ..., cache_epoch: _Optional[str] = ..., cache_seq: _Optional[int] = ..., held: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("in_flight", "free_slots", "latencies", "memory_rss_bytes", "cache", "allocations")
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    LATENCIES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    in_flight: int
    free_slots: int
    latencies: _containers.RepeatedCompositeFieldContainer[_types_pb2.KindLatency]
    memory_rss_bytes: int
    cache: _types_pb2.CacheStats
    allocations: _containers.RepeatedCompositeFieldContainer[_types_pb2.AllocationSite]
    def __init__(self, in_flight: _Optional[int] = ..., free_slots: _Optional[int] = ..., latencies: _Optional[_Iterable[_Union[_types_pb2.KindLatency, _Mapping]]] = ..., memory_rss_bytes: _Optional[int] = ..., cache: _Optional[_Union[_types_pb2.CacheStats, _Mapping]] = ..., allocations: _Optional[_Iterable[_Union[_types_pb2.AllocationSite, _Mapping]]] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "attempt", "state", "outcome")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    state: _types_pb2.TaskState
    outcome: _types_pb2.TaskOutcome
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., state: _Optional[_Union[_types_pb2.TaskState, str]] = ..., outcome: _Optional[_Union[_types_pb2.TaskOutcome, _Mapping]] = ...) -> None: ...

class CoordinatorFrame(_message.Message):
    __slots__ = ("registered", "assignments", "acks", "cancels", "drain", "recorded", "invalidations")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    CANCELS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    INVALIDATIONS_FIELD_NUMBER: _ClassVar[int]
    registered: Registered
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    acks: _containers.RepeatedCompositeFieldContainer[ResultAck]
    cancels: _containers.RepeatedCompositeFieldContainer[TaskRef]
    drain: bool
    recorded: int
    invalidations: _containers.RepeatedCompositeFieldContainer[Invalidation]
    def __init__(self, registered: _Optional[_Union[Registered, _Mapping]] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., acks: _Optional[_Iterable[_Union[ResultAck, _Mapping]]] = ..., cancels: _Optional[_Iterable[_Union[TaskRef, _Mapping]]] = ..., drain: _Optional[bool] = ..., recorded: _Optional[int] = ..., invalidations: _Optional[_Iterable[_Union[Invalidation, _Mapping]]] = ...) -> None: ...

class Registered(_message.Message):
    __slots__ = ("agent_id", "session", "heartbeat_interval_ms", "lease_timeout_ms", "invalidation_epoch", "invalidation_seq", "clear_cache")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_SEQ_FIELD_NUMBER: _ClassVar[int]
    CLEAR_CACHE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session: int
    heartbeat_interval_ms: int
    lease_timeout_ms: int
    invalidation_epoch: str
    invalidation_seq: int
    clear_cache: bool
    def __init__(self, agent_id: _Optional[str] = ..., session: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ..., lease_timeout_ms: _Optional[int] = ..., invalidation_epoch: _Optional[str] = ..., invalidation_seq: _Optional[int] = ..., clear_cache: _Optional[bool] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task_id", "attempt", "kind", "payload", "content_type", "timeout_ms", "cache_key", "dependencies", "trace_context", "tenant", "priority")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    CACHE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    kind: str
    payload: bytes
    content_type: str
    timeout_ms: int
    cache_key: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    trace_context: _containers.ScalarMap[str, str]
    tenant: str
    priority: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., kind: _Optional[str] = ..., payload: _Optional[bytes] = ..., content_type: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., cache_key: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., tenant: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class Invalidation(_message.Message):
    __slots__ = ("seq", "dependencies")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, seq: _Optional[int] = ..., dependencies: _Optional[_Iterable[str]] = ...) -> None: ...

class InvalidationReport(_message.Message):
    __slots__ = ("seq", "dropped")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    dropped: int
    def __init__(self, seq: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class TaskRef(_message.Message):
    __slots__ = ("task_id", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ResultAck(_message.Message):
    __slots__ = ("task_id", "attempt", "code", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    code: int
    message: str
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
