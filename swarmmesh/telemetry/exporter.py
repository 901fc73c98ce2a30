"""Ships recorded spans to an OTLP/gRPC collector from a background thread.

The task path only appends a tuple to a bounded deque. This thread turns
batches into OTLP protobuf and sends them. A collector that is absent or
failing costs the task path next to nothing: after a failed export `healthy`
turns False, recorders stop building spans (they check it), and the thread
probes the collector with an empty export on a doubling back-off until one
succeeds. A slow collector fills the deque, and spans beyond its bound are
dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import grpc

from swarmmesh.telemetry.config import TracingConfig
from swarmmesh.telemetry.wire import SpanEncoder

log = logging.getLogger(__name__)

# A recorded span: (name, trace_id, span_id, parent_span_id (0 = root), kind,
# start (unix s), end (unix s), attributes ((key, value), ...), error message
# ("" = ok)). A tuple because it is built on the hot path.
SpanRecord = tuple[str, int, int, int, int, float, float, tuple[tuple[str, Any], ...], str]

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_BACKOFF_MIN_S = 1.0
_BACKOFF_MAX_S = 30.0
_WARN_EVERY_S = 300.0


class SpanExporter:
    """Bounded span queue plus the thread that exports it; start() / stop(timeout)."""

    def __init__(self, config: TracingConfig, scope_version: str = "") -> None:
        self.config = config
        self._queue: deque[SpanRecord] = deque()
        self._max_queue = config.max_queue
        self._max_batch = config.max_batch
        self._wake = threading.Event()
        self._stopping = False
        self._flush_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._encoder = SpanEncoder(config.resource, "swarmmesh", scope_version)
        self._down_until = 0.0
        self._backoff = _BACKOFF_MIN_S
        self._warned_at = 0.0
        # False from a failed export until a probe succeeds; read on the task path.
        self.healthy = True
        self.exported = 0
        self.dropped = 0
        self.failed_exports = 0

    # -- hot path -----------------------------------------------------------------

    def add(self, span: SpanRecord) -> None:
        q = self._queue
        n = len(q)
        if n >= self._max_queue:
            self.dropped += 1
            return
        q.append(span)
        if n + 1 == self._max_batch:
            self._wake.set()

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="swarmmesh-span-export", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Export what is queued (collector permitting) for up to `timeout` s, then stop. Idempotent."""
        thread = self._thread
        if thread is None or self._stopping:
            return
        self._flush_deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        thread.join(timeout + 0.5)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.config
        channel = self._channel()
        try:
            # Requests are encoded to bytes here (telemetry/wire.py), so the call passes them as they are.
            stub = channel.unary_unary(EXPORT_METHOD)
            while True:
                self._wake.wait(cfg.schedule_delay_s)
                self._wake.clear()
                stopping = self._stopping
                if not self.healthy and not stopping and time.monotonic() >= self._down_until:
                    self._probe(stub)
                while self._queue:
                    if stopping and time.monotonic() >= self._flush_deadline:
                        break
                    self._export_one(stub, stopping)
                    if not stopping and len(self._queue) < self._max_batch:
                        break  # wait for a full batch or the schedule
                if stopping:
                    self.dropped += len(self._queue)
                    self._queue.clear()
                    return
        except Exception:  # never take the process down over telemetry
            log.exception("span exporter stopped")
        finally:
            channel.close()

    def _channel(self) -> grpc.Channel:
        cfg = self.config
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        compression = grpc.Compression.Gzip if cfg.gzip else None
        if not cfg.secure:
            return grpc.insecure_channel(cfg.target, options=options, compression=compression)
        roots = None
        if cfg.certificate_file:
            with open(cfg.certificate_file, "rb") as f:
                roots = f.read()
        return grpc.secure_channel(cfg.target, grpc.ssl_channel_credentials(roots), options=options,
                                   compression=compression)

    def _export_one(self, export: Any, stopping: bool) -> None:
        q = self._queue
        batch = [q.popleft() for _ in range(min(len(q), self._max_batch))]
        now = time.monotonic()
        if now < self._down_until and not stopping:
            self.dropped += len(batch)
            return
        timeout = self.config.timeout_s
        if stopping:
            timeout = max(0.05, min(timeout, self._flush_deadline - now))
        try:
            export(self._encoder.encode(batch), timeout=timeout, metadata=self.config.headers or None)
        except grpc.RpcError as exc:
            self._failed(batch, exc)
            return
        self.exported += len(batch)
        self._recovered()

    def _probe(self, export: Any) -> None:
        """An empty export: is the collector back? (Nothing is recorded while it is down.)"""
        try:
            export(b"", timeout=self.config.timeout_s, metadata=self.config.headers or None)
        except grpc.RpcError as exc:
            self._failed([], exc)
            return
        log.info("exporting spans to %s again", self.config.endpoint)
        self._recovered()

    def _recovered(self) -> None:
        self._backoff = _BACKOFF_MIN_S
        self._down_until = 0.0
        self.healthy = True

    def _failed(self, batch: list[SpanRecord], exc: grpc.RpcError) -> None:
        self.healthy = False
        self.dropped += len(batch)
        self.failed_exports += 1
        now = time.monotonic()
        self._down_until = now + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)
        if now - self._warned_at >= _WARN_EVERY_S or not self._warned_at:
            self._warned_at = now
            code = exc.code() if hasattr(exc, "code") else None
            log.warning(
                "cannot export spans to %s (%s); dropping spans while it fails (%d dropped so far)",
                self.config.endpoint, getattr(code, "name", code), self.dropped,
            )
