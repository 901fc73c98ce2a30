"""Worker threads for sync handlers, with completions handed to the event loop in batches.

Why not `loop.run_in_executor(ThreadPoolExecutor)`: each completion there costs
a concurrent Future, an asyncio Future chained to it and one
`call_soon_threadsafe` (a self-pipe write and a loop wake-up) per task, about
70 CPU-µs per no-op task on a 2-core machine. Here workers append completions to
one queue and wake the loop only if no wake-up is pending yet, so a burst of
completions costs one wake-up; about 20 CPU-µs per task.

The threads are daemons. A handler thread cannot be interrupted, and a
non-daemon thread stuck in a handler would keep the process alive after a
drain has given up on it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_Work = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class HandlerThreads:
    """At most `size` threads, started on demand; `submit` returns an asyncio future."""

    def __init__(self, size: int, name: str = "swarmmesh-handler") -> None:
        if size < 1:
            raise ValueError(f"size: must be >= 1, got {size}")
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._busy = 0  # items submitted and not yet finished, guarded by _lock
        self._done: collections.deque[tuple[asyncio.Future[Any], bool, Any]] = collections.deque()
        self._wakeup_pending = False  # guarded by _lock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def busy(self) -> int:
        """Calls still executing (including ones whose caller stopped waiting)."""
        with self._lock:
            return self._busy

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run fn(*args) on a worker thread; the future is resolved on the calling loop."""
        if self._closed:
            raise RuntimeError("HandlerThreads is shut down")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("HandlerThreads is bound to another event loop")
        fut: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._busy += 1
            # The runner never has more than `size` calls outstanding, so
            # starting a thread whenever calls outnumber threads stays <= size.
            spawn = self._busy > len(self._threads) and len(self._threads) < self._size
            if spawn:
                thread = threading.Thread(
                    target=self._worker, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
        if spawn:
            thread.start()
        self._work.put((fut, fn, args))
        return fut

    def shutdown(self) -> None:
        """Let idle workers exit; busy ones exit when their call returns."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            count = len(self._threads)
        for _ in range(count):
            self._work.put(None)

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            fut, fn, args = item
            try:
                value: Any = fn(*args)
                ok = True
            except Exception as exc:
                value, ok = exc, False
            except BaseException as exc:
                # SystemExit and friends from handler code must not kill the
                # worker nor reach the loop as a process-level exception.
                value, ok = RuntimeError(f"{type(exc).__name__}: {exc}"), False
            del item, fn, args  # no references to handler inputs while idle
            with self._lock:
                self._busy -= 1
                self._done.append((fut, ok, value))
                if self._wakeup_pending:
                    continue
                self._wakeup_pending = True
            loop = self._loop
            if loop is None:
                continue
            try:
                loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:
                return  # the loop is closed; nobody is waiting any more

    def _deliver(self) -> None:
        with self._lock:
            done = list(self._done)
            self._done.clear()
            self._wakeup_pending = False
        for fut, ok, value in done:
            if fut.done():  # the waiter was cancelled
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
