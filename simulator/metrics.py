"""What a run measured: latency percentiles, waits, utilization, fairness."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from simulator.model import Scenario


@dataclass(frozen=True, slots=True)
class TaskSample:
    stream: str
    tenant: str
    priority: int
    submitted: float
    assigned: float
    finished: float
    agent: str
    failed: bool
    cache_hit: bool


@dataclass(frozen=True, slots=True)
class Summary:
    tasks: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_wait_s: float
    failed: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    if not values or not any(values):
        return math.nan
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def summarize(samples: list[TaskSample]) -> Summary:
    lat = sorted((s.finished - s.submitted) * 1000 for s in samples)
    return Summary(
        tasks=len(samples),
        p50_ms=percentile(lat, 50),
        p99_ms=percentile(lat, 99),
        p999_ms=percentile(lat, 99.9),
        mean_ms=sum(lat) / len(lat) if lat else math.nan,
        max_wait_s=max((s.assigned - s.submitted for s in samples), default=0.0),
        failed=sum(s.failed for s in samples),
    )


class RunResult:
    """Tasks submitted in [warmup_s, duration_s) are measured; the run drains them."""

    def __init__(self, scenario: str, strategy: str, duration_s: float, warmup_s: float) -> None:
        self.scenario = scenario
        self.strategy = strategy
        self.duration_s = duration_s
        self.warmup_s = warmup_s
        self.samples: list[TaskSample] = []
        self.rejected: dict[str, int] = {}
        self.utilization = 0.0
        self.agent_share: dict[str, float] = {}
        self.ended_at = 0.0
        self._open = 0

    def _measured(self, t: float) -> bool:
        return self.warmup_s <= t < self.duration_s

    def submitted(self, stream: str, t: float) -> None:
        if self._measured(t):
            self._open += 1

    def record(self, sample: TaskSample) -> None:
        if self._measured(sample.submitted):
            self._open -= 1
            self.samples.append(sample)

    def unfinished(self, scenario: Scenario) -> bool:
        return self._open > 0

    def finish(self, now: float, agents: dict[str, tuple[float, int, int]], scenario: Scenario,
               submitted: int) -> None:
        self.ended_at = now
        slots = sum(cap for _, cap, _ in agents.values())
        busy = sum(b for b, _, _ in agents.values())
        self.utilization = busy / (slots * max(now, 1e-9)) if slots else 0.0
        done = sum(n for _, _, n in agents.values()) or 1
        self.agent_share = {a: n / done for a, (_, _, n) in agents.items()}

    # -- views ----------------------------------------------------------------

    def summary(self, stream: str | None = None) -> Summary:
        return summarize([s for s in self.samples if stream is None or s.stream == stream])

    def throughput_by_tenant(self) -> dict[str, float]:
        """Tasks per second each tenant got done during the measured window."""
        window = self.duration_s - self.warmup_s
        out: dict[str, float] = {}
        for s in self.samples:
            if s.finished < self.duration_s:
                out[s.tenant] = out.get(s.tenant, 0.0) + 1.0 / window
        return out

    def jain(self) -> float:
        """Over tenants' served throughput; NaN with fewer than two tenants."""
        shares = list(self.throughput_by_tenant().values())
        return jain(shares) if len(shares) > 1 else math.nan

    def cache_hit_rate(self) -> float:
        keyed = len(self.samples)
        return sum(s.cache_hit for s in self.samples) / keyed if keyed else math.nan

    def as_dict(self) -> dict[str, Any]:
        streams = sorted({s.stream for s in self.samples})
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "all": self.summary().as_dict(),
            "streams": {name: self.summary(name).as_dict() for name in streams},
            "utilization": self.utilization,
            "jain": self.jain(),
            "throughput_by_tenant": self.throughput_by_tenant(),
            "rejected": dict(self.rejected),
            "agent_share": self.agent_share,
            "cache_hit_rate": self.cache_hit_rate(),
        }
