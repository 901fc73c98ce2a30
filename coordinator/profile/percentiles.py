"""Percentiles of sampled attempts, where each sample stands for several.

The recorder (samples.py) keeps every n-th attempt of a busy second, so a
window's samples come in groups that each carry their bucket's stride as a
weight. `Weighted` reads quantiles, means and maxima off such groups as if
every sample had been repeated `weight` times, and `phase_stats` turns a
window's groups into the PhaseStats of every phase.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from coordinator.profile.report import PHASES, PhaseStats
from coordinator.profile.samples import Sample


class Weighted:
    """Values that each stand for an integer number of observations."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[int, list[float]] = {}

    def add(self, weight: int, values: Iterable[float]) -> None:
        group = self._groups.get(weight)
        if group is None:
            group = self._groups[weight] = []
        group.extend(values)

    def weight(self) -> int:
        return sum(w * len(v) for w, v in self._groups.items())

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Weighted nearest rank: the smallest value with at least q of the weight at or below it."""
        groups = [(w, sorted(v)) for w, v in self._groups.items() if v]
        if not groups:
            return [0.0 for _ in qs]
        total = sum(w * len(v) for w, v in groups)
        if len(groups) == 1:
            v = groups[0][1]
            return [v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))] for q in qs]
        values = sorted(itertools.chain.from_iterable(v for _, v in groups))

        def rank(x: float) -> int:
            return sum(w * bisect_right(v, x) for w, v in groups)

        out = []
        for q in qs:
            target = q * total
            lo, hi = 0, len(values) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if rank(values[mid]) >= target:
                    hi = mid
                else:
                    lo = mid + 1
            out.append(values[lo])
        return out

    def mean(self) -> float:
        total = self.weight()
        return sum(w * sum(v) for w, v in self._groups.items()) / total if total else 0.0

    def max(self) -> float:
        return max((max(v) for v in self._groups.values() if v), default=0.0)


def phase_stats(groups: Iterable[tuple[int, Sequence[Sample]]]) -> tuple[PhaseStats, ...]:
    """PhaseStats (milliseconds) for every phase of the samples, given as (weight, samples) groups."""
    # Few distinct weights, many small groups: join groups of one weight first.
    joined: dict[int, list[Sample]] = {}
    for weight, samples in groups:
        if samples:
            same = joined.get(weight)
            if same is None:
                same = joined[weight] = []
            same.extend(samples)
    by_phase = [Weighted() for _ in PHASES]
    for weight, samples in joined.items():
        for i, w in enumerate(by_phase):
            w.add(weight, [s[i] for s in samples])
    count = by_phase[-1].weight()
    if not count:
        return ()
    total_mean = by_phase[-1].mean()
    out = []
    for name, w in zip(PHASES, by_phase, strict=True):
        mean = w.mean()
        p50, p90, p99 = w.quantiles((0.5, 0.9, 0.99))
        share = mean / total_mean if total_mean > 0 else 0.0
        out.append(PhaseStats(name, count, mean * 1e3, p50 * 1e3, p90 * 1e3, p99 * 1e3, w.max() * 1e3,
                              min(1.0, share)))
    return tuple(out)
