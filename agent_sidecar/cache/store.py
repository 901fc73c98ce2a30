"""The result store: diskcache for results, a dependency index beside it, self-healing.

Synchronous and owned by one thread (result_cache.py runs every call on its cache
thread), so that an invalidation and a store never interleave.

Values are written in the frame of entry.py (bytes with a small
header, never pickled).

Failure policy: a corrupt or deleted cache directory is moved aside and
rebuilt empty with a warning. If that fails too, the store turns itself off
(every lookup misses, every store is skipped) and tries again at most every
`REOPEN_EVERY_S` seconds from `maintain()`; the sidecar never stops for it.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

from agent_sidecar.cache.entry import Entry, decode, encode
from agent_sidecar.cache.index import DependencyIndex

log = logging.getLogger(__name__)

LOCK_FILE = "lock"
REOPEN_EVERY_S = 30.0
# Invalidations remembered to refuse storing results computed before them.
RECENT_INVALIDATIONS = 4096
# Dependency-index keys checked against the cache per maintenance pass.
PRUNE_SLICE = 500
# sqlite3 error texts that mean the files are damaged or gone, not just busy.
_BROKEN = ("malformed", "not a database", "unable to open", "disk i/o", "no such table", "readonly")


class CacheUnavailable(Exception):
    """The store is off (could not be opened or rebuilt); the caller runs without it."""


@dataclass(frozen=True, slots=True)
class PutItem:
    """A result to store, computed after a lookup at generation `since`."""

    key: str
    output: bytes
    content_type: str
    ttl_s: float
    deps: tuple[str, ...]
    since: int


@dataclass(slots=True)
class StoreCounters:
    stores: int = 0
    # Results not stored because an invalidation overtook their computation.
    stale_skipped: int = 0
    evictions: int = 0
    expired: int = 0
    # Entries dropped by invalidations and full clears.
    invalidated: int = 0
    corrupt_entries: int = 0
    rebuilds: int = 0


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    entries: int = 0
    bytes: int = 0
    available: bool = False


def is_broken(exc: BaseException) -> bool:
    """True when an error means the store's files are damaged or missing."""
    if isinstance(exc, diskcache.Timeout):
        return False
    if isinstance(exc, sqlite3.DatabaseError):
        if not isinstance(exc, sqlite3.OperationalError):
            return True
        text = str(exc).lower()
        return any(marker in text for marker in _BROKEN)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EIO, errno.EROFS)


