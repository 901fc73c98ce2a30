"""MeshService.Connect: one bidirectional stream per sidecar.

Reading and writing are independent: a reader task applies incoming frames to
the core; a writer task sends whatever has queued up since its last write as
ONE frame (natural coalescing: no timers, and a burst becomes a batch).

Frames arrive as bytes and are parsed here. An idle agent's heartbeats repeat
byte for byte, and with thousands of agents they are most of what the
coordinator reads: a frame equal to the last heartbeat-only frame of its
stream only renews the lease, without being parsed and converted again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import DecodeError

from coordinator.core.model import CoreError, StatusCode
from coordinator.service import convert
from coordinator.service.cache_sync import invalidations_to_proto
from coordinator.service.task_service import STATUS
from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc

if TYPE_CHECKING:
    from coordinator.core.model import TaskRecord
    from coordinator.server import Coordinator

log = logging.getLogger(__name__)

SERVICE = "swarmmesh.v1.MeshService"


def add_mesh_service(service: MeshService, server: grpc.aio.Server) -> None:
    """Register MeshService with its inbound frames left as bytes (see the module's note)."""
    handlers = {"Connect": grpc.stream_stream_rpc_method_handler(
        service.Connect, request_deserializer=None,
        response_serializer=mesh_pb2.CoordinatorFrame.SerializeToString)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


def _parse(raw: bytes) -> mesh_pb2.SidecarFrame:
    try:
        return mesh_pb2.SidecarFrame.FromString(raw)
    except DecodeError as e:
        raise CoreError(StatusCode.INVALID_ARGUMENT, f"frame: not a SidecarFrame ({e})") from None


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


class MeshService(mesh_pb2_grpc.MeshServiceServicer):
    def __init__(self, coord: Coordinator) -> None:
        self._c = coord
        self._core = coord.core

    async def Connect(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        raw = await context.read()
        if raw is grpc.aio.EOF:
            return
        try:
            first = _parse(raw)
        except CoreError as e:
            await context.abort(STATUS[e.code], e.message)
        if not first.HasField("register"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "register: the first frame must carry register")
        reg = convert.registration_from_proto(first.register, context.peer())
        try:
            agent, fenced = self._core.register(reg, time.time())
        except CoreError as e:
            await context.abort(STATUS[e.code], e.message)
        if fenced is not None:
            self._c.close_session(fenced.agent_id, fenced.session, grpc.StatusCode.FAILED_PRECONDITION,
                                  f"agent {fenced.agent_id!r} registered again on a newer stream")
        sess = AgentSession(context, agent.agent_id, agent.session)
        self._c.sessions[agent.agent_id] = sess
        cfg = self._c.config
        # Same step as joining `sessions`: every invalidation reaches this agent
        # exactly once, live or in this catch-up.
        catch = self._c.cache_sync.catch_up(first.register.cache_epoch, first.register.cache_seq)
        sess.send_registered(mesh_pb2.Registered(
            agent_id=agent.agent_id,
            session=agent.session,
            heartbeat_interval_ms=int(cfg.heartbeat_interval_s * 1000),
            lease_timeout_ms=int(cfg.lease_timeout_s * 1000),
            invalidation_epoch=catch.epoch,
            invalidation_seq=catch.head,
            clear_cache=catch.clear,
        ))
        if catch.replay:
            sess.send_invalidations(invalidations_to_proto(catch.replay))
        if catch.clear:
            self._c.cache_sync.agent_joined_cold(agent)
        log.info("agent %s registered (session %d, capacity %d, labels %s) from %s",
                 agent.agent_id, agent.session, agent.capacity, agent.labels, reg.peer)
        self._c.schedule_dispatch()
        writer = asyncio.create_task(sess.run_writer(), name=f"writer-{agent.agent_id}")
        reader = asyncio.create_task(self._read_loop(sess, context), name=f"reader-{agent.agent_id}")
        closer = asyncio.create_task(sess.closed.wait())
        try:
            await asyncio.wait({writer, reader, closer}, return_when=asyncio.FIRST_COMPLETED)
            if sess.close_status is None and not writer.done():
                # Peer half-closed after its last results: let their acks go out.
                sess.flush_count()
                try:
                    await asyncio.wait_for(sess.flushed(), timeout=2.0)
                except TimeoutError:
                    pass
        finally:
            for t in (reader, writer, closer):
                t.cancel()
            # Revoke leases before anything else can await: a dead stream's tasks
            # must go back to the queue even when this handler is being cancelled.
            self._c.session_ended(sess)
        for t in (reader, writer):
            if t.done() and not t.cancelled() and t.exception() is not None:
                log.info("stream of agent %s ended: %s", agent.agent_id, t.exception())
        if sess.close_status is not None:
            await context.abort(*sess.close_status)

    async def _read_loop(self, sess: AgentSession, context: grpc.aio.ServicerContext) -> None:
        core = self._core
        while True:
            raw = await context.read()
            if raw is grpc.aio.EOF:
                return
            try:
                if raw == sess.idle_frame:
                    core.touch(sess.agent_id, sess.session, time.time(), heartbeat_again=True)
                    sess.flush_count()  # as for any heartbeat, below
                    continue
                frame = _parse(raw)
                if frame.HasField("register"):
                    log.warning("agent %s sent register again on a live stream; ignored", sess.agent_id)
                hb = None
                if frame.HasField("heartbeat"):
                    hb = convert.heartbeat_from_proto(frame.heartbeat)
                    # A count no frame carried lags the agent by one heartbeat at most.
                    sess.flush_count()
                acks = core.frame(
                    sess.agent_id, sess.session, time.time(),
                    convert.results_from_proto(frame.results) if frame.results else [],
                    frame.credits, hb, frame.draining,
                )
            except CoreError as e:
                sess.close(STATUS[e.code], e.message)
                return
            if hb is not None:
                sess.idle_frame = raw if len(frame.ListFields()) == 1 else None
            if acks:
                rejected = [mesh_pb2.ResultAck(task_id=a.task_id, attempt=a.attempt, code=int(a.code),
                                               message=a.message) for a in acks if a.code]
                sess.send_acks(len(acks) - len(rejected), rejected)
            if frame.draining and not sess.drain_answered:
                # The agent is no longer assigned anything (core.frame saw to
                # that): a drain frame tells it so. Assignments written before
                # it arrive before it, so the agent knows when none is in transit.
                sess.drain_answered = True
                sess.send_drain()
            if frame.credits or frame.draining:
                self._c.schedule_dispatch()
            if frame.invalidation_reports:
                self._c.cache_sync.on_reports(sess.agent_id, frame.invalidation_reports)
