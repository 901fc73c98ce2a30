"""W3: thousands of connected agents heartbeating at 1 Hz, light task load.

Simulated agents come from `bench.fleet` processes (many streams per
process). Figures: the coordinator's CPU % and RSS with heartbeats alone,
then the assignment latency (client submit -> agent receives) at a light
open-loop task rate.

Each run first measures the same fleet against a server that only reads
(`bench.grpc_floor.stream_floor`): what gRPC alone costs for these
heartbeats on this machine at this moment, so the coordinator's figure is
read against a floor measured within the same minute.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psutil

from bench.fleet import SUBMIT_TIME, spawn_fleets, wait_ready
from bench.grpc_floor import stop_all, stream_floor
from bench.mesh import bench_mesh
from bench.stats import latency_summary_ms, poisson_offsets
from swarmmesh.client import AsyncClient


async def _light_load(client: AsyncClient, rate: float, duration_s: float) -> int:
    start = time.perf_counter()
    sent = 0
    pending: set[asyncio.Task[str]] = set()
    for t in poisson_offsets(rate, duration_s, seed=3):
        delay = start + t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(client.submit("noop", SUBMIT_TIME.pack(time.time())))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    await asyncio.gather(*pending)
    return sent


async def run(workdir: Path, *, agents: int = 5000, processes: int = 4, heartbeat_s: float = 1.0,
              window_s: float = 10.0, rate: float = 200.0, load_s: float = 10.0) -> dict[str, Any]:
    floor = await stream_floor(workdir / "floor", agents, processes=processes, heartbeat_s=heartbeat_s,
                               window_s=window_s)
    async with bench_mesh(workdir, 0, 1) as mesh:
        coord = psutil.Process(mesh.pids()["coordinator"])
        rss_before = coord.memory_info().rss
        names, fleets = spawn_fleets(mesh.address, agents, processes, workdir, "fleet", heartbeat_s=heartbeat_s)
        try:
            t0 = time.monotonic()
            await wait_ready(workdir, names, fleets, 180)
            connect_s = time.monotonic() - t0
            async with AsyncClient(mesh.address, timeout=60) as client:
                ready = sum(1 for a in await client.agents())
                await asyncio.sleep(heartbeat_s * 2)  # every agent into its heartbeat rhythm
                c0 = sum(coord.cpu_times()[:2])
                await asyncio.sleep(window_s)
                hb_cpu = (sum(coord.cpu_times()[:2]) - c0) / window_s * 100
                rss = coord.memory_info().rss
                c0 = sum(coord.cpu_times()[:2])
                sent = await _light_load(client, rate, load_s)
                await asyncio.sleep(1.0)  # stragglers
                load_cpu = (sum(coord.cpu_times()[:2]) - c0) / (load_s + 1.0) * 100
        finally:
            stop_all(fleets, 60)  # on SIGTERM each load tool writes its report
    latencies: list[float] = []
    heartbeats = failures = 0
    for name in names:
        report = json.loads((workdir / f"{name}.json").read_text())
        latencies += report["latencies_s"]
        heartbeats += report["heartbeats"]
        failures += report["stream_failures"]
    return {
        "agents": agents,
        "agents_ready": ready,
        "fleet_processes": processes,
        "connect_s": connect_s,
        # Streams that failed and were opened again (the load tool retries as a sidecar does).
        "stream_failures": failures,
        "heartbeat_s": heartbeat_s,
        "coordinator_cpu_percent_heartbeats": hb_cpu,
        "coordinator_cpu_us_per_heartbeat": hb_cpu / 100 / (agents / heartbeat_s) * 1e6,
        "heartbeats_sent": heartbeats,
        # The same fleet against a server that only reads, just before: gRPC's share.
        "floor": floor,
        "heartbeat_cpu_over_floor": hb_cpu / floor["server_cpu_percent"],
        "coordinator_rss_bytes": rss,
        "coordinator_rss_bytes_before_agents": rss_before,
        "task_rate_per_s": rate,
        "tasks_sent": sent,
        "tasks_assigned": len(latencies),
        "coordinator_cpu_percent_under_load": load_cpu,
        "assignment_latency": latency_summary_ms(latencies),
    }
