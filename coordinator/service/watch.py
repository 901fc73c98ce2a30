"""Fan-out of task state changes to WatchTasks streams.

The core calls `WatchHub.on_change` synchronously on every transition; the hub
only touches tasks somebody watches, so unwatched tasks cost one dict lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from coordinator.core.model import TaskRecord, TaskState
from coordinator.service.convert import task_to_proto
from swarmmesh.v1 import types_pb2


class Watcher:
    def __init__(self, all_updates: bool, payloads: bool, event: asyncio.Event | None = None) -> None:
        self.all_updates = all_updates
        self.payloads = payloads
        self.remaining: set[str] = set()
        # Tenant followed (WatchHub.follow), or "" for a watcher of fixed ids.
        self.following = ""
        # Terminal records are final, so they are serialised lazily when sent;
        # intermediate updates are serialised at once, before they change again.
        self._buffer: list[TaskRecord | types_pb2.Task] = []
        # Shared when one writer serves several watchers (a client session).
        self.event = event or asyncio.Event()

    def push(self, rec: TaskRecord) -> None:
        if rec.state.terminal:
            self.remaining.discard(rec.task_id)
            self._buffer.append(rec)
        elif self.all_updates:
            self._buffer.append(task_to_proto(rec, payloads=self.payloads))
        else:
            return
        self.event.set()

    def take(self) -> list[types_pb2.Task]:
        items, self._buffer = self._buffer, []
        return [i if isinstance(i, types_pb2.Task) else task_to_proto(i, payloads=self.payloads) for i in items]

    @property
    def done(self) -> bool:
        return not self.following and not self.remaining and not self._buffer


class WatchHub:
    def __init__(self) -> None:
        self._by_task: dict[str, list[Watcher]] = {}
        self._by_tenant: dict[str, list[Watcher]] = {}

    def on_change(self, rec: TaskRecord, old: TaskState | None = None) -> None:
        if self._by_tenant:
            followers = self._by_tenant.get(rec.spec.tenant)
            if followers is not None:
                for w in followers:
                    w.push(rec)
        watchers = self._by_task.get(rec.task_id)
        if watchers is None:
            return
        for w in watchers:
            w.push(rec)
        if rec.state.terminal:
            del self._by_task[rec.task_id]

    def follow(self, tenant: str, *, all_updates: bool, payloads: bool) -> Watcher:
        """A watcher of every future update of a tenant's tasks; it is never done."""
        w = Watcher(all_updates, payloads)
        w.following = tenant
        self._by_tenant.setdefault(tenant, []).append(w)
        return w

    def subscribe(self, recs: Iterable[TaskRecord], *, all_updates: bool, payloads: bool) -> Watcher:
        return self.add(Watcher(all_updates, payloads), recs)

    def add(self, w: Watcher, recs: Iterable[TaskRecord]) -> Watcher:
        """Watch these tasks too (terminal ones are pushed at once)."""
        for rec in recs:
            if rec.state.terminal or w.all_updates:
                w.push(rec)
            if not rec.state.terminal and rec.task_id not in w.remaining:
                w.remaining.add(rec.task_id)
                self._by_task.setdefault(rec.task_id, []).append(w)
        w.event.set()
        return w

    def unsubscribe(self, w: Watcher) -> None:
        if w.following:
            followers = self._by_tenant.get(w.following, [])
            if w in followers:
                followers.remove(w)
            if not followers:
                self._by_tenant.pop(w.following, None)
        self.drop(w, list(w.remaining))

    def drop(self, w: Watcher, task_ids: Iterable[str]) -> None:
        """`w` no longer watches these tasks (those it does not watch are skipped)."""
        remaining = w.remaining
        for task_id in task_ids:
            if task_id not in remaining:
                continue
            remaining.discard(task_id)
            watchers = self._by_task.get(task_id)
            if watchers is None:
                continue
            try:
                watchers.remove(w)
            except ValueError:
                pass
            if not watchers:
                del self._by_task[task_id]

    @property
    def watched(self) -> int:
        return len(self._by_task)
