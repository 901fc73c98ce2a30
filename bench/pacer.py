"""Releasing open-loop arrivals on time.

A pacing thread releases each arrival: the event loop's own timers wake in
whole milliseconds (epoll), which would make the generator itself about half
a millisecond late on average. The thread sleeps with the OS's finer timer
and hands each arrival to the loop, whose wake-up is still charged to the
system under test (latencies run from the intended time). On Linux the
thread also asks for 1 µs of timer slack instead of the default 50 µs, by
which the kernel may otherwise defer each of its wake-ups.
"""

from __future__ import annotations

import asyncio
import ctypes
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

_PR_SET_TIMERSLACK = 29  # prctl(2)


def _precise_wakeups() -> None:
    """Ask Linux to defer this thread's timer wake-ups by at most 1 µs (its default slack is 50 µs)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1_000, 0, 0, 0)  # ns
        except (OSError, AttributeError):
            pass  # no prctl here: the default slack only makes arrivals a little later


def _pace(loop: asyncio.AbstractEventLoop, start: float, schedule: Sequence[float],
          release: Callable[[float], None], stop: threading.Event) -> None:
    """Call `release(at)` on the loop at each intended time (perf_counter seconds)."""
    _precise_wakeups()
    for offset in schedule:
        at = start + offset
        delay = at - time.perf_counter()
        if delay > 0 and stop.wait(delay):
            return
        loop.call_soon_threadsafe(release, at)


async def paced(schedule: Sequence[float], send: Callable[[float], Awaitable[None]]) -> list[float]:
    """Run `send(at)` as its own task at each intended time `at` (perf_counter seconds; the
    schedule's offsets count from 50 ms from now), never waiting for earlier sends; return once
    every send has finished, with how late each was started (seconds)."""
    loop = asyncio.get_running_loop()
    sends: set[asyncio.Task[None]] = set()
    late: list[float] = []
    released = asyncio.Event()
    left = len(schedule)
    if not left:
        return late

    async def one(at: float) -> None:
        late.append(time.perf_counter() - at)
        await send(at)

    def release(at: float) -> None:
        nonlocal left
        t = loop.create_task(one(at))
        sends.add(t)
        t.add_done_callback(sends.discard)
        left -= 1
        if not left:
            released.set()

    stop = threading.Event()
    pacer = threading.Thread(target=_pace, args=(loop, time.perf_counter() + 0.05, schedule, release, stop),
                             name="pacer", daemon=True)
    pacer.start()
    try:
        await released.wait()
        if sends:
            await asyncio.gather(*sends)
    finally:
        stop.set()
        await asyncio.to_thread(pacer.join)
    return late
