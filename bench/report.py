"""Medians across runs, and the table a person reads."""

from __future__ import annotations

import statistics
from typing import Any


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric leaf across runs (same shape as one run)."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values if isinstance(v, dict) and k in v]) for k in first}
        if isinstance(first, bool) or not isinstance(first, int | float):
            return first
        return statistics.median(values)

    return dict(merge(runs))


def _fmt(v: float, unit: str = "") -> str:
    if v != v:  # NaN
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:.2f}{unit}" if abs(v) < 10 else f"{v:.1f}{unit}"


def render(results: dict[str, Any]) -> str:
    w = results["workloads"]
    m = results["machine"]
    lines = [f"swarmmesh bench: {m['cpus_logical']} logical CPUs, python {results['versions']['python']}, "
             f"grpcio {results['versions'].get('grpcio', '?')}, loop {results['versions']['event_loop']}, "
             f"gRPC engine {results['versions'].get('grpc_engine', '?')}; "
             f"medians of {results['runs']} run(s)", ""]
    rows: list[tuple[str, str, str]] = []
    if "w1" in w:
        r = w["w1"]["median"]
        roles = ", ".join(f"{k} {_fmt(v)}" for k, v in r["cpu_us_per_task_by_role"].items())
        rows.append(("W1 throughput", f"{_fmt(r['tasks_per_s'])} tasks/s",
                     f"{r['tasks']} no-op tasks, {r['sidecars']} sidecars"))
        rows.append(("W1 CPU per task", f"{_fmt(r['cpu_us_per_task'])} us", f"all processes ({roles})"))
    if "seq" in w:
        r = w["seq"]["median"]["latency"]
        rows.append(("sequential round trip", f"p50 {_fmt(r['p50_ms'])} / p99 {_fmt(r['p99_ms'])} ms",
                     "submit, wait, repeat"))
    if "w2" in w:
        r = w["w2"]["median"]
        lat = r["latency"]
        rows.append(("W2 open loop", f"p50 {_fmt(lat['p50_ms'])} / p99 {_fmt(lat['p99_ms'])} / "
                     f"p99.9 {_fmt(lat['p999_ms'])} ms",
                     f"{_fmt(r['rate_per_s'])} tasks/s Poisson for {r['duration_s']:.0f} s, from intended send"))
        legs = r.get("legs")
        if legs:
            rows.append(("W2 legs, p50 / p99", " | ".join(
                f"{_fmt(legs[k]['p50_ms'])} / {_fmt(legs[k]['p99_ms'])}"
                for k in ("to_coordinator", "queue", "agent_round_trip", "to_client")) + " ms",
                "client to coordinator (from intended send) | queue | to agent and back | to client"))
    if "w2floor" in w:
        lat = w["w2floor"]["median"]["latency"]
        rows.append(("W2 floor", f"p50 {_fmt(lat['p50_ms'])} / p99 {_fmt(lat['p99_ms'])} / "
                     f"p99.9 {_fmt(lat['p999_ms'])} ms",
                     "W2's load and path over bare gRPC: a relay and 4 echo processes, bytes only"))
    if "w3" in w:
        r = w["w3"]["median"]
        rows.append(("W3 heartbeats", f"{_fmt(r['coordinator_cpu_percent_heartbeats'])} % CPU, "
                     f"{r['coordinator_rss_bytes'] / 2**20:.0f} MiB RSS",
                     f"coordinator with {r['agents_ready']:.0f} agents at {1 / r['heartbeat_s']:.0f} Hz, "
                     f"{_fmt(r['coordinator_cpu_us_per_heartbeat'])} us a heartbeat"))
        floor = r["floor"]
        rows.append(("W3 floor", f"{_fmt(floor['server_cpu_percent'])} % CPU, "
                     f"{_fmt(floor['server_cpu_us_per_message'])} us a heartbeat",
                     f"the same fleet against a grpc.aio server that only reads, just before each run; "
                     f"coordinator/floor {r['heartbeat_cpu_over_floor']:.2f}x"))
        rows.append(("W3 connect", f"{_fmt(r['connect_s'])} s, {r['stream_failures']:.0f} streams retried",
                     "every agent's stream open and registered"))
        lat = r["assignment_latency"]
        rows.append(("W3 assignment", f"p50 {_fmt(lat['p50_ms'])} / p99 {_fmt(lat['p99_ms'])} ms",
                     f"submit to agent at {_fmt(r['task_rate_per_s'])} tasks/s"))
    if "w4" in w:
        r = w["w4"]["median"]
        if "skipped" in r:
            rows.append(("W4 cache hit rate", "skipped", r["skipped"]))
        else:
            ideal = r["ideal_shared_lru"]
            rows.append(("W4 cache hit rate", f"{r['cache_aware']['hit_rate'] * 100:.1f}% cache-aware, "
                         f"{r['not_cache_aware']['hit_rate'] * 100:.1f}% not",
                         f"ideal: one LRU of {ideal['capacity']:.0f} entries {ideal['hit_rate'] * 100:.1f}%; "
                         f"Zipf {r['zipf_s']} over {r['keys']} keys, {r['tasks']} tasks, {r['sidecars']} sidecars"))
            hit = r["cache_aware"]["hit_us"]
            rows.append(("W4 cache get", f"p50 {_fmt(hit['p50'])} / p99 {_fmt(hit['p99'])} us",
                         f"a hit as the sidecar measures it; the diskcache get alone p50 "
                         f"{_fmt(r['store_get_us']['p50'])} us"))
    if "tracing" in w:
        r = w["tracing"]["median"]
        labels = {"sampled_100": "every trace sampled", "sampled_1": "1% of traces sampled",
                  "collector_down": "every trace sampled, collector port closed"}
        rows.append(("W1 tracing off", f"{_fmt(r['off']['tasks_per_s'])} tasks/s",
                     f"{_fmt(r['off']['cpu_us_per_task'])} us CPU per task; median of runs before and after each row below, its baseline"))
        for mode, label in labels.items():
            rows.append((f"W1 tracing {mode.removeprefix('sampled_')}{'%' if mode.startswith('s') else ''}",
                         f"{_fmt(r[mode]['tasks_per_s'])} tasks/s, {r['slowdown'][mode] * 100:+.1f}% slower",
                         f"{label}; {_fmt(r[mode]['cpu_us_per_task'])} us CPU per task"))
    if "floor" in w:
        r = w["floor"]["median"]
        rows.append(("gRPC floor: unary RTT", f"p50 {_fmt(r['unary_rtt']['p50_ms'])} ms",
                     "empty grpc.aio call between two processes"))
        if "server_cpu_us_per_message" in r:
            rows.append(("gRPC floor: stream msg", f"{_fmt(r['server_cpu_us_per_message'])} us CPU, "
                         f"{_fmt(r['server_cpu_percent'])} % of a core",
                         f"read-only server, {r['stream_messages_per_s']:.0f} streams at 1 Hz"))
    d = w.get("dask")
    if d and "median" in d:
        r = d["median"]
        rows.append(("Dask W1 throughput", f"{_fmt(r['tasks_per_s'])} tasks/s",
                     f"distributed {r['version']}, {r['workers']} worker processes"))
        rows.append(("Dask CPU per task", f"{_fmt(r['cpu_us_per_task'])} us", "scheduler, workers, client"))
        lat = r["sequential"]["latency"]
        rows.append(("Dask sequential", f"p50 {_fmt(lat['p50_ms'])} / p99 {_fmt(lat['p99_ms'])} ms", ""))
        if "w1" in w:
            rows.append(("ratio W1 swarmmesh/Dask", f"{w['w1']['median']['tasks_per_s'] / r['tasks_per_s']:.1f}x",
                         "same machine, same run"))
        if "seq" in w:
            ratio = lat["p50_ms"] / w["seq"]["median"]["latency"]["p50_ms"]
            rows.append(("ratio sequential p50 Dask/swarmmesh", f"{ratio:.1f}x", ""))
    elif d:
        rows.append(("Dask", "skipped", d.get("skipped", "")))
    width = [max(len(r[i]) for r in rows) for i in range(2)] if rows else [0, 0]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    return "\n".join(lines)
