"""What a journal gives back to a restarted core, and the leases it recovers.

A journal keeps every task's latest state. On restart the core is rebuilt from
it (MeshCore.restore) before any submission or agent arrives: pending tasks
are queued again in the order they waited, finished ones are retained in the
order they finished, and idempotency keys point at the tasks they named.

A task that was ASSIGNED comes back held by its agent under an orphaned lease:
no session owns it yet. The agent's first session after the restart adopts the
leases it says it still holds (Registration.held), so a result it finished
meanwhile is recorded rather than run again; its orphaned leases it does not
claim, and any orphaned lease still unclaimed lease_timeout_s after the
restart, are lost leases like any other (back to the queue, attempt + 1).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from coordinator.core.model import Outcome, TaskRecord, TaskSpec, TaskState


@dataclass(frozen=True, slots=True)
class SavedTask:
    """One task as the journal last wrote it. `state` is the raw int: the
    journal stores states by value and does not know their names."""

    task_id: str
    seq: int
    spec: TaskSpec
    state: int
    attempt: int
    agent_id: str
    last_agent: str
    # Agent id per attempt (TaskRecord.history).
    history: tuple[str, ...]
    outcome: Outcome | None
    created_at: float
    queued_at: float
    assigned_at: float | None
    finished_at: float | None
    deadline: float | None
    max_attempts: int
    # Retries (see retry.py): where the current run of attempts began, when a
    # task waiting out a backoff may be queued again, and what the last
    # retried attempt ended with.
    run_start: int = 0
    retry_at: float | None = None
    last_failure: Outcome | None = None


@dataclass(frozen=True, slots=True)
class Saved:
    """Everything recovery needs. id_prefix and last_seq carry the task id
    sequence on: new ids continue after the highest one ever handed out, even
    one whose task the journal has since compacted away."""

    id_prefix: str = ""
    last_seq: int = 0
    tasks: tuple[SavedTask, ...] = ()


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore rebuilt, for the log line and stats."""

    pending: int = 0
    assigned: int = 0
    finished: int = 0
    idempotency_keys: int = 0

    @property
    def tasks(self) -> int:
        return self.pending + self.assigned + self.finished


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A Saved state turned into the core's records, each list in the order
    the core must take it in."""

    tasks: dict[str, TaskRecord]
    idem: dict[tuple[str, str], str]
    pending: list[TaskRecord]  # queue order
    backoff: list[tuple[TaskRecord, float]]  # pending, waiting out a retry's backoff until then
    assigned: list[TaskRecord]
    finished: list[TaskRecord]  # retention order
    deadlines: list[tuple[float, int, TaskRecord]]  # a heap
    last_seq: int
    report: Restored


def rebuild(saved: Saved) -> Rebuilt:
    tasks: dict[str, TaskRecord] = {}
    idem: dict[tuple[str, str], str] = {}
    pending: list[TaskRecord] = []
    backoff: list[tuple[TaskRecord, float]] = []
    assigned: list[TaskRecord] = []
    finished: list[TaskRecord] = []
    deadlines: list[tuple[float, int, TaskRecord]] = []
    last_seq = saved.last_seq
    for t in sorted(saved.tasks, key=lambda t: t.seq):  # the core's task table is in submission order
        rec = record_of(t)
        tasks[rec.task_id] = rec
        last_seq = max(last_seq, rec.seq)
        if rec.spec.idempotency_key:
            idem[(rec.spec.tenant, rec.spec.idempotency_key)] = rec.task_id
        if rec.state.terminal:
            finished.append(rec)
            continue
        if rec.state == TaskState.ASSIGNED and rec.agent_id:
            assigned.append(rec)
        elif t.retry_at is not None:
            rec.state = TaskState.PENDING
            backoff.append((rec, t.retry_at))
        else:
            rec.state = TaskState.PENDING
            pending.append(rec)
        if rec.deadline is not None:
            deadlines.append((rec.deadline, rec.seq, rec))
    pending.sort(key=queue_order)
    finished.sort(key=retention_order)
    heapq.heapify(deadlines)
    report = Restored(pending=len(pending) + len(backoff), assigned=len(assigned), finished=len(finished),
                      idempotency_keys=len(idem))
    return Rebuilt(tasks, idem, pending, backoff, assigned, finished, deadlines, last_seq, report)


def record_of(t: SavedTask) -> TaskRecord:
    return TaskRecord(
        task_id=t.task_id, spec=t.spec, seq=t.seq, created_at=t.created_at, deadline=t.deadline,
        max_attempts=t.max_attempts, state=TaskState(t.state), attempt=t.attempt, agent_id=t.agent_id,
        last_agent=t.last_agent, history=list(t.history), outcome=t.outcome, assigned_at=t.assigned_at,
        finished_at=t.finished_at, queued_at=t.queued_at, run_start=t.run_start, last_failure=t.last_failure,
    )


def queue_order(rec: TaskRecord) -> tuple[float, int]:
    """Pushing in this order gives each task the place it had: queue tokens
    break ties among equal queue keys, and they were handed out as tasks
    entered the queue (acceptance, or a lost lease putting one back)."""
    return rec.queued_at, rec.seq


def retention_order(rec: TaskRecord) -> tuple[float, int]:
    """Oldest first: the order in which retention drops finished tasks."""
    return rec.finished_at or 0.0, rec.seq


class Orphans:
    """Leases of recovered ASSIGNED tasks, per agent, until the agent claims
    them or they expire. Empty (and free to check) except after a restore."""

    def __init__(self) -> None:
        self._by_agent: dict[str, dict[str, int]] = {}
        self._expires: dict[str, float] = {}

    def __len__(self) -> int:
        return sum(len(leases) for leases in self._by_agent.values())

    def __bool__(self) -> bool:
        return bool(self._by_agent)

    def hold(self, agent_id: str, task_id: str, attempt: int, expires_at: float) -> None:
        self._by_agent.setdefault(agent_id, {})[task_id] = attempt
        self._expires[agent_id] = expires_at

    def claim(self, agent_id: str) -> dict[str, int]:
        """The agent's orphaned leases (task_id -> attempt), forgotten here."""
        self._expires.pop(agent_id, None)
        return self._by_agent.pop(agent_id, {})

    def expired(self, now: float) -> list[tuple[str, dict[str, int]]]:
        """Agents whose orphaned leases ran out by `now`, with those leases (forgotten here)."""
        if not self._by_agent:
            return []
        gone = [a for a, at in self._expires.items() if at <= now]
        return [(a, self.claim(a)) for a in gone]

    @staticmethod
    def still_orphaned(rec: TaskRecord, agent_id: str, attempt: int) -> bool:
        """The task still waits for this agent under this lease: not cancelled,
        expired or handed to a session since the restore."""
        return (rec.state == TaskState.ASSIGNED and rec.session == 0 and rec.agent_id == agent_id
                and rec.attempt == attempt)
