"""W2: open-loop Poisson arrivals; submit-to-result latency at the client.

Arrivals follow a precomputed Poisson schedule and never wait for earlier
tasks (open loop). Each latency runs from the task's *intended* send time,
so a client that falls behind is charged for it (no coordinated omission).
Results arrive on one follow_tenant stream opened before the first submit.

Arrivals are released by a pacing thread (bench.pacer).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from bench.mesh import bench_mesh, meter_for
from bench.pacer import paced
from bench.stats import latency_summary_ms, poisson_offsets
from swarmmesh.client import AsyncClient


async def _open_loop(client: AsyncClient, rate: float, duration_s: float, seed: int) -> dict[str, Any]:
    tenant = f"w2-{uuid.uuid4().hex[:8]}"
    schedule = poisson_offsets(rate, duration_s, seed)
    finished: dict[str, float] = {}
    intended: dict[str, float] = {}
    all_in = asyncio.Event()

    async def collect() -> None:
        async for task in client.follow(tenant, omit_payloads=True):
            finished[task.task_id] = time.perf_counter()
            if all_in.is_set() and len(finished) >= len(schedule):
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # the follow stream is open before the first arrival

    async def submit(at: float) -> None:
        task_id = await client.submit("noop", tenant=tenant)
        intended[task_id] = at

    sent_late = await paced(schedule, submit)
    all_in.set()
    if len(finished) < len(schedule):
        await asyncio.wait_for(collector, timeout=60)
    else:
        collector.cancel()
    await asyncio.gather(collector, return_exceptions=True)
    latencies = [finished[i] - at for i, at in intended.items()]
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "tasks": len(schedule),
        "latency": latency_summary_ms(latencies),
        "send_lateness": latency_summary_ms(sent_late),
    }


async def run(workdir: Path, *, rate: float = 1000.0, duration_s: float = 10.0, sidecars: int = 4,
              capacity: int = 64, seed: int = 1) -> dict[str, Any]:
    async with bench_mesh(workdir, sidecars, capacity) as mesh:
        async with AsyncClient(mesh.address, timeout=60) as client:
            await _open_loop(client, rate, min(1.0, duration_s), seed + 1)  # warm-up
            meter = meter_for(mesh)
            meter.start()
            result = await _open_loop(client, rate, duration_s, seed)
            cpu = meter.stop()
    result["sidecars"] = sidecars
    result["cpu_percent_by_process"] = {k: v / cpu.wall_s * 100 for k, v in cpu.seconds.items()}
    return result
