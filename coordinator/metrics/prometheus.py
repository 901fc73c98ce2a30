"""The Prometheus scrape endpoint: a collector that reads the coordinator at
scrape time, and the HTTP server that serves it.

Nothing is counted on the task path for Prometheus' sake: `collect()` turns
one snapshot into metric families when a scrape arrives. Each coordinator has
its own `CollectorRegistry`, so several can live in one process (tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from coordinator.metrics.catalog import CATALOG, HISTOGRAMS
from coordinator.metrics.latency import BOUNDS
from coordinator.metrics.snapshot import MeshSnapshot

log = logging.getLogger(__name__)

# `le` labels as Prometheus' clients write them (repr: 0.0001, 1.0, 300.0).
_LE = (*(repr(b) for b in BOUNDS), "+Inf")


class MeshCollector(Collector):
    """Renders a snapshot (from `source`, called once per scrape) as metric families."""

    def __init__(self, source: Callable[[], MeshSnapshot]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        snap = self._source()
        for d in CATALOG:
            fam: Metric
            if d.type == "counter":
                fam = CounterMetricFamily(d.name, d.help, labels=d.labels)
            else:
                fam = GaugeMetricFamily(d.name, d.help, labels=d.labels)
            for labels, value in d.read(snap):
                fam.add_metric(list(labels), value)
            yield fam
        for h in HISTOGRAMS:
            hist = HistogramMetricFamily(h.name, h.help, labels=["kind"])
            for ph in snap.latency:
                if ph.phase == h.phase:
                    hist.add_metric([ph.kind], list(zip(_LE, ph.cumulative, strict=True)), ph.sum_s)
            yield hist


def registry_for(source: Callable[[], MeshSnapshot]) -> CollectorRegistry:
    """A registry of its own: the mesh's metrics and this process' CPU and memory."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeshCollector(source))
    ProcessCollector(registry=registry)
    return registry


class ScrapeEndpoint:
    """prometheus_client's HTTP server on its own thread; start() binds, stop() ends it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.address = ""

    def start(self, host: str, port: int) -> str:
        """Bind host:port (port 0: any free one) and serve; returns the bound host:port."""
        try:
            self._server, self._thread = start_http_server(port, host, registry=self._registry)
        except OSError as e:
            raise OSError(e.errno, f"cannot serve metrics on {host}:{port}: {e.strerror}") from e
        bound = self._server.server_address[1]
        self.address = f"{'[' + host + ']' if ':' in host else host}:{bound}"
        log.info("metrics on http://%s/metrics", self.address)
        return self.address

    def stop(self) -> None:
        """Blocking (up to the server's 0.5 s poll): call it off the event loop."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
