"""The benchmark command works end to end (a smoke run: tiny sizes, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import WORKLOADS
from tests.support import REPO, child_env, stop_tree


def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    with subprocess.Popen([sys.executable, "-m", "swarmmesh.cli", "bench", "--smoke", "--json", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                          cwd=str(REPO)) as cli:
        try:
            stdout, stderr = cli.communicate(timeout=300)
        finally:
            stop_tree(cli)
    assert cli.returncode == 0, stdout[-2000:] + stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["machine"]["cpus_logical"] >= 1 and data["versions"]["grpcio"]
    w = data["workloads"]
    for name in WORKLOADS:
        assert name in w and "skipped" not in w[name] and "skipped" not in w[name]["median"], (name, w.get(name))
    assert w["w1"]["median"]["tasks"] == 2000 and w["w1"]["median"]["tasks_per_s"] > 0
    assert set(w["w1"]["median"]["cpu_us_per_task_by_role"]) == {"client", "coordinator", "sidecars"}
    assert w["w2"]["median"]["latency"]["count"] == w["w2"]["median"]["tasks"] > 0
    legs = w["w2"]["median"]["legs"]
    assert set(legs) == {"to_coordinator", "queue", "agent_round_trip", "to_client"}
    assert all(leg["count"] == w["w2"]["median"]["tasks"] for leg in legs.values())
    assert legs["to_coordinator"]["p50_ms"] > 0 and legs["agent_round_trip"]["p50_ms"] > 0
    floor = w["w2floor"]["median"]
    assert floor["latency"]["count"] == floor["tasks"] > 0 and set(floor["cpu_percent_by_process"]) == {
        "client", "relay", "echo-0", "echo-1", "echo-2", "echo-3"}
    assert w["w3"]["median"]["agents_ready"] == 40
    assert w["w3"]["median"]["tasks_assigned"] == w["w3"]["median"]["tasks_sent"]
    # Before each W3 run, the same fleet against a server that only reads: every agent registered there too.
    w3_floor = w["w3"]["runs"][0]["floor"]
    assert w3_floor["stream_messages_per_s"] == 40 and w3_floor["server_cpu_percent"] > 0
    assert w["w3"]["runs"][0]["heartbeat_cpu_over_floor"] == pytest.approx(
        w["w3"]["runs"][0]["coordinator_cpu_percent_heartbeats"] / w3_floor["server_cpu_percent"])
    w4 = w["w4"]["median"]
    assert w4["tasks"] == 2000
    for mode in ("cache_aware", "not_cache_aware"):
        assert 0 < w4[mode]["hit_rate"] <= 1 and w4[mode]["tasks_per_s"] > 0, (mode, w4[mode])
    tracing = w["tracing"]["median"]
    assert all(tracing[mode]["tasks"] == 2000 for mode in ("off", "sampled_100", "sampled_1", "collector_down"))
    assert tracing["sampled_100"]["sink_exports"] > 0 and tracing["off"]["sink_exports"] == 0
    assert set(tracing["slowdown"]) == {"sampled_100", "sampled_1", "collector_down"}
    # Each mode against the tracing-off runs just before and after it: four of them around three modes.
    offs = list(tracing["off_tasks_per_s"].values())
    assert len(offs) == 4 and all(x > 0 for x in offs)
    for i, mode in enumerate(("sampled_100", "sampled_1", "collector_down")):
        assert tracing["baseline_tasks_per_s"][mode] == pytest.approx((offs[i] + offs[i + 1]) / 2)
        assert tracing["slowdown"][mode] == pytest.approx(
            1 - tracing[mode]["tasks_per_s"] / tracing["baseline_tasks_per_s"][mode])
    assert w["seq"]["median"]["latency"]["count"] == 30
    assert w["floor"]["median"]["unary_rtt"]["count"] == 200
    assert "W1 throughput" in stdout and "W3 assignment" in stdout and "W2 floor" in stdout
    assert "W2 legs" in stdout and "W3 floor" in stdout
