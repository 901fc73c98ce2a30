"""Group commit: the loop records, one writer thread commits.

On the event loop, `record` appends a snapshot of the task's changing fields
to a list: a tuple, no I/O, no lock. The list is handed to the writer thread
when the writer is idle (at the end of the current loop turn, so one frame's
or one call's changes travel together) and otherwise as soon as the commit in
flight returns: everything that queued meanwhile becomes the next commit, ONE
transaction. No timer: at low load a change is committed at once, under load
the batches grow by themselves.

The writer thread owns the store: a backend (sqlite.py) implements the
`_open`, `_read`, `_write`, `_compact` and `_close` hooks, which only ever run
there. A ticket is a count of recorded changes; when a commit returns, every
ticket up to the count it covered is released.
"""

from __future__ import annotations

import abc
import asyncio
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Self

from coordinator.core.model import Outcome, TaskRecord, TaskSpec, TaskState
from coordinator.core.recovery import Saved
from coordinator.journal.base import JournalError, JournalOptions, JournalState, JournalStats

log = logging.getLogger(__name__)

# What the core fixed at acceptance: spec, created_at, max_attempts.
Accepted = tuple[TaskSpec, float, int]
# A task's state at one transition, taken on the loop: task_id, seq, state,
# attempt, agent_id, last_agent, history, outcome, queued_at, assigned_at,
# finished_at, deadline (a requeue moves it), run_start, retry_at,
# last_failure, and Accepted for the change that accepted the task (else
# None). Specs and outcomes are immutable, so they are passed by reference and
# only encoded in the writer.
Change = tuple[str, int, int, int, str, str, tuple[str, ...], "Outcome | None", float, "float | None",
               "float | None", "float | None", int, "float | None", "Outcome | None", "Accepted | None"]
_ACCEPTED: Final = 15

# A job for the writer thread, and what to run on the loop with its result or error.
_Job = tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]]


def coalesce(batch: list[Change]) -> tuple[list[tuple[Change, Accepted]], list[Change]]:
    """Each task's latest state in the batch, split into the tasks accepted in
    it (with what their acceptance fixed) and those accepted earlier. A task
    accepted and changed within one batch is written once."""
    latest: dict[int, Change] = {}
    accepted: dict[int, Accepted] = {}
    for ch in batch:
        seq = ch[1]
        latest[seq] = ch
        a = ch[_ACCEPTED]
        if a is not None:
            accepted[seq] = a
    return ([(latest[seq], a) for seq, a in accepted.items()],
            [ch for seq, ch in latest.items() if seq not in accepted])


