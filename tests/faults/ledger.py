"""The test client's own account of a scenario: what the coordinator acknowledged
and every completion the client saw, so that a fault cannot hide a lost or
doubly recorded task behind the coordinator's own counters.

A task is *lost* if it was acknowledged and no terminal record of it was ever
seen (or, after a restart, the coordinator no longer knows it). It is
*recorded twice* if two different terminal records were seen for it (another
attempt, agent, state or output), or if one idempotency key was acknowledged
under two task ids.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc

from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2

TERMINAL = frozenset({types_pb2.TASK_STATE_SUCCEEDED, types_pb2.TASK_STATE_FAILED,
                      types_pb2.TASK_STATE_CANCELLED, types_pb2.TASK_STATE_DEAD_LETTER})
# Codes a watch meets while a coordinator is away or shutting down: watch again.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                       grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})


@dataclass(frozen=True, slots=True)
class Completion:
    """One terminal record of a task as the coordinator reported it."""

    state: int
    attempt: int
    agent_id: str
    error_type: str
    # A digest, so that a ledger of 5 MiB outputs stays small.
    output_sha: str

    @classmethod
    def of(cls, task: types_pb2.Task) -> Completion:
        o = task.outcome
        return cls(task.state, task.attempt, task.agent_id, o.error_type, hashlib.sha256(o.output).hexdigest())


@dataclass(frozen=True, slots=True)
class Verdict:
    acknowledged: int
    lost: tuple[str, ...]
    recorded_twice: tuple[str, ...]
    # Tasks whose one record is not the state the scenario expects.
    wrong_state: tuple[str, ...]
    # The moment (time.monotonic) the last acknowledged task was first seen terminal.
    last_completion: float


class Ledger:
    """Acknowledgements and completions, from any number of threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acked: dict[str, str] = {}  # task id -> idempotency key ("" for none)
        self._ids_by_key: dict[str, set[str]] = {}
        self._seen: dict[str, set[Completion]] = {}
        self._first_seen: dict[str, float] = {}
        self._not_found: set[str] = set()

    def acknowledge(self, tasks: Iterable[tasks_pb2.SubmittedTask], keys: Iterable[str]) -> None:
        with self._lock:
            for t, key in zip(tasks, keys, strict=True):
                self._acked[t.task_id] = key
                if key:
                    self._ids_by_key.setdefault(key, set()).add(t.task_id)

    def observe(self, tasks: Iterable[types_pb2.Task]) -> None:
        now = time.monotonic()
        with self._lock:
            for t in tasks:
                if t.state in TERMINAL:
                    self._seen.setdefault(t.task_id, set()).add(Completion.of(t))
                    self._first_seen.setdefault(t.task_id, now)

    def forgotten(self, task_id: str) -> None:
        """The coordinator answered NOT_FOUND for an acknowledged task."""
        with self._lock:
            self._not_found.add(task_id)

    @property
    def acked(self) -> list[str]:
        with self._lock:
            return list(self._acked)

    def outstanding(self) -> list[str]:
        with self._lock:
            return [i for i in self._acked if i not in self._seen and i not in self._not_found]

    def completions(self, task_id: str) -> set[Completion]:
        with self._lock:
            return set(self._seen.get(task_id, ()))

    def last_seen(self, ids: Iterable[str]) -> float:
        """When the last of `ids` was first seen terminal (time.monotonic); 0 if none was."""
        with self._lock:
            return max((self._first_seen[i] for i in ids if i in self._first_seen), default=0.0)

    def verdict(self, expect: int = types_pb2.TASK_STATE_SUCCEEDED) -> Verdict:
        with self._lock:
            lost = tuple(i for i in self._acked if i not in self._seen or i in self._not_found)
            twice = {i for i, seen in self._seen.items() if len(seen) > 1}
            twice.update(i for ids in self._ids_by_key.values() if len(ids) > 1 for i in ids)
            wrong = tuple(i for i, seen in self._seen.items()
                          if len(seen) == 1 and next(iter(seen)).state != expect)
            acked = list(self._acked)
        return Verdict(len(acked), lost, tuple(sorted(twice)), wrong, self.last_seen(acked))


def follow(stub: tasks_pb2_grpc.TaskServiceStub, ledger: Ledger, ids: list[str], timeout: float) -> None:
    """Record the terminal state of each of `ids` as WatchTasks reports it, until all are in
    or `timeout` seconds pass. A stream that breaks (the coordinator went away) just ends."""
    try:
        for msg in stub.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=ids), timeout=timeout):
            ledger.observe(msg.tasks)
    except grpc.RpcError as e:
        if e.code() not in RETRYABLE:
            raise


def settle(stub_of: Callable[[], tasks_pb2_grpc.TaskServiceStub], ledger: Ledger, timeout: float = 120.0) -> None:
    """Follow every outstanding task until none is left, watching again after a stream breaks
    (as across a coordinator restart), then read each acknowledged task once more: a second
    read that differs from what was seen is a completion recorded twice."""
    deadline = time.monotonic() + timeout
    while (todo := ledger.outstanding()) and time.monotonic() < deadline:
        try:
            follow(stub_of(), ledger, todo, max(1.0, deadline - time.monotonic()))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            # One unknown id fails the whole watch: find which, and watch the rest.
            reread(stub_of(), ledger, todo)
    reread(stub_of(), ledger, ledger.acked)


def reread(stub: tasks_pb2_grpc.TaskServiceStub, ledger: Ledger, ids: list[str]) -> None:
    for task_id in ids:
        try:
            ledger.observe([stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), timeout=30)])
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            ledger.forgotten(task_id)


def executions(log: Path) -> Counter[str]:
    """Handler runs per task id, from the handlers' append-only execution log."""
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines() if line)


def submit(stub: tasks_pb2_grpc.TaskServiceStub, ledger: Ledger, specs: list[types_pb2.TaskSpec]) -> list[str]:
    """One SubmitTasks call; what it acknowledges goes into the ledger."""
    resp = stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=specs), timeout=30)
    ledger.acknowledge(resp.tasks, [s.idempotency_key for s in specs])
    return [t.task_id for t in resp.tasks]


def naps(prefix: str, n: int, payload: bytes, kind: str = "nap") -> list[types_pb2.TaskSpec]:
    """`n` tasks with idempotency keys prefix-0, prefix-1, ..."""
    return [types_pb2.TaskSpec(kind=kind, payload=payload, content_type="application/json",
                               idempotency_key=f"{prefix}-{i}") for i in range(n)]
