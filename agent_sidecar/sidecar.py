"""The sidecar as one component: config -> handlers -> runner -> connection.

Lifecycle: NEW -> STARTING -> RUNNING -> DRAINING -> STOPPED.

Graceful drain, whether asked for by `stop()` or by the coordinator:
1. tell the coordinator we are draining (every frame from now on says so and
   grants no credits), so it stops sending work;
2. let in-flight attempts finish, up to the drain timeout; the rest are
   cancelled and the coordinator re-queues them when the stream closes;
3. wait until the frame carrying the last results has been written;
4. half-close the stream, let the coordinator end it, close the channel.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from types import TracebackType
from typing import Any

from agent_sidecar.cache.result_cache import ResultCache
from agent_sidecar.config import SidecarConfig
from agent_sidecar.connection.manager import ConnectionManager, SessionInfo
from agent_sidecar.handlers import HandlerRegistry
from agent_sidecar.runner.cache_path import CachePath
from agent_sidecar.runner.runner import Runner
from agent_sidecar.tracing import AttemptTracer
from swarmmesh import eventloop, grpc_engine
from swarmmesh._version import __version__
from swarmmesh.telemetry import Tracer
from swarmmesh.v1 import mesh_pb2

log = logging.getLogger(__name__)

# How long the final results may take to be written once work has finished.
FLUSH_TIMEOUT_S = 5.0
# Seconds a stopping sidecar gives its last spans to reach the collector.
SPAN_FLUSH_TIMEOUT_S = 2.0
# How long the coordinator gets to end the stream after our half-close.
CLOSE_TIMEOUT_S = 5.0
# How long a draining sidecar waits for the coordinator's drain frame, after
# which no assignment is on its way (a coordinator that never answers costs this).
DRAIN_ANSWER_TIMEOUT_S = 5.0


class SidecarState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class Sidecar:
    """Runs task handlers for one agent and keeps it registered with the coordinator.

    `registry` replaces the handlers named in `config` (useful when handlers are
    plain Python objects rather than "module:function" specs).
    """

    def __init__(
        self,
        config: SidecarConfig,
        *,
        registry: HandlerRegistry | None = None,
        on_registered: Callable[[SessionInfo], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._registry = registry
        self._on_registered = on_registered
        self._rng = rng
        self._tracer = Tracer.disabled()
        self._state = SidecarState.NEW
        self._runner: Runner | None = None
        self._conn: ConnectionManager | None = None
        self._cache: ResultCache | None = None
        self._cache_path: CachePath | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.drained_cleanly = False

    # --- introspection --------------------------------------------------------------

    @property
    def state(self) -> SidecarState:
        return self._state

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            raise RuntimeError("sidecar not started")
        return self._runner

    @property
    def connection(self) -> ConnectionManager:
        if self._conn is None:
            raise RuntimeError("sidecar not started")
        return self._conn

    def stats(self) -> dict[str, Any]:
        """Counters of the runner and the connection, for logs and tests."""
        out: dict[str, Any] = {"state": self._state.value}
        if self._runner is not None:
            out["runner"] = asdict(self._runner.counters)
            out["in_flight"] = self._runner.in_flight
        if self._conn is not None:
            out["connection"] = asdict(self._conn.counters)
            out["connected"] = self._conn.connected
        if self._cache is not None:
            out["cache"] = {
                **asdict(self._cache.counters),
                **asdict(self._cache.store.counters),
                **asdict(self._cache.stats()),
            }
        return out

    @property
    def cache(self) -> ResultCache | None:
        """The result cache, or None when it is turned off."""
        return self._cache

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Load handlers and begin connecting; returns without waiting for registration.

        Raises HandlerLoadError/ValueError when the handlers or kinds are unusable.
        """
        if self._state is not SidecarState.NEW:
            raise RuntimeError(f"cannot start a sidecar in state {self._state.name}")
        self._state = SidecarState.STARTING
        try:
            cfg = self.config
            registry = self._registry or HandlerRegistry.from_specs(cfg.handlers, cfg.default_handler)
            if len(registry) == 0:
                raise ValueError("handlers: none configured (give --handler or SWARMMESH_HANDLER)")
            kinds = registry.advertised_kinds(cfg.kinds)
            if cfg.cache.enabled:
                self._cache = ResultCache(
                    cfg.cache,
                    cfg.cache.resolve_directory(cfg.agent_id),
                    ephemeral=cfg.cache.is_ephemeral(cfg.agent_id),
                )
                await self._cache.start()
                self._cache_path = CachePath(self._cache)
            self._tracer = Tracer(cfg.tracing_config(), __version__)
            self._tracer.start()
            self._runner = Runner(
                registry,
                capacity=cfg.capacity,
                agent_id=cfg.agent_id,
                on_result=self._forward_result,
                cache=self._cache_path,
                tracer=AttemptTracer(self._tracer, cfg.agent_id) if self._tracer.enabled else None,
            )
            self._conn = ConnectionManager(
                cfg,
                self._runner,
                kinds=kinds,
                on_registered=self._on_registered,
                on_drain_requested=self._drain_requested,
                rng=self._rng,
                cache=self._cache,
            )
            self._conn.start()
        except BaseException:
            await self._stop_cache()
            await asyncio.to_thread(self._tracer.stop, 0.0)
            self._state = SidecarState.STOPPED
            self._stopped.set()
            raise
        self._state = SidecarState.RUNNING
        log.info(
            "sidecar %s started: capacity %d, kinds %s, coordinator %s, gRPC engine %s, loop %s",
            cfg.agent_id,
            cfg.capacity,
            ",".join(kinds) or "*",
            cfg.coordinator,
            grpc_engine.engine,
            eventloop.loop_name(),
        )

    async def wait_registered(self, timeout_s: float | None = None) -> bool:
        """Wait for the first accepted registration; False on timeout."""
        try:
            await asyncio.wait_for(self.connection.registered_once.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, grace: float | None = None) -> None:
        """Drain gracefully: in-flight work gets `grace` seconds (default drain_timeout_s).

        Idempotent; concurrent callers wait for the same drain.
        """
        if self._state is SidecarState.NEW:
            self._state = SidecarState.STOPPED
            self._stopped.set()
            return
        if self._stop_task is None and self._state is SidecarState.STOPPED:
            return  # start() failed: nothing is running
        if self._stop_task is None:
            self._begin_drain(self.config.drain_timeout_s if grace is None else grace)
        assert self._stop_task is not None
        # Shielded: a caller giving up must not abort a drain half-way.
        await asyncio.shield(self._stop_task)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def __aenter__(self) -> Sidecar:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- internals ------------------------------------------------------------------

    async def _stop_cache(self) -> None:
        """Stop refreshes, then write what is queued and close the store."""
        if self._cache_path is not None:
            await self._cache_path.stop()
        if self._cache is not None:
            await self._cache.stop()

    def _forward_result(self, result: mesh_pb2.TaskResult | None, credits: int) -> None:
        if self._conn is not None:
            self._conn.outbox.push_result(result, credits)

    def _drain_requested(self) -> None:
        if self._stop_task is None:
            self._begin_drain(self.config.drain_timeout_s)

    def _begin_drain(self, grace: float) -> None:
        self._stop_task = asyncio.create_task(self._drain(grace), name="swarmmesh-sidecar-drain")

    async def _drain(self, grace: float) -> None:
        runner, conn = self.runner, self.connection
        try:
            self._state = SidecarState.DRAINING
            dropped_before = conn.counters.results_dropped
            started = time.monotonic()
            log.info("draining: %d task(s) in flight, up to %.1f s", runner.in_flight, grace)
            conn.set_draining()
            # Assignments the coordinator wrote before it saw our flag are still
            # on their way; its answer comes after them on the stream.
            await conn.drain_answered(min(grace, DRAIN_ANSWER_TIMEOUT_S))
            await runner.wait_idle(max(0.0, grace - (time.monotonic() - started)))
            # Past the grace period the coordinator re-queues whatever is left.
            await runner.stop(max(0.0, grace - (time.monotonic() - started)))
            await conn.flush(FLUSH_TIMEOUT_S)
            await conn.close(CLOSE_TIMEOUT_S)
            await self._stop_cache()
            # The last attempts' spans; bounded, and off the event loop.
            await asyncio.to_thread(self._tracer.stop, SPAN_FLUSH_TIMEOUT_S)
            self.drained_cleanly = (
                runner.counters.abandoned == 0 and conn.counters.results_dropped == dropped_before
            )
            log.info(
                "sidecar %s stopped (%s)",
                self.config.agent_id,
                "clean" if self.drained_cleanly else "work was abandoned or results were lost",
            )
        finally:
            self._state = SidecarState.STOPPED
            self._stopped.set()
