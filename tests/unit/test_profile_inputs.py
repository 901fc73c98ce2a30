"""What feeds the profiler: agent and cache time from results, allocation sites from heartbeats, settings."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from agent_sidecar import wire
from agent_sidecar.config import SidecarConfig, from_env_and_args
from agent_sidecar.metrics import AllocationSites
from coordinator import flags
from coordinator.config import CoordinatorConfig
from coordinator.core.model import AgentRecord, AllocationSite, Heartbeat, Outcome
from coordinator.service.convert import (
    agent_to_proto,
    heartbeat_from_proto,
    outcome_to_proto,
    results_from_proto,
)
from swarmmesh.v1 import mesh_pb2, types_pb2


def test_agent_and_cache_time_cross_the_wire_both_ways() -> None:
    wire_result = mesh_pb2.TaskResult(task_id="t", attempt=1, state=types_pb2.TASK_STATE_SUCCEEDED,
                                      outcome=types_pb2.TaskOutcome(duration_us=900, agent_us=1500, cache_us=300))
    [r] = results_from_proto([wire_result])
    assert (r.outcome.duration_us, r.outcome.agent_us, r.outcome.cache_us) == (900, 1500, 300)
    p = types_pb2.TaskOutcome()
    outcome_to_proto(Outcome(duration_us=900, agent_us=1500, cache_us=300), p)
    assert (p.agent_us, p.cache_us) == (1500, 300)


def test_allocation_sites_from_heartbeat_to_agent_listing() -> None:
    hb = wire.heartbeat_to_proto(in_flight=0, free_slots=1, latencies={}, memory_rss_bytes=10,
                                 allocations=[("app.py:3", 2048, 7), ("lib.py:9", 1024, 2)])
    got = heartbeat_from_proto(mesh_pb2.Heartbeat.FromString(hb.SerializeToString()))
    assert got.allocations == (AllocationSite("app.py:3", 2048, 7), AllocationSite("lib.py:9", 1024, 2))
    assert heartbeat_from_proto(mesh_pb2.Heartbeat()).allocations == ()
    agent = AgentRecord("a", {}, frozenset(), 1, "1", 1, 0.0, 0.0, heartbeat=got)
    listed = agent_to_proto(agent)
    assert [(s.where, s.size_bytes, s.count) for s in listed.allocations] == [("app.py:3", 2048, 7), ("lib.py:9", 1024, 2)]
    assert list(agent_to_proto(AgentRecord("b", {}, frozenset(), 1, "1", 1, 0.0, 0.0, heartbeat=Heartbeat()))
                .allocations) == []


def test_coordinator_flags_and_environment_reach_the_profiler() -> None:
    cfg = flags.from_args(
        ["--history-path", "/tmp/h.sqlite", "--leak-min-growth-bytes-per-s", "4096", "--profile-window-s", "30"],
        env={"SWARMMESH_LEAK_WINDOW_S": "120", "SWARMMESH_SLOW_AGENT_FACTOR": "3"})
    p = cfg.profiler()
    assert (p.history_path, p.leak_min_growth_bytes_per_s, p.window_s) == ("/tmp/h.sqlite", 4096.0, 30.0)
    assert (p.leak_window_s, p.slow_agent_factor) == (120.0, 3.0)
    defaults = CoordinatorConfig().profiler()
    assert defaults.window_s == 60 and defaults.leak_window_s == 300
    assert (defaults.warmup_max_tasks, defaults.popularity_half_life_s) == (32, 600.0)
    assert flags.from_text({"listen": "127.0.0.1:0", "unsafe_no_journal": "1"}).profiler().history_path == ""  # no fixed port: in memory
    for name, bad in (("profile_window_s", "7200"), ("slow_agent_factor", "0.5"), ("profile_min_samples", "-1")):
        with pytest.raises(ValueError, match=name):
            flags.from_text({name: bad})
    with pytest.raises(SystemExit):
        flags.from_args(["--saturation-utilization", "1.5"], env={})


def test_sidecar_tracemalloc_flag() -> None:
    assert SidecarConfig().tracemalloc_top == 0
    assert from_env_and_args(["--tracemalloc-top", "5"], env={}).tracemalloc_top == 5
    assert from_env_and_args([], env={"SWARMMESH_TRACEMALLOC_TOP": "3"}).tracemalloc_top == 3
    with pytest.raises(ValueError, match="tracemalloc_top"):
        SidecarConfig(tracemalloc_top=-1)


def test_allocation_sites_name_the_lines_that_hold_memory() -> None:
    was_tracing = tracemalloc.is_tracing()
    sites = AllocationSites(top=3, every_s=3600)
    sites.start()
    try:
        hoard = [bytearray(4096) for _ in range(500)]  # ~2 MiB held by this line
        first = asyncio.run(sites.sites())
        assert len(first) == 3
        where, size, count = first[0]
        assert where.endswith("test_profile_inputs.py:" + str(_line_of("hoard = [bytearray")))
        assert size >= 500 * 4096 and count >= 500
        del hoard
        assert asyncio.run(sites.sites()) == first  # not recomputed before every_s
    finally:
        sites.stop()
    assert tracemalloc.is_tracing() == was_tracing


def _line_of(text: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line and "_line_of" not in line)
