"""W4: result-cache hit rate of the mesh against one shared LRU cache of the same total size.

Zipf(s) requests over `keys` cache keys go through `sidecars` sidecars, each
with its own LRU result cache sized for `entries` / `sidecars` results, once
with cache-aware routing (the coordinator's cache-affinity strategy) and once
without (least-loaded). The ideal is one LRU cache holding as many results as
the sidecars held together at the end of the cache-aware run, replaying the
same request sequence. Requests go in windows of `window` tasks, well under
the mesh's capacity: a saturated mesh sends work wherever a slot is free,
whatever the routing wants.

Cache get latency: `hit_us` is what the sidecar measured for each hit (queue
to the cache thread, diskcache get with its LRU update, back to the loop);
`store_get_us` is the diskcache get alone, measured in this process on a
store of the same shape.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent_sidecar.cache.store import ResultStore
from bench.mesh import bench_mesh
from bench.stats import percentile
from coordinator import flags
from swarmmesh.client import AsyncClient
from swarmmesh.types import TaskSpec

HANDLER = "bench.w4_cache:compute"
OUTPUT_BYTES = 256
AFFINITY = "cache-affinity"
NO_AFFINITY = "least-loaded"


async def compute(ctx: Any) -> bytes:
    """A result of OUTPUT_BYTES that depends only on the payload."""
    seed = bytes(ctx.payload) or b"-"
    return (seed * (OUTPUT_BYTES // len(seed) + 1))[:OUTPUT_BYTES]


def zipf_sequence(n: int, keys: int, s: float, seed: int) -> list[str]:
    weights = itertools.accumulate(1.0 / (rank**s) for rank in range(1, keys + 1))
    ranks = random.Random(seed).choices(range(keys), cum_weights=list(weights), k=n)
    return [f"w4-{rank}" for rank in ranks]


def lru_hit_rate(sequence: Sequence[str], capacity: int) -> float:
    cache: OrderedDict[str, None] = OrderedDict()
    hits = 0
    for key in sequence:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits / len(sequence) if sequence else 0.0


def calibrate(entries: int) -> tuple[int, list[float]]:
    """Bytes of diskcache volume that `entries` results of this workload take, and
    the latency (µs) of gets on such a store."""
    with tempfile.TemporaryDirectory(prefix="swarmmesh-w4-") as tmp:
        store = ResultStore(Path(tmp) / "c", size_limit_bytes=1 << 40, eviction="least-recently-used")
        store.open()
        try:
            output = b"x" * OUTPUT_BYTES
            for i in range(entries):
                store.put(f"w4-{i}", output, "application/octet-stream", 0, (), store.generation)
            volume = store.maintain().bytes
            samples = []
            rng = random.Random(0)
            for _ in range(2000):
                key = f"w4-{rng.randrange(entries)}"
                t0 = time.perf_counter_ns()
                store.get(key)
                samples.append((time.perf_counter_ns() - t0) / 1000)
        finally:
            store.close()
    return volume, sorted(samples)


@contextmanager
def _sidecar_env(values: dict[str, str]) -> Iterator[None]:
    # LocalMesh passes this process's environment to its children; the cache
    # settings reach the sidecars as their SWARMMESH_CACHE_* variables.
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def _sample_entries(client: AsyncClient, out: list[int], every_s: float = 0.5) -> None:
    """Total entries the sidecars hold, from their heartbeats, every `every_s` seconds."""
    while True:
        await asyncio.sleep(every_s)
        agents = await client.agents()
        out.append(sum(a.cache.entries for a in agents if a.cache is not None))


async def _one_mode(workdir: Path, strategy: str, sequence: list[str], *, sidecars: int, capacity: int,
                    window: int, size_mb: float) -> dict[str, Any]:
    env = {
        "XDG_CACHE_HOME": str(workdir / "xdg"),
        "SWARMMESH_CACHE_SIZE_MB": repr(size_mb),
        "SWARMMESH_CACHE_EVICTION": "lru",
        "SWARMMESH_CACHE_REFRESH_FRACTION": "0",
    }
    with _sidecar_env(env):
        mesh = bench_mesh(workdir, sidecars, capacity, coordinator_args=["--strategy", strategy,
                                                                         "--warmup-max-tasks", "0"],
                          handler=HANDLER)
        async with mesh, AsyncClient(mesh.address, timeout=120) as client:
            hits = 0
            hit_us: list[float] = []
            held: list[int] = []
            sampler = asyncio.create_task(_sample_entries(client, held))
            t0 = time.perf_counter()
            for start in range(0, len(sequence), window):
                chunk = sequence[start : start + window]
                specs = [TaskSpec("noop", key.encode(), cache_key=key) for key in chunk]
                ids = [s.task_id for s in await client.submit_many(specs, batch_size=window)]
                async for task in client.as_completed(ids, omit_payloads=True):
                    if not task.ok:
                        raise RuntimeError(f"W4: task {task.task_id} failed: {task.error}")
                    if task.outcome is not None and task.outcome.cache_hit:
                        hits += 1
                        hit_us.append(float(task.outcome.duration_us))
            elapsed = time.perf_counter() - t0
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            # Sizes arrive with heartbeats: wait until they account for every task.
            deadline = time.monotonic() + 15
            while True:
                agents = await client.agents()
                seen = sum(a.cache.hits + a.cache.misses for a in agents if a.cache is not None)
                if seen >= len(sequence) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
    hit_us.sort()
    entries = [a.cache.entries if a.cache else 0 for a in agents]
    # Caches fill during the first half; what they hold after that is their size.
    steady = held[len(held) // 2 :] or [sum(entries)]
    return {
        "strategy": strategy,
        "hit_rate": hits / len(sequence),
        "tasks_per_s": len(sequence) / elapsed,
        "entries_held_mean": sum(steady) / len(steady),
        "entries_total": sum(entries),
        "entries_per_sidecar_min": min(entries) if entries else 0,
        "entries_per_sidecar_max": max(entries) if entries else 0,
        "evictions_total": sum(a.cache.evictions if a.cache else 0 for a in agents),
        "hit_us": {"p50": percentile(hit_us, 50), "p99": percentile(hit_us, 99)},
    }


def unavailable() -> str:
    """Why W4 cannot run here, or "" when it can."""
    if "strategy" not in flags.BY_NAME:
        return "the coordinator has no --strategy flag yet, so cache-aware routing cannot be chosen"
    return ""


async def run(workdir: Path, *, tasks: int = 50_000, keys: int = 10_000, zipf_s: float = 1.0, sidecars: int = 8,
              entries: int = 2_000, capacity: int = 32, window: int = 64, seed: int = 1) -> dict[str, Any]:
    why = unavailable()
    if why:
        return {"skipped": why}
    sequence = zipf_sequence(tasks, keys, zipf_s, seed)
    per_sidecar = max(1, entries // sidecars)
    volume, get_us = calibrate(per_sidecar)
    size_mb = volume / (1024 * 1024)
    modes = {}
    for name, strategy in (("cache_aware", AFFINITY), ("not_cache_aware", NO_AFFINITY)):
        mode_dir = workdir / name
        mode_dir.mkdir(parents=True, exist_ok=True)
        modes[name] = await _one_mode(mode_dir, strategy, sequence, sidecars=sidecars, capacity=capacity,
                                      window=window, size_mb=size_mb)
    held = round(modes["cache_aware"]["entries_held_mean"]) or entries
    ideal = lru_hit_rate(sequence, held)
    return {
        "tasks": tasks,
        "keys": keys,
        "zipf_s": zipf_s,
        "sidecars": sidecars,
        "window": window,
        "entries_target": per_sidecar * sidecars,
        "size_mb_per_sidecar": size_mb,
        **modes,
        "ideal_shared_lru": {"capacity": held, "hit_rate": ideal},
        "ideal_at_target": lru_hit_rate(sequence, per_sidecar * sidecars),
        "gap_points": (ideal - modes["cache_aware"]["hit_rate"]) * 100,
        "store_get_us": {"p50": percentile(get_us, 50), "p99": percentile(get_us, 99)},
    }
