"""The coordinator's metrics: a Prometheus scrape endpoint and an OTLP push,
both rendered from one snapshot of the core taken when someone reads.

Modules:

service: `MetricsService`: the settings, started and stopped with the coordinator
snapshot: one consistent reading of the coordinator, taken on the event loop, for every renderer
catalog: every metric's name, help, type, unit, labels and how it reads a snapshot
latency: the listener: cumulative latency buckets per phase and kind, cheap on the task path
prometheus: the scrape endpoint: a collector that reads at scrape time, and its HTTP server
otlp: the OTLP push: the catalog as observable instruments of a `MeterProvider`
"""

from coordinator.metrics.service import MetricsService

__all__ = ["MetricsService"]
