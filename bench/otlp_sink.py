"""A collector stand-in for the tracing benchmark: accepts OTLP trace exports
and counts them without decoding, so its own work barely shows."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc

_METHOD = "Export"
_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class OtlpSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.port = 0
        self._server: grpc.Server | None = None

    def _export(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.requests += 1
            self.bytes += len(request)
        return b""  # an empty ExportTraceServiceResponse

    def start(self) -> OtlpSink:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                             options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        handler = grpc.unary_unary_rpc_method_handler(self._export)  # raw bytes in and out
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE, {_METHOD: handler}),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.requests, self.bytes
