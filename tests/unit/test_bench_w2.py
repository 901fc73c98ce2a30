"""W2's split of each task's latency at the coordinator's timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.w2_latency import _legs


def at(wall_s: float) -> datetime:
    return datetime.fromtimestamp(wall_s, tz=UTC)


def test_the_legs_of_a_task_add_up_to_its_latency_and_unstamped_tasks_are_left_out() -> None:
    wall = 1_700_000_000.0  # the wall-clock time at perf_counter 0
    # t1 intended at 10.0: accepted 1 ms later, assigned 1 ms after that, finished 4 ms
    # later, at the client 3 ms after that: 9 ms in all. t2 never reached the client; t3 came
    # without timestamps.
    t1 = (at(wall + 10.001), at(wall + 10.002), at(wall + 10.006))
    legs = _legs({"t1": 10.0, "t2": 11.0, "t3": 12.0}, {"t1": 10.009, "t3": 12.5}, {"t1": t1, "t3": (None, None, None)},
                 wall)
    got = {name: leg["p50_ms"] for name, leg in legs.items()}
    assert got == pytest.approx({"to_coordinator": 1.0, "queue": 1.0, "agent_round_trip": 4.0, "to_client": 3.0},
                                abs=1e-3)
    assert all(leg["count"] == 1 for leg in legs.values())
