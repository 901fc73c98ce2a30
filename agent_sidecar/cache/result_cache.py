"""The sidecar's result cache as seen from the event loop.

Every diskcache and SQLite call is blocking file I/O, so the store lives on
one dedicated thread (worker.py) and the loop only queues calls to it:
one thread hop per lookup and one per store, shared by whatever else is queued
at the time; none for tasks without a cache key. One thread rather than a
pool: calls are short, and a single owner orders them for free, so an
invalidation queued before a lookup is always applied before it.

Sync with the coordinator's invalidation log: the cache's sync point is
(epoch, seq) of the last invalidation received. It goes up in Register; the
coordinator answers with a full clear or a replay of what was missed (see
mesh.proto). Invalidations are queued on the same thread, ahead of any later
lookup, so they take effect in order.

Failures never fail a task: a call that raises counts in `errors` and is
treated as a miss (lookup) or skipped (store); the store heals itself
(store.py). An invalidation that cannot be applied clears the whole
cache instead, so a dropped result is never served again.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from agent_sidecar.cache.config import CacheConfig
from agent_sidecar.cache.entry import Entry
from agent_sidecar.cache.store import CacheUnavailable, PutItem, ResultStore, StoreSnapshot
from agent_sidecar.cache.worker import CacheWorker

log = logging.getLogger(__name__)

T = TypeVar("T")
# Sizes and expiry are refreshed this often for heartbeats.
MAINTAIN_EVERY_S = 1.0
STOP_FLUSH_S = 5.0
# Called on the loop with (seq, dropped) once an invalidation is applied.
ReportCallback = Callable[[int, int], None]


def derive_key(kind: str, content_type: str, payload: bytes) -> str:
    """Cache key of a task of a cacheable kind that carries no key of its own.

    Public so that a handler can name another derived result in
    `ctx.depends_on(...)`. Tenants are not part of it: results of a cacheable
    kind must depend only on kind and payload.
    """
    h = hashlib.blake2b(content_type.encode(), digest_size=16)
    h.update(b"\0")
    h.update(payload)
    return f"{kind}#{h.hexdigest()}"


def _report(report: ReportCallback, seq: int, dropped: object) -> None:
    report(seq, dropped if isinstance(dropped, int) else 0)


class CacheState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(slots=True)
class CacheCounters:
    hits: int = 0
    misses: int = 0
    # Tasks that waited for an identical one in flight (also counted as hits).
    coalesced: int = 0
    errors: int = 0
    # Failures seen on the cache thread (kept apart: only that thread writes it).
    thread_errors: int = 0
    refreshes: int = 0
    refresh_failures: int = 0


@dataclass(frozen=True, slots=True)
class CacheStatsSnapshot:
    """What a heartbeat reports (mirrors swarmmesh.v1.CacheStats)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0
    bytes: int = 0
    entries: int = 0
    errors: int = 0


