"""W2's split of each task's latency at the coordinator's timestamps."""

from __future__ import annotations

import pytest

from bench.w2_latency import _legs


def test_the_legs_of_a_task_add_up_to_its_latency_and_unstamped_tasks_are_left_out() -> None:
    wall = 1_700_000_000.0  # perf_counter 0 is this wall-clock time
    intended = {"t1": 10.0, "t2": 11.0}
    # t1: accepted 1 ms after its intended send, assigned 1 ms later, finished 4 ms
    # later, and at the client 3 ms after that: 9 ms in all.
    stamps = {"t1": (wall + 10.009, wall + 10.001, wall + 10.002, wall + 10.006)}
    legs = _legs(intended, stamps, wall)
    got = {name: leg["p50_ms"] for name, leg in legs.items()}
    assert got == pytest.approx({"to_coordinator": 1.0, "queue": 1.0, "agent_round_trip": 4.0, "to_client": 3.0},
                                abs=1e-3)
    assert all(leg["count"] == 1 for leg in legs.values())
