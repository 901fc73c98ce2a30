"""What the sidecar's next frame to the coordinator carries.

Writes are coalesced: results, credits, the latest heartbeat, invalidation
reports and the draining flag are queued in the outbox, and the connection's
single writer task sends everything that is queued as one SidecarFrame whenever
it is free. Under load, items pile up while a write is in flight and leave
together in the next frame; at low load each item leaves at once. No timer ever
holds a frame back.

Results outlive their stream: a result written is held until the coordinator
answers it, and when a stream ends its unanswered and queued results stay
queued for the next one, with those finished while no stream is up, within a
bound (held.py has the rules). Credits, heartbeats and invalidation reports
belong to their stream: a new stream starts without them, and its Register
carries the free slots (see `reset_for_stream`).

Its own module so the rules for what goes into a frame can be read apart from
the stream plumbing in manager.py; the `ConnectionManager` holds one outbox and
its writer task sends what `take_frame` hands it.
"""

from __future__ import annotations

import asyncio
import logging

from agent_sidecar import wire
from agent_sidecar.connection.counters import ConnectionCounters, RateLimitedWarning
from agent_sidecar.connection.held import HeldResults
from agent_sidecar.runner.slot import TaskKey
from swarmmesh.v1 import mesh_pb2

log = logging.getLogger(__name__)


class Outbox:
    """Everything the next SidecarFrame will carry; `take_frame` empties it."""

    def __init__(self, counters: ConnectionCounters, held_limit: int, warn: RateLimitedWarning) -> None:
        self.counters = counters
        self.held = HeldResults(counters, held_limit, warn)
        # A registered stream is up: results queue without bound, the writer takes them.
        self._open = False
        self._results: list[mesh_pb2.TaskResult] = []
        self._credits = 0
        self._heartbeat: mesh_pb2.Heartbeat | None = None
        self._reports: list[mesh_pb2.InvalidationReport] = []
        self._draining = False
        self._draining_sent = False
        # Set whenever something is queued; the writer waits on it.
        self._wake = asyncio.Event()
        # (task_id, attempt) assigned, on this stream or an earlier one, whose result is still to come.
        self._assigned: set[TaskKey] = set()

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def results_queued(self) -> int:
        """Results waiting for the next frame."""
        return len(self._results)

    @property
    def credits(self) -> int:
        """Credits waiting for the next frame."""
        return self._credits

    @property
    def draining_unsent(self) -> bool:
        """Draining, and no frame has said so on this stream yet."""
        return self._draining and not self._draining_sent

    def push_result(self, result: mesh_pb2.TaskResult | None, credits: int) -> None:
        """Runner callback: queue a result and/or returned credits for the next frame."""
        self._credits += credits
        if result is not None:
            key = (result.task_id, result.attempt)
            if key not in self._assigned:
                self.counters.results_dropped += 1
                log.debug("dropping result %s#%d of an attempt not assigned here", *key)
            else:
                self._assigned.discard(key)
                if self._open or self.held.keep(len(self._results)):
                    self._results.append(result)
        self._wake.set()

    def push_invalidation_report(self, seq: int, dropped: int) -> None:
        """Queue how many cached results an invalidation dropped, for the next frame."""
        self._reports.append(wire.invalidation_report_to_proto(seq, dropped))
        self._wake.set()

    def push_heartbeat(self, heartbeat: mesh_pb2.Heartbeat) -> None:
        """Queue a heartbeat; one still queued is replaced, only the latest is sent."""
        self._heartbeat = heartbeat
        self._wake.set()

    def set_draining(self) -> None:
        """From now on every frame says draining and grants no credits."""
        self._draining = True
        self._wake.set()

    def expect_result(self, key: TaskKey) -> None:
        """An attempt assigned to this agent: its result will be sent, whatever stream is up then."""
        self._assigned.add(key)

    def forget_result(self, key: TaskKey) -> None:
        """An attempt withdrawn by a cancel: no result is sent for it."""
        self._assigned.discard(key)
        self.held.forget(key)

    def wake(self) -> None:
        """Wake the writer with nothing queued, so it looks at the stream's state again."""
        self._wake.set()

    async def wait_for_items(self) -> None:
        """Wait until something is queued or `wake()` is called.

        Call it right after `take_frame()` answered None, with no await in
        between: the wake-up flag is cleared before waiting, so nothing queued
        after the empty frame is lost.
        """
        self._wake.clear()
        await self._wake.wait()

    def take_frame(self) -> mesh_pb2.SidecarFrame | None:
        """Everything queued as one frame, and an empty outbox; None when there is nothing to say."""
        if self._draining:
            # Freed slots are never granted again once draining.
            self._credits = 0
        if not (
            self._results or self._credits or self._heartbeat is not None or self._reports or self.draining_unsent
        ):
            return None
        frame = wire.outbound_frame(self._results, self._credits, self._draining, self._heartbeat, self._reports)
        if self._results:
            self.held.written(self._results)
        self._reports = []
        self._results = []
        self._credits = 0
        self._heartbeat = None
        if self._draining:
            self._draining_sent = True
        return frame

    def reset_for_stream(self, capacity: int) -> list[TaskKey]:
        """Start a new stream, whose Register carries the free slots, and return
        the attempts it lists as held: the results queued, then those running."""
        self._credits = 0
        self._heartbeat = None
        self._draining_sent = False
        self._reports = []
        return self.held.hand_over(self._results, self._assigned, capacity)

    def stream_opened(self) -> None:
        """The new stream is registered: what is queued goes out first on it."""
        self._open = True
        self.held.registered()

    def stream_ended(self) -> None:
        """Keep what the ended stream left unanswered for the next one."""
        if not self._open:
            return
        self._open = False
        self._results = self.held.carry_over(self._results)
