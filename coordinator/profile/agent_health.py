"""Findings about agents: one slower than its peers, one whose memory leaks.

Figures:

slow_agent
    slowdown (agent's median handler time / the median of its peers'
    medians), p50_s, peers_p50_s, samples, peers (agents compared with),
    utilization, peers_utilization (busy slots / capacity, the peers'
    median). INFO, not a warning, when the balancer already keeps it less
    than half as busy as its peers.

    An agent the balancer avoids gets too few tasks for the median rule. It
    is still reported, at INFO, as slots the balancer keeps idle, when it is
    avoided (under half as busy as its peers, who have enough samples) and
    either its few runs (at least 3, assigned over more than one round, so
    not one cold start) were every one of them `slow_agent_factor` slower
    than the peers' median, or the coordinator's own latency estimate for it
    (from at least `slow_min_samples` results) is that much above its peers'
    estimates. The estimate drifts back toward the peers' while the agent
    sits unused, so this second source only speaks while the balancer still
    routes around the agent. Such a finding also carries capacity (its idle
    slots) and estimate_s (the balancer's latency estimate for it, 0 if none).
memory_leak
    growth_bytes_per_s, r2, samples, span_s, rss_bytes, and when
    --agent-memory-limit-bytes is set, limit_bytes and seconds_to_limit.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.core.model import AllocationSite
from coordinator.profile import fmt
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.leaks import LeakVerdict
from coordinator.profile.report import Finding, Severity

# Strategies that learn agents' speed and route around a slow one.
LATENCY_AWARE = frozenset(("hybrid", "performance"))
# Runs of an avoided agent needed before they say anything (with every one of them slow).
MIN_AVOIDED_RUNS = 3


@dataclass(frozen=True, slots=True)
class ExecTime:
    """One agent's median handler time for one kind (cache hits and failures left out)."""

    agent_id: str
    p50_s: float
    samples: int
    version: str = ""
    # Busy slots / capacity over the window (all kinds).
    utilization: float = 0.0
    # Its fastest sample, and how far apart its samples were assigned (seconds).
    fastest_s: float = 0.0
    spread_s: float = 0.0
    capacity: int = 0
    # The coordinator's latency estimate for it (0: none) and the results behind it.
    estimate_s: float = 0.0
    estimate_samples: int = 0


@dataclass(frozen=True, slots=True)
class Slowdown:
    kind: str
    agent_id: str
    ratio: float
    p50_s: float
    peers_p50_s: float
    samples: int
    peers: int
    version: str
    peer_version: str
    # Its utilization, and the median of its peers'.
    utilization: float = 0.0
    peers_utilization: float = 0.0
    capacity: int = 0
    estimate_s: float = 0.0
    # Fewer samples than slow_min_samples: found as an agent the balancer avoids.
    avoided: bool = False


def slowdowns(kind: str, times: Sequence[ExecTime], cfg: ProfilerConfig) -> list[Slowdown]:
    """Each agent against the median of its peers' medians (peers need enough samples): by its own
    median when it has enough samples, else only if the balancer avoids it (see the module's doc)."""
    ok = [t for t in times if t.samples >= cfg.slow_min_samples]
    out: list[Slowdown] = []
    for t in times:
        peers = [p for p in ok if p.agent_id != t.agent_id]
        if not peers:
            continue
        base = statistics.median(p.p50_s for p in peers)
        if base <= 0:
            continue
        versions = Counter(p.version for p in peers)
        peer_version = versions.most_common(1)[0][0]
        peers_busy = statistics.median(p.utilization for p in peers)
        if t.samples >= cfg.slow_min_samples:
            out.append(Slowdown(kind, t.agent_id, t.p50_s / base, t.p50_s, base, t.samples, len(peers), t.version,
                                peer_version, t.utilization, peers_busy, t.capacity, t.estimate_s))
            continue
        if not t.utilization < peers_busy / 2:
            continue
        factor, gap = cfg.slow_agent_factor, cfg.slow_min_gap_s
        if (t.samples >= MIN_AVOIDED_RUNS and t.fastest_s >= factor * base and t.fastest_s - base >= gap
                and t.spread_s >= t.fastest_s):
            out.append(Slowdown(kind, t.agent_id, t.p50_s / base, t.p50_s, base, t.samples, len(peers),
                                t.version, peer_version, t.utilization, peers_busy, t.capacity, t.estimate_s,
                                avoided=True))
            continue
        estimates = [p.estimate_s for p in peers if p.estimate_s > 0]
        if t.estimate_samples >= cfg.slow_min_samples and estimates:
            peer_est = statistics.median(estimates)
            if t.estimate_s >= factor * peer_est and t.estimate_s - peer_est >= gap:
                out.append(Slowdown(kind, t.agent_id, t.estimate_s / peer_est, t.estimate_s, peer_est, t.samples,
                                    len(peers), t.version, peer_version, t.utilization, peers_busy, t.capacity,
                                    t.estimate_s, avoided=True))
    return out


