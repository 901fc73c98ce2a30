"""What the profiler answers with: plain frozen data, converted to
swarmmesh.v1.Profile at the service boundary (coordinator/service/convert_profile.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# Phase names, in the order a task goes through them.
QUEUE = "queue"
TRANSPORT = "transport"
CACHE = "cache"
EXECUTION = "execution"
TOTAL = "total"
PHASES = (QUEUE, TRANSPORT, CACHE, EXECUTION, TOTAL)


class Severity(enum.IntEnum):
    # Values match swarmmesh.v1.Finding.Severity.
    INFO = 1
    WARNING = 2
    CRITICAL = 3


@dataclass(frozen=True, slots=True)
class PhaseStats:
    phase: str
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    share: float  # mean of this phase / mean total, 0..1


@dataclass(frozen=True, slots=True)
class KindProfile:
    kind: str
    succeeded: int
    failed: int
    throughput_per_s: float
    phases: tuple[PhaseStats, ...]
    cache_lookups: int
    cache_hit_rate: float
    queued: int
    agents: int
    capacity: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class AgentProfile:
    agent_id: str
    succeeded: int
    failed: int
    phases: tuple[PhaseStats, ...]
    utilization: float
    capacity: int
    memory_rss_bytes: int
    memory_growth_bytes_per_s: float
    slowdown: float
    cache_hit_rate: float


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    category: str  # see swarmmesh.v1.Finding.category
    subject: str
    summary: str
    recommendations: tuple[str, ...]
    figures: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Forecast:
    metric: str
    current: float
    slope_per_hour: float
    seconds_to_threshold: float  # 0 = already crossed, < 0 = never at this trend
    threshold: float
    summary: str


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    at: float  # unix seconds, start of the span
    span_s: float
    queue_depth: float
    in_flight: float
    capacity: float
    agents_ready: float
    throughput_per_s: float
    failures_per_s: float
    p99_total_ms: float
    cache_hit_rate: float


@dataclass(frozen=True, slots=True)
class ProfileReport:
    generated_at: float
    window_s: float
    kinds: tuple[KindProfile, ...] = ()
    agents: tuple[AgentProfile, ...] = ()
    findings: tuple[Finding, ...] = field(default=())  # most severe first
    forecasts: tuple[Forecast, ...] = ()
    history: tuple[HistoryPoint, ...] = ()
