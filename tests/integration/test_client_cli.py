"""The Python client, the CLI and the demo against real processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from swarmmesh import AgentState, AsyncClient, Client, TaskSpec, TaskState
from swarmmesh.errors import InvalidArgument, NotFound
from swarmmesh.v1 import types_pb2
from tests.integration.conftest import Mesh
from tests.support import REPO, assert_eventually, child_env, stop_tree


def test_sync_client_round_trip(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a", "--label", "math=2")
    with Client(mesh.address) as c:
        task_id = c.submit("calc", {"x": 1}, required_labels={"math": 1})
        done = c.wait(task_id, timeout=30)
        assert done.ok and done.agent_id == "a"
        assert json.loads(done.output_json()["payload"]) == {"x": 1}
        ids = [s.task_id for s in c.submit_many(TaskSpec("calc", f"n{i}") for i in range(50))]
        seen = [t.task_id for t in c.as_completed(ids)]
        assert sorted(seen) == sorted(ids)
        assert [a.agent_id for a in c.agents()] == ["a"]
        assert c.stats().succeeded_total == 51
        with pytest.raises(NotFound) as nf:
            c.get("missing-id")
        assert "missing-id" in nf.value.details
        with pytest.raises(InvalidArgument) as bad:
            c.submit("")
        assert "tasks[0].kind" in bad.value.details


async def test_async_client_cancel_and_drain(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("slow", "--capacity", "1", handler="sleepy")
    async with AsyncClient(mesh.address) as c:
        running = await c.submit("nap", {"ms": 10_000})
        queued = await c.submit("nap", {"ms": 10_000})
        cancelled = await c.cancel([running, queued])
        assert {t.state for t in cancelled} == {TaskState.CANCELLED}
        agent = await c.drain_agent("slow")
        assert agent.agent_id == "slow" and agent.state == AgentState.DRAINING
        late = await c.submit("nap", {"ms": 1})
        info = await c.get(late)
        # An ignored drain would leave "slow" ready: the task would run or wait for its slot.
        assert info.state == TaskState.PENDING and info.pending_reason == "no agent is connected and ready"


def test_cli_submit_wait_and_inspect(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("cli-agent", "--label", "text=1")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "swarmmesh.cli", "--coordinator", mesh.address, *args],
                              capture_output=True, text=True, timeout=60, env=child_env(), cwd=str(REPO))

    done = cli("--json", "submit", "words", "hello there", "--label", "text=1", "--wait")
    assert done.returncode == 0, done.stderr
    assert "cli-agent" in done.stdout
    agents = cli("--json", "agents")
    assert agents.returncode == 0 and "cli-agent" in agents.stdout
    missing = cli("task", "nope")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr and "Traceback" not in missing.stderr
    assert cli("stats").returncode == 0
    assert cli("tasks", "--state", "SUCCEEDED").returncode == 0


def test_sidecar_drains_in_flight_work_on_sigterm(mesh: Mesh) -> None:
    mesh.start_coordinator()
    proc = mesh.start_sidecar("drainer", "--capacity", "4", handler="sleepy")
    ids = mesh.submit_json("nap", [{"ms": 1500}] * 4)
    assert_eventually(lambda: mesh.ready_agents()["drainer"].in_flight == 4, what="4 tasks in flight")
    assert proc.stop(timeout=30) == 0
    tasks, _ = mesh.wait_all(ids, timeout=30)
    assert all(t.state == types_pb2.TASK_STATE_SUCCEEDED and t.attempt == 1 for t in tasks.values())


def test_demo_runs_and_prints_its_summary(tmp_path: Path) -> None:
    # The demo makes its working directory (its mesh's logs) with tempfile: under tmp_path here.
    with subprocess.Popen([sys.executable, "-m", "swarmmesh.cli", "demo", "--tasks", "300"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=child_env({"TMPDIR": str(tmp_path)}), cwd=str(REPO)) as cli:
        try:
            stdout, stderr = cli.communicate(timeout=240)
        finally:
            stop_tree(cli)
    assert cli.returncode == 0, stdout[-3000:] + stderr[-3000:]
    for agent in ("text-agent", "math-agent", "vision-agent"):
        assert agent in stdout
    assert "exactly once" in stdout and "unexpected       0 failures" in stdout


async def test_concurrent_submits_all_succeed_and_a_bad_one_harms_no_other(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a")
    async with AsyncClient(mesh.address) as c:
        good = [c.submit("echo", f"n{i}") for i in range(200)]
        bad = c.submit("has space")
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        *ids, error = results
        assert isinstance(error, InvalidArgument) and "kind" in error.details
        assert all(isinstance(i, str) for i in ids) and len(set(ids)) == 200
        done = await c.wait_all(ids, timeout=60)
        assert all(t.ok for t in done.values())
