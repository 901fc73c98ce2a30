"""W1 with tracing: off, every trace sampled, 1% sampled, and a collector that is down.

The modes run one after another in the same run, on the same machine, so the
slowdowns are against a baseline measured minutes apart, not days. Spans go to
a local sink that accepts OTLP and discards it (bench/otlp_sink.py).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from bench import w1_throughput
from bench.otlp_sink import OtlpSink
from swarmmesh.telemetry import Tracer, TracingConfig

# mode -> sampling ratio of the traces the client starts (None = tracing off everywhere)
MODES: dict[str, float | None] = {"off": None, "sampled_100": 1.0, "sampled_1": 0.01, "collector_down": 1.0}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(workdir: Path, *, tasks: int = 20_000, sidecars: int = 8) -> dict[str, Any]:
    sink = OtlpSink().start()
    out: dict[str, Any] = {}
    try:
        for mode, ratio in MODES.items():
            if ratio is None:
                env = {"OTEL_SDK_DISABLED": "true"}
            else:
                endpoint = f"http://127.0.0.1:{_closed_port()}" if mode == "collector_down" else sink.endpoint
                env = {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                       "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)}
            tracer = Tracer(TracingConfig.from_env("swarmmesh-client", env=env), "bench") if ratio is not None \
                else False
            before = sink.counts()
            (workdir / mode).mkdir()
            r = await w1_throughput.run(workdir / mode, tasks=tasks, sidecars=sidecars, env=env, tracing=tracer)
            if isinstance(tracer, Tracer):
                tracer.stop(5)
                r["client_spans"] = tracer.stats()
            after = sink.counts()
            r["sink_exports"] = after[0] - before[0]
            r["sink_bytes"] = after[1] - before[1]
            out[mode] = r
    finally:
        sink.stop()
    base = out["off"]["tasks_per_s"]
    out["slowdown"] = {mode: 1 - out[mode]["tasks_per_s"] / base for mode in MODES if mode != "off"}
    return out
