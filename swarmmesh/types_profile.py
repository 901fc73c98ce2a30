"""The profile's types (``swarmmesh.v1.Profile``): where a mesh's time goes, and what to do.

Frozen dataclasses like the rest of :mod:`swarmmesh.types`, which re-exports
them; they live apart because they describe the profiler's answers, not tasks
and agents.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["AgentProfile", "Finding", "Forecast", "HistoryPoint", "KindProfile", "PhaseStats", "Profile", "Severity"]

class Severity(enum.StrEnum):
    """How much a finding matters (``swarmmesh.v1.Finding.Severity`` without its prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        """0 (unspecified) to 3 (critical), for comparisons."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.UNSPECIFIED: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True)
class PhaseStats:
    """Distribution of one phase's duration over the profile's window."""

    #: "queue", "transport", "cache", "execution" or "total".
    phase: str
    count: int = 0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    #: mean of this phase / mean total, 0..1.
    share: float = 0.0


def _phase(phases: Sequence[PhaseStats], name: str) -> PhaseStats | None:
    return next((p for p in phases if p.phase == name), None)


@dataclass(frozen=True)
class KindProfile:
    kind: str
    succeeded: int = 0
    failed: int = 0
    throughput_per_s: float = 0.0
    phases: tuple[PhaseStats, ...] = ()
    #: among tasks of this kind that carried a cache key.
    cache_lookups: int = 0
    cache_hit_rate: float = 0.0
    #: right now: tasks waiting, and the agents able to run the kind.
    queued: int = 0
    agents: int = 0
    capacity: int = 0
    in_flight: int = 0

    def phase(self, name: str) -> PhaseStats | None:
        return _phase(self.phases, name)


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    succeeded: int = 0
    failed: int = 0
    phases: tuple[PhaseStats, ...] = ()
    #: busy slots / capacity, averaged over the window, 0..1.
    utilization: float = 0.0
    capacity: int = 0
    memory_rss_bytes: int = 0
    #: fitted over the leak detector's window; 0 when too few samples.
    memory_growth_bytes_per_s: float = 0.0
    #: handler time against other agents on the same kind (1.0 = typical); the worst kind.
    slowdown: float = 0.0
    cache_hit_rate: float = 0.0

    def phase(self, name: str) -> PhaseStats | None:
        return _phase(self.phases, name)


@dataclass(frozen=True)
class Finding:
    """One thing the coordinator noticed, with what to do about it."""

    severity: Severity
    #: "saturated_kind", "queue_stall", "slow_agent", "memory_leak", "cold_cache",
    #: "queue_growth", "transport", "errors", "unroutable" (the README says what each means).
    category: str
    #: a task kind or an agent id, depending on the category.
    subject: str
    summary: str
    #: most useful first.
    recommendations: tuple[str, ...] = ()
    figures: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Forecast:
    """A figure's trend, and when it crosses its threshold at that trend."""

    metric: str
    current: float
    slope_per_hour: float
    #: 0 = already crossed; negative = never at this trend.
    seconds_to_threshold: float
    threshold: float
    summary: str = ""


@dataclass(frozen=True)
class HistoryPoint:
    """One downsampled point of the coordinator's history (``at`` = start of its span)."""

    at: datetime | None
    span_s: float = 0.0
    queue_depth: float = 0.0
    in_flight: float = 0.0
    capacity: float = 0.0
    agents_ready: float = 0.0
    throughput_per_s: float = 0.0
    failures_per_s: float = 0.0
    p99_total_ms: float = 0.0
    cache_hit_rate: float = 0.0


@dataclass(frozen=True)
class Profile:
    """Where the mesh's time goes, what limits it and what to do (``AsyncClient.profile``)."""

    generated_at: datetime | None = None
    window_s: float = 0.0
    kinds: tuple[KindProfile, ...] = ()
    agents: tuple[AgentProfile, ...] = ()
    #: most severe first; empty for a healthy mesh.
    findings: tuple[Finding, ...] = ()
    forecasts: tuple[Forecast, ...] = ()
    #: oldest first.
    history: tuple[HistoryPoint, ...] = ()

    def kind(self, name: str) -> KindProfile | None:
        return next((k for k in self.kinds if k.kind == name), None)

    def agent(self, agent_id: str) -> AgentProfile | None:
        return next((a for a in self.agents if a.agent_id == agent_id), None)

    def problems(self, at_least: Severity = Severity.WARNING) -> tuple[Finding, ...]:
        """Findings of at least this severity."""
        return tuple(f for f in self.findings if f.severity.rank >= at_least.rank)
