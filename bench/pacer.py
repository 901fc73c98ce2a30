"""Releasing open-loop arrivals on time.

The event loop's own timers wake in whole milliseconds (epoll), which would
make the generator itself about half a millisecond late on average. On Linux
the loop instead watches a timerfd armed at each arrival's absolute time on
CLOCK_MONOTONIC (perf_counter's clock, nanosecond resolution): the kernel
wakes the loop itself, and the arrival's submit runs in that wake-up.

Elsewhere a pacing thread sleeps with the OS's finer timer and hands each
arrival to the loop. That costs a second wake-up per arrival: on 2 cores the
generator was 0.14-0.19 ms late at the median with the thread against
0.07-0.13 ms with the timerfd (three alternated W2 runs). Either way the
lateness is charged to the system under test: latencies run from the
intended time.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

_PR_SET_TIMERSLACK = 29  # prctl(2)
_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A Linux timerfd on CLOCK_MONOTONIC, armed one shot at a time at absolute perf_counter times."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd: int = fd

    def arm(self, at: float) -> None:
        """Make the fd readable at perf_counter time `at` (at once if that has passed)."""
        sec = int(at)
        # A zero it_value would disarm the timer instead: the earliest instant is 1 ns.
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, max(1, int((at - sec) * 1e9))))
        if self._libc.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def clear(self) -> None:
        """Consume an expiry, so the fd is no longer readable until armed again."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass  # re-armed before this read: nothing expired yet

    def close(self) -> None:
        os.close(self.fd)


def mechanism(use_timerfd: bool = True) -> str:
    """What `paced` releases arrivals with here: "timerfd" or "thread"."""
    timer = _timer_fd() if use_timerfd else None
    if timer is None:
        return "thread"
    timer.close()
    return "timerfd"


def _timer_fd() -> TimerFd | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return TimerFd()
    except (OSError, AttributeError):  # no timerfd in this libc
        return None


class _Sends:
    """The arrivals released so far: each `send(at)` runs as its own task."""

    def __init__(self, send: Callable[[float], Awaitable[None]]) -> None:
        self._send = send
        self.tasks: set[asyncio.Task[None]] = set()
        self.late: list[float] = []

    async def _one(self, at: float) -> None:
        self.late.append(time.perf_counter() - at)
        await self._send(at)

    def release(self, at: float) -> None:
        t = asyncio.get_running_loop().create_task(self._one(at))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def finish(self) -> list[float]:
        if self.tasks:
            await asyncio.gather(*self.tasks)
        return self.late


async def _paced_by_timerfd(timer: TimerFd, times: Sequence[float], sends: _Sends) -> None:
    loop = asyncio.get_running_loop()
    released = asyncio.Event()
    failed: list[BaseException] = []
    i = 0

    def fire() -> None:
        nonlocal i
        try:
            timer.clear()
            now = time.perf_counter()
            while i < len(times) and times[i] <= now:
                sends.release(times[i])
                i += 1
            if i < len(times):
                timer.arm(times[i])
                return
        except Exception as exc:  # raised by the wait below, not lost in the loop's handler
            failed.append(exc)
        released.set()

    loop.add_reader(timer.fd, fire)
    try:
        timer.arm(times[0])
        await released.wait()
    finally:
        loop.remove_reader(timer.fd)
    if failed:
        raise failed[0]


def _precise_wakeups() -> None:
    """Ask Linux to defer this thread's timer wake-ups by at most 1 µs (its default slack is 50 µs)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1_000, 0, 0, 0)  # ns
        except (OSError, AttributeError):
            pass  # no prctl here: the default slack only makes arrivals a little later


def _pace(loop: asyncio.AbstractEventLoop, times: Sequence[float], release: Callable[[float], None],
          stop: threading.Event) -> None:
    """Call `release(at)` on the loop at each intended time (perf_counter seconds)."""
    _precise_wakeups()
    for at in times:
        delay = at - time.perf_counter()
        if delay > 0 and stop.wait(delay):
            return
        loop.call_soon_threadsafe(release, at)


async def _paced_by_thread(times: Sequence[float], sends: _Sends) -> None:
    loop = asyncio.get_running_loop()
    released = asyncio.Event()
    left = len(times)

    def release(at: float) -> None:
        nonlocal left
        sends.release(at)
        left -= 1
        if not left:
            released.set()

    stop = threading.Event()
    pacer = threading.Thread(target=_pace, args=(loop, times, release, stop), name="pacer", daemon=True)
    pacer.start()
    try:
        await released.wait()
    finally:
        stop.set()
        await asyncio.to_thread(pacer.join)


async def paced(schedule: Sequence[float], send: Callable[[float], Awaitable[None]], *,
                use_timerfd: bool = True) -> list[float]:
    """Run `send(at)` as its own task at each intended time `at` (perf_counter seconds; the
    schedule's offsets count from 50 ms from now), never waiting for earlier sends; return once
    every send has finished, with how late each was started (seconds). `use_timerfd=False`
    paces with a thread even where a timerfd is available."""
    sends = _Sends(send)
    if not schedule:
        return sends.late
    start = time.perf_counter() + 0.05
    times = [start + offset for offset in schedule]
    timer = _timer_fd() if use_timerfd else None
    if timer is None:
        await _paced_by_thread(times, sends)
    else:
        try:
            await _paced_by_timerfd(timer, times, sends)
        finally:
            timer.close()
    return await sends.finish()
