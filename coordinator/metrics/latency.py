"""Latency per phase and task kind, as cumulative bucket counts.

`PhaseLatency.on_change` is a core listener: it runs after every task state
change, on the task path, about three times per task. It returns at once
unless the task just finished; then it bumps one bucket per phase in plain
lists (a bisect and two list stores each). Nothing is cumulated, sorted or
copied until someone reads: `snapshot()` does that, on the event loop,
once per scrape or export.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from coordinator.core.model import TaskRecord, TaskState

# Upper bounds in seconds: from a no-op handler's tens of microseconds to a
# five-minute batch job. Prometheus' `le` buckets; +Inf is implied.
BOUNDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)

# The phases, in the order of their slots in a kind's arrays.
PHASES: tuple[str, ...] = ("queue_wait", "round_trip", "handler", "submit_to_finish")
QUEUE_WAIT, ROUND_TRIP, HANDLER, SUBMIT_TO_FINISH = range(4)

# Distinct kinds kept apart by default; later kinds are counted under OTHER,
# so a client that invents a kind per task cannot grow the metrics without bound.
DEFAULT_MAX_KINDS = 200
OTHER = "other"

# Outcomes in which the handler did not run to its end: the agent went away,
# the deadline cut it off, or it never started. Their duration says nothing
# about how long the kind's handler takes.
_NOT_A_HANDLER_RUN = frozenset({"lease_lost", "deadline_exceeded", "no_handler", "over_capacity"})

_ASSIGNED = TaskState.ASSIGNED
_SUCCEEDED = TaskState.SUCCEEDED
_CANCELLED = TaskState.CANCELLED


@dataclass(frozen=True, slots=True)
class PhaseHistogram:
    """One phase of one kind: cumulative counts per bound (the last is +Inf)."""

    kind: str
    phase: str
    cumulative: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return self.cumulative[-1]


class _Kind:
    __slots__ = ("counts", "sums")

    def __init__(self) -> None:
        # Per phase, len(BOUNDS) + 1 per-bucket (not cumulative) counts, flat.
        self.counts = [0] * (len(PHASES) * (len(BOUNDS) + 1))
        self.sums = [0.0] * len(PHASES)


class PhaseLatency:
    """Core listener: where each finished task's time went, per kind."""

    def __init__(self, max_kinds: int = DEFAULT_MAX_KINDS) -> None:
        self.max_kinds = max_kinds
        self._kinds: dict[str, _Kind] = {}

    def on_change(self, rec: TaskRecord, old: TaskState | None) -> None:
        # Only a terminal transition sets finished_at, and it happens once per task.
        fin = rec.finished_at
        if fin is None:
            return
        h = self._kinds.get(rec.spec.kind)
        if h is None:
            h = self._kind(rec.spec.kind)
        counts = h.counts
        sums = h.sums
        b = BOUNDS
        n = len(b) + 1
        v = fin - rec.created_at
        counts[SUBMIT_TO_FINISH * n + bisect_left(b, v)] += 1
        sums[SUBMIT_TO_FINISH] += v
        if old is not _ASSIGNED:
            return  # cancelled or expired while queued: no attempt to measure
        state = rec.state
        if state is _CANCELLED:
            return
        assigned = rec.assigned_at
        if assigned is None:  # cannot happen for a task leaving ASSIGNED
            return
        v = assigned - rec.queued_at
        counts[bisect_left(b, v)] += 1  # QUEUE_WAIT is slot 0
        sums[QUEUE_WAIT] += v
        v = fin - assigned
        counts[ROUND_TRIP * n + bisect_left(b, v)] += 1
        sums[ROUND_TRIP] += v
        o = rec.outcome
        if o is None or o.cache_hit or (state is not _SUCCEEDED and o.error_type in _NOT_A_HANDLER_RUN):
            return
        v = o.duration_us / 1e6
        counts[HANDLER * n + bisect_left(b, v)] += 1
        sums[HANDLER] += v

    def _kind(self, kind: str) -> _Kind:
        if len(self._kinds) >= self.max_kinds:
            kind = OTHER
            found = self._kinds.get(OTHER)
            if found is not None:
                return found
        h = self._kinds[kind] = _Kind()
        return h

    def snapshot(self) -> tuple[PhaseHistogram, ...]:
        """Every kind's phases that saw at least one task, cumulated; by kind, then phase."""
        n = len(BOUNDS) + 1
        out: list[PhaseHistogram] = []
        for kind in sorted(self._kinds):
            h = self._kinds[kind]
            for p, phase in enumerate(PHASES):
                acc = 0
                cumulative = []
                for c in h.counts[p * n:(p + 1) * n]:
                    acc += c
                    cumulative.append(acc)
                if acc:
                    out.append(PhaseHistogram(kind, phase, tuple(cumulative), h.sums[p]))
        return tuple(out)