class ResultStore:
    """Cached results with dependencies, TTLs, a size limit and an invalidation sync point."""

    def __init__(
        self,
        directory: Path,
        *,
        size_limit_bytes: int,
        eviction: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._size_limit = size_limit_bytes
        self._eviction = eviction
        self._clock = clock
        self._cache: Any = None
        self._index: DependencyIndex | None = None
        self._lock_fd: int | None = None
        self.counters = StoreCounters()
        # Last applied invalidation; written into a rebuilt store, which is
        # empty and therefore in sync with everything applied so far.
        self._epoch = ""
        self._seq = 0
        # Every invalidation and clear bumps the generation; a result whose
        # computation began before one that touches it is not stored.
        self._generation = 0
        self._cleared_at = 0
        self._recent: collections.deque[tuple[int, frozenset[str]]] = collections.deque(
            maxlen=RECENT_INVALIDATIONS
        )
        self._last_attempt = float("-inf")
        self._prune_after: str | None = None

    # --- lifecycle -----------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._cache is not None

    @property
    def generation(self) -> int:
        return self._generation

    def open(self) -> None:
        """Open the store, rebuilding it if it is damaged; CacheUnavailable if that fails too."""
        self._last_attempt = time.monotonic()
        try:
            self._open_files()
        except CacheUnavailable:
            raise
        except Exception as exc:
            self._close_files()
            self.rebuild(f"{type(exc).__name__}: {exc}")
            return
        self._epoch, self._seq = self._idx().sync_point()

    def close(self) -> None:
        self._close_files()

    def _open_files(self) -> None:
        # Results may be private to the agent: only its user reads them.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock()
        self._cache = diskcache.Cache(
            str(self.directory),
            # One process and one thread use this directory, so waiting on a
            # lock would only hide a bug; fail fast and count it.
            timeout=2.0,
            size_limit=self._size_limit,
            eviction_policy=self._eviction,
            # Culling ourselves after a store is the only way to count evictions.
            cull_limit=0,
            statistics=0,
            tag_index=0,
        )
        self._index = DependencyIndex(self.directory)

    def _lock(self) -> None:
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CacheUnavailable(f"{self.directory} is in use by another process") from None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd = fd

    def _close_files(self) -> None:
        for closer in (self._cache, self._index):
            if closer is not None:
                try:
                    closer.close()
                except Exception:
                    log.debug("closing the cache failed", exc_info=True)
        self._cache = None
        self._index = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def rebuild(self, reason: str) -> None:
        """Move the directory aside and start empty; CacheUnavailable if even that fails."""
        log.warning("result cache at %s is unusable (%s); rebuilding it empty", self.directory, reason)
        self._close_files()
        self._last_attempt = time.monotonic()
        try:
            if self.directory.exists():
                # Moved aside first, so a half-deleted tree is never opened again.
                aside = self.directory.with_name(f"{self.directory.name}.broken-{os.getpid()}-{time.time_ns()}")
                os.rename(self.directory, aside)
                shutil.rmtree(aside, ignore_errors=True)
            self._open_files()
            self._idx().set_sync_point(self._epoch, self._seq)
        except Exception as exc:
            self._close_files()
            log.warning(
                "result cache at %s cannot be rebuilt (%s: %s); running without it, retrying in %.0f s",
                self.directory,
                type(exc).__name__,
                exc,
                REOPEN_EVERY_S,
            )
            raise CacheUnavailable(str(exc)) from exc
        finally:
            self.counters.rebuilds += 1
            self._bump(clear=True)

    def recover(self, exc: BaseException) -> None:
        """After a failed call: rebuild if the files are damaged or gone, else leave it be."""
        if self._cache is None:
            return
        if is_broken(exc) or not self._files_present():
            try:
                self.rebuild(f"{type(exc).__name__}: {exc}")
            except CacheUnavailable:
                pass

    def _files_present(self) -> bool:
        return (self.directory / diskcache.core.DBNAME).is_file() and (self._idx().path.is_file())

    def _idx(self) -> DependencyIndex:
        if self._index is None:
            raise CacheUnavailable("the result cache is off")
        return self._index

    def _c(self) -> Any:
        if self._cache is None:
            raise CacheUnavailable("the result cache is off")
        return self._cache

    # --- results ---------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The fresh entry under `key`, or None."""
        return self._get(self._c(), key)

    def get_many(self, keys: Sequence[str]) -> list[tuple[Entry | None, int]]:
        """(entry or None, generation) per key; one transaction for all of them."""
        cache = self._c()
        if len(keys) == 1:
            return [(self._get(cache, keys[0]), self._generation)]
        with cache.transact():
            return [(self._get(cache, key), self._generation) for key in keys]

    def _get(self, cache: Any, key: str) -> Entry | None:
        raw = cache.get(key)
        if raw is None:
            return None
        entry = decode(raw)
        if entry is None:
            self.counters.corrupt_entries += 1
            cache.delete(key)
            return None
        if entry.expires_at and self._clock() >= entry.expires_at:
            return None
        return entry

    def put(
        self, key: str, output: bytes, content_type: str, ttl_s: float, deps: Iterable[str], since: int
    ) -> bool:
        """Store a result computed from a lookup at generation `since`.

        Not stored (False) when an invalidation since then touched the key or
        one of its dependencies: the result may be built from stale input.
        """
        return self.put_many([PutItem(key, output, content_type, ttl_s, tuple(deps), since)])[0]

    def put_many(self, items: Sequence[PutItem]) -> list[bool]:
        """`put` for several results: one index transaction, then one cache transaction."""
        accepted = [not self._overtaken(it.key, it.deps, it.since) for it in items]
        self.counters.stale_skipped += accepted.count(False)
        todo = [it for it, ok in zip(items, accepted, strict=True) if ok]
        if not todo:
            return accepted
        cache, index = self._c(), self._idx()
        now = self._clock()
        index.add_many((it.key, it.deps) for it in todo)  # rows before the entries: see index.py
        with cache.transact():
            for it in todo:
                expires_at = now + it.ttl_s if it.ttl_s > 0 else 0.0
                cache.set(it.key, encode(it.output, it.content_type, now, expires_at),
                          expire=it.ttl_s if it.ttl_s > 0 else None)
        self.counters.stores += len(todo)
        if cache.volume() > self._size_limit:
            evicted = cache.cull()
            self.counters.evictions += evicted
            if evicted:
                self._prune_after = self._prune_after or ""
        return accepted

    def _overtaken(self, key: str, deps: tuple[str, ...], since: int) -> bool:
        if since >= self._generation:
            return False
        if since < self._cleared_at:
            return True
        if self._recent and since < self._recent[0][0] - 1:
            return True  # the history no longer reaches back that far
        for gen, names in self._recent:
            if gen > since and (key in names or not names.isdisjoint(deps)):
                return True
        return False

    # --- invalidation ----------------------------------------------------------------

    def invalidate(self, names: Iterable[str], epoch: str, seq: int) -> int:
        """Drop every entry keyed by or depending on `names`, transitively; record (epoch, seq)."""
        names = set(names)
        index = self._idx()
        keys = index.dependents(names) | names
        cache = self._c()
        dropped = sum(1 for key in keys if cache.delete(key))
        index.forget(keys, sync=(epoch, seq))
        self._epoch, self._seq = epoch, seq
        self.counters.invalidated += dropped
        self._bump(names=frozenset(keys))
        return dropped

    def clear(self, epoch: str, seq: int) -> int:
        """Drop everything and record (epoch, seq) as the sync point."""
        dropped = int(self._c().clear())
        self._idx().clear(sync=(epoch, seq))
        self._epoch, self._seq = epoch, seq
        self.counters.invalidated += dropped
        self._prune_after = None
        self._bump(clear=True)
        return dropped

    def sync_point(self) -> tuple[str, int]:
        return self._epoch, self._seq

    def set_sync_point(self, epoch: str, seq: int) -> None:
        if (epoch, seq) != (self._epoch, self._seq):
            self._idx().set_sync_point(epoch, seq)
            self._epoch, self._seq = epoch, seq

    def _bump(self, *, names: frozenset[str] = frozenset(), clear: bool = False) -> None:
        self._generation += 1
        if clear:
            self._cleared_at = self._generation
            self._recent.clear()
        else:
            self._recent.append((self._generation, names))

    # --- upkeep --------------------------------------------------------------------

    def maintain(self) -> StoreSnapshot:
        """Periodic upkeep: reopen if off, rebuild if deleted, drop expired entries,
        prune index rows of evicted entries; returns sizes for heartbeats."""
        if self._cache is None:
            if time.monotonic() - self._last_attempt >= REOPEN_EVERY_S:
                try:
                    self.open()
                except CacheUnavailable:
                    self._last_attempt = time.monotonic()
            if self._cache is None:
                return StoreSnapshot()
        if not self._files_present():
            try:
                self.rebuild("its directory or files were deleted")
            except CacheUnavailable:
                return StoreSnapshot()
        cache = self._c()
        expired = int(cache.expire())
        if expired:
            self.counters.expired += expired
            self._prune_after = self._prune_after or ""
        if self._prune_after is not None:
            self._prune_slice(self._prune_after)
        return StoreSnapshot(entries=len(cache), bytes=int(cache.volume()), available=True)

    def _prune_slice(self, after: str) -> None:
        cache, index = self._c(), self._idx()
        keys = index.keys(after, PRUNE_SLICE)
        gone = [key for key in keys if key not in cache]
        if gone:
            index.forget(gone)
        self._prune_after = keys[-1] if len(keys) == PRUNE_SLICE else None
