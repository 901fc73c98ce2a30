"""The embedded journal: one SQLite file, WAL, written by the group-commit thread.

One row per task, keyed by its sequence number (the rowid, so an update finds
its row without a second index). A commit inserts the tasks accepted in its
batch, updates the others, and moves the id high-water mark on, in one
transaction. States are stored as their int value: the schema does not list
them, so a state added to the core needs no migration.

A file lock (`<file>.lock`, flock) keeps a second coordinator off a journal
in use. Compaction deletes finished tasks past the core's retention, a chunk
at a time and without waiting for the disk (a deletion lost to a crash is
redone by the next pass); freed pages are reused, and the WAL is cut back to
journal_size_limit after each checkpoint, so the files stay bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import uuid
from typing import IO

from coordinator.core.recovery import Saved, SavedTask
from coordinator.journal import codec
from coordinator.journal.base import JournalError, JournalOptions, Sync
from coordinator.journal.groupcommit import Accepted, Change, GroupCommitJournal

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    spec BLOB NOT NULL,
    state INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    last_agent TEXT NOT NULL,
    history TEXT NOT NULL,
    outcome BLOB,
    created_at REAL NOT NULL,
    queued_at REAL NOT NULL,
    assigned_at REAL,
    finished_at REAL,
    deadline REAL,
    max_attempts INTEGER NOT NULL,
    run_start INTEGER NOT NULL,
    retry_at REAL,
    last_failure BLOB
);
CREATE INDEX IF NOT EXISTS tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = ("seq, task_id, spec, state, attempt, agent_id, last_agent, history, outcome, created_at, queued_at, "
            "assigned_at, finished_at, deadline, max_attempts, run_start, retry_at, last_failure")
_INSERT = f"INSERT OR REPLACE INTO tasks ({_COLUMNS}) VALUES ({', '.join('?' * 18)})"
_UPDATE = ("UPDATE tasks SET state = ?, attempt = ?, agent_id = ?, last_agent = ?, history = ?, outcome = ?, "
           "queued_at = ?, assigned_at = ?, finished_at = ?, deadline = ?, run_start = ?, retry_at = ?, "
           "last_failure = ? WHERE seq = ?")
_SELECT = f"SELECT {_COLUMNS} FROM tasks"
_OLDEST = ("DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE finished_at IS NOT NULL{} "
           "ORDER BY finished_at LIMIT ?)")
# The WAL is truncated back to this many bytes after a checkpoint.
WAL_LIMIT_BYTES = 8 * 1024 * 1024


class SqliteJournal(GroupCommitJournal):
    def __init__(self, path: str, options: JournalOptions | None = None) -> None:
        super().__init__(options)
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock: IO[str] | None = None
        self._last_seq = 0

    @property
    def location(self) -> str:
        return self.path

    # -- writer thread hooks ----------------------------------------------------------

    def _open(self) -> None:
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock = _lock(self.path + ".lock")
        try:
            db = self._db = sqlite3.connect(self.path, isolation_level=None)
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise JournalError(f"journal {self.path}: SQLite cannot use WAL here (journal_mode {mode})")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"journal {self.path} has schema {version}, newer than this "
                                   f"coordinator's {SCHEMA_VERSION}: run the newer version")
            db.execute(f"PRAGMA synchronous = {self._sync}")
            db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # Every journal has its own task id prefix, so a new file never
            # hands out an id some other journal's tasks had.
            db.execute("INSERT OR IGNORE INTO meta VALUES ('id_prefix', ?)", (uuid.uuid4().hex[:10],))
            row = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            self._last_seq = int(row[0]) if row else 0
        except sqlite3.Error as e:
            self._close()
            raise JournalError(f"journal {self.path}: cannot open: {e}") from e
        except BaseException:
            self._close()
            raise

    @property
    def _sync(self) -> str:
        return "FULL" if self.options.sync is Sync.FULL else "NORMAL"

    def _read(self) -> Saved:
        db = self._conn
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        spec_of, outcome_of, history_of = codec.spec_from_bytes, codec.outcome_from_bytes, codec.history_from_text
        tasks = tuple(
            SavedTask(seq=r[0], task_id=r[1], spec=spec_of(r[2]), state=r[3], attempt=r[4], agent_id=r[5],
                      last_agent=r[6], history=history_of(r[7]), outcome=None if r[8] is None else outcome_of(r[8]),
                      created_at=r[9], queued_at=r[10], assigned_at=r[11], finished_at=r[12], deadline=r[13],
                      max_attempts=r[14], run_start=r[15], retry_at=r[16],
                      last_failure=None if r[17] is None else outcome_of(r[17]))
            for r in db.execute(_SELECT)
        )
        return Saved(id_prefix=meta["id_prefix"], last_seq=int(meta.get("last_seq", 0)), tasks=tasks)

    def _write(self, accepted: list[tuple[Change, Accepted]], updated: list[Change]) -> int:
        db = self._conn
        spec_bytes, outcome, text = codec.spec_to_bytes, codec.outcome_or_none, codec.history_to_text
        inserts = []
        top = self._last_seq
        for c, a in accepted:
            inserts.append((c[1], c[0], spec_bytes(a[0]), c[2], c[3], c[4], c[5], text(c[6]), outcome(c[7]), a[1],
                            c[8], c[9], c[10], c[11], a[2], c[12], c[13], outcome(c[14])))
            if c[1] > top:
                top = c[1]
        updates = [(c[2], c[3], c[4], c[5], text(c[6]), outcome(c[7]), c[8], c[9], c[10], c[11], c[12], c[13],
                    outcome(c[14]), c[1]) for c in updated]
        db.execute("BEGIN")
        try:
            if inserts:
                db.executemany(_INSERT, inserts)
            if updates:
                db.executemany(_UPDATE, updates)
            if top > self._last_seq:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(top),))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._last_seq = top
        return len(inserts) + len(updates)

    def _compact(self, now: float) -> tuple[int, bool]:
        db = self._conn
        chunk = self.options.compact_chunk
        # A deletion needs no fsync of its own: the next commit's covers it, and
        # one lost to a crash only means the next pass deletes the rows again.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("BEGIN")
        try:
            cutoff = now - self.options.retention_s
            deleted = db.execute(_OLDEST.format(" AND finished_at < ?"), (cutoff, chunk)).rowcount
            if deleted < chunk:
                retained = db.execute("SELECT count(*) FROM tasks WHERE finished_at IS NOT NULL").fetchone()[0]
                excess = min(retained - self.options.max_retained, chunk - deleted)
                if excess > 0:
                    deleted += db.execute(_OLDEST.format(""), (excess,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        finally:
            db.execute(f"PRAGMA synchronous = {self._sync}")
        return deleted, deleted >= chunk

    def _close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise JournalError(f"journal {self.path} is closed")
        return self._db


def _lock(path: str) -> IO[str]:
    """Hold an exclusive lock on `path` for as long as the returned file is open."""
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        journal = path.removesuffix(".lock")
        raise JournalError(f"journal {journal} is in use by another coordinator (pid {holder}); "
                           "give each coordinator its own --journal") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f
