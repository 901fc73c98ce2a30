"""One window's recorded attempts, summed per kind, per agent and per (kind, agent)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from coordinator.profile.percentiles import Weighted, phase_stats
from coordinator.profile.report import PhaseStats
from coordinator.profile.samples import Bucket, Counts, PairKey, Sample


@dataclass(slots=True)
class Agg(Counts):
    # (weight, samples) per bucket.
    groups: list[tuple[int, list[Sample]]] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    # busy_s() once computed (< 0 before).
    _busy: float = -1.0

    def merge(self, other: Agg) -> None:
        self.add_counts(other)
        self.groups.extend(other.groups)
        if other.errors:
            self.errors.update(other.errors)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    def phases(self) -> tuple[PhaseStats, ...]:
        return phase_stats(self.groups)

    def quantile(self, phase: int, q: float) -> float:
        """One quantile of one phase (index into PHASES), in seconds."""
        w = Weighted()
        for weight, samples in self.groups:
            w.add(weight, [s[phase] for s in samples])
        return w.quantiles((q,))[0]

    def busy_s(self) -> float:
        """Seconds of agent slots the attempts held (assignment to result), estimated from the samples."""
        if self._busy < 0:
            self._busy = sum(w * sum(s[4] - s[0] for s in samples) for w, samples in self.groups)
        return self._busy

    def exec_stats(self) -> tuple[float, int, float, float]:
        """Of successful attempts that ran the handler: the median handler time, how many samples it
        rests on, the fastest of them, and how far apart in time they were assigned (first to last)."""
        w = Weighted()
        n = 0
        fastest = math.inf
        first, last = math.inf, -math.inf
        for weight, samples in self.groups:
            values = []
            for s in samples:
                if not s[5]:
                    values.append(s[3])
                    first, last = min(first, s[6]), max(last, s[6])
            if values:
                n += len(values)
                fastest = min(fastest, min(values))
                w.add(weight, values)
        if not n:
            return 0.0, 0, 0.0, 0.0
        return w.quantiles((0.5,))[0], n, fastest, last - first


@dataclass(slots=True)
class WindowView:
    kinds: dict[str, Agg] = field(default_factory=dict)
    agents: dict[str, Agg] = field(default_factory=dict)
    pairs: dict[PairKey, Agg] = field(default_factory=dict)
    arrivals: Counter[str] = field(default_factory=Counter)
    all: Agg = field(default_factory=Agg)


    def subset(self, include: Callable[[str, str], bool]) -> WindowView:
        """The same window, only the (kind, agent) pairs `include` accepts."""
        return _rollup({key: agg for key, agg in self.pairs.items() if include(*key)}, self.arrivals)


def aggregate(buckets: Iterable[Bucket]) -> WindowView:
    """Sum the buckets per (kind, agent), then per kind, per agent and overall."""
    pairs: dict[PairKey, Agg] = {}
    arrivals: Counter[str] = Counter()
    for b in buckets:
        arrivals.update(b.arrivals)
        stride = b.stride
        # Inlined: this loop runs once per (kind, agent) per second of the window.
        for key, ps in b.pairs.items():
            agg = pairs.get(key)
            if agg is None:
                agg = pairs[key] = Agg()
            agg.n += ps.n
            agg.failed += ps.failed
            if ps.lookups:
                agg.lookups += ps.lookups
                agg.hits += ps.hits
                agg.repeats += ps.repeats
                agg.repeat_hits += ps.repeat_hits
                agg.scattered += ps.scattered
                agg.unpopular += ps.unpopular
            if ps.samples:
                agg.groups.append((stride, ps.samples))
            if ps.errors:
                agg.errors.update(ps.errors)
    return _rollup(pairs, arrivals)


def _rollup(pairs: dict[PairKey, Agg], arrivals: Counter[str]) -> WindowView:
    view = WindowView(pairs=pairs, arrivals=arrivals)
    for (kind, agent), agg in pairs.items():
        for key, table in ((kind, view.kinds), (agent, view.agents)):
            total = table.get(key)
            if total is None:
                total = table[key] = Agg()
            total.merge(agg)
        view.all.merge(agg)
    return view
