"""The coordinator's history: one row per interval in SQLite, downsampled as it ages.

One INSERT and commit per row (every `history_interval_s`, 10 s by default),
in WAL mode with synchronous=NORMAL, so a write costs tens of microseconds
and never waits for the disk. About once a minute, `compact` merges rows
older than an hour into one-minute rows and rows older than a day into
ten-minute rows, and deletes what is past retention: a week of history is
about 1,300 rows.

Merged rows average their figures weighted by the time they cover (cache
hit rate by lookups); p99 keeps the largest of the merged values, since
averaging a tail would hide the worst spell.

Nothing here may stop the coordinator: a file that cannot be opened or
written (corrupt, read-only, disk full) is reported once as a warning, and
history continues in memory from then on.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3

from coordinator.profile.report import HistoryPoint

log = logging.getLogger(__name__)

# (age in seconds, resolution in seconds): rows older than the age are merged to the resolution.
TIERS = ((3600.0, 60.0), (86400.0, 600.0))

_FIGURES = ("queue_depth", "in_flight", "capacity", "agents_ready", "throughput", "failures")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    at REAL NOT NULL,            -- unix seconds, start of the span
    span REAL NOT NULL,          -- seconds covered
    step REAL NOT NULL,          -- resolution: the interval, or the tier it was merged into
    queue_depth REAL, in_flight REAL, capacity REAL, agents_ready REAL,
    throughput REAL, failures REAL, p99_total_ms REAL, cache_hit_rate REAL,
    lookups REAL                 -- cache lookups behind cache_hit_rate, to weigh merges
);
CREATE INDEX IF NOT EXISTS points_at ON points (at);
"""


class HistoryStore:
    def __init__(self, path: str = "", retention_s: float = 7 * 86400.0) -> None:
        self.path = path
        self._retention = retention_s
        self._closed = False
        self._in_memory = True
        self._db = self._open(path)

    @property
    def persistent(self) -> bool:
        """Whether rows go to the file (False when none was given or it failed)."""
        return not self._in_memory

    def _open(self, path: str) -> sqlite3.Connection:
        self._in_memory = not path
        if path:
            try:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                db = sqlite3.connect(path)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                db.execute("SELECT count(*) FROM points").fetchone()
                return db
            except (sqlite3.Error, OSError) as e:
                log.warning("history file %s cannot be used (%s): history is kept in memory only", path, e)
        self._in_memory = True
        db = sqlite3.connect(":memory:")
        db.executescript(_SCHEMA)
        return db

    def _failed(self, e: sqlite3.Error) -> None:
        """Fall back to memory after the first error on the file (warned once)."""
        if self._in_memory:
            log.debug("history error in memory: %s", e)
            return
        log.warning("history file %s failed (%s): history is kept in memory from now on", self.path, e)
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._db = self._open("")

    # -- writing ---------------------------------------------------------------------

    def add(self, p: HistoryPoint, step: float, lookups: float) -> None:
        if self._closed:
            return
        row = (p.at, p.span_s, step, p.queue_depth, p.in_flight, p.capacity, p.agents_ready, p.throughput_per_s,
               p.failures_per_s, p.p99_total_ms, p.cache_hit_rate, lookups)
        try:
            with self._db:
                self._db.execute("INSERT INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", row)
        except sqlite3.Error as e:
            self._failed(e)

    def compact(self, now: float) -> None:
        """Merge aged rows into their tier's resolution, delete rows past retention."""
        if self._closed:
            return
        weighted = ", ".join(f"SUM({f} * span) / SUM(span)" for f in _FIGURES)
        try:
            with self._db:
                for age, step in TIERS:
                    cutoff = math.floor((now - age) / step) * step
                    merged = self._db.execute(
                        f"SELECT MIN(at), SUM(span), {weighted}, MAX(p99_total_ms), "
                        "COALESCE(SUM(cache_hit_rate * lookups) / NULLIF(SUM(lookups), 0), 0), SUM(lookups) "
                        "FROM points WHERE at < ? AND step < ? GROUP BY CAST(at / ? AS INTEGER)",
                        (cutoff, step, step)).fetchall()
                    if not merged:
                        continue
                    self._db.execute("DELETE FROM points WHERE at < ? AND step < ?", (cutoff, step))
                    self._db.executemany(
                        "INSERT INTO points (at, span, step, queue_depth, in_flight, capacity, agents_ready, "
                        "throughput, failures, p99_total_ms, cache_hit_rate, lookups) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        [(r[0], r[1], step, *r[2:]) for r in merged])
                self._db.execute("DELETE FROM points WHERE at + span < ?", (now - self._retention,))
        except sqlite3.Error as e:
            self._failed(e)

    # -- reading -----------------------------------------------------------------------

    def recent(self, n: int) -> list[HistoryPoint]:
        """The newest n points, oldest first."""
        if n <= 0:
            return []
        return self._select("SELECT * FROM (SELECT * FROM points ORDER BY at DESC LIMIT ?) ORDER BY at", (n,))

    def since(self, t: float) -> list[HistoryPoint]:
        return self._select("SELECT * FROM points WHERE at >= ? ORDER BY at", (t,))

    def count(self) -> int:
        if self._closed:
            return 0
        try:
            return int(self._db.execute("SELECT count(*) FROM points").fetchone()[0])
        except sqlite3.Error as e:
            self._failed(e)
            return 0

    def _select(self, sql: str, args: tuple[float, ...]) -> list[HistoryPoint]:
        if self._closed:
            return []
        try:
            rows = self._db.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            self._failed(e)
            return []
        return [HistoryPoint(at=r[0], span_s=r[1], queue_depth=r[3], in_flight=r[4], capacity=r[5],
                             agents_ready=r[6], throughput_per_s=r[7], failures_per_s=r[8], p99_total_ms=r[9],
                             cache_hit_rate=r[10]) for r in rows]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._db.close()
        except sqlite3.Error as e:
            log.debug("closing the history store: %s", e)