class ResultCache:
    """The store on its own thread, its counters, and its sync point with the coordinator."""

    def __init__(
        self,
        config: CacheConfig,
        directory: Path,
        *,
        ephemeral: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        # Removed on stop: nobody could find it again (see CacheConfig.is_ephemeral).
        self._ephemeral = ephemeral
        self.clock = clock
        self.store = ResultStore(
            directory, size_limit_bytes=config.size_limit_bytes, eviction=config.eviction, clock=clock
        )
        self.counters = CacheCounters()
        self._worker = CacheWorker(self.store)
        self._state = CacheState.NEW
        self._snapshot = StoreSnapshot()
        self._pending: set[asyncio.Future[Any]] = set()
        self._maintainer: asyncio.Task[None] | None = None
        # Last invalidation received (applied or queued ahead of later calls).
        self._epoch = ""
        self._seq = 0

    # --- lifecycle ---------------------------------------------------------------

    @property
    def state(self) -> CacheState:
        return self._state

    async def start(self) -> None:
        """Open the store (rebuilding a damaged one); a store that cannot be opened leaves
        the cache running without it, retrying in the background."""
        if self._state is not CacheState.NEW:
            raise RuntimeError(f"cannot start a cache in state {self._state.name}")
        self._state = CacheState.RUNNING
        try:
            await self._worker.call(self.store.open)
        except CacheUnavailable as exc:
            log.warning("result cache off for now: %s", exc)
        except Exception as exc:
            log.warning("result cache off for now: %s: %s", type(exc).__name__, exc)
        self._epoch, self._seq = self.store.sync_point()
        self._snapshot = await self._call(self.store.maintain, StoreSnapshot())
        if self.store.available:
            log.info(
                "result cache at %s: %d entries, %s, synced to %s#%d",
                self.store.directory,
                self._snapshot.entries,
                f"{self._snapshot.bytes / 1e6:.1f} MB",
                self._epoch or "-",
                self._seq,
            )
        self._maintainer = asyncio.create_task(self._maintain_loop(), name="swarmmesh-cache-maintenance")

    async def stop(self) -> None:
        """Finish queued writes, close the store, stop the thread. Idempotent."""
        if self._state is not CacheState.RUNNING:
            self._state = CacheState.STOPPED
            return
        self._state = CacheState.STOPPED
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=STOP_FLUSH_S)
        try:
            await asyncio.wait_for(self._worker.call(self.store.close), STOP_FLUSH_S)
        except Exception:
            log.warning("result cache did not close cleanly", exc_info=True)
        self._worker.shutdown()
        if self._ephemeral:
            shutil.rmtree(self.store.directory, ignore_errors=True)

    async def __aenter__(self) -> ResultCache:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _maintain_loop(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_EVERY_S)
            self._snapshot = await self._call(self.store.maintain, self._snapshot)

    # --- calls on the cache thread ---------------------------------------------------

    async def _call(self, fn: Callable[..., T], default: T, *args: Any) -> T:
        """fn(*args) on the cache thread; `default` (and one error counted) if it fails."""
        if self._state is not CacheState.RUNNING:
            return default
        return await self._settle(self._worker.call(fn, *args), default, fn)

    async def _settle(self, fut: asyncio.Future[Any], default: T, what: object) -> T:
        try:
            return await fut  # type: ignore[no-any-return]
        except CacheUnavailable:
            self.counters.errors += 1
            return default
        except Exception as exc:
            self.counters.errors += 1
            log.debug("result cache call %s failed: %s: %s", getattr(what, "__name__", what),
                      type(exc).__name__, exc)
            return default

    def _queue(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None) -> None:
        """fn(*args) on the cache thread without waiting; failures are counted, and the
        future is kept until it settles so stop() can wait for it."""
        if self._state is not CacheState.RUNNING:
            return
        self._track(self._worker.call(fn, *args), fn, done)

    def _track(self, fut: asyncio.Future[Any], what: object, done: Callable[[Any], None] | None = None) -> None:
        self._pending.add(fut)

        def settled(f: asyncio.Future[Any]) -> None:
            self._pending.discard(f)
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self.counters.errors += 1
                log.debug("result cache call %s failed: %s", getattr(what, "__name__", what), exc)
            if done is not None:
                done(None if exc is not None else f.result())

        fut.add_done_callback(settled)

    # --- results ---------------------------------------------------------------------

    async def lookup(self, key: str) -> tuple[Entry | None, int]:
        """(fresh entry or None, store generation at lookup); a failure is a miss."""
        if self._state is not CacheState.RUNNING:
            return None, -1
        return await self._settle(self._worker.lookup(key), (None, -1), "lookup")

    def store_result(
        self, key: str, output: bytes, content_type: str, ttl_s: float, deps: Sequence[str], since: int
    ) -> None:
        """Queue a store; `since` is the generation of the lookup that missed (-1: unknown,
        so nothing is stored)."""
        if since < 0 or self._state is not CacheState.RUNNING:
            return
        self._track(self._worker.store_result(PutItem(key, output, content_type, ttl_s, tuple(deps), since)),
                    "store")

    # --- sync with the coordinator -----------------------------------------------------

    def sync_point(self) -> tuple[str, int]:
        """(epoch, seq) to put in Register."""
        return self._epoch, self._seq

    def on_registered(self, epoch: str, seq: int, clear: bool, report: ReportCallback | None = None) -> None:
        """Apply the coordinator's answer to Register (before the frame's replayed invalidations)."""
        if clear or epoch != self._epoch:
            if clear:
                log.info("coordinator asked for a full cache clear (log %s#%d, ours %s#%d)",
                         epoch, seq, self._epoch or "-", self._seq)
            self._epoch, self._seq = epoch, seq
            self._queue(self._discard_all, epoch, seq, "the coordinator asked for it")
        elif seq < self._seq:
            # The same epoch cannot go backwards; trust nothing we hold.
            self._epoch, self._seq = epoch, seq
            self._queue(self._discard_all, epoch, seq, f"log seq {seq} is behind ours")

    def apply(self, invalidations: Iterable[tuple[int, Sequence[str]]], report: ReportCallback) -> None:
        """Queue invalidations (seq, names) in order; `report(seq, dropped)` once each is applied."""
        for seq, names in invalidations:
            if seq <= self._seq:
                report(seq, 0)  # already applied (a replay overlapping what we had)
                continue
            self._seq = seq
            if self._state is not CacheState.RUNNING:
                report(seq, 0)
                continue
            self._queue(self._invalidate, tuple(names), self._epoch, seq, done=functools.partial(_report, report, seq))

    def _invalidate(self, names: tuple[str, ...], epoch: str, seq: int) -> int:
        try:
            return self.store.invalidate(names, epoch, seq)
        except CacheUnavailable:
            return 0
        except Exception as exc:
            self.counters.thread_errors += 1
            return self._discard_all(epoch, seq, f"an invalidation failed ({type(exc).__name__}: {exc})")

    def _discard_all(self, epoch: str, seq: int, why: str) -> int:
        """Clear everything; failing that, rebuild the store empty; failing that, it is off."""
        try:
            dropped = self.store.clear(epoch, seq)
        except CacheUnavailable:
            return 0
        except Exception as exc:
            self.counters.thread_errors += 1
            log.warning("result cache: clearing failed (%s: %s); rebuilding it", type(exc).__name__, exc)
            try:
                self.store.rebuild(f"clearing failed after {why}")
            except CacheUnavailable:
                pass
            return 0
        if dropped:
            log.info("result cache cleared (%s): %d entries dropped", why, dropped)
        return dropped

    # --- statistics ----------------------------------------------------------------------

    def stats(self) -> CacheStatsSnapshot:
        c, s = self.counters, self.store.counters
        return CacheStatsSnapshot(
            hits=c.hits,
            misses=c.misses,
            evictions=s.evictions,
            invalidations=s.invalidated,
            bytes=self._snapshot.bytes,
            entries=self._snapshot.entries,
            errors=c.errors + c.thread_errors + s.corrupt_entries + s.rebuilds,
        )
