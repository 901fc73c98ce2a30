"""Reading a large fleet in rounds: every agent once a round, a part a second, gone agents closed as of when they left."""

from __future__ import annotations

import math

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import Heartbeat, Registration
from coordinator.profile.fleet import Fleet

T = 1_700_000_000.0


def fleet_of(n: int, per_s: int) -> tuple[MeshCore, Fleet]:
    core = MeshCore(CoreConfig(lease_timeout_s=60.0))
    for i in range(n):
        core.register(Registration(f"a{i}", (), frozenset(), 4, "1", 4), T)
    return core, Fleet(leak_window_s=300.0, per_s=per_s)


def step(fleet: Fleet, core: MeshCore, now: float, slice_: int = 50) -> int:
    """One second's part of the round; returns the pauses it made."""
    return sum(1 for _ in fleet.sample_steps(now, core.registry.live, slice_))


def is_open(fleet: Fleet, agent_id: str) -> bool:
    return fleet.tracks[agent_id].spans[-1].end == math.inf


def leave(core: MeshCore, agent_id: str, now: float) -> None:
    agent = core.registry.get(agent_id)
    assert agent is not None
    core.disconnect(agent_id, agent.session, now)


def test_a_fleet_within_a_second_of_reads_is_read_whole_every_second() -> None:
    core, fleet = fleet_of(120, per_s=1000)
    assert step(fleet, core, T + 1) == 2  # slices of 50, 50 and 20
    assert len(fleet.tracks) == 120
    leave(core, "a7", T + 1.5)
    step(fleet, core, T + 2)
    # Its slots end when it left, not when the profiler noticed.
    assert fleet.tracks["a7"].spans[-1].end == T + 1.5 and fleet.tracks["a7"].gone_at == T + 1.5


def test_a_larger_fleet_is_read_in_equal_parts_over_several_seconds() -> None:
    core, fleet = fleet_of(250, per_s=100)  # three parts: 84, 84 and 82
    assert step(fleet, core, T + 1) == 1
    assert len(fleet.tracks) == 84
    step(fleet, core, T + 2)
    assert len(fleet.tracks) == 168
    step(fleet, core, T + 3)
    assert len(fleet.tracks) == 250 and all(is_open(fleet, a) for a in fleet.tracks)
    # A heartbeat is read when the round comes to its agent.
    agent = core.registry.get("a249")
    assert agent is not None
    core.frame("a249", agent.session, T + 3.5, heartbeat=Heartbeat(free_slots=4, memory_rss_bytes=1 << 30))
    for t in (T + 4, T + 5):
        step(fleet, core, t)
        assert fleet.tracks["a249"].rss == 0
    step(fleet, core, T + 6)
    assert fleet.tracks["a249"].rss == 1 << 30


def test_an_agent_gone_is_closed_by_the_round_that_noticed_as_of_when_it_left() -> None:
    core, fleet = fleet_of(250, per_s=100)
    for t in (1, 2, 3):
        step(fleet, core, T + t)
    leave(core, "a0", T + 3.5)
    for t in (4, 5):
        step(fleet, core, T + t)
        assert is_open(fleet, "a0")
    step(fleet, core, T + 6)
    assert fleet.tracks["a0"].spans[-1].end == T + 3.5 and fleet.tracks["a0"].gone_at == T + 3.5
    assert sum(is_open(fleet, a) for a in fleet.tracks) == 249


def test_a_record_gone_before_its_turn_does_not_reopen_its_track() -> None:
    core, fleet = fleet_of(250, per_s=100)
    for t in (1, 2, 3):
        step(fleet, core, T + t)
    step(fleet, core, T + 4)  # the next round has begun; a249 is in its last part
    leave(core, "a249", T + 4.2)
    fleet.sample(T + 4.5, core.registry.live())  # a report reads the whole fleet: a249 is closed
    assert fleet.tracks["a249"].spans[-1].end == T + 4.2
    step(fleet, core, T + 5)
    step(fleet, core, T + 6)  # reaches a249's old record
    track = fleet.tracks["a249"]
    assert track.spans[-1].end == T + 4.2 and track.gone_at == T + 4.2


def test_an_agent_joining_mid_round_keeps_its_track_open_until_a_round_reads_it() -> None:
    core, fleet = fleet_of(250, per_s=100)
    step(fleet, core, T + 1)
    core.register(Registration("late", (), frozenset(), 2, "1", 2), T + 1.5)
    fleet.sample(T + 1.6, core.registry.live())  # a report: its slots count from its connection
    assert fleet.tracks["late"].spans[-1].start == T + 1.5
    step(fleet, core, T + 2)
    step(fleet, core, T + 3)  # the round ends without it: still live, so not closed
    assert is_open(fleet, "late")
    for t in (4, 5, 6):
        step(fleet, core, T + t)
    assert is_open(fleet, "late") and fleet.tracks["late"].capacity == 2
