"""Which cached results depend on which names, kept in a SQLite file beside the cache.

diskcache gives each entry at most one tag, but a result may be built from
many names, so the many-to-many relation lives in its own table:
`deps(name, key)` says "the result cached under `key` depends on `name`". A
name is a dependency name (`doc:42`) or another result's cache key; that is
what makes invalidation transitive.

The same file holds the cache's sync point with the coordinator's
invalidation log (epoch and last applied seq), so both survive a restart
together with the cache.

Consistency with the cache without a shared transaction: rows are written
before the entry they describe and deleted after it. A crash in between
leaves rows for a missing entry (harmless: invalidating it drops nothing),
never an entry that invalidation cannot reach. Rows of entries that diskcache
evicted on its own are pruned now and then (`keys`/`forget`).

Not thread-safe: one thread owns an index (see result_cache.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

FILENAME = "dependencies.sqlite"
# SQLite's default limit on host parameters is 999 in older builds.
_CHUNK = 500

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS deps (name TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (name, key))"
    " WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS deps_by_key ON deps (key)",
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class DependencyIndex:
    """name -> dependent cache keys, plus the cache's invalidation sync point."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILENAME
        # isolation_level=None: transactions are explicit, so a write is one
        # short BEGIN IMMEDIATE ... COMMIT and reads never hold a lock.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # Losing the last transactions on power loss only leaves rows for
            # results that are gone too; NORMAL spares an fsync per commit.
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            # Reading the tables proves the file is a database, not garbage.
            self._db.execute("SELECT count(*) FROM meta").fetchone()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    # --- entries -----------------------------------------------------------------

    def add(self, key: str, names: Iterable[str]) -> None:
        """Record that `key`'s result depends on `names` (replacing earlier rows for it)."""
        self.add_many([(key, names)])

    def add_many(self, entries: Iterable[tuple[str, Iterable[str]]]) -> None:
        """`add` for several keys in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for key, names in entries:
                db.execute("DELETE FROM deps WHERE key = ?", (key,))
                rows = [(name, key) for name in dict.fromkeys(names) if name != key]
                if rows:
                    db.executemany("INSERT OR IGNORE INTO deps (name, key) VALUES (?, ?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def has_rows(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM deps WHERE key = ? LIMIT 1", (key,)).fetchone() is not None

    def dependents(self, names: Iterable[str]) -> set[str]:
        """Every key whose result depends on one of `names`, transitively.

        A key found is itself a name other results may depend on, so the
        search continues from it; cycles end because each name is visited once.
        """
        seen = set(names)
        frontier = list(seen)
        found: set[str] = set()
        while frontier:
            new: list[str] = []
            for chunk in _chunks(frontier):
                marks = ",".join("?" * len(chunk))
                for (key,) in self._db.execute(f"SELECT key FROM deps WHERE name IN ({marks})", chunk):
                    if key not in found:
                        found.add(key)
                        if key not in seen:
                            seen.add(key)
                            new.append(key)
            frontier = new
        return found

    def forget(self, keys: Iterable[str], *, sync: tuple[str, int] | None = None) -> None:
        """Drop the rows of `keys` (their results are gone); optionally record a sync point
        in the same transaction, so an applied invalidation and its seq persist together."""
        ordered = list(dict.fromkeys(keys))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for chunk in _chunks(ordered):
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM deps WHERE key IN ({marks})", chunk)
            if sync is not None:
                self._write_sync(sync)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def clear(self, *, sync: tuple[str, int] | None = None) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM deps")
            if sync is not None:
                self._write_sync(sync)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def key_count(self) -> int:
        row = self._db.execute("SELECT count(DISTINCT key) FROM deps").fetchone()
        return int(row[0]) if row else 0

    def keys(self, after: str = "", limit: int = 1000) -> list[str]:
        """Distinct keys in order, `limit` at a time after `after` (for pruning in slices)."""
        rows = self._db.execute(
            "SELECT DISTINCT key FROM deps WHERE key > ? ORDER BY key LIMIT ?", (after, limit)
        ).fetchall()
        return [key for (key,) in rows]

    # --- sync point ----------------------------------------------------------------

    def sync_point(self) -> tuple[str, int]:
        """(epoch, seq) of the last applied invalidation; ("", 0) when never synced."""
        rows = dict(self._db.execute("SELECT k, v FROM meta WHERE k IN ('epoch', 'seq')").fetchall())
        try:
            return str(rows.get("epoch", "")), int(rows.get("seq", 0))
        except ValueError:
            return "", 0

    def set_sync_point(self, epoch: str, seq: int) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._write_sync((epoch, seq))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_sync(self, sync: tuple[str, int]) -> None:
        epoch, seq = sync
        self._db.executemany(
            "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", [("epoch", epoch), ("seq", str(seq))]
        )
