"""W2: open-loop Poisson arrivals; submit-to-result latency at the client.

Arrivals follow a precomputed Poisson schedule and never wait for earlier
tasks (open loop). Each latency runs from the task's *intended* send time,
so a client that falls behind is charged for it (no coordinated omission).
Results arrive on one follow_tenant stream opened before the first submit.

Arrivals are released by bench.pacer (a timerfd watched by the loop on Linux).

Each task's latency is also split at the coordinator's own timestamps
(accepted, assigned, finished; every process reads this machine's one wall
clock): client to coordinator from the intended send time (the pacer's
lateness and the client's submit included), coordinator to agent and back
from assignment to result, and coordinator to client from the result to
its arrival on the follow stream. The queue (accepted to assigned) is the
rest.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.mesh import bench_mesh, meter_for
from bench.pacer import mechanism, paced
from bench.stats import latency_summary_ms, poisson_offsets
from swarmmesh.client import AsyncClient


async def _open_loop(client: AsyncClient, rate: float, duration_s: float, seed: int) -> dict[str, Any]:
    tenant = f"w2-{uuid.uuid4().hex[:8]}"
    schedule = poisson_offsets(rate, duration_s, seed)
    finished: dict[str, float] = {}
    # task id -> the coordinator's timestamps (accepted, assigned, finished), converted after the run.
    # Not the TaskInfo: 10,000 of those kept alive make the client's garbage collector pause
    # for tens of milliseconds (p99.9 42-53 ms against 7-9); a tuple of datetimes it skips.
    stamps: dict[str, tuple[datetime | None, datetime | None, datetime | None]] = {}
    intended: dict[str, float] = {}
    all_in = asyncio.Event()

    async def collect() -> None:
        async for task in client.follow(tenant, omit_payloads=True):
            finished[task.task_id] = time.perf_counter()
            stamps[task.task_id] = (task.created_at, task.assigned_at, task.finished_at)
            if all_in.is_set() and len(finished) >= len(schedule):
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # the follow stream is open before the first arrival

    async def submit(at: float) -> None:
        task_id = await client.submit("noop", tenant=tenant)
        intended[task_id] = at

    wall = time.time() - time.perf_counter()  # perf_counter -> wall clock, for the legs
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
        "pacer": mechanism(),
        "legs": _legs(intended, finished, stamps, wall),
    }


def _legs(intended: Mapping[str, float], arrived: Mapping[str, float],
          stamps: Mapping[str, tuple[datetime | None, datetime | None, datetime | None]], wall: float
          ) -> dict[str, dict[str, float]]:
    """Each task's latency split at the coordinator's timestamps (see the module's note). `intended`
    and `arrived` are perf_counter seconds; `wall` turns them into wall-clock seconds."""
    legs: dict[str, list[float]] = {"to_coordinator": [], "queue": [], "agent_round_trip": [], "to_client": []}
    for task_id, at in intended.items():
        created, assigned_at, finished_at = stamps.get(task_id, (None, None, None))
        if created is None or assigned_at is None or finished_at is None:
            continue
        accepted, assigned, done = created.timestamp(), assigned_at.timestamp(), finished_at.timestamp()
        legs["to_coordinator"].append(accepted - (at + wall))
        legs["queue"].append(assigned - accepted)
        legs["agent_round_trip"].append(done - assigned)
        legs["to_client"].append(arrived[task_id] + wall - done)
    return {name: latency_summary_ms(values) for name, values in legs.items()}


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
