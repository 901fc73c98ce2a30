"""The profile's wire boundary: coordinator.profile.report -> swarmmesh.v1.Profile."""

from __future__ import annotations

from coordinator.profile.report import (
    AgentProfile,
    Finding,
    Forecast,
    HistoryPoint,
    KindProfile,
    PhaseStats,
    ProfileReport,
)
from coordinator.service.convert import timestamp_to_proto, wire_enum
from swarmmesh.v1 import profile_pb2


def phase_to_proto(s: PhaseStats) -> profile_pb2.PhaseStats:
    return profile_pb2.PhaseStats(phase=s.phase, count=s.count, mean_ms=s.mean_ms, p50_ms=s.p50_ms,
                                  p90_ms=s.p90_ms, p99_ms=s.p99_ms, max_ms=s.max_ms, share=s.share)


def kind_to_proto(k: KindProfile) -> profile_pb2.KindProfile:
    return profile_pb2.KindProfile(
        kind=k.kind, succeeded=k.succeeded, failed=k.failed, throughput_per_s=k.throughput_per_s,
        phases=[phase_to_proto(s) for s in k.phases], cache_lookups=k.cache_lookups,
        cache_hit_rate=k.cache_hit_rate, queued=k.queued, agents=k.agents, capacity=k.capacity,
        in_flight=k.in_flight,
    )


def agent_to_proto(a: AgentProfile) -> profile_pb2.AgentProfile:
    return profile_pb2.AgentProfile(
        agent_id=a.agent_id, succeeded=a.succeeded, failed=a.failed, phases=[phase_to_proto(s) for s in a.phases],
        utilization=a.utilization, capacity=a.capacity, memory_rss_bytes=a.memory_rss_bytes,
        memory_growth_bytes_per_s=a.memory_growth_bytes_per_s, slowdown=a.slowdown,
        cache_hit_rate=a.cache_hit_rate,
    )


def finding_to_proto(f: Finding) -> profile_pb2.Finding:
    return profile_pb2.Finding(severity=wire_enum(f.severity), category=f.category, subject=f.subject,
                               summary=f.summary, recommendations=list(f.recommendations), figures=dict(f.figures))


def forecast_to_proto(f: Forecast) -> profile_pb2.Forecast:
    return profile_pb2.Forecast(metric=f.metric, current=f.current, slope_per_hour=f.slope_per_hour,
                                seconds_to_threshold=f.seconds_to_threshold, threshold=f.threshold,
                                summary=f.summary)


def history_to_proto(h: HistoryPoint) -> profile_pb2.HistoryPoint:
    p = profile_pb2.HistoryPoint(
        span_s=h.span_s, queue_depth=h.queue_depth, in_flight=h.in_flight, capacity=h.capacity,
        agents_ready=h.agents_ready, throughput_per_s=h.throughput_per_s, failures_per_s=h.failures_per_s,
        p99_total_ms=h.p99_total_ms, cache_hit_rate=h.cache_hit_rate,
    )
    timestamp_to_proto(h.at, p.at)
    return p


def profile_to_proto(r: ProfileReport) -> profile_pb2.Profile:
    p = profile_pb2.Profile(
        window_s=r.window_s,
        kinds=[kind_to_proto(k) for k in r.kinds],
        agents=[agent_to_proto(a) for a in r.agents],
        findings=[finding_to_proto(f) for f in r.findings],
        forecasts=[forecast_to_proto(f) for f in r.forecasts],
        history=[history_to_proto(h) for h in r.history],
    )
    timestamp_to_proto(r.generated_at, p.generated_at)
    return p
