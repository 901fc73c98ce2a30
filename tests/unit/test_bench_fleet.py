"""The load tool's heartbeat schedule: the rhythm each simulated agent keeps,
and how a backlog is sent without holding up the event loop's reads."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from bench.fleet import Heartbeats, spread


class Agent:
    """Stands in for FakeAgent: records which loop pass each beat went out in."""

    def __init__(self, passes: list[int], stream: object, *, ended_after: int | None = None) -> None:
        self.passes = passes
        self.stream = stream
        self.beats: list[float] = []
        self.ended_after = ended_after

    def beat(self, call: object) -> bool:
        if call is not self.stream:
            return False
        if self.ended_after is not None and len(self.beats) >= self.ended_after:
            self.stream = None
            return False
        self.beats.append(time.monotonic())
        self.passes.append(PASS[0])
        return True


PASS = [0]


async def _count_passes() -> None:
    while True:
        PASS[0] += 1
        await asyncio.sleep(0)


async def _run(agents: list[Agent], schedule: Heartbeats, seconds: float, during: Any = None) -> None:
    for a in agents:
        schedule.add(a, a.stream)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(schedule.run()), asyncio.create_task(_count_passes())]
    try:
        if during is not None:
            await during()
        await asyncio.sleep(seconds)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_every_agent_beats_once_a_period_from_its_own_phase() -> None:
    passes: list[int] = []
    agents = [Agent(passes, object()) for _ in range(40)]
    asyncio.run(_run(agents, Heartbeats(0.1), 1.05))
    for a in agents:
        assert 9 <= len(a.beats) <= 11, len(a.beats)
        gaps = [b - a_ for a_, b in zip(a.beats, a.beats[1:], strict=False)]
        assert min(gaps) > 0.05, "one beat per period, never two together"
    firsts = sorted(a.beats[0] for a in agents)
    assert firsts[-1] - firsts[0] > 0.05, "phases are spread over the period"


def test_a_stream_that_ended_leaves_the_schedule() -> None:
    passes: list[int] = []
    gone = Agent(passes, object(), ended_after=2)
    stays = Agent(passes, object())
    asyncio.run(_run([gone, stays], Heartbeats(0.05), 0.5))
    assert len(gone.beats) == 2
    assert len(stays.beats) >= 8


def test_a_backlog_goes_out_a_few_per_pass_and_skips_missed_periods() -> None:
    passes: list[int] = []
    agents = [Agent(passes, object()) for _ in range(60)]
    read_at: list[int] = []

    async def stall() -> None:
        await asyncio.sleep(0.15)  # every agent has beaten once
        before = {id(a): len(a.beats) for a in agents}
        time.sleep(0.35)  # noqa: ASYNC251 - on purpose: the process is off the CPU for 3.5 periods
        # A read that arrived meanwhile: it must not wait for the whole backlog.
        asyncio.get_running_loop().call_soon(lambda: read_at.append(len(passes)))
        stall.before = before  # type: ignore[attr-defined]

    asyncio.run(_run(agents, Heartbeats(0.1, per_pass=4), 0.01, during=stall))
    assert max(collections.Counter(passes).values()) <= 4
    backlog_start = sum(stall.before.values())  # type: ignore[attr-defined]
    assert read_at and read_at[0] - backlog_start <= 8, "the read ran before the backlog was sent"
    # Each agent beats once after the stall, then keeps its phase: missed periods are not made up.
    after = [len(a.beats) - stall.before[id(a)] for a in agents]  # type: ignore[attr-defined]
    assert min(after) >= 1
    assert max(after) <= 2 and sum(after) <= 75


def test_spread_gives_every_agent_one_process_as_evenly_as_it_goes() -> None:
    assert spread(5000, 4) == [1250] * 4
    assert spread(10, 4) == [3, 3, 2, 2]
    assert spread(40, 1) == [40]
