"""TaskService.Session: a client's submissions and awaited results on one stream.

A unary call costs grpc's Python stack about ten times a stream message, so a
client that submits or waits for tasks one by one at a high rate pays for
calls, not for work. On a session each SessionSubmit and SessionWatch is
handled as its unary form would be (same validation, same statuses) but is
answered by a SessionAck in the response stream. A bad item fails alone and
the stream goes on; the stream itself only ends when the client ends it, or
when the coordinator stops (shutdown.py).

Writing follows the agents' streams: whatever queued (acks, finished tasks)
while the previous write was in flight goes out as one message, with no
timer. A client that stops reading stops being read: past MAX_PENDING unsent
acks and finished tasks the reader waits, so its frames back up in gRPC flow
control and not in the coordinator's memory. Finished tasks are converted to
messages only as they are written, CHUNK at a time.

Nothing goes out before the journal's commit that holds it (durability.py):
an ack names tasks the coordinator will still have after a crash, and a
finished task is one whose completion is recorded. The writer waits for the
commit of everything queued when it woke; the reader goes on reading and
handling meanwhile, and what it queues goes out after a later commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import grpc
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from coordinator.core.mesh import MeshCore
from coordinator.core.model import CoreError, StatusCode
from coordinator.service import convert
from coordinator.service.cache_sync import CacheSync
from coordinator.service.durability import Commits, NotDurable, committed
from coordinator.service.effects import AgentSessions
from coordinator.service.shutdown import Shutdown
from coordinator.service.watch import Watcher, WatchHub
from swarmmesh.v1 import tasks_pb2, types_pb2

log = logging.getLogger(__name__)

# Unfinished tasks one session may watch at a time.
MAX_SESSION_WATCHED = 1_000_000
# Ids per SessionWatch and per WatchTasks stream.
MAX_WATCH_IDS = 100_000
# Unsent acks and finished-task copies past which the session stops reading its client's frames.
MAX_PENDING = 10_000
# Submitted tasks acknowledged per response message (each SubmittedTask is small).
ACK_TASKS = 20_000
# Finished tasks per Session or WatchTasks message: well under the message size limit.
CHUNK = 500


def accept(core: MeshCore, agents: AgentSessions, cache_sync: CacheSync, tasks: Iterable[types_pb2.TaskSpec],
           decided: bool, into: RepeatedCompositeFieldContainer[tasks_pb2.SubmittedTask]) -> None:
    """Accept one all-or-nothing batch (SubmitTasks or a SessionSubmit) and add what became of
    each task to `into`, the reply's field (built there: no copy); raises CoreError."""
    specs = [convert.task_spec_from_proto(t, decided) for t in tasks]
    now = time.time()
    submitted = core.submit(specs, now)
    agents.schedule_dispatch()
    cache_sync.observe(specs, now)
    add = into.add
    wire = convert.wire_enum
    for s in submitted:
        if s.deduplicated:
            add(task_id=s.task_id, deduplicated=True, state=wire(s.state))
        else:
            add(task_id=s.task_id, state=wire(s.state))


def _failed(item_id: int, e: CoreError) -> tasks_pb2.SessionAck:
    return tasks_pb2.SessionAck(id=item_id, code=int(e.code), message=e.message, retry_after_ms=e.retry_after_ms)


def _broken(item_id: int, what: str, e: Exception) -> tasks_pb2.SessionAck:
    # A fault of ours fails its item as a unary call would fail (INTERNAL), not the stream.
    log.exception("session %s %d failed", what, item_id)
    return tasks_pb2.SessionAck(id=item_id, code=grpc.StatusCode.INTERNAL.value[0],
                                message=f"internal error: {type(e).__name__}: {e}")


