"""The sidecar's one stream to the coordinator: register, coalesce writes, reconnect.

Writes are coalesced: what the next SidecarFrame carries is queued in the outbox
(outbox.py), and a single writer task sends everything that is queued as one
frame whenever it is free. What the coordinator's frames mean is applied by
inbound.py; this module keeps the stream itself.

Reconnects: tasks keep running when a stream ends, and nothing they finish is
dropped for it. The results the coordinator had not answered, and those
finished while no stream is up, are kept (bounded, see held.py); the next
Register lists them and the attempts still running in `held`, so a restarted
coordinator records them instead of running the tasks again, and they go out
first on the new stream. A coordinator that stayed up re-queued those tasks
when the stream ended and answers them as stale, which costs nothing. Credits
are not carried over: the new Register grants exactly the slots free at that
moment, and slots still busy with old tasks return their credit when they
free up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from agent_sidecar import wire
from agent_sidecar.cache.result_cache import ResultCache
from agent_sidecar.config import SidecarConfig
from agent_sidecar.connection.channel import backoff_delay, channel_options
from agent_sidecar.connection.counters import ConnectionCounters, RateLimitedWarning
from agent_sidecar.connection.inbound import FrameHandler
from agent_sidecar.connection.outbox import Outbox
from agent_sidecar.metrics import AllocationSites, ProcessMemory
from agent_sidecar.runner.runner import Runner
from swarmmesh.v1 import mesh_pb2, mesh_pb2_grpc

log = logging.getLogger(__name__)

# After our half-close, how long the coordinator gets to end the stream itself.
HALF_CLOSE_WAIT_S = 2.0
MIN_HEARTBEAT_S = 0.05


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the coordinator said when it accepted a registration."""

    agent_id: str
    session: int
    heartbeat_interval_s: float
    lease_timeout_s: float | None


