"""W2's arrival pacing: every arrival released once, in order, never early, never held back."""

from __future__ import annotations

import asyncio
import select
import sys
import time

import pytest

from bench.pacer import TimerFd, mechanism, paced

MECHANISMS = [pytest.param(True, id="timerfd"), pytest.param(False, id="thread")]


@pytest.mark.parametrize("use_timerfd", MECHANISMS)
async def test_each_arrival_is_released_once_in_order_and_not_before_its_time(use_timerfd: bool) -> None:
    schedule = [0.0, 0.0005, 0.001, 0.004, 0.004, 0.02, 0.021, 0.05]
    released: list[tuple[float, float]] = []

    async def send(at: float) -> None:
        released.append((at, time.perf_counter()))

    late = await paced(schedule, send, use_timerfd=use_timerfd)
    intended = [at for at, _ in released]
    assert len(released) == len(schedule) == len(late)
    assert intended == sorted(intended)
    offsets = [at - intended[0] for at in intended]
    assert offsets == pytest.approx(schedule, abs=1e-9)
    assert all(now >= at for at, now in released)  # never early
    assert all(x >= 0 for x in late)


@pytest.mark.parametrize("use_timerfd", MECHANISMS)
async def test_an_arrival_is_released_while_earlier_sends_still_wait(use_timerfd: bool) -> None:
    # Open loop: the first send only returns once the last arrival has been released.
    last_released = asyncio.Event()
    order: list[str] = []

    async def send(at: float) -> None:
        if not order:
            order.append("first started")
            await asyncio.wait_for(last_released.wait(), timeout=30)
            order.append("first done")
        else:
            order.append("later")
            if len(order) == 4:
                last_released.set()

    await asyncio.wait_for(paced([0.0, 0.01, 0.02, 0.03], send, use_timerfd=use_timerfd), timeout=60)
    assert order == ["first started", "later", "later", "later", "first done"]


async def test_an_empty_schedule_releases_nothing() -> None:
    async def send(at: float) -> None:
        raise AssertionError("nothing to send")

    assert await paced([], send) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
def test_the_timerfd_is_readable_only_once_its_time_has_come() -> None:
    assert mechanism() == "timerfd"
    assert mechanism(use_timerfd=False) == "thread"
    timer = TimerFd()
    try:
        timer.arm(time.perf_counter() + 3600)
        assert select.select([timer.fd], [], [], 0.05)[0] == []
        timer.arm(time.perf_counter() - 1)  # passed already: at once
        assert select.select([timer.fd], [], [], 5)[0] == [timer.fd]
        timer.clear()
        assert select.select([timer.fd], [], [], 0.05)[0] == []  # one shot, consumed
        timer.clear()  # nothing to consume: no error
    finally:
        timer.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
async def test_a_failing_timer_ends_the_pacing_with_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    arm = TimerFd.arm

    def arm_then_fail(self: TimerFd, at: float) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("timerfd_settime: broken")
        arm(self, at)

    monkeypatch.setattr(TimerFd, "arm", arm_then_fail)

    async def send(at: float) -> None:
        return None

    with pytest.raises(OSError, match="broken"):
        await asyncio.wait_for(paced([0.0, 0.01, 0.02], send), timeout=30)
