"""Sequential round trips: one task at a time, submit to result, as a person
at a prompt would see it. The same measurement runs against Dask in compare mode."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.mesh import bench_mesh
from bench.stats import latency_summary_ms
from swarmmesh.client import AsyncClient


async def run(workdir: Path, *, rounds: int = 500, sidecars: int = 8) -> dict[str, Any]:
    async with bench_mesh(workdir, sidecars, 8) as mesh:
        async with AsyncClient(mesh.address, timeout=60) as client:
            for _ in range(50):
                await client.wait(await client.submit("noop"))
            samples = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await client.wait(await client.submit("noop"))
                samples.append(time.perf_counter() - t0)
    return {"rounds": rounds, "latency": latency_summary_ms(samples)}