class SessionWatcher(Watcher):
    """All of a session's watches. A task that finishes is sent once, whole if any watch wants its
    payloads (the client hands a whole copy to every watch of it, a lean one to the lean ones)."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__(False, False, event)
        # Tasks with a watch that wants payloads and has not been sent its copy.
        self.with_payloads: set[str] = set()

    @property
    def queued(self) -> int:
        return len(self._buffer)

    def take_into(self, limit: int, response: tasks_pb2.SessionResponse) -> int:
        """Move up to `limit` queued copies into `response`, converted now (whole ones into
        `finished`, the others into `finished_without_payloads`); how many."""
        items, self._buffer = self._buffer[:limit], self._buffer[limit:]
        whole, lean = response.finished, response.finished_without_payloads
        to_proto, with_payloads = convert.task_to_proto, self.with_payloads
        for rec in items:
            assert not isinstance(rec, types_pb2.Task)  # only watchers with all_updates queue messages
            if rec.task_id in with_payloads:
                with_payloads.discard(rec.task_id)
                to_proto(rec, payloads=True, into=whole)
            else:
                to_proto(rec, payloads=False, into=lean)
        return len(items)


class ClientSession:
    """The coordinator's end of one session: its watchers and outbox."""

    def __init__(self, core: MeshCore, agents: AgentSessions, hub: WatchHub, cache_sync: CacheSync,
                 commits: Commits | None = None, shutdown: Shutdown | None = None) -> None:
        """`commits`: the journal whose commits replies wait for; None = none to wait for.
        `shutdown`: the coordinator's stop, which refuses submissions and ends the session."""
        self.shutdown = shutdown or Shutdown()
        self._core = core
        self._agents = agents
        self._hub = hub
        self._cache_sync = cache_sync
        self._commits = commits
        self._acks: list[tasks_pb2.SessionAck] = []
        # How many of the first queued acks and finished tasks are committed, and may go out.
        self._ready_acks = 0
        self._ready_finished = 0
        # Wakes the writer: set by acks and by the watchers' pushes.
        self.wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._watcher = SessionWatcher(self.wake)

    # -- reading ------------------------------------------------------------

    def handle(self, request: tasks_pb2.SessionRequest) -> None:
        for sub in request.submits:
            if self.shutdown.closing:
                self._acks.append(self.shutdown.refusal(sub.id))
                continue
            try:
                ack = tasks_pb2.SessionAck(id=sub.id)
                accept(self._core, self._agents, self._cache_sync, sub.tasks, sub.trace_decided, ack.tasks)
            except CoreError as e:
                ack = _failed(sub.id, e)
            except Exception as e:
                ack = _broken(sub.id, "submit", e)
            self._acks.append(ack)
        self._agents.dispatch_now()  # before the acks: see AgentSessions.dispatch_now
        for watch in request.watches:
            try:
                self._watch(watch)
                ack = tasks_pb2.SessionAck(id=watch.id)
            except CoreError as e:
                ack = _failed(watch.id, e)
            except Exception as e:
                ack = _broken(watch.id, "watch", e)
            self._acks.append(ack)
        if request.unwatch:
            self._unwatch(request.unwatch)
        if self._acks:
            self.wake.set()
        if self.pending >= MAX_PENDING:
            self._room.clear()

    def _watch(self, watch: tasks_pb2.SessionWatch) -> None:
        ids = list(dict.fromkeys(watch.task_ids))
        if not ids:
            raise CoreError(StatusCode.INVALID_ARGUMENT, "task_ids: is empty: name at least one task")
        if len(ids) > MAX_WATCH_IDS:
            raise CoreError(StatusCode.INVALID_ARGUMENT,
                            f"task_ids: {len(ids)} ids, the limit per watch is {MAX_WATCH_IDS}")
        core = self._core
        recs = [core.get(t) for t in ids]  # NOT_FOUND names the id
        if self.watching + len(ids) > MAX_SESSION_WATCHED:
            raise CoreError(StatusCode.RESOURCE_EXHAUSTED,
                            f"task_ids: this session already watches {self.watching} unfinished tasks; "
                            f"{len(ids)} more would pass the limit of {MAX_SESSION_WATCHED}")
        if not watch.omit_payloads:
            # Before add(): a task that is terminal already is pushed at once.
            self._watcher.with_payloads.update(ids)
        self._hub.add(self._watcher, recs)

    def _unwatch(self, task_ids: Iterable[str]) -> None:
        """Stop watching these tasks; ids not watched (finished meanwhile, or never) are ignored."""
        self._hub.drop(self._watcher, task_ids)
        self._watcher.with_payloads.difference_update(task_ids)

    @property
    def watching(self) -> int:
        return len(self._watcher.remaining)

    @property
    def pending(self) -> int:
        """Acks and finished-task copies not sent yet."""
        return len(self._acks) + self._watcher.queued

    async def room(self) -> None:
        """Return once the outbox is below MAX_PENDING."""
        await self._room.wait()

    # -- writing ------------------------------------------------------------

    async def settle(self) -> None:
        """Wait for the commit that holds everything queued so far; then all of it may go out.
        Both queues only grow at the back meanwhile, so the first n items are the same ones."""
        if self._commits is None:
            return
        acks, finished = len(self._acks), self._watcher.queued
        if acks > self._ready_acks or finished > self._ready_finished:
            await committed(self._commits)
        self._ready_acks, self._ready_finished = acks, finished

    def take(self) -> tasks_pb2.SessionResponse | None:
        """The next response of what `settle` let out (everything, without a journal): acks up to
        ACK_TASKS submitted tasks, and up to CHUNK finished tasks (converted only now); None when
        nothing is ready."""
        if self._commits is None:
            self._ready_acks, self._ready_finished = len(self._acks), self._watcher.queued
        n = weight = 0
        ready = self._ready_acks
        for ack in self._acks:
            weight += 1 + len(ack.tasks)
            if n >= ready or (weight > ACK_TASKS and n):
                break
            n += 1
        acks = self._acks[:n]
        del self._acks[:n]
        self._ready_acks -= n
        response = tasks_pb2.SessionResponse(acks=acks)
        finished = self._watcher.take_into(min(CHUNK, self._ready_finished), response)
        self._ready_finished -= finished
        if self.pending < MAX_PENDING:
            self._room.set()
        if not (acks or finished):
            return None
        return response

    @property
    def idle(self) -> bool:
        """Nothing to send and nothing watched."""
        return not self._acks and self._watcher.done

    def close(self) -> None:
        self._hub.unsubscribe(self._watcher)


