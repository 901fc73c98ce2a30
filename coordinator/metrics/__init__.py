"""The coordinator's metrics: a Prometheus scrape endpoint and an OTLP push,
both rendered from one snapshot of the core taken when someone reads."""

from coordinator.metrics.service import MetricsService

__all__ = ["MetricsService"]
