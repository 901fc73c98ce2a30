"""Order among queued tasks: weighted fair share across tenants, priorities
with aging within a tenant, and per-tenant admission limits.

Across tenants: start-time fair queuing. Each tenant carries a virtual finish
tag; dispatching one of its tasks advances the tag by 1 / weight, and the
tenant with the lowest tag goes next. A tenant that was idle restarts at the
current virtual time, so it gets its share at once but no credit for having
been idle. Over any stretch in which two tenants both have work waiting, the
tasks dispatched for them differ from their weights' ratio by at most one
task. Priorities do not cross tenants: a tenant cannot buy more than its share
by marking its tasks urgent.

Within a tenant: priority with aging. A task's queue key is its submission
time minus priority * priority_step_s, the advantage capped at +-
aging_bound_s / 2. Every priority level is worth priority_step_s of waiting,
and a task is never overtaken by a task of its tenant submitted more than
aging_bound_s after it, whatever the priorities: so low priority is delayed,
never starved. The key is fixed at submission, so the queue stays a heap.
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.model import CoreError, StatusCode, TaskRecord
from coordinator.core.registry import RouteKey

Entry = tuple[float, int, TaskRecord]  # (queue key, token, record)


@dataclass(frozen=True, slots=True)
class FairnessConfig:
    # Seconds of queue wait one priority level is worth.
    priority_step_s: float = 1.0
    # No task is overtaken by a task of its tenant submitted more than this
    # many seconds after it, whatever their priorities.
    aging_bound_s: float = 60.0
    # (tenant, weight): shares of dispatch under contention; unlisted tenants weigh 1.
    tenant_weights: tuple[tuple[str, float], ...] = ()
    # Pending tasks one tenant may have; beyond it SubmitTasks answers
    # RESOURCE_EXHAUSTED with a retry hint. 0 = no per-tenant limit.
    max_pending_per_tenant: int = 0


class Tenant:
    """One tenant's part of the queue and its fair-share state."""

    __slots__ = ("cost", "finish", "heaps", "name", "order", "pending", "rate", "served", "served_mark", "tails")

    def __init__(self, name: str, weight: float, order: int) -> None:
        self.name = name
        self.cost = 1.0 / weight
        self.finish = 0.0
        self.order = order  # tie-break among equal tags: first seen first
        # Per routing class: a min-heap by queue key, and (built only when a
        # strategy wants the newest task, see TaskQueue.pop_tail) a max-heap.
        self.heaps: dict[RouteKey, list[Entry]] = {}
        self.tails: dict[RouteKey, list[Entry]] = {}
        self.pending = 0
        self.served = 0
        self.served_mark = 0
        self.rate = 0.0  # tasks dispatched per second, smoothed


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    """"tenant=weight,..." -> pairs; ValueError naming the bad part."""
    out: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        try:
            weight = float(raw)
        except ValueError:
            weight = 0.0
        if not sep or not name.strip() or not weight > 0 or weight == float("inf"):
            raise ValueError(f"tenant_weights: {part!r} is not TENANT=WEIGHT with a positive weight")
        out.append((name.strip(), weight))
    return tuple(out)


def retry_after_ms(excess: int, rate: float) -> int:
    """When `excess` tasks will likely have left the queue at `rate` tasks/s."""
    ms = 1000.0 * max(excess, 1) / max(rate, 1.0)
    return int(min(max(ms, 100.0), 30_000.0))


class FairShare:
    def __init__(self, config: FairnessConfig | None = None) -> None:
        self.config = config or FairnessConfig()
        self.vtime = 0.0
        self._weights = dict(self.config.tenant_weights)
        self._order = 0
        self.step = self.config.priority_step_s
        self.half_bound = self.config.aging_bound_s / 2

    def new_tenant(self, name: str) -> Tenant:
        self._order += 1
        return Tenant(name, self._weights.get(name, 1.0), self._order)

    def queue_key(self, rec: TaskRecord) -> float:
        p = rec.spec.priority
        if not p:
            return rec.created_at
        off = p * self.step
        half = self.half_bound
        return rec.created_at - (half if off > half else -half if off < -half else off)

    def charge(self, t: Tenant) -> None:
        """Account one dispatched task to t."""
        start = t.finish if t.finish > self.vtime else self.vtime
        t.finish = start + t.cost
        self.vtime = start
        t.served += 1

    def admit(self, incoming: dict[str, int], tenants: dict[str, Tenant]) -> None:
        """Refuse a batch that would take any tenant over its pending limit."""
        limit = self.config.max_pending_per_tenant
        if not limit:
            return
        for name, n in incoming.items():
            t = tenants.get(name)
            pending = t.pending if t is not None else 0
            if pending + n > limit:
                wait = retry_after_ms(pending + n - limit, t.rate if t is not None else 0.0)
                raise CoreError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"tenant {name!r} has {pending} tasks pending and the limit is {limit} "
                    f"(this batch adds {n}); retry in about {wait} ms",
                    retry_after_ms=wait,
                )

    def tick(self, tenants: dict[str, Tenant], dt: float) -> float:
        """Refresh dispatch rates; returns the total rate over all tenants."""
        total = 0.0
        if dt <= 0:
            return sum(t.rate for t in tenants.values())
        for t in tenants.values():
            now_rate = (t.served - t.served_mark) / dt
            t.served_mark = t.served
            # Smooth over about a second of ticks, whatever the tick interval.
            gain = min(1.0, dt)
            t.rate += (now_rate - t.rate) * gain
            total += t.rate
        return total
