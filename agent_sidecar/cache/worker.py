"""The cache thread: store calls queued on the event loop and run there in batches.

One thread owns the store (diskcache and the dependency index do blocking
file I/O). Calls queue on the loop; at the end of the current loop turn, if
the thread is free, everything queued goes over as one batch and its results
come back in one loop wake-up (agent_sidecar/threads.py). While a batch runs, new calls pile
up and leave together next: no timer, and the lookups of one frame's
assignments, or a burst, become one batch by themselves.

Why batches: with diskcache's LRU policy every hit is a small write
transaction (~65 µs on a 2-core machine); run inside one transaction, 16
lookups cost ~28 µs each, and 16 stores ~25 µs each instead of ~75.

Order: a batch runs in the order calls were queued, except that its stores
run last. A lookup then never waits behind the writing of results, and that
is safe: a store that an invalidation overtook is refused by the store itself
(ResultStore.put_many compares generations). Invalidations and other calls
always run alone, outside any shared transaction, so a failure in one never
rolls back another.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent_sidecar.cache.entry import Entry
from agent_sidecar.cache.store import CacheUnavailable, PutItem, ResultStore
from agent_sidecar.threads import HandlerThreads

log = logging.getLogger(__name__)

# (fresh entry or None, store generation at the lookup)
Lookup = tuple[Entry | None, int]


class _Kind(enum.Enum):
    LOOKUP = 1
    STORE = 2
    CALL = 3


@dataclass(slots=True)
class _Op:
    kind: _Kind
    future: asyncio.Future[Any]
    key: str = ""
    item: PutItem | None = None
    fn: Callable[..., Any] | None = None
    args: tuple[Any, ...] = ()


# What the thread hands back per op: (True, value) or (False, exception).
_Outcome = tuple[bool, Any]


class CacheWorker:
    """Runs ResultStore calls on one thread, batched, in order (stores last per batch)."""

    def __init__(self, store: ResultStore, name: str = "swarmmesh-cache") -> None:
        self.store = store
        self._thread = HandlerThreads(1, name=name)
        self._queued: list[_Op] = []
        # A batch is on the thread, or one is scheduled for the end of this loop turn.
        self._running = False
        self._closed = False
        self.batches = 0

    # --- loop side ----------------------------------------------------------------

    def lookup(self, key: str) -> asyncio.Future[Lookup]:
        return self._add(_Op(_Kind.LOOKUP, self._future(), key=key))

    def store_result(self, item: PutItem) -> asyncio.Future[bool]:
        return self._add(_Op(_Kind.STORE, self._future(), item=item))

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """fn(*args) on the thread, alone, after everything queued before it."""
        return self._add(_Op(_Kind.CALL, self._future(), fn=fn, args=args))

    def shutdown(self) -> None:
        """No more calls; the thread exits once the current batch is done."""
        self._closed = True
        self._thread.shutdown()

    @staticmethod
    def _future() -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _add(self, op: _Op) -> asyncio.Future[Any]:
        if self._closed:
            raise CacheUnavailable("the cache thread is shut down")
        self._queued.append(op)
        if not self._running:
            self._running = True
            asyncio.get_running_loop().call_soon(self._ship)
        return op.future

    def _ship(self) -> None:
        if self._closed:
            self._running = False
            self._refuse_queued()
            return
        batch, self._queued = self._queued, []
        self.batches += 1
        done = self._thread.submit(self._run_batch, batch)
        done.add_done_callback(lambda f: self._delivered(batch, f))

    def _delivered(self, batch: list[_Op], done: asyncio.Future[list[_Outcome]]) -> None:
        self._running = False
        if done.cancelled() or done.exception() is not None:
            exc = CacheUnavailable("the cache thread failed") if done.cancelled() else done.exception()
            outcomes: list[_Outcome] = [(False, exc)] * len(batch)
        else:
            outcomes = done.result()
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)
        if self._queued and not self._closed:
            self._running = True
            self._ship()
        elif self._closed:
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        queued, self._queued = self._queued, []
        for op in queued:
            if not op.future.done():
                op.future.set_exception(CacheUnavailable("the cache thread is shut down"))

    # --- thread side ----------------------------------------------------------------

    def _run_batch(self, batch: Sequence[_Op]) -> list[_Outcome]:
        out: list[_Outcome | None] = [None] * len(batch)
        lookups: list[int] = []
        stores: list[int] = []
        for i, op in enumerate(batch):
            if op.kind is _Kind.LOOKUP:
                lookups.append(i)
            elif op.kind is _Kind.STORE:
                stores.append(i)
            else:
                self._flush_lookups(batch, lookups, out)
                out[i] = self._guard(op.fn, *op.args)  # type: ignore[arg-type]
        self._flush_lookups(batch, lookups, out)
        if stores:
            items = [batch[i].item for i in stores]
            results = self._guard(self.store.put_many, items)
            for n, i in enumerate(stores):
                out[i] = (True, results[1][n]) if results[0] else results
        return [o if o is not None else (False, RuntimeError("not run")) for o in out]

    def _flush_lookups(self, batch: Sequence[_Op], lookups: list[int], out: list[_Outcome | None]) -> None:
        if not lookups:
            return
        ok, value = self._guard(self.store.get_many, [batch[i].key for i in lookups])
        for n, i in enumerate(lookups):
            out[i] = (True, value[n]) if ok else (False, value)
        lookups.clear()

    def _guard(self, fn: Callable[..., Any], *args: Any) -> _Outcome:
        """Run one store call; on failure let the store heal itself, and report the error."""
        try:
            return True, fn(*args)
        except CacheUnavailable as exc:
            return False, exc
        except Exception as exc:
            try:
                self.store.recover(exc)
            except Exception:
                log.debug("cache recovery failed", exc_info=True)
            return False, exc
