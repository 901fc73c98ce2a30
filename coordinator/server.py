"""The coordinator process's shell: its parts put together, and their lifecycle.

Everything with sockets or clocks lives in coordinator/service/; every
decision is the core's. Each part is given what it uses, nothing of this.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import time
from types import TracebackType

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from coordinator.config import CoordinatorConfig
from coordinator.core.mesh import MeshCore
from coordinator.journal import Journal, open_journal
from coordinator.metrics import MetricsService
from coordinator.profile.profiler import Profiler
from coordinator.service.cache_sync import CacheSync
from coordinator.service.effects import AgentSessions
from coordinator.service.mesh_service import MeshService, add_mesh_service
from coordinator.service.profile_service import ProfileService
from coordinator.service.shutdown import RESTARTING, Shutdown, drained
from coordinator.service.task_service import TaskService
from coordinator.service.ticker import Ticker
from coordinator.service.watch import WatchHub
from coordinator.tracing import TaskTracer
from swarmmesh import eventloop, grpc_engine
from swarmmesh._version import __version__
from swarmmesh.telemetry import Tracer
from swarmmesh.v1 import mesh_pb2, profile_pb2, profile_pb2_grpc, tasks_pb2, tasks_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    tasks_pb2.DESCRIPTOR.services_by_name["TaskService"].full_name,
    mesh_pb2.DESCRIPTOR.services_by_name["MeshService"].full_name,
    profile_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name,
)


def _write_ready_file(path: str, address: str, metrics_address: str = "") -> None:
    # Written atomically so a poller never reads half a file.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"address": address, "pid": os.getpid(), "metrics_address": metrics_address}, f)
    os.replace(tmp, path)


class ServiceState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Coordinator:
    def __init__(self, config: CoordinatorConfig | None = None) -> None:
        self.config = config or CoordinatorConfig()
        cfg = self.config
        self.core = MeshCore(cfg.core)
        self.agents = AgentSessions(self.core)
        self.hub = WatchHub()
        self.cache_sync = CacheSync(self.core, self.agents, cfg.cache)
        self.core.add_listener(self.hub.on_change)
        self.profiler = Profiler(self.core, cfg.profiler(), self.cache_sync.totals)
        self.core.add_listener(self.profiler.on_change)
        self.tracer = Tracer(cfg.tracing.tracer_config(), __version__)
        if self.tracer.enabled:
            self.core.add_listener(TaskTracer(self.tracer).on_change)
        self.metrics = MetricsService(self.core, cfg.metrics.listen, cfg.metrics.otlp, cfg.tracing.otlp_endpoint,
                                      cfg.metrics.max_agents)
        self.ticker = Ticker(self.core, self.agents, self.profiler, cfg.server.tick_interval_s)
        location = cfg.resolved_journal_location()
        self.journal: Journal | None = open_journal(location, cfg.journal.options(cfg.core)) if location else None
        # Tasks recovered from the journal at start, and the seconds that took (GetStats reports both).
        self.recovered_tasks = 0
        self.recovery_s = 0.0
        self.state = ServiceState.NEW
        self.address = ""
        self.started_at = time.time()
        self.shutdown = Shutdown()
        self._server: grpc.aio.Server | None = None
        self._health = health_aio.HealthServicer()
        self._stopped = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        if self.state != ServiceState.NEW:
            raise RuntimeError(f"coordinator is {self.state.value}, cannot start")
        self.state = ServiceState.STARTING
        cfg = self.config.server
        # Before serving: no client or agent may see the core until it holds what it acknowledged.
        await self._recover()
        self.started_at = time.time()
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            # Sidecars ping every ~10 s to notice dead links; allow it.
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            # Streams gRPC has taken but the loop has not picked up yet. Past
            # 1,000 (gRPC's default) it starts refusing new ones with CANCELLED:
            # a fleet of 5,000 reconnecting at once lost 780-1,600 of its starts.
            ("grpc.server.max_pending_requests", 10_000),
            ("grpc.server.max_pending_requests_hard_limit", 20_000),
        ])
        tasks_pb2_grpc.add_TaskServiceServicer_to_server(
            TaskService(self.core, self.agents, self.hub, self.cache_sync, self.started_at, self.journal,
                        recovered=(self.recovered_tasks, self.recovery_s), shutdown=self.shutdown), server)
        add_mesh_service(MeshService(self.core, self.agents, self.cache_sync, cfg.heartbeat_interval_s,
                                     self.shutdown), server)
        profile_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileService(self.profiler), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, reflection.SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
            server,
        )
        port = server.add_insecure_port(cfg.listen)
        if port == 0:
            raise OSError(f"cannot listen on {cfg.listen}")
        host = cfg.listen.rsplit(":", 1)[0]
        self.address = f"{host}:{port}"
        await server.start()
        self._server = server
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.tracer.start()
        await self.metrics.start()
        self.ticker.start()
        self.state = ServiceState.RUNNING
        if cfg.ready_file:
            _write_ready_file(cfg.ready_file, self.address, self.metrics.address)
        log.info("coordinator serving on %s (gRPC engine %s, loop %s)", self.address, grpc_engine.engine,
                 eventloop.loop_name())

    async def stop(self, grace: float | None = None) -> None:
        if self.state in (ServiceState.STOPPING, ServiceState.STOPPED, ServiceState.NEW):
            if self.state == ServiceState.NEW:
                self.profiler.close()
                self.state = ServiceState.STOPPED
                self._stopped.set()
            await self._stopped.wait()
            return
        self.state = ServiceState.STOPPING
        grace = self.config.server.shutdown_grace_s if grace is None else grace
        await self._stop_serving(grace)
        self.profiler.close()  # writes the history row in progress
        # Spans of the last tasks; the flush is bounded and off the event loop.
        await asyncio.to_thread(self.tracer.stop, 2.0)
        await self.metrics.stop(2.0)
        if self.journal is not None:
            # Last, and unbounded: the streams' ends above changed tasks too (a second signal forces).
            await self.journal.stop()
        self.state = ServiceState.STOPPED
        self._stopped.set()
        log.info("coordinator stopped")

    async def _stop_serving(self, grace: float) -> None:
        """Refuse new work, let what is in flight finish within `grace` seconds, end the streams
        so that sidecars and clients reconnect, and stop the server (the order is shutdown.py's)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self.shutdown.begin()
        self.agents.hold()
        await self._health.enter_graceful_shutdown()
        await self.ticker.stop()
        # The agents' tasks get most of the grace; the rest is for the last acks and replies.
        await drained(self.core, deadline - min(1.0, grace / 5) - loop.time())
        self.agents.leave(grpc.StatusCode.UNAVAILABLE, RESTARTING)
        self.shutdown.end_streams()
        await self.shutdown.streams_ended(deadline - loop.time())
        if self._server is not None:
            # Unary calls in flight finish; what the grace did not let finish is cancelled.
            await self._server.stop(max(0.0, deadline - loop.time()))

    async def _recover(self) -> None:
        """Open the journal, rebuild the core from it, and have it record every change from now on."""
        journal = self.journal
        if journal is None:
            log.warning("no journal (--unsafe-no-journal): every task, acknowledged or not, is lost when "
                        "this coordinator stops or dies")
            return
        t0 = time.perf_counter()
        await journal.start()
        try:
            restored = self.core.restore(await journal.load(), time.time())
        except BaseException:
            await journal.stop()
            raise
        self.core.add_listener(journal.record)
        self.recovered_tasks, self.recovery_s = restored.tasks, time.perf_counter() - t0
        log.info("journal %s: recovered %d tasks (%d pending, %d assigned, %d finished; %d idempotency keys) "
                 "in %.3f s", journal.location, restored.tasks, restored.pending, restored.assigned,
                 restored.finished, restored.idempotency_keys, self.recovery_s)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Coordinator:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
                        ) -> None:
        await self.stop()