def slow_agent(s: Slowdown, strategy: str, cfg: ProfilerConfig) -> Finding | None:
    if s.ratio < cfg.slow_agent_factor or s.p50_s - s.peers_p50_s < cfg.slow_min_gap_s:
        return None
    if s.avoided:
        return _idle_slots(s)
    severity = Severity.CRITICAL if s.ratio >= 2 * cfg.slow_agent_factor else Severity.WARNING
    summary = (f"agent {s.agent_id} is {s.ratio:.1f}x slower than its peers on {s.kind} "
               f"(p50 {fmt.secs(s.p50_s)} vs {fmt.secs(s.peers_p50_s)})")
    recs = []
    avoided = s.utilization < s.peers_utilization / 2
    if avoided:
        # The balancer already routes around it: no task suffers, capacity is wasted.
        severity = Severity.INFO
        summary += (f"; the balancer already sends it little work ({fmt.pct(s.utilization)} busy, "
                    f"its peers {fmt.pct(s.peers_utilization)})")
    if s.version != s.peer_version:
        recs.append(f"it runs version {s.version or '(none)'}, its peers {s.peer_version or '(none)'}: "
                    "compare the builds")
    recs.append("check its host: CPU steal or throttling, a noisy neighbour, swapping, a slow disk")
    recs.append(f"drain it until it is fixed: swarmmesh drain {s.agent_id}")
    if strategy not in LATENCY_AWARE and not avoided:
        recs.append(f"route {s.kind} by measured speed: --strategy-overrides {s.kind}=hybrid (or performance); "
                    f"{strategy} gives a slow agent as much work as a fast one")
    return Finding(severity, "slow_agent", s.agent_id, summary, tuple(recs), _figures(s))


def _figures(s: Slowdown) -> tuple[tuple[str, float], ...]:
    return (("slowdown", s.ratio), ("p50_s", s.p50_s), ("peers_p50_s", s.peers_p50_s), ("samples", s.samples),
            ("peers", s.peers), ("utilization", s.utilization), ("peers_utilization", s.peers_utilization))


def _idle_slots(s: Slowdown) -> Finding:
    """A slow agent the balancer routes around: no task suffers, its slots do no work."""
    if s.samples >= MIN_AVOIDED_RUNS:
        evidence = f"p50 {fmt.secs(s.p50_s)} over its {s.samples} runs vs {fmt.secs(s.peers_p50_s)}"
    else:
        evidence = f"the balancer's estimate: {fmt.secs(s.p50_s)} vs {fmt.secs(s.peers_p50_s)} for its peers"
    summary = (f"agent {s.agent_id} is {s.ratio:.1f}x slower than its peers on {s.kind} ({evidence}); "
               f"the balancer routes around it, so its {s.capacity} slot(s) sit idle "
               f"({fmt.pct(s.utilization)} busy, its peers {fmt.pct(s.peers_utilization)})")
    recs = []
    if s.version != s.peer_version:
        recs.append(f"it runs version {s.version or '(none)'}, its peers {s.peer_version or '(none)'}: "
                    "compare the builds")
    recs.append(f"drain it and replace it, or fix its host (CPU steal, throttling, swapping): "
                f"swarmmesh drain {s.agent_id}; until then the fleet has {s.capacity} slot(s) less than it seems")
    return Finding(Severity.INFO, "slow_agent", s.agent_id, summary, tuple(recs),
                   (*_figures(s), ("capacity", s.capacity), ("estimate_s", s.estimate_s)))


def memory_leak(agent_id: str, v: LeakVerdict, rss: int, sites: Sequence[tuple[AllocationSite, int]],
                cfg: ProfilerConfig) -> Finding | None:
    if not v.leaking:
        return None
    limit = cfg.agent_memory_limit_bytes
    to_limit = (limit - rss) / v.growth_bytes_per_s if limit and v.growth_bytes_per_s > 0 else -1.0
    doubles_within_hour = v.growth_bytes_per_s * 3600 >= rss
    severity = Severity.CRITICAL if (0 <= to_limit <= 3600 or doubles_within_hour) else Severity.WARNING
    summary = (f"agent {agent_id} memory grows {fmt.byte_rate(v.growth_bytes_per_s)} "
               f"(R² {v.r2:.2f} over {fmt.secs(v.span_s)}): {fmt.size(rss)} now")
    if limit:
        summary += (f", over its {fmt.size(limit)} limit" if to_limit <= 0
                    else f", reaches its {fmt.size(limit)} limit in {fmt.secs(to_limit)}")
    recs = []
    if sites:
        where = "; ".join(
            f"{s.where} " + (f"+{fmt.size(grew)} " if grew > 0 else "")
            + f"({fmt.size(s.size_bytes)} in {fmt.count(s.count)} blocks)" for s, grew in sites)
        recs.append(f"largest {'growing ' if sites[0][1] > 0 else ''}allocation sites: {where}")
    else:
        recs.append("start its sidecar with --tracemalloc-top 10 to see which lines hold the memory "
                    "(costs some CPU)")
    recs.append("look for what only grows in its handlers: module-level dicts and lists, memoized results, "
                "per-task objects kept by callbacks")
    recs.append(f"restart it before it runs out; drain first so nothing is lost: swarmmesh drain {agent_id}")
    figures = [("growth_bytes_per_s", v.growth_bytes_per_s), ("r2", v.r2), ("samples", v.samples),
               ("span_s", v.span_s), ("rss_bytes", rss)]
    if limit:
        figures += [("limit_bytes", limit), ("seconds_to_limit", max(0.0, to_limit))]
    return Finding(severity, "memory_leak", agent_id, summary, tuple(recs), tuple(figures))
