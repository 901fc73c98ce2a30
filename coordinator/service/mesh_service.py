"""MeshService.Connect: one bidirectional stream per sidecar.

Reading and writing are independent: a reader task applies incoming frames to
the core; a writer task (agent_session.py) sends whatever has queued up since
its last write as ONE frame (natural coalescing: no timers, and a burst becomes
a batch).

Frames arrive as bytes and are parsed here. An idle agent's heartbeats repeat
byte for byte, and with thousands of agents they are most of what the
coordinator reads: a frame equal to the last heartbeat-only frame of its
stream only renews the lease, without being parsed and converted again.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from google.protobuf.message import DecodeError

from coordinator.core.mesh import MeshCore
from coordinator.core.model import CoreError, StatusCode
from coordinator.service import convert
from coordinator.service.agent_session import AgentSession
from coordinator.service.cache_sync import CacheSync, invalidations_to_proto
from coordinator.service.effects import AgentSessions
from coordinator.service.shutdown import Shutdown
from coordinator.service.status import STATUS
from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc

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


class MeshService(mesh_pb2_grpc.MeshServiceServicer):
    def __init__(self, core: MeshCore, agents: AgentSessions, cache_sync: CacheSync, heartbeat_interval_s: float,
                 shutdown: Shutdown | None = None) -> None:
        """`heartbeat_interval_s`: how often agents are told to send heartbeats. `shutdown`:
        the coordinator's stop, during which no agent joins (None: never stopping)."""
        self._core = core
        self._agents = agents
        self._cache_sync = cache_sync
        self._heartbeat_interval_s = heartbeat_interval_s
        self._shutdown = shutdown or Shutdown()

    async def Connect(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        if self._shutdown.closing:
            await self._shutdown.refuse(context)
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
            self._agents.close(fenced.agent_id, fenced.session, grpc.StatusCode.FAILED_PRECONDITION,
                                  f"agent {fenced.agent_id!r} registered again on a newer stream")
        sess = AgentSession(context, agent.agent_id, agent.session)
        self._agents.joined(sess)
        # Same step as joining the open sessions: every invalidation reaches this
        # agent exactly once, live or in this catch-up.
        catch = self._cache_sync.catch_up(first.register.cache_epoch, first.register.cache_seq)
        sess.send_registered(mesh_pb2.Registered(
            agent_id=agent.agent_id,
            session=agent.session,
            heartbeat_interval_ms=int(self._heartbeat_interval_s * 1000),
            lease_timeout_ms=int(self._core.config.lease_timeout_s * 1000),
            invalidation_epoch=catch.epoch,
            invalidation_seq=catch.head,
            clear_cache=catch.clear,
        ))
        if catch.replay:
            sess.send_invalidations(invalidations_to_proto(catch.replay))
        if catch.clear:
            self._cache_sync.agent_joined_cold(agent)
        log.info("agent %s registered (session %d, capacity %d, labels %s) from %s",
                 agent.agent_id, agent.session, agent.capacity, agent.labels, reg.peer)
        self._agents.schedule_dispatch()
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
            self._agents.ended(sess)
            self._cache_sync.agent_gone(sess.agent_id)
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
                self._agents.schedule_dispatch()
            if frame.invalidation_reports:
                self._cache_sync.on_reports(sess.agent_id, frame.invalidation_reports)