async def serve(sess: ClientSession, context: grpc.aio.ServicerContext) -> None:
    """Run one session until the client ends it; after a half-close, until nothing is left to send.
    A coordinator that is stopping ends it with UNAVAILABLE once what it queued is written."""
    reading = True

    async def read() -> None:
        nonlocal reading
        try:
            while True:
                await sess.room()
                request = await context.read()
                if request is grpc.aio.EOF:
                    reading = False
                    return
                sess.handle(request)
        finally:
            sess.wake.set()  # the writer looks at how reading ended

    reader = asyncio.create_task(read(), name="session-reader")
    try:
        while True:
            await sess.wake.wait()
            sess.wake.clear()
            ending = sess.shutdown.ending
            if ending:
                # Read nothing more, so that what is written next is all there is to write.
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            elif reader.done() and reading:
                reader.result()  # the stream broke: end the handler with its error
            try:
                await sess.settle()
            except NotDurable as e:
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
            response = sess.take()
            while response is not None:
                try:
                    await context.write(response)
                except Exception as exc:  # grpc raises its own internal error types here
                    if context.cancelled() or context.done():
                        log.debug("session ended by the client during a write: %s", exc)
                        return
                    raise
                response = sess.take()
            if ending:
                await sess.shutdown.refuse(context)
            if not reading and sess.idle:
                return
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        sess.close()
