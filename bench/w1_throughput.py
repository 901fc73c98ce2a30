"""W1: many no-op tasks through 8 sidecars from one client; tasks/s and CPU-µs per task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.mesh import bench_mesh, meter_for
from swarmmesh.client import AsyncClient
from swarmmesh.telemetry import Tracer
from swarmmesh.types import TaskSpec

BATCH = 2000


async def _submit_and_follow(client: AsyncClient, n: int, batch: int) -> int:
    """Submit n tasks in batches; follow each batch on its own stream as it lands."""
    specs = [TaskSpec("noop")] * batch
    followers: list[asyncio.Task[int]] = []

    async def follow(ids: list[str]) -> int:
        done = 0
        async for _ in client.as_completed(ids, omit_payloads=True):
            done += 1
        return done

    left = n
    while left > 0:
        take = min(batch, left)
        submitted = await client.submit_many(specs[:take], batch_size=batch)
        followers.append(asyncio.create_task(follow([s.task_id for s in submitted])))
        left -= take
    return sum(await asyncio.gather(*followers))


async def run(workdir: Path, *, tasks: int = 20_000, sidecars: int = 8, capacity: int = 256,
              batch: int = BATCH, env: Mapping[str, str] | None = None,
              tracing: bool | Tracer = False) -> dict[str, Any]:
    """`env` goes to the mesh's processes; `tracing` to the client (see AsyncClient)."""
    async with bench_mesh(workdir, sidecars, capacity, env=env) as mesh:
        async with AsyncClient(mesh.address, timeout=120, tracing=tracing) as client:
            await _submit_and_follow(client, min(2000, tasks), batch)  # warm up connections and caches
            meter = meter_for(mesh)
            meter.start()
            t0 = time.perf_counter()
            done = await _submit_and_follow(client, tasks, batch)
            elapsed = time.perf_counter() - t0
            cpu = meter.stop()
    if done != tasks:
        raise RuntimeError(f"W1: {done} of {tasks} tasks finished")
    by_role: dict[str, float] = {"client": 0.0, "coordinator": 0.0, "sidecars": 0.0}
    for name, seconds in cpu.seconds.items():
        by_role["sidecars" if name.startswith("bench-") else name] += seconds
    return {
        "tasks": tasks,
        "sidecars": sidecars,
        "capacity": capacity,
        "batch": batch,
        "elapsed_s": elapsed,
        "tasks_per_s": tasks / elapsed,
        "cpu_us_per_task": cpu.total_s / tasks * 1e6,
        "cpu_us_per_task_by_role": {k: v / tasks * 1e6 for k, v in by_role.items()},
    }
