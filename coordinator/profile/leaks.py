"""Is an agent's memory leaking? A straight-line fit that has to earn its verdict.

Memory that grows steadily for the whole window is a leak; memory that grew
while the process warmed up and then levelled off, that rises and falls with
garbage collection, or that wobbles with load, is not. So besides a least
squares slope above the threshold, a leak needs:

* coverage: samples spanning at least 80% of the window (a young process
  is still warming up, and a short trace fits anything);
* fit: R² of the line at least `min_r2` (a sawtooth fits badly);
* persistence: the window split in four, each quarter's median above the
  previous one in at least two of three steps and the last above the first,
  and the slope of the second half at least a third of the whole (growth that
  stopped half way was warm-up).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.core.model import AllocationSite

COVERAGE = 0.8


@dataclass(frozen=True, slots=True)
class Trend:
    slope: float  # per second
    intercept: float  # value at t = 0
    r2: float
    n: int
    span_s: float

    def at(self, t: float) -> float:
        return self.intercept + self.slope * t


def fit(points: Sequence[tuple[float, float]]) -> Trend | None:
    """Least squares line through (t, value) points; None for fewer than two distinct times."""
    n = len(points)
    if n < 2:
        return None
    t0 = points[0][0]
    mt = sum(t - t0 for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    stt = sum((t - t0 - mt) ** 2 for t, _ in points)
    if stt <= 0:
        return None
    stv = sum((t - t0 - mt) * (v - mv) for t, v in points)
    svv = sum((v - mv) ** 2 for _, v in points)
    slope = stv / stt
    r2 = (stv * stv) / (stt * svv) if svv > 0 else 1.0
    intercept = mv - slope * (mt + t0)
    return Trend(slope, intercept, r2, n, points[-1][0] - t0)


@dataclass(frozen=True, slots=True)
class LeakVerdict:
    leaking: bool
    growth_bytes_per_s: float  # fitted slope; 0 when too few samples
    r2: float
    samples: int
    span_s: float
    # Why it is not called a leak (empty when it is).
    reason: str = ""


def assess(points: Sequence[tuple[float, float]], window_s: float, min_samples: int, min_growth: float,
           min_r2: float) -> LeakVerdict:
    """Judge the (t, bytes) points of the last `window_s` seconds."""
    if points:
        last = points[-1][0]
        points = [p for p in points if p[0] >= last - window_s]
    n = len(points)
    trend = fit(points) if n >= min_samples else None
    if trend is None:
        return LeakVerdict(False, 0.0, 0.0, n, 0.0, "too few samples")

    def no(reason: str) -> LeakVerdict:
        return LeakVerdict(False, trend.slope, trend.r2, n, trend.span_s, reason)

    if trend.slope < min_growth:
        return no("growth below the threshold")
    if trend.span_s < COVERAGE * window_s:
        return no("window not covered yet")
    if trend.r2 < min_r2:
        return no("memory does not follow a line")
    t0 = points[0][0]
    quarter = trend.span_s / 4
    medians = []
    for i in range(4):
        part = [v for t, v in points if t0 + i * quarter <= t <= t0 + (i + 1) * quarter]
        if not part:
            return no("gaps in the samples")
        medians.append(statistics.median(part))
    rises = sum(1 for a, b in itertools.pairwise(medians) if b > a)
    if rises < 2 or medians[-1] <= medians[0]:
        return no("growth does not persist")
    late = fit([p for p in points if p[0] >= t0 + trend.span_s / 2])
    if late is None or late.slope < trend.slope / 3:
        return no("growth levelled off")
    return LeakVerdict(True, trend.slope, trend.r2, n, trend.span_s)


def growing_sites(before: Sequence[AllocationSite], now: Sequence[AllocationSite], top: int = 3
                  ) -> list[tuple[AllocationSite, int]]:
    """Allocation sites by growth since `before` (or by size when nothing grew), with the growth in bytes."""
    old = {s.where: s.size_bytes for s in before}
    grown = sorted(((s, s.size_bytes - old.get(s.where, 0)) for s in now), key=lambda p: -p[1])
    if before and grown and grown[0][1] > 0:
        return [p for p in grown if p[1] > 0][:top]
    return [(s, 0) for s in sorted(now, key=lambda s: -s.size_bytes)[:top]]
