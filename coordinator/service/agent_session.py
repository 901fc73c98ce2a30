"""AgentSession: the coordinator's end of one sidecar stream, an outbox and its writer.

Whatever queues while a write is in flight goes out as ONE frame when it
completes (natural coalescing: no timers, and a burst becomes a batch).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc

from coordinator.service import convert
from swarmmesh.v1 import mesh_pb2

if TYPE_CHECKING:
    from coordinator.core.model import TaskRecord


class AgentSession:
    """The coordinator's end of one sidecar stream: an outbox and its writer."""

    def __init__(self, context: grpc.aio.ServicerContext, agent_id: str, session: int) -> None:
        self.agent_id = agent_id
        self.session = session
        self._context = context
        # The next frame, its assignments built in it as they are dispatched (a copy per
        # assignment otherwise); the writer adds the rest of what queued when it sends it.
        self._frame = mesh_pb2.CoordinatorFrame()
        self._acks: list[mesh_pb2.ResultAck] = []
        self._cancels: list[mesh_pb2.TaskRef] = []
        self._invalidations: list[mesh_pb2.Invalidation] = []
        self._drain = False
        self._recorded = 0
        self._registered: mesh_pb2.Registered | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = asyncio.Event()
        # The agent's draining flag has been answered with a drain frame.
        self.drain_answered = False
        # The bytes of the last frame that carried only a heartbeat, while that
        # heartbeat is the agent's current one: the same bytes again change nothing.
        self.idle_frame: bytes | None = None
        # Set when the coordinator ends the stream (fenced, lease expired).
        self.close_status: tuple[grpc.StatusCode, str] | None = None
        self.frames_sent = 0

    # -- outbox -------------------------------------------------------------

    def send_registered(self, msg: mesh_pb2.Registered) -> None:
        self._registered = msg
        self._kick()

    def send_assignments(self, recs: list[TaskRecord], now: float) -> None:
        into = self._frame.assignments
        for rec in recs:
            convert.assignment_to_proto(rec, now, into)
        self._kick()

    def send_acks(self, recorded: int, rejected: list[mesh_pb2.ResultAck]) -> None:
        # The count of recorded results is informational: it rides on the next
        # frame written anyway (see flush_count), so a lone task costs the
        # agent's stream one frame each way instead of three messages.
        self._recorded += recorded
        if rejected:
            self._acks.extend(rejected)
            self._kick()

    def flush_count(self) -> None:
        """Send the count of recorded results now if nothing else carried it."""
        if self._recorded:
            self._kick()

    def send_cancels(self, refs: list[tuple[str, int]]) -> None:
        self._cancels.extend(mesh_pb2.TaskRef(task_id=t, attempt=a) for t, a in refs)
        self._kick()

    def send_invalidations(self, items: list[mesh_pb2.Invalidation]) -> None:
        self._invalidations.extend(items)
        self._kick()

    def send_drain(self) -> None:
        self._drain = True
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    def close(self, code: grpc.StatusCode, message: str) -> None:
        if not self.closed.is_set():
            self.close_status = (code, message)
            self.closed.set()

    async def flushed(self) -> None:
        await self._idle.wait()

    # -- writer ---------------------------------------------------------------

    async def run_writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            frame, self._frame = self._frame, mesh_pb2.CoordinatorFrame()
            if self._drain:
                frame.drain = True
            if self._recorded:
                frame.recorded = self._recorded
            self._recorded = 0
            if self._registered is not None:
                frame.registered.CopyFrom(self._registered)
                self._registered = None
            if self._invalidations:
                # The agent applies these before the frame's assignments.
                frame.invalidations.extend(self._invalidations)
                self._invalidations = []
            if self._acks:
                frame.acks.extend(self._acks)
                self._acks = []
            if self._cancels:
                frame.cancels.extend(self._cancels)
                self._cancels = []
            self._drain = False
            await self._context.write(frame)
            self.frames_sent += 1
            if not self._wake.is_set():
                self._idle.set()
