"""The pending-task queue: per tenant, per routing class, a heap by queue key.

Tasks in one routing class are interchangeable for eligibility, so a class
whose requirements no agent meets waits without blocking any other class.
Tenants are kept apart so the dispatcher can share the fleet fairly between
them (fairness.py says in which order, and what the queue key means).

Heaps keep entries of tasks that left PENDING (cancelled, expired, taken from
the back) until they surface; an entry is live only while its token matches
the task's, and `_compact` bounds how many dead ones pile up.
"""

from __future__ import annotations

import heapq

from coordinator.core.fairness import Entry, FairShare, Tenant
from coordinator.core.model import TaskRecord, TaskState
from coordinator.core.registry import RouteKey

_PENDING = TaskState.PENDING


def route_key(rec: TaskRecord) -> RouteKey:
    return rec.spec.kind, rec.spec.required_labels


class TaskQueue:
    def __init__(self, fair: FairShare | None = None) -> None:
        self.fair = fair or FairShare()
        self.tenants: dict[str, Tenant] = {}
        # Pending tasks per routing class, all tenants.
        self.depths: dict[RouteKey, int] = {}
        self._depth = 0
        self._dead = 0
        self._token = 0

    def __len__(self) -> int:
        return self._depth

    def push(self, rec: TaskRecord) -> None:
        key = rec.spec.kind, rec.spec.required_labels
        name = rec.spec.tenant
        t = self.tenants.get(name)
        if t is None:
            t = self.tenants[name] = self.fair.new_tenant(name)
        heap = t.heaps.get(key)
        if heap is None:
            heap = t.heaps[key] = []
        self._token += 1
        token = rec.qtoken = self._token
        qkey = self.fair.queue_key(rec) if rec.spec.priority else rec.created_at
        heapq.heappush(heap, (qkey, token, rec))
        if t.tails:
            tail = t.tails.get(key)
            if tail is not None:
                heapq.heappush(tail, (-qkey, -token, rec))
        t.pending += 1
        depths = self.depths
        depths[key] = depths.get(key, 0) + 1
        self._depth += 1

    def _left(self, rec: TaskRecord, key: RouteKey, t: Tenant) -> None:
        self._depth -= 1
        t.pending -= 1
        depths = self.depths
        d = depths[key] - 1
        if d:
            depths[key] = d
        else:
            del depths[key]

    def discard(self, rec: TaskRecord) -> None:
        """Account for a task that left PENDING without being popped."""
        self._left(rec, route_key(rec), self.tenants[rec.spec.tenant])
        self._dead += 1
        if self._dead > self._depth + 1024:
            self._compact()

    def _compact(self) -> None:
        # Dead entries (cancelled or expired while queued) would otherwise pin
        # their records until their class is next dispatched, which for an
        # unroutable class may be never.
        for t in self.tenants.values():
            t.tails.clear()
            for key in list(t.heaps):
                heap = [e for e in t.heaps[key] if e[2].qtoken == e[1] and e[2].state == _PENDING]
                if heap:
                    heapq.heapify(heap)
                    t.heaps[key] = heap
                else:
                    del t.heaps[key]
        self._dead = 0

    # -- dispatch -----------------------------------------------------------

    def classes(self) -> list[RouteKey]:
        return list(self.depths)

    def head(self, t: Tenant, key: RouteKey) -> Entry | None:
        """The first live entry of t's class, dropping dead entries on the way."""
        heap = t.heaps.get(key)
        while heap:
            entry = heap[0]
            rec = entry[2]
            if rec.qtoken == entry[1] and rec.state == _PENDING:
                return entry
            heapq.heappop(heap)
            if self._dead:
                self._dead -= 1
        return None

    def pop_head(self, t: Tenant, key: RouteKey) -> TaskRecord:
        """Remove the entry `head` returned."""
        heap = t.heaps[key]
        rec = heapq.heappop(heap)[2]
        if not heap:
            del t.heaps[key]
            t.tails.pop(key, None)
        self._left(rec, key, t)
        return rec

    def pop_tail(self, t: Tenant, key: RouteKey) -> TaskRecord | None:
        """Remove t's last task of the class (the newest, or lowest priority)."""
        heap = t.heaps.get(key)
        if not heap:
            return None
        tail = t.tails.get(key)
        if tail is None or len(tail) > 2 * len(heap) + 64:
            # Built on first use: most classes never need one.
            tail = [(-k, -tok, r) for k, tok, r in heap if r.qtoken == tok and r.state == _PENDING]
            heapq.heapify(tail)
            t.tails[key] = tail
        while tail:
            _, ntok, rec = heapq.heappop(tail)
            if rec.qtoken == -ntok and rec.state == _PENDING:
                self._left(rec, key, t)
                rec.qtoken = 0  # its entry in the head heap is now dead
                self._dead += 1
                return rec
        return None

    def forget_idle(self) -> None:
        """Drop tenants with nothing queued and no recent dispatches (their fair
        share restarts at the current virtual time, as for any idle tenant)."""
        for t in self.tenants.values():
            for key in [k for k, heap in t.heaps.items() if not heap]:
                del t.heaps[key]
                t.tails.pop(key, None)
        idle = [n for n, t in self.tenants.items() if not t.pending and not t.heaps and t.rate < 0.01]
        for name in idle:
            del self.tenants[name]

    # -- diagnostics --------------------------------------------------------

    def entries(self) -> int:
        """Heap entries held, live and dead (what memory the queue pins)."""
        return sum(len(h) for t in self.tenants.values() for h in (*t.heaps.values(), *t.tails.values()))

    def position(self, rec: TaskRecord) -> int | None:
        """Tasks of the same tenant and class ahead of rec: an O(n) diagnostic, so None for huge classes."""
        t = self.tenants.get(rec.spec.tenant)
        heap = t.heaps.get(route_key(rec), []) if t is not None else []
        if len(heap) > 100_000:
            return None
        mine = (self.fair.queue_key(rec), rec.qtoken)
        return sum(1 for k, tok, r in heap if r.qtoken == tok and r.state == _PENDING and (k, tok) < mine)
