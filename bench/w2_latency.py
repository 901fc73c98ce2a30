"""W2: open-loop Poisson arrivals; submit-to-result latency at the client.

Arrivals follow a precomputed Poisson schedule and never wait for earlier
tasks (open loop). Each latency runs from the task's *intended* send time,
so a client that falls behind is charged for it (no coordinated omission).
Results arrive on one follow_tenant stream opened before the first submit.

A pacing thread releases each arrival: the event loop's own timers wake in
whole milliseconds (epoll), which would make the generator itself about half
a millisecond late on average. The thread sleeps with the OS's finer timer
and hands each arrival to the loop, whose wake-up is still charged to us. On
Linux the thread also asks for 1 µs of timer slack instead of the default
50 µs, by which the kernel may otherwise defer each of its wake-ups.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.mesh import bench_mesh, meter_for
from bench.stats import latency_summary_ms, poisson_offsets
from swarmmesh.client import AsyncClient

_PR_SET_TIMERSLACK = 29  # prctl(2)


def _precise_wakeups() -> None:
    """Ask Linux to defer this thread's timer wake-ups by at most 1 µs (its default slack is 50 µs)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1_000, 0, 0, 0)  # ns
        except (OSError, AttributeError):
            pass  # no prctl here: the default slack only makes arrivals a little later


def _pace(loop: asyncio.AbstractEventLoop, start: float, schedule: list[float], release: Any,
          stop: threading.Event) -> None:
    """Call `release(at)` on the loop at each intended time (perf_counter seconds)."""
    _precise_wakeups()
    for offset in schedule:
        at = start + offset
        delay = at - time.perf_counter()
        if delay > 0 and stop.wait(delay):
            return
        loop.call_soon_threadsafe(release, at)


async def _open_loop(client: AsyncClient, rate: float, duration_s: float, seed: int) -> dict[str, Any]:
    tenant = f"w2-{uuid.uuid4().hex[:8]}"
    schedule = poisson_offsets(rate, duration_s, seed)
    finished: dict[str, float] = {}
    intended: dict[str, float] = {}
    sent_late: list[float] = []
    all_in = asyncio.Event()

    async def collect() -> None:
        async for task in client.follow(tenant, omit_payloads=True):
            finished[task.task_id] = time.perf_counter()
            if all_in.is_set() and len(finished) >= len(schedule):
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # the follow stream is open before the first arrival
    loop = asyncio.get_running_loop()
    submits: set[asyncio.Task[None]] = set()
    released = asyncio.Event()
    if not schedule:
        released.set()

    async def submit(at: float) -> None:
        sent_late.append(time.perf_counter() - at)
        task_id = await client.submit("noop", tenant=tenant)
        intended[task_id] = at

    left = [len(schedule)]

    def release(at: float) -> None:
        t_ = loop.create_task(submit(at))
        submits.add(t_)
        t_.add_done_callback(submits.discard)
        left[0] -= 1
        if not left[0]:
            released.set()

    stop = threading.Event()
    pacer = threading.Thread(target=_pace, args=(loop, time.perf_counter() + 0.05, schedule, release, stop),
                             name="w2-pacer", daemon=True)
    pacer.start()
    try:
        await released.wait()
        if submits:
            await asyncio.gather(*submits)
    finally:
        stop.set()
        await asyncio.to_thread(pacer.join)
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
