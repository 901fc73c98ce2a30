"""The default strategy with real sidecars of different speeds: faster agents
get proportionally more of the work, and each task says why it went where it went."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from swarmmesh.v1 import tasks_pb2, types_pb2
from tests.integration.conftest import Mesh

pytestmark = pytest.mark.integration

SPEEDS_MS = {"fast": 10, "medium": 40, "slow": 80}


def specs(n: int) -> list[types_pb2.TaskSpec]:
    payload = json.dumps({"ms": SPEEDS_MS}).encode()
    return [types_pb2.TaskSpec(kind="work", payload=payload, content_type="application/json") for _ in range(n)]


def run(mesh: Mesh, n: int) -> Counter[str]:
    got, _ = mesh.wait_all(mesh.submit(specs(n)))
    assert all(t.state == types_pb2.TASK_STATE_SUCCEEDED for t in got.values())
    return Counter(t.agent_id for t in got.values())


def test_faster_agents_get_more_work_under_the_default_strategy(mesh: Mesh) -> None:
    mesh.start_coordinator()
    for agent_id in SPEEDS_MS:
        mesh.start_sidecar(agent_id, "--capacity", "4", handler="paced")

    # A deep queue keeps every agent busy: shares follow speed (about 8 : 2 : 1 here).
    deep = run(mesh, 240)
    assert deep["fast"] > deep["medium"] > deep["slow"] > 0, deep
    assert deep["fast"] > 0.5 * sum(deep.values()), deep

    # Light load (3 tasks at a time, 12 slots): nearly everything goes to the
    # fast agent, where round-robin would split it evenly.
    light: Counter[str] = Counter()
    for _ in range(30):
        light += run(mesh, 3)
    assert light["fast"] >= 0.8 * sum(light.values()), light

    some_id = mesh.submit(specs(1))[0]
    mesh.wait_all([some_id])
    task = mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=some_id), timeout=10)
    assert task.strategy == "hybrid"
    assert "agent(s) had a free slot" in task.routing_reason


def test_strategy_is_chosen_per_coordinator_and_per_kind(mesh: Mesh) -> None:
    mesh.start_coordinator("--strategy", "round-robin", "--strategy-overrides", "special=least-loaded")
    mesh.start_sidecar("a", "--capacity", "2", handler="paced")
    ids = mesh.submit([*specs(1), types_pb2.TaskSpec(kind="special", payload=b"{}")])
    mesh.wait_all(ids)
    strategies = [mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=i), timeout=10).strategy for i in ids]
    assert strategies == ["round-robin", "least-loaded"]
