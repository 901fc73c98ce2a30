from swarmmesh.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitTasksRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.TaskSpec]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_types_pb2.TaskSpec, _Mapping]]] = ...) -> None: ...

class SubmitTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[SubmittedTask]
    def __init__(self, tasks: _Optional[_Iterable[_Union[SubmittedTask, _Mapping]]] = ...) -> None: ...

class SubmittedTask(_message.Message):
    __slots__ = ("task_id", "deduplicated", "state")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    deduplicated: bool
    state: _types_pb2.TaskState
    def __init__(self, task_id: _Optional[str] = ..., deduplicated: _Optional[bool] = ..., state: _Optional[_Union[_types_pb2.TaskState, str]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("states", "kind", "tenant", "agent_id", "limit")
    STATES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[_types_pb2.TaskState]
    kind: str
    tenant: str
    agent_id: str
    limit: int
    def __init__(self, states: _Optional[_Iterable[_Union[_types_pb2.TaskState, str]]] = ..., kind: _Optional[str] = ..., tenant: _Optional[str] = ..., agent_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "total")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    total: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class WatchTasksRequest(_message.Message):
    __slots__ = ("task_ids", "all_updates", "omit_payloads", "follow_tenant")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_UPDATES_FIELD_NUMBER: _ClassVar[int]
    OMIT_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_TENANT_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    all_updates: bool
    omit_payloads: bool
    follow_tenant: str
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ..., all_updates: _Optional[bool] = ..., omit_payloads: _Optional[bool] = ..., follow_tenant: _Optional[str] = ...) -> None: ...

class WatchTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ...) -> None: ...

class CancelTasksRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CancelTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ...) -> None: ...

class RequeueTasksRequest(_message.Message):
    __slots__ = ("task_ids", "all_dead_letters", "kind", "tenant", "limit")
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    all_dead_letters: bool
    kind: str
    tenant: str
    limit: int
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ..., all_dead_letters: _Optional[bool] = ..., kind: _Optional[str] = ..., tenant: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class RequeueTasksResponse(_message.Message):
    __slots__ = ("tasks", "total")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    total: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("include_gone",)
    INCLUDE_GONE_FIELD_NUMBER: _ClassVar[int]
    include_gone: bool
    def __init__(self, include_gone: _Optional[bool] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[_types_pb2.Agent, _Mapping]]] = ...) -> None: ...

class DrainAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InvalidateRequest(_message.Message):
    __slots__ = ("dependencies", "wait_ms")
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    wait_ms: int
    def __init__(self, dependencies: _Optional[_Iterable[str]] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class InvalidateResponse(_message.Message):
    __slots__ = ("seq", "dropped", "agents_answered", "agents_total", "warmups_submitted")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    AGENTS_ANSWERED_FIELD_NUMBER: _ClassVar[int]
    AGENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WARMUPS_SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    dropped: int
    agents_answered: int
    agents_total: int
    warmups_submitted: int
    def __init__(self, seq: _Optional[int] = ..., dropped: _Optional[int] = ..., agents_answered: _Optional[int] = ..., agents_total: _Optional[int] = ..., warmups_submitted: _Optional[int] = ...) -> None: ...

class ClusterStats(_message.Message):
    __slots__ = ("tasks_by_state", "queue_depth", "agents_ready", "agents_draining", "capacity_total", "in_flight", "submitted_total", "succeeded_total", "failed_total", "cancelled_total", "stale_results_total", "reassigned_total", "deduplicated_total", "evicted_total", "uptime_s", "agents", "invalidations_total", "invalidation_epoch", "invalidation_seq", "warmups_total", "retried_total", "dead_lettered_total", "requeued_total", "recovered_tasks", "recovery_s")
    class TasksByStateEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TASKS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    AGENTS_READY_FIELD_NUMBER: _ClassVar[int]
    AGENTS_DRAINING_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_TOTAL_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    STALE_RESULTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REASSIGNED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVICTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    INVALIDATIONS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_EPOCH_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_SEQ_FIELD_NUMBER: _ClassVar[int]
    WARMUPS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RETRIED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    REQUEUED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_TASKS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_S_FIELD_NUMBER: _ClassVar[int]
    tasks_by_state: _containers.ScalarMap[str, int]
    queue_depth: int
    agents_ready: int
    agents_draining: int
    capacity_total: int
    in_flight: int
    submitted_total: int
    succeeded_total: int
    failed_total: int
    cancelled_total: int
    stale_results_total: int
    reassigned_total: int
    deduplicated_total: int
    evicted_total: int
    uptime_s: float
    agents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Agent]
    invalidations_total: int
    invalidation_epoch: str
    invalidation_seq: int
    warmups_total: int
    retried_total: int
    dead_lettered_total: int
    requeued_total: int
    recovered_tasks: int
    recovery_s: float
    def __init__(self, tasks_by_state: _Optional[_Mapping[str, int]] = ..., queue_depth: _Optional[int] = ..., agents_ready: _Optional[int] = ..., agents_draining: _Optional[int] = ..., capacity_total: _Optional[int] = ..., in_flight: _Optional[int] = ..., submitted_total: _Optional[int] = ..., succeeded_total: _Optional[int] = ..., failed_total: _Optional[int] = ..., cancelled_total: _Optional[int] = ..., stale_results_total: _Optional[int] = ..., reassigned_total: _Optional[int] = ..., deduplicated_total: _Optional[int] = ..., evicted_total: _Optional[int] = ..., uptime_s: _Optional[float] = ..., agents: _Optional[_Iterable[_Union[_types_pb2.Agent, _Mapping]]] = ..., invalidations_total: _Optional[int] = ..., invalidation_epoch: _Optional[str] = ..., invalidation_seq: _Optional[int] = ..., warmups_total: _Optional[int] = ..., retried_total: _Optional[int] = ..., dead_lettered_total: _Optional[int] = ..., requeued_total: _Optional[int] = ..., recovered_tasks: _Optional[int] = ..., recovery_s: _Optional[float] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("submits", "watches", "unwatch")
    SUBMITS_FIELD_NUMBER: _ClassVar[int]
    WATCHES_FIELD_NUMBER: _ClassVar[int]
    UNWATCH_FIELD_NUMBER: _ClassVar[int]
    submits: _containers.RepeatedCompositeFieldContainer[SessionSubmit]
    watches: _containers.RepeatedCompositeFieldContainer[SessionWatch]
    unwatch: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, submits: _Optional[_Iterable[_Union[SessionSubmit, _Mapping]]] = ..., watches: _Optional[_Iterable[_Union[SessionWatch, _Mapping]]] = ..., unwatch: _Optional[_Iterable[str]] = ...) -> None: ...

class SessionSubmit(_message.Message):
    __slots__ = ("id", "tasks", "trace_decided")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TRACE_DECIDED_FIELD_NUMBER: _ClassVar[int]
    id: int
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.TaskSpec]
    trace_decided: bool
    def __init__(self, id: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[_types_pb2.TaskSpec, _Mapping]]] = ..., trace_decided: _Optional[bool] = ...) -> None: ...

class SessionWatch(_message.Message):
    __slots__ = ("id", "task_ids", "omit_payloads")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    OMIT_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    omit_payloads: bool
    def __init__(self, id: _Optional[int] = ..., task_ids: _Optional[_Iterable[str]] = ..., omit_payloads: _Optional[bool] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("acks", "finished", "finished_without_payloads")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_WITHOUT_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[SessionAck]
    finished: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    finished_without_payloads: _containers.RepeatedCompositeFieldContainer[_types_pb2.Task]
    def __init__(self, acks: _Optional[_Iterable[_Union[SessionAck, _Mapping]]] = ..., finished: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ..., finished_without_payloads: _Optional[_Iterable[_Union[_types_pb2.Task, _Mapping]]] = ...) -> None: ...

class SessionAck(_message.Message):
    __slots__ = ("id", "code", "message", "tasks", "retry_after_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    message: str
    tasks: _containers.RepeatedCompositeFieldContainer[SubmittedTask]
    retry_after_ms: int
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[SubmittedTask, _Mapping]]] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...
