"""MetricsService: the coordinator's metrics, started and stopped with it.

Owns the latency listener, the Prometheus endpoint and the OTLP push. With
both exports off it does nothing at all: no listener on the task path, and
neither prometheus_client nor the OpenTelemetry metrics SDK is imported.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING

from coordinator.core.mesh import MeshCore
from coordinator.metrics.latency import DEFAULT_MAX_KINDS, PhaseLatency
from coordinator.metrics.snapshot import LoopSnapshots, MeshSnapshot, take_snapshot

if TYPE_CHECKING:
    from coordinator.metrics.otlp import OtlpMetrics
    from coordinator.metrics.prometheus import ScrapeEndpoint

log = logging.getLogger(__name__)

OTLP_MODES = ("auto", "on", "off")


def otlp_wanted(mode: str, env: Mapping[str, str]) -> bool:
    """Whether to push: mode "on"/"off" decides; "auto" follows OTEL_METRICS_EXPORTER
    (on when it lists "otlp"; unset or "none" is off). OTEL_SDK_DISABLED=true wins."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if mode == "auto":
        return "otlp" in {e.strip().lower() for e in env.get("OTEL_METRICS_EXPORTER", "").split(",")}
    return mode == "on"


def split_listen(listen: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port') -> (host, port); ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{listen!r} is not host:port")
    return host.strip("[]"), int(port)


class MetricsState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class MetricsService:
    def __init__(self, core: MeshCore, listen: str = "", otlp: str = "auto", otlp_endpoint: str = "",
                 max_agents: int = 1000, env: Mapping[str, str] | None = None) -> None:
        """listen: host:port of the scrape endpoint ("" = none, port 0 = any free port);
        otlp: "auto" (follow OTEL_METRICS_EXPORTER), "on" or "off"; otlp_endpoint:
        the collector's URL, "" = from OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT."""
        self.core = core
        self.listen = listen
        self.push = otlp_wanted(otlp, os.environ if env is None else env)
        self.otlp_endpoint = otlp_endpoint
        self.max_agents = max_agents
        self.latency = PhaseLatency(DEFAULT_MAX_KINDS)
        self.state = MetricsState.NEW
        self.address = ""  # the scrape endpoint's host:port once started
        self._scrape: ScrapeEndpoint | None = None
        self._otlp: OtlpMetrics | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.listen) or self.push

    def snapshot(self) -> MeshSnapshot:
        """A snapshot taken on the caller's thread: call it on the event loop."""
        return take_snapshot(self.core, self.latency, max_agents=self.max_agents)

    async def start(self) -> None:
        if self.state != MetricsState.NEW:
            raise RuntimeError(f"metrics are {self.state.value}, cannot start")
        self.state = MetricsState.RUNNING
        if not self.enabled:
            return
        self.core.add_listener(self.latency.on_change)
        source = LoopSnapshots(asyncio.get_running_loop(), self.snapshot).get
        try:
            if self.listen:
                from coordinator.metrics.prometheus import ScrapeEndpoint, registry_for

                self._scrape = ScrapeEndpoint(registry_for(source))
                self.address = self._scrape.start(*split_listen(self.listen))
            if self.push:
                from coordinator.metrics.otlp import OtlpMetrics

                self._otlp = OtlpMetrics(source, self.otlp_endpoint)
                self._otlp.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float = 2.0) -> None:
        """Idempotent. Ends the endpoint and sends a last OTLP export, waiting at
        most `grace` s for each; a collector that does not answer is left behind."""
        if self.state == MetricsState.STOPPED:
            return
        self.state = MetricsState.STOPPED
        scrape, self._scrape = self._scrape, None
        otlp, self._otlp = self._otlp, None
        if otlp is not None:
            # Off the loop, which must stay free to answer the last collection's snapshot.
            await _off_loop(lambda: otlp.stop(grace), grace + 0.5, "OTLP metrics shutdown")
        if scrape is not None:
            await _off_loop(scrape.stop, grace + 0.5, "metrics endpoint shutdown")

    async def __aenter__(self) -> MetricsService:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
                        ) -> None:
        await self.stop()


async def _off_loop(fn: Callable[[], None], limit_s: float, what: str) -> None:
    """Run a blocking call on a daemon thread and wait up to `limit_s`. Not the
    default executor: a call that hangs there would hold up the process' exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("%s failed", what)
        finally:
            try:
                loop.call_soon_threadsafe(finished)
            except RuntimeError:  # the loop is gone; nobody waits any more
                pass

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        await asyncio.wait_for(done, limit_s)
    except TimeoutError:
        log.warning("%s did not finish within %.1f s; left behind", what, limit_s)
