import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetProfileRequest(_message.Message):
    __slots__ = ("window_s", "kind", "agent_id", "history_points")
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_POINTS_FIELD_NUMBER: _ClassVar[int]
    window_s: float
    kind: str
    agent_id: str
    history_points: int
    def __init__(self, window_s: _Optional[float] = ..., kind: _Optional[str] = ..., agent_id: _Optional[str] = ..., history_points: _Optional[int] = ...) -> None: ...

class PhaseStats(_message.Message):
    __slots__ = ("phase", "count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "share")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    phase: str
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    share: float
    def __init__(self, phase: _Optional[str] = ..., count: _Optional[int] = ..., mean_ms: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., share: _Optional[float] = ...) -> None: ...

class KindProfile(_message.Message):
    __slots__ = ("kind", "succeeded", "failed", "throughput_per_s", "phases", "cache_lookups", "cache_hit_rate", "queued", "agents", "capacity", "in_flight")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_S_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    CACHE_LOOKUPS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    succeeded: int
    failed: int
    throughput_per_s: float
    phases: _containers.RepeatedCompositeFieldContainer[PhaseStats]
    cache_lookups: int
    cache_hit_rate: float
    queued: int
    agents: int
    capacity: int
    in_flight: int
    def __init__(self, kind: _Optional[str] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., throughput_per_s: _Optional[float] = ..., phases: _Optional[_Iterable[_Union[PhaseStats, _Mapping]]] = ..., cache_lookups: _Optional[int] = ..., cache_hit_rate: _Optional[float] = ..., queued: _Optional[int] = ..., agents: _Optional[int] = ..., capacity: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...

class AgentProfile(_message.Message):
    __slots__ = ("agent_id", "succeeded", "failed", "phases", "utilization", "capacity", "memory_rss_bytes", "memory_growth_bytes_per_s", "slowdown", "cache_hit_rate")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GROWTH_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    SLOWDOWN_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    succeeded: int
    failed: int
    phases: _containers.RepeatedCompositeFieldContainer[PhaseStats]
    utilization: float
    capacity: int
    memory_rss_bytes: int
    memory_growth_bytes_per_s: float
    slowdown: float
    cache_hit_rate: float
    def __init__(self, agent_id: _Optional[str] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., phases: _Optional[_Iterable[_Union[PhaseStats, _Mapping]]] = ..., utilization: _Optional[float] = ..., capacity: _Optional[int] = ..., memory_rss_bytes: _Optional[int] = ..., memory_growth_bytes_per_s: _Optional[float] = ..., slowdown: _Optional[float] = ..., cache_hit_rate: _Optional[float] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("severity", "category", "subject", "summary", "recommendations", "figures")
    class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SEVERITY_UNSPECIFIED: _ClassVar[Finding.Severity]
        SEVERITY_INFO: _ClassVar[Finding.Severity]
        SEVERITY_WARNING: _ClassVar[Finding.Severity]
        SEVERITY_CRITICAL: _ClassVar[Finding.Severity]
    SEVERITY_UNSPECIFIED: Finding.Severity
    SEVERITY_INFO: Finding.Severity
    SEVERITY_WARNING: Finding.Severity
    SEVERITY_CRITICAL: Finding.Severity
    class FiguresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    severity: Finding.Severity
    category: str
    subject: str
    summary: str
    recommendations: _containers.RepeatedScalarFieldContainer[str]
    figures: _containers.ScalarMap[str, float]
    def __init__(self, severity: _Optional[_Union[Finding.Severity, str]] = ..., category: _Optional[str] = ..., subject: _Optional[str] = ..., summary: _Optional[str] = ..., recommendations: _Optional[_Iterable[str]] = ..., figures: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Forecast(_message.Message):
    __slots__ = ("metric", "current", "slope_per_hour", "seconds_to_threshold", "threshold", "summary")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    SLOPE_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    SECONDS_TO_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    metric: str
    current: float
    slope_per_hour: float
    seconds_to_threshold: float
    threshold: float
    summary: str
    def __init__(self, metric: _Optional[str] = ..., current: _Optional[float] = ..., slope_per_hour: _Optional[float] = ..., seconds_to_threshold: _Optional[float] = ..., threshold: _Optional[float] = ..., summary: _Optional[str] = ...) -> None: ...

class HistoryPoint(_message.Message):
    __slots__ = ("at", "span_s", "queue_depth", "in_flight", "capacity", "agents_ready", "throughput_per_s", "failures_per_s", "p99_total_ms", "cache_hit_rate")
    AT_FIELD_NUMBER: _ClassVar[int]
    SPAN_S_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    AGENTS_READY_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_S_FIELD_NUMBER: _ClassVar[int]
    FAILURES_PER_S_FIELD_NUMBER: _ClassVar[int]
    P99_TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    span_s: float
    queue_depth: float
    in_flight: float
    capacity: float
    agents_ready: float
    throughput_per_s: float
    failures_per_s: float
    p99_total_ms: float
    cache_hit_rate: float
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., span_s: _Optional[float] = ..., queue_depth: _Optional[float] = ..., in_flight: _Optional[float] = ..., capacity: _Optional[float] = ..., agents_ready: _Optional[float] = ..., throughput_per_s: _Optional[float] = ..., failures_per_s: _Optional[float] = ..., p99_total_ms: _Optional[float] = ..., cache_hit_rate: _Optional[float] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("generated_at", "window_s", "kinds", "agents", "findings", "forecasts", "history")
    GENERATED_AT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    FORECASTS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    generated_at: _timestamp_pb2.Timestamp
    window_s: float
    kinds: _containers.RepeatedCompositeFieldContainer[KindProfile]
    agents: _containers.RepeatedCompositeFieldContainer[AgentProfile]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    forecasts: _containers.RepeatedCompositeFieldContainer[Forecast]
    history: _containers.RepeatedCompositeFieldContainer[HistoryPoint]
    def __init__(self, generated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_s: _Optional[float] = ..., kinds: _Optional[_Iterable[_Union[KindProfile, _Mapping]]] = ..., agents: _Optional[_Iterable[_Union[AgentProfile, _Mapping]]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., forecasts: _Optional[_Iterable[_Union[Forecast, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[HistoryPoint, _Mapping]]] = ...) -> None: ...
