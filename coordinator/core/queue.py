"""The pending-task queue, partitioned by routing class.

Tasks in one class are interchangeable for eligibility, so a class whose
requirements no agent meets waits without blocking any other class. Within a
class, higher priority first, then first come first served.
"""

from __future__ import annotations

import heapq

from coordinator.core.model import TaskRecord, TaskState
from coordinator.core.registry import RouteKey


def route_key(rec: TaskRecord) -> RouteKey:
    return rec.spec.kind, rec.spec.required_labels


class TaskQueue:
    def __init__(self) -> None:
        # Heap entries are (-priority, seq, record). seq is unique, so records
        # are never compared. Entries whose task left PENDING (cancelled,
        # expired) or was re-queued under a new seq are skipped lazily.
        self._classes: dict[RouteKey, list[tuple[int, int, TaskRecord]]] = {}
        self._depth = 0
        self._dead = 0

    def __len__(self) -> int:
        return self._depth

    def push(self, rec: TaskRecord) -> None:
        key = route_key(rec)
        heap = self._classes.get(key)
        if heap is None:
            heap = self._classes[key] = []
        heapq.heappush(heap, (-rec.spec.priority, rec.seq, rec))
        self._depth += 1

    def discard(self, rec: TaskRecord) -> None:
        """Account for a task that left PENDING without being popped."""
        self._depth -= 1
        self._dead += 1
        if self._dead > self._depth + 1024:
            self._compact()

    def _compact(self) -> None:
        # Dead entries (cancelled or expired while queued) would otherwise pin
        # their records until their class is next dispatched, which for an
        # unroutable class may be never.
        for key in list(self._classes):
            heap = [e for e in self._classes[key] if e[2].state == TaskState.PENDING]
            if heap:
                heapq.heapify(heap)
                self._classes[key] = heap
            else:
                del self._classes[key]
        self._dead = 0

    def classes(self) -> list[RouteKey]:
        return list(self._classes)

    def head(self, key: RouteKey) -> TaskRecord | None:
        """The next live task of a class, dropping dead entries on the way."""
        heap = self._classes.get(key)
        while heap:
            _, seq, rec = heap[0]
            if rec.state == TaskState.PENDING and rec.seq == seq:
                return rec
            heapq.heappop(heap)
            self._dead = max(0, self._dead - 1)
        if heap is not None:
            del self._classes[key]
        return None

    def pop(self, key: RouteKey) -> TaskRecord:
        heap = self._classes[key]
        rec = heapq.heappop(heap)[2]
        if not heap:
            del self._classes[key]
        self._depth -= 1
        return rec

    def position(self, rec: TaskRecord) -> int | None:
        """Tasks ahead of rec in its class: an O(n) diagnostic, so None for huge classes."""
        heap = self._classes.get(route_key(rec), [])
        if len(heap) > 100_000:
            return None
        mine = (-rec.spec.priority, rec.seq)
        return sum(1 for p, s, r in heap if r.state == TaskState.PENDING and r.seq == s and (p, s) < mine)
