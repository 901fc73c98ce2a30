"""The benchmark command works end to end (a smoke run: tiny sizes, no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import REPO, child_env


def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "swarmmesh.cli", "bench", "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, env=child_env(), cwd=str(REPO))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["machine"]["cpus_logical"] >= 1 and data["versions"]["grpcio"]
    w = data["workloads"]
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
    assert w["seq"]["median"]["latency"]["count"] == 30
    assert w["floor"]["median"]["unary_rtt"]["count"] == 200
    assert "W1 throughput" in done.stdout and "W3 assignment" in done.stdout and "W2 floor" in done.stdout
    assert "W2 legs" in done.stdout
