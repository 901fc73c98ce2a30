"""Read-only views of the core for people and the API: listings, and why a
task waits or went where it went. Nothing here changes state."""

from __future__ import annotations

from collections.abc import Iterable

from coordinator.core.model import TaskRecord, TaskState
from coordinator.core.queue import TaskQueue, route_key
from coordinator.core.registry import Registry


def list_tasks(tasks: dict[str, TaskRecord], states: Iterable[TaskState], kind: str, tenant: str,
               agent_id: str, limit: int) -> tuple[list[TaskRecord], int]:
    """Newest first, filtered; also how many matched in all."""
    wanted = set(states)
    found: list[TaskRecord] = []
    total = 0
    for rec in reversed(tasks.values()):
        if wanted and rec.state not in wanted:
            continue
        if kind and rec.spec.kind != kind:
            continue
        if tenant and rec.spec.tenant != tenant:
            continue
        if agent_id and rec.agent_id != agent_id:
            continue
        total += 1
        if len(found) < limit:
            found.append(rec)
    return found, total


def pending_reason(rec: TaskRecord, registry: Registry, queue: TaskQueue) -> str:
    if rec.state != TaskState.PENDING:
        return ""
    key = route_key(rec)
    eligible = registry.eligible(key)
    if not eligible:
        return registry.why_unroutable(key)
    ahead = queue.position(rec)
    where = "over 100,000" if ahead is None else str(ahead)
    return (f"waiting for a free slot on {len(eligible)} eligible agent(s); "
            f"{where} task(s) of tenant {rec.spec.tenant!r} ahead of it")


def routing_reason(rec: TaskRecord) -> str:
    """Why the current (or last) attempt went to its agent; empty before the first assignment."""
    if not rec.route_strategy:
        return ""
    return f"{rec.route_reason} (score {rec.route_score:.4g}; {rec.route_candidates} agent(s) had a free slot)"
