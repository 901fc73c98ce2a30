"""The journal's interface: what the coordinator's shell needs of any backend.

A journal is fed every task state change from the core's one transition
point (`record`, a core listener), commits them in groups off the event
loop, and tells the shell when a change is durable: `ticket` names everything
recorded so far, `wait_committed(ticket)` returns once all of it is
committed. Acknowledgements wait on that. `load` gives back what recovery
needs (coordinator.core.recovery.Saved); compaction forgets finished tasks
past the core's retention so the store stays bounded.

SQLite (sqlite.py) is the embedded backend; one for several coordinators
(PostgreSQL, a leader fenced by its term) implements the same Protocol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from coordinator.core.model import TaskRecord, TaskState
from coordinator.core.recovery import Saved


class JournalState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Sync(enum.Enum):
    """How hard a commit pushes to the disk (SQLite's `synchronous`).

    FULL: a commit is on the disk when it returns; nothing acknowledged is
    lost to a crash or a power loss. NORMAL: a commit survives the process
    dying, but a power loss or OS crash can take the last commits with it."""

    FULL = "full"
    NORMAL = "normal"


class JournalError(OSError):
    """The journal cannot keep or give back what it was asked to: a write
    failed, the store is in use by another coordinator, or it is closed. An
    OSError, as the failure to listen is: the process says so and exits 1."""


@dataclass(frozen=True, slots=True)
class JournalOptions:
    sync: Sync = Sync.FULL
    # The core's retention (CoreConfig.retention_s, max_retained): finished
    # tasks past it are deleted from the store too.
    retention_s: float = 3600.0
    max_retained: int = 100_000
    # Seconds between compactions; each deletes at most compact_chunk rows
    # (more go in the next pass, soon after) so a commit never waits long behind one.
    compact_interval_s: float = 1.0
    compact_chunk: int = 20_000


@dataclass(frozen=True, slots=True)
class JournalStats:
    commits: int = 0
    # State changes recorded, and rows written for them (fewer: a batch
    # writes each task's latest state once).
    changes: int = 0
    rows_written: int = 0
    rows_compacted: int = 0
    # Seconds the last commit took in the writer, and the longest so far.
    last_commit_s: float = 0.0
    max_commit_s: float = 0.0
    failed_commits: int = 0


class Journal(Protocol):
    """start/stop(grace) as every long-running component; `async with` too."""

    @property
    def state(self) -> JournalState: ...

    @property
    def location(self) -> str:
        """Where the store is, for log lines."""
        ...

    async def start(self) -> None:
        """Open the store (exclusively: a second coordinator fails here)."""
        ...

    async def stop(self, grace: float | None = None) -> None:
        """Commit what is recorded (waiting at most `grace` seconds) and close. Idempotent."""
        ...

    async def load(self) -> Saved:
        """Everything the store holds, for MeshCore.restore. Only before the first record."""
        ...

    def record(self, rec: TaskRecord, old: TaskState | None) -> None:
        """A core listener: take a snapshot of rec's state now (O(1), no I/O)."""
        ...

    @property
    def ticket(self) -> int:
        """Names every change recorded so far."""
        ...

    async def wait_committed(self, ticket: int) -> None:
        """Return once every change up to `ticket` is committed; JournalError if that commit failed."""
        ...

    async def compact(self) -> int:
        """Run one compaction pass now; how many finished tasks it forgot."""
        ...

    def stats(self) -> JournalStats: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None: ...
