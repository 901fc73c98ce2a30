"""The client's end of ``TaskService.Session``: submits and watches on one stream.

Every submit and every wait of an :class:`~swarmmesh.client.AsyncClient`
goes through one session, so each costs a stream message instead of a call.
A writer task sends whatever queued while its previous write was in flight as
one ``SessionRequest`` (natural coalescing, no timers); a reader task hands
each ``SessionAck`` to the caller waiting for it and each finished task to
every watch of it.

When the stream breaks, everything waiting on it fails with the error, and
the client opens a new session on next use. Whether a submit whose ack never
came was accepted is unknown here; the client resends it under the same
idempotency keys (see :mod:`swarmmesh._retry`), so that it is recorded once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import grpc

from swarmmesh import _convert
from swarmmesh.errors import (
    DeadlineExceeded,
    Internal,
    SwarmMeshError,
    Unavailable,
    error_for,
    from_rpc_error,
)
from swarmmesh.types import TaskInfo
from swarmmesh.v1 import tasks_pb2, types_pb2

_Item = TypeVar("_Item", tasks_pb2.SessionSubmit, tasks_pb2.SessionWatch)
_STATUS: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}
#: Ids per SessionWatch (the protocol's limit).
MAX_WATCH_IDS = 100_000
# A request message is cut after the item that takes it past this size.
_FRAME_BYTES = 4 * 1024 * 1024


def ack_error(ack: tasks_pb2.SessionAck) -> SwarmMeshError:
    return error_for(_STATUS.get(ack.code, grpc.StatusCode.UNKNOWN), ack.message, ack.retry_after_ms)


def _copy(error: SwarmMeshError) -> SwarmMeshError:
    """One exception per caller: callers add notes and accepted ids to what they catch."""
    return error_for(error.code, error.details, error.retry_after_ms)


class Watch:
    """Terminal states of some tasks, each once, in the order they finish."""

    def __init__(self, session: Session, ids: Sequence[str], lean: bool) -> None:
        self._session = session
        # Asked for no payloads: a copy without them will do.
        self.lean = lean
        self.remaining = set(ids)
        self._total = len(self.remaining)
        self._queue: asyncio.Queue[TaskInfo | BaseException] = asyncio.Queue()

    def deliver(self, task: TaskInfo) -> None:
        if task.task_id in self.remaining:
            self.remaining.discard(task.task_id)
            self._queue.put_nowait(task)

    def fail(self, exc: BaseException) -> None:
        self._queue.put_nowait(exc)

    def close(self) -> None:
        """Stop routing this watch's tasks to it; the coordinator stops watching those no other
        watch of the session waits for (a copy already on its way is dropped on arrival)."""
        self._session.forget(self)

    async def __aiter__(self) -> AsyncIterator[TaskInfo]:
        delivered = 0
        while delivered < self._total:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            delivered += 1
            yield item


def _cut(queue: list[_Item], budget: int) -> tuple[list[_Item], int]:
    """Take items off the front of `queue` while `budget` bytes last (at least one); and what is left."""
    n = 0
    for item in queue:
        if budget <= 0 and n:
            break
        budget -= item.ByteSize()
        n += 1
    taken = queue[:n]
    del queue[:n]
    return taken, budget


class Session:
    def __init__(self, stub: Any) -> None:
        self._call = stub.Session()
        self._ids = itertools.count(1)
        self._submits: list[tasks_pb2.SessionSubmit] = []
        self._watches: list[tasks_pb2.SessionWatch] = []
        # Task ids to stop watching (a dict for its order); sent once every watch queued
        # before them is, and dropped from here when a new watch wants them again.
        self._unwatches: dict[str, None] = {}
        self._pending: dict[int, asyncio.Future[tasks_pb2.SessionAck] | Watch] = {}
        self._routes: dict[str, list[Watch]] = {}
        self._wake = asyncio.Event()
        self.error: SwarmMeshError | None = None
        # The coordinator sent something on this stream: it was reached, so an
        # outage after this is one to ride out rather than a wrong address.
        self.answered = False
        self._writer = asyncio.create_task(self._write_loop(), name="swarmmesh-session-writer")
        self._reader = asyncio.create_task(self._read_loop(), name="swarmmesh-session-reader")

    @property
    def broken(self) -> bool:
        return self.error is not None

    # -- operations -------------------------------------------------------------

    async def submit(self, tasks: Sequence[types_pb2.TaskSpec], decided: bool,
                     timeout: float | None  # noqa: ASYNC109 (the client's per-call deadline)
                     ) -> list[tasks_pb2.SubmittedTask]:
        """One all-or-nothing batch; raises the error its SubmitTasks call would have."""
        if self.error is not None:
            raise _copy(self.error)
        item_id = next(self._ids)
        waiter: asyncio.Future[tasks_pb2.SessionAck] = asyncio.get_running_loop().create_future()
        self._pending[item_id] = waiter
        self._submits.append(tasks_pb2.SessionSubmit(id=item_id, tasks=tasks, trace_decided=decided))
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                ack = await waiter
        except TimeoutError:
            raise DeadlineExceeded(f"no answer to the submission within {timeout} s") from None
        finally:
            self._pending.pop(item_id, None)  # a caller that gave up no longer waits
        if ack.code:
            raise ack_error(ack)
        return list(ack.tasks)

    def watch(self, ids: Sequence[str], omit_payloads: bool) -> Watch:
        """Start watching `ids` (distinct); iterate the result for their terminal states."""
        if self.error is not None:
            raise _copy(self.error)
        w = Watch(self, ids, omit_payloads)
        for task_id in ids:
            self._routes.setdefault(task_id, []).append(w)
        if self._unwatches:
            # Watched again before its unwatch went out: the coordinator applies a message's
            # unwatches after its watches, so the unwatch would undo this watch.
            for task_id in ids:
                self._unwatches.pop(task_id, None)
        for i in range(0, len(ids), MAX_WATCH_IDS):
            item_id = next(self._ids)
            self._pending[item_id] = w
            self._watches.append(tasks_pb2.SessionWatch(id=item_id, task_ids=ids[i:i + MAX_WATCH_IDS],
                                                        omit_payloads=omit_payloads))
        self._wake.set()
        return w

    def forget(self, w: Watch) -> None:
        """`w`'s caller stopped waiting: route nothing more to it, and tell the coordinator to
        stop watching the tasks no other watch of this session waits for."""
        orphans: list[str] = []
        for task_id in w.remaining:
            watches = self._routes.get(task_id)
            if watches is None:
                continue
            if w in watches:
                watches.remove(w)
            if not watches:
                del self._routes[task_id]
                orphans.append(task_id)
        w.remaining.clear()
        if orphans and self.error is None:
            self._unwatches.update(dict.fromkeys(orphans))
            self._wake.set()

    async def close(self) -> None:
        self._fail(Unavailable("the client was closed"))
        self._call.cancel()
        await asyncio.gather(self._writer, self._reader, return_exceptions=True)

    # -- the stream ---------------------------------------------------------------

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._submits or self._watches or self._unwatches:
                    await self._call.write(self._take())
        except grpc.RpcError as exc:
            self._fail(from_rpc_error(exc))
        except (asyncio.InvalidStateError, grpc.aio.UsageError):
            # The call ended under the write; the reader reports why.
            pass
        except Exception as exc:  # a fault of ours: fail the callers, do not leave them waiting
            self._fail(Internal(f"the session's writer failed: {type(exc).__name__}: {exc}"))

    def _take(self) -> tasks_pb2.SessionRequest:
        """The queued items, up to about _FRAME_BYTES; the rest waits for the next write."""
        submits, left = _cut(self._submits, _FRAME_BYTES)
        watches, _ = _cut(self._watches, left)
        request = tasks_pb2.SessionRequest(submits=submits, watches=watches)
        if self._unwatches and not self._watches:
            # After the watches they undo (the coordinator applies a message's watches first).
            ids = list(itertools.islice(self._unwatches, MAX_WATCH_IDS))
            for task_id in ids:
                del self._unwatches[task_id]
            request.unwatch.extend(ids)
        return request

    async def _read_loop(self) -> None:
        error: SwarmMeshError = Unavailable("the coordinator ended the session")
        try:
            async for response in self._call:
                self.answered = True
                for ack in response.acks:
                    self._on_ack(ack)
                if response.finished:
                    self._on_finished(response.finished, True)
                if response.finished_without_payloads:
                    self._on_finished(response.finished_without_payloads, False)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
        except Exception as exc:  # a fault of ours: fail the callers, do not leave them waiting
            error = Internal(f"the session's reader failed: {type(exc).__name__}: {exc}")
        self._fail(error)

    def _on_ack(self, ack: tasks_pb2.SessionAck) -> None:
        waiter = self._pending.pop(ack.id, None)
        if waiter is None:
            return  # its caller gave up (timeout)
        if isinstance(waiter, Watch):
            if ack.code:
                self.forget(waiter)
                waiter.fail(ack_error(ack))
        elif not waiter.done():
            waiter.set_result(ack)

    def _on_finished(self, tasks: Sequence[types_pb2.Task], whole: bool) -> None:
        """Hand each copy to the watches it serves: a whole copy to all of the task's watches, a
        lean one only to those that asked for no payloads."""
        routes = self._routes
        for msg in tasks:
            watches = routes.get(msg.task_id)
            if watches is None:
                continue  # watched by a caller that stopped early, or served by an earlier copy
            if whole:
                served = watches
                del routes[msg.task_id]
            else:
                served = [w for w in watches if w.lean]
                if not served:
                    continue
                rest = [w for w in watches if not w.lean]
                if rest:
                    routes[msg.task_id] = rest
                else:
                    del routes[msg.task_id]
            task = _convert.task_from_proto(msg)
            for w in served:
                w.deliver(task)

    def _fail(self, error: SwarmMeshError) -> None:
        """The session is over: fail everything waiting on it, and end both tasks."""
        if self.error is None:
            self.error = error
        error = self.error
        current = asyncio.current_task()
        for t in (self._writer, self._reader):
            if t is not current:
                t.cancel()
        pending, self._pending = self._pending, {}
        failed: set[int] = set()
        for waiter in pending.values():
            if isinstance(waiter, Watch):
                if id(waiter) not in failed:
                    failed.add(id(waiter))
                    waiter.fail(_copy(error))
            elif not waiter.done():
                waiter.set_exception(_copy(error))
        # Watches whose acks came but whose tasks did not.
        for watches in self._routes.values():
            for w in watches:
                if id(w) not in failed:
                    failed.add(id(w))
                    w.fail(_copy(error))
        self._routes.clear()
        self._submits.clear()
        self._watches.clear()
        self._unwatches.clear()