class GroupCommitJournal(abc.ABC):
    def __init__(self, options: JournalOptions | None = None) -> None:
        self.options = options or JournalOptions()
        self._state = JournalState.NEW
        self._accepting = False
        self._pending: list[Change] = []
        self._appended = 0
        self._committed = 0
        self._busy = False  # a commit is in the writer
        self._kick: asyncio.Handle | None = None
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._error: JournalError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = asyncio.Event()
        # Written by the writer thread, read anywhere (plain numbers).
        self._commits = self._rows = self._compacted = self._failed = 0
        self._last_commit_s = self._max_commit_s = 0.0
        self._compact_due = 0.0

    # -- the backend, in the writer thread -------------------------------------------

    @property
    @abc.abstractmethod
    def location(self) -> str: ...

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _read(self) -> Saved: ...

    @abc.abstractmethod
    def _write(self, accepted: list[tuple[Change, Accepted]], updated: list[Change]) -> int:
        """Commit these tasks' latest states as one transaction; rows written."""

    @abc.abstractmethod
    def _compact(self, now: float) -> tuple[int, bool]:
        """Forget finished tasks past retention; (rows deleted, more are due)."""

    @abc.abstractmethod
    def _close(self) -> None: ...

    # -- lifecycle ------------------------------------------------------------------

    @property
    def state(self) -> JournalState:
        return self._state

    async def start(self) -> None:
        if self._state is not JournalState.NEW:
            raise RuntimeError(f"journal is {self._state.value}, cannot start")
        self._loop = asyncio.get_running_loop()
        self._compact_due = time.monotonic() + self.options.compact_interval_s
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()
        try:
            await self._call(self._open)
        except BaseException:
            await self._end_thread()
            self._state = JournalState.STOPPED
            self._stopped.set()
            raise
        self._state = JournalState.RUNNING
        self._accepting = True

    async def stop(self, grace: float | None = None) -> None:
        if self._state is JournalState.NEW:
            self._state = JournalState.STOPPED
            self._stopped.set()
        if self._state is not JournalState.RUNNING:
            await self._stopped.wait()
            return
        self._state = JournalState.STOPPING
        try:
            await asyncio.wait_for(self.flush(), grace)
        except TimeoutError:
            log.error("journal %s: %d changes were not committed within %.1f s of stopping",
                      self.location, self._appended - self._committed, grace)
        except JournalError as e:
            log.error("journal %s: the last changes were not committed: %s", self.location, e)
        self._accepting = False
        try:
            await self._call(self._close)
        finally:
            await self._end_thread()
            self._state = JournalState.STOPPED
            self._stopped.set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def load(self) -> Saved:
        if self._state is not JournalState.RUNNING:
            raise JournalError(f"journal {self.location} is {self._state.value}")
        if self._appended:
            raise JournalError("load: changes were recorded already; load comes first")
        saved: Saved = await self._call(self._read)
        return saved

    async def compact(self) -> int:
        n: int = (await self._call(self._compact_timed))[0]
        return n

    # -- the hot path, on the loop ----------------------------------------------------

    def record(self, rec: TaskRecord, old: TaskState | None) -> None:
        if not self._accepting:
            return
        self._pending.append((
            rec.task_id, rec.seq, rec.state, rec.attempt, rec.agent_id, rec.last_agent,
            tuple(rec.history), rec.outcome, rec.queued_at, rec.assigned_at, rec.finished_at, rec.deadline,
            rec.run_start, rec.retry_at, rec.last_failure,
            None if old is not None else (rec.spec, rec.created_at, rec.max_attempts),
        ))
        self._appended += 1
        if not self._busy and self._kick is None:
            assert self._loop is not None
            self._kick = self._loop.call_soon(self._handoff)

    @property
    def ticket(self) -> int:
        return self._appended

    @property
    def committed(self) -> int:
        return self._committed

    async def wait_committed(self, ticket: int) -> None:
        if self._error is not None:
            raise self._error
        if ticket <= self._committed:
            return
        assert self._loop is not None
        fut = self._loop.create_future()
        heapq.heappush(self._waiters, (ticket, next(self._order), fut))
        await fut

    async def flush(self) -> None:
        """Return once everything recorded so far is committed."""
        if self._kick is not None:
            self._kick.cancel()
            self._handoff()
        await self.wait_committed(self._appended)

    def stats(self) -> JournalStats:
        return JournalStats(commits=self._commits, changes=self._appended, rows_written=self._rows,
                            rows_compacted=self._compacted, last_commit_s=self._last_commit_s,
                            max_commit_s=self._max_commit_s, failed_commits=self._failed)

    def _handoff(self) -> None:
        self._kick = None
        if self._busy or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._busy = True
        upto = self._appended
        self._inbox.put((lambda: self._commit(batch), lambda _r, exc: self._committed_upto(upto, exc)))

    def _committed_upto(self, upto: int, exc: BaseException | None) -> None:
        self._busy = False
        waiters = self._waiters
        if exc is not None:
            # Nothing recorded from here on can be promised durable: every
            # waiter, now and later, is told so (the shell answers UNAVAILABLE).
            if self._error is None:
                log.error("journal %s: a commit failed; no more acknowledgements until restart: %s",
                          self.location, exc)
            self._error = JournalError(f"journal {self.location}: commit failed: {exc}")
            for _, _, fut in waiters:
                if not fut.done():
                    fut.set_exception(self._error)
            waiters.clear()
        else:
            self._committed = upto
            while waiters and waiters[0][0] <= upto:
                fut = heapq.heappop(waiters)[2]
                if not fut.done():
                    fut.set_result(None)
        if self._pending:
            self._handoff()

    # -- the writer thread ----------------------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()

        def settle(result: Any, exc: BaseException | None) -> None:
            if fut.done():
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._inbox.put((fn, settle))
        return fut

    def _run(self) -> None:
        while True:
            timeout = self._compact_due - time.monotonic() if self._accepting else None
            try:
                job = self._inbox.get(timeout=max(timeout, 0.0) if timeout is not None else None)
            except queue.Empty:
                self._compact_safely()
                continue
            if job is None:
                return
            fn, done = job
            try:
                result, exc = fn(), None
            except Exception as e:
                result, exc = None, e
            self._to_loop(done, result, exc)
            if self._accepting and time.monotonic() >= self._compact_due:
                self._compact_safely()

    def _to_loop(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _commit(self, batch: list[Change]) -> int:
        accepted, updated = coalesce(batch)
        t0 = time.perf_counter()
        try:
            rows = self._write(accepted, updated)
        except Exception:
            self._failed += 1
            raise
        took = time.perf_counter() - t0
        self._commits += 1
        self._rows += rows
        self._last_commit_s = took
        self._max_commit_s = max(self._max_commit_s, took)
        return rows

    def _compact_timed(self) -> tuple[int, bool]:
        n, more = self._compact(time.time())
        self._compacted += n
        # A full chunk means more is due: the next pass runs at the next idle moment.
        self._compact_due = time.monotonic() + (0.0 if more else self.options.compact_interval_s)
        return n, more

    def _compact_safely(self) -> None:
        try:
            self._compact_timed()
        except Exception:
            log.exception("journal %s: compaction failed", self.location)
            self._compact_due = time.monotonic() + self.options.compact_interval_s

    async def _end_thread(self) -> None:
        self._inbox.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