class ConnectionManager:
    """Keeps one registered stream to the coordinator alive until closed.

    What the stream is to send goes into `outbox` (see outbox.py); the
    runner's results reach it there.
    """

    def __init__(
        self,
        config: SidecarConfig,
        runner: Runner,
        *,
        kinds: Sequence[str],
        on_registered: Callable[[SessionInfo], None] | None = None,
        on_drain_requested: Callable[[], None] | None = None,
        rng: random.Random | None = None,
        cache: ResultCache | None = None,
    ) -> None:
        self.counters = ConnectionCounters()
        self._warn = RateLimitedWarning()
        self.outbox = Outbox(self.counters, config.held_results_max, self._warn)
        self._config = config
        self._runner = runner
        self._kinds = list(kinds)
        self._on_registered = on_registered
        self._on_drain_requested = on_drain_requested
        self._cache = cache
        self._rng = rng or random.Random()
        self._memory = ProcessMemory()
        self._allocations = AllocationSites(config.tracemalloc_top) if config.tracemalloc_top else None
        self.session: SessionInfo | None = None
        self.heartbeat_interval_s = config.heartbeat_interval_s

        self._writing = False
        # Set after every write and whenever a stream ends; flush() waits on it.
        self._progress = asyncio.Event()

        self._connected = False
        self._session_registered = False
        self._closing = False
        self._half_close = False
        self._drain_requested = False
        # This stream's coordinator sent a drain frame: no assignment follows it.
        self._drain_answered = False
        self._interrupt = asyncio.Event()  # ends a backoff sleep early
        self.registered_once = asyncio.Event()
        self._main: asyncio.Task[None] | None = None
        self._frames = FrameHandler(runner, self.outbox, self.counters, cache, self._warn)

    # --- public surface ---------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a registered stream is up."""
        return self._connected

    def start(self) -> None:
        if self._main is not None:
            raise RuntimeError("ConnectionManager already started")
        if self._allocations is not None:
            self._allocations.start()
        self._main = asyncio.create_task(self._run(), name="swarmmesh-sidecar-connection")

    def set_draining(self) -> None:
        """From now on every frame says draining and grants no credits."""
        if self.outbox.draining:
            return
        self.outbox.set_draining()
        self._interrupt.set()  # no point reconnecting just to say goodbye

    async def flush(self, timeout_s: float) -> bool:
        """Wait until queued results are written; False on timeout or lost stream."""

        outbox = self.outbox
        written = await self._until(
            lambda: not (outbox.results_queued or self._writing or outbox.draining_unsent), timeout_s
        )
        return written and self._connected and not outbox.results_queued

    async def drain_answered(self, timeout_s: float) -> bool:
        """After set_draining(): wait for the coordinator's drain frame. Every
        assignment it wrote before that frame has arrived by then, so the
        runner holds all the work this agent will get. False on timeout (an
        older coordinator does not answer) or when there is no stream."""

        answered = await self._until(lambda: self._drain_answered, timeout_s)
        return answered and self._connected and self._drain_answered

    async def _until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until done() or the stream is gone; False on timeout."""

        async def wait() -> None:
            while self._connected and not done():
                self._progress.clear()
                await self._progress.wait()

        try:
            await asyncio.wait_for(wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float = 5.0) -> None:
        """Half-close the stream once the outbox is written, then close the channel."""
        self._closing = True
        self._half_close = True
        self._interrupt.set()
        self.outbox.wake()
        if self._allocations is not None:
            self._allocations.stop()
        main = self._main
        if main is None or main.done():
            return
        if not self._connected:
            main.cancel()  # sleeping in backoff or still registering: nothing to flush
        done, _ = await asyncio.wait({main}, timeout=timeout_s)
        if not done:
            main.cancel()
        await asyncio.gather(main, return_exceptions=True)

    # --- reconnect loop -----------------------------------------------------------

    async def _run(self) -> None:
        channel = grpc.aio.insecure_channel(self._config.coordinator, options=channel_options(self._config))
        stub = mesh_pb2_grpc.MeshServiceStub(channel)
        failures = 0
        try:
            while not self._closing:
                registered = False
                try:
                    registered = await self._session(stub)
                except grpc.aio.AioRpcError as exc:
                    registered = self._session_registered
                    self._log_rpc_end(exc)
                except Exception as exc:
                    registered = self._session_registered
                    log.log(
                        self._warn.level("session"),
                        "stream to %s failed: %s: %s",
                        self._config.coordinator,
                        type(exc).__name__,
                        exc,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                if self._closing or self.outbox.draining:
                    break
                if registered:
                    failures = 0
                else:
                    self.counters.connect_failures += 1
                delay = backoff_delay(
                    self._rng, failures, self._config.reconnect_initial_s, self._config.reconnect_max_s
                )
                failures += 1
                log.debug("reconnecting in %.3f s", delay)
                self._interrupt.clear()
                if self._closing or self.outbox.draining:
                    break
                try:
                    await asyncio.wait_for(self._interrupt.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            await channel.close()

    def _log_rpc_end(self, exc: grpc.aio.AioRpcError) -> None:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            level = self._warn.level("unavailable")
            log.log(level, "coordinator %s unavailable: %s", self._config.coordinator, exc.details())
        elif code == grpc.StatusCode.CANCELLED and self._closing:
            return
        else:
            # The coordinator refused us on purpose (bad register, fenced, ...):
            # say why; the backoff still applies.
            log.warning("coordinator ended the stream: %s: %s", code.name, exc.details())

    # --- one stream -----------------------------------------------------------------

    async def _session(self, stub: mesh_pb2_grpc.MeshServiceStub) -> bool:
        """Run one stream from Register to its end; True if it got registered."""
        self._session_registered = False
        call = stub.Connect()
        tasks: list[asyncio.Task[None]] = []
        try:
            await call.write(wire.register_frame(self._new_register()))
            try:
                first = await asyncio.wait_for(call.read(), self._config.register_timeout_s)
            except TimeoutError:
                raise ConnectionError(
                    f"no answer to Register within {self._config.register_timeout_s} s"
                ) from None
            if first is grpc.aio.EOF:
                code = await call.code()
                raise ConnectionError(
                    f"stream ended before registration ({code.name}: {await call.details()})"
                )
            if not first.HasField("registered"):
                raise ConnectionError("first coordinator frame did not carry `registered`")
            self._accept_registration(first.registered)
            self._session_registered = True
            self._connected = True
            self.outbox.stream_opened()
            self._drain_answered = False
            self._handle_frame(first)

            writer = asyncio.create_task(self._write_loop(call), name="swarmmesh-sidecar-writer")
            reader = asyncio.create_task(self._read_loop(call), name="swarmmesh-sidecar-reader")
            beat = asyncio.create_task(self._heartbeat_loop(), name="swarmmesh-sidecar-heartbeat")
            tasks = [writer, reader, beat]
            done, _ = await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done and not writer.cancelled() and writer.exception() is None:
                # We half-closed; let the coordinator end the stream so it sees a
                # clean close rather than a cancel.
                await asyncio.wait({reader}, timeout=HALF_CLOSE_WAIT_S)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
            if reader.done() and not self._closing:
                code = await call.code()
                raise ConnectionError(f"coordinator ended the stream ({code.name}: {await call.details()})")
            return True
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            call.cancel()
            self._end_session()

    def _new_register(self) -> mesh_pb2.Register:
        # Reset the outbox in the same step as reading free slots, so every
        # slot is granted exactly once: now if free, later via push_result. A
        # held result's slot is free already; a running attempt's is not.
        held = self.outbox.reset_for_stream(self._runner.capacity)
        cache_epoch, cache_seq = self._cache.sync_point() if self._cache is not None else ("", 0)
        return wire.register_to_proto(
            agent_id=self._config.agent_id,
            labels=self._config.labels,
            kinds=self._kinds,
            capacity=self._runner.capacity,
            version=self._config.version,
            credits=0 if self.outbox.draining else self._runner.free_slots,
            cache_epoch=cache_epoch,
            cache_seq=cache_seq,
            held=held,
        )

    def _accept_registration(self, reg: mesh_pb2.Registered) -> None:
        lease = reg.lease_timeout_ms / 1000.0 if reg.lease_timeout_ms else None
        if reg.heartbeat_interval_ms:
            interval = reg.heartbeat_interval_ms / 1000.0
        else:
            interval = self._config.heartbeat_interval_s
            if lease is not None:
                # Several heartbeats per lease, so one late frame never costs the lease.
                interval = min(interval, lease / 3)
        # A floor keeps a misconfigured coordinator from turning heartbeats into a busy loop.
        interval = max(MIN_HEARTBEAT_S, interval)
        self.heartbeat_interval_s = interval
        self.session = SessionInfo(
            agent_id=reg.agent_id or self._config.agent_id,
            session=reg.session,
            heartbeat_interval_s=interval,
            lease_timeout_s=lease,
        )
        self.counters.sessions += 1
        log.info(
            "registered with %s as %s (session %d, heartbeat %.3f s)",
            self._config.coordinator,
            self.session.agent_id,
            reg.session,
            interval,
        )
        self.registered_once.set()
        if self._cache is not None:
            # Before the frame's replayed invalidations, which _handle_frame applies.
            self._cache.on_registered(reg.invalidation_epoch, reg.invalidation_seq, reg.clear_cache)
        if self._on_registered is not None:
            try:
                self._on_registered(self.session)
            except Exception:
                log.exception("on_registered callback failed")

    def _end_session(self) -> None:
        self._connected = False
        self._writing = False
        self.outbox.stream_ended()
        self._progress.set()

    # --- stream tasks ---------------------------------------------------------------

    async def _read_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            frame = await call.read()
            if frame is grpc.aio.EOF:
                return
            self._handle_frame(frame)

    def _handle_frame(self, frame: mesh_pb2.CoordinatorFrame) -> None:
        """Apply a coordinator frame; a drain request goes to the sidecar's callback."""
        self._frames.handle(frame)
        if frame.drain and not self._drain_answered:
            self._drain_answered = True
            self._progress.set()
        if frame.drain and not self._drain_requested:
            self._drain_requested = True
            log.info("coordinator asked this agent to drain")
            if self._on_drain_requested is not None:
                try:
                    self._on_drain_requested()
                except Exception:
                    log.exception("on_drain_requested callback failed")

    async def _write_loop(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            frame = self.outbox.take_frame()
            if frame is None:
                if self._half_close:
                    await call.done_writing()
                    return
                # No await between the empty frame and the wait: no wake-up is lost.
                await self.outbox.wait_for_items()
                continue
            self._writing = True
            try:
                await call.write(frame)
            finally:
                self._writing = False
            # Whatever was queued during the write goes out on the next turn,
            # immediately, as one frame.
            self.counters.frames_sent += 1
            self.counters.results_sent += len(frame.results)
            self._progress.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            sites = await self._allocations.sites() if self._allocations is not None else ()
            heartbeat = wire.heartbeat_to_proto(
                in_flight=self._runner.in_flight,
                free_slots=self._runner.free_slots,
                latencies=self._runner.latency.snapshot(),
                memory_rss_bytes=self._memory.rss_bytes(),
                cache=self._cache.stats() if self._cache is not None else None,
                allocations=sites,
            )
            self.outbox.push_heartbeat(heartbeat)
