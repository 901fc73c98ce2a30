"""Percentiles and small summaries for benchmark samples."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return float(sorted_values[rank - 1])


def latency_summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    values = sorted(samples_s)
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "p999_ms": percentile(values, 99.9) * 1000,
        "max_ms": (values[-1] * 1000) if values else float("nan"),
        "mean_ms": statistics.fmean(values) * 1000 if values else float("nan"),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def poisson_offsets(rate: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times (seconds from start) of a Poisson process, precomputed so
    an open-loop generator never lets the system under test pace it."""
    rng = random.Random(seed)
    out: list[float] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        out.append(t)
        t += rng.expovariate(rate)
    return out
