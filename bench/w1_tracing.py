"""W1 with tracing: off, every trace sampled, 1% sampled, and a collector that is down.

Each traced mode runs between two runs with tracing off, and its slowdown is
against the mean of those two: a shared machine drifts by more than 1%
sampling costs within the minute the modes take one after another (a single
baseline before all of them once put 1% at 28.8% slower). The row for tracing
off is the median of those runs. Spans go to a local sink that accepts OTLP
and discards it (bench/otlp_sink.py).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from bench import w1_throughput
from bench.otlp_sink import OtlpSink
from bench.report import summarize
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
    offs: list[dict[str, Any]] = []
    traced = [mode for mode in MODES if mode != "off"]
    order = ["off"]  # off, a mode, off, the next mode, ..., off
    for mode in traced:
        order += [mode, "off"]
    try:
        for i, mode in enumerate(order):
            ratio = MODES[mode]
            if ratio is None:
                env = {"OTEL_SDK_DISABLED": "true"}
            else:
                endpoint = f"http://127.0.0.1:{_closed_port()}" if mode == "collector_down" else sink.endpoint
                env = {"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                       "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)}
            tracer = Tracer(TracingConfig.from_env("swarmmesh-client", env=env), "bench") if ratio is not None \
                else False
            before = sink.counts()
            (workdir / f"{i}-{mode}").mkdir()
            r = await w1_throughput.run(workdir / f"{i}-{mode}", tasks=tasks, sidecars=sidecars, env=env,
                                        tracing=tracer)
            if isinstance(tracer, Tracer):
                tracer.stop(5)
                r["client_spans"] = tracer.stats()
            after = sink.counts()
            r["sink_exports"] = after[0] - before[0]
            r["sink_bytes"] = after[1] - before[1]
            if mode == "off":
                offs.append(r)
            else:
                out[mode] = r
    finally:
        sink.stop()
    # The k-th traced mode ran between the k-th and the next tracing-off run.
    baseline = {mode: (offs[k]["tasks_per_s"] + offs[k + 1]["tasks_per_s"]) / 2 for k, mode in enumerate(traced)}
    out["off"] = summarize(offs)
    out["off_tasks_per_s"] = {f"run_{i + 1}": r["tasks_per_s"] for i, r in enumerate(offs)}
    out["baseline_tasks_per_s"] = baseline
    out["slowdown"] = {mode: 1 - out[mode]["tasks_per_s"] / baseline[mode] for mode in baseline}
    return out
