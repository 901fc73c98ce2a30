"""The result cache end to end: real coordinator and sidecar processes on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import diskcache
import grpc
import pytest

from coordinator.core.affinity import Rendezvous
from swarmmesh import Client
from swarmmesh.v1 import tasks_pb2, types_pb2
from tests.integration.conftest import Mesh
from tests.support import REPO, Proc, assert_eventually, child_env

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED


def spec(key: str, agent_label: str, deps: tuple[str, ...] = (), payload: str = "") -> types_pb2.TaskSpec:
    return types_pb2.TaskSpec(kind="echo", payload=(payload or key).encode(), cache_key=key,
                              dependencies=list(deps), required_labels={agent_label: 1})


def run(mesh: Mesh, *specs: types_pb2.TaskSpec) -> list[types_pb2.Task]:
    ids = mesh.submit(list(specs))
    tasks, _ = mesh.wait_all(ids, timeout=60)
    out = [tasks[i] for i in ids]
    assert all(t.state == SUCCEEDED for t in out), [t.outcome.error for t in out]
    return out


def start(mesh: Mesh, agent: str, *extra: str) -> Proc:
    return mesh.start_sidecar(agent, "--label", f"{agent}=1", "--cache-dir", str(mesh.tmp / f"cache-{agent}"),
                              *extra)


def restart(mesh: Mesh, proc: Proc, agent: str, *extra: str) -> Proc:
    assert proc.stop() == 0
    assert_eventually(lambda: agent not in mesh.ready_agents(), what=f"{agent} gone")
    return start(mesh, agent, *extra)


def executions_of(mesh: Mesh, ids: list[str]) -> int:
    wanted = set(ids)
    return sum(1 for task_id, _, _ in mesh.executions() if task_id in wanted)


def test_hits_skip_the_handler_and_stats_flow_up(mesh: Mesh) -> None:
    mesh.start_coordinator()
    start(mesh, "a")
    [first] = run(mesh, spec("k1", "a"))
    [second, third] = run(mesh, spec("k1", "a"), spec("k1", "a"))
    assert not first.outcome.cache_hit and second.outcome.cache_hit and third.outcome.cache_hit
    assert second.outcome.output == first.outcome.output  # the first run's output, agent and attempt included
    assert executions_of(mesh, [first.task_id, second.task_id, third.task_id]) == 1

    def cache_stats() -> types_pb2.CacheStats | None:
        cache = mesh.ready_agents()["a"].cache
        return cache if cache.hits >= 2 and cache.entries >= 1 else None

    stats = assert_eventually(cache_stats, what="cache stats in heartbeats")
    assert stats.misses == 1 and stats.bytes > 0 and stats.errors == 0
    out = subprocess.run([sys.executable, "-m", "swarmmesh.cli", "--coordinator", mesh.address, "agents"],
                         capture_output=True, text=True, env=child_env(), cwd=str(REPO), timeout=60)
    assert out.returncode == 0 and "CACHE HIT" in out.stdout and "67%" in out.stdout


def test_invalidation_reaches_a_sidecar_that_was_disconnected(mesh: Mesh) -> None:
    mesh.start_coordinator()
    start(mesh, "a")
    b = start(mesh, "b")
    for agent in ("a", "b"):
        run(mesh, spec("k1", agent, ("doc:1",)), spec("k2", agent, ("doc:2",)))
        run(mesh, spec("k3", agent, ("k1",)))  # built from k1: goes with it
    assert b.stop() == 0
    assert_eventually(lambda: "b" not in mesh.ready_agents(), what="b gone")

    with Client(mesh.address) as client:
        result = client.invalidate(["doc:1"], wait=10)
    assert (result.agents_total, result.agents_answered, result.dropped) == (1, 1, 2)
    assert result.seq == 1

    # b comes back with its cache on disk: it catches up, it is not cleared.
    start(mesh, "b")
    k1, k2, k3 = run(mesh, spec("k1", "b"), spec("k2", "b"), spec("k3", "b"))
    assert not k1.outcome.cache_hit and not k3.outcome.cache_hit
    assert k2.outcome.cache_hit
    log = (mesh.tmp / "sidecar-b-3.log").read_text()
    assert "full cache clear" not in log
    [a_k2] = run(mesh, spec("k2", "a"))
    assert a_k2.outcome.cache_hit


def test_the_cache_survives_a_sidecar_restart(mesh: Mesh) -> None:
    mesh.start_coordinator()
    a = start(mesh, "a")
    [first] = run(mesh, spec("k", "a"))
    restart(mesh, a, "a")
    [again] = run(mesh, spec("k", "a"))
    assert again.outcome.cache_hit and again.outcome.output == first.outcome.output


def test_a_restarted_coordinator_makes_sidecars_clear_their_caches(mesh: Mesh) -> None:
    # No journal yet: the new coordinator cannot replay what the old one sent.
    address = mesh.start_coordinator("--shutdown-grace-s", "0.2")
    a = start(mesh, "a", "--reconnect-max", "0.5")
    first, cached = (run(mesh, spec("k", "a"))[0] for _ in range(2))
    # Without a hit here, a miss after the restart would prove nothing.
    assert not first.outcome.cache_hit and cached.outcome.cache_hit
    assert mesh.coordinator is not None
    mesh.coordinator.stop()
    mesh.start_coordinator("--shutdown-grace-s", "0.2", listen=address)
    assert_eventually(lambda: "a" in mesh.ready_agents(), what="a reconnected")
    assert_eventually(lambda: "cleared (the coordinator asked for it): 1 entries dropped" in a.output(),
                      what="a cleared its cache")
    [again] = run(mesh, spec("k", "a"))
    assert not again.outcome.cache_hit


def test_a_corrupt_or_deleted_cache_directory_is_rebuilt(mesh: Mesh) -> None:
    mesh.start_coordinator()
    a = start(mesh, "a")
    run(mesh, spec("k", "a"))
    assert a.stop() == 0
    assert_eventually(lambda: "a" not in mesh.ready_agents(), what="a gone")
    cache_dir = mesh.tmp / "cache-a"
    (cache_dir / diskcache.core.DBNAME).write_bytes(b"\x00garbage" * 4096)
    for wal in cache_dir.glob("*-wal"):
        wal.write_bytes(b"junk")

    a = start(mesh, "a")
    assert "rebuilding it empty" in a.output()
    first, second = (run(mesh, spec("k", "a"))[0] for _ in range(2))
    assert not first.outcome.cache_hit and second.outcome.cache_hit

    # Deleted while running: tasks keep succeeding; maintenance rebuilds it.
    shutil.rmtree(cache_dir)
    run(mesh, spec("k2", "a"))
    assert_eventually(lambda: "deleted" in a.output(), what="rebuild warning")
    assert_eventually(lambda: cache_dir.is_dir())
    run(mesh, spec("k3", "a"))
    assert_eventually(lambda: run(mesh, spec("k3", "a"))[0].outcome.cache_hit, what="hits after the rebuild")
    assert a.popen.poll() is None


def test_single_flight_across_real_processes(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("s", "--label", "s=1", "--capacity", "64", "--cache-dir", str(mesh.tmp / "cache-s"),
                       handler="sleepy")
    specs = [types_pb2.TaskSpec(kind="sleepy", payload=json.dumps({"ms": 300}).encode(), cache_key="same",
                                required_labels={"s": 1}) for _ in range(50)]
    tasks = run(mesh, *specs)
    assert executions_of(mesh, [t.task_id for t in tasks]) == 1
    assert Counter(t.outcome.cache_hit for t in tasks) == {True: 49, False: 1}


def test_cli_invalidate_and_stats(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start_coordinator()
    start(mesh, "a")
    run(mesh, spec("k", "a", ("doc:9",)))

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "swarmmesh.cli", "--coordinator", mesh.address, *args],
                             capture_output=True, text=True, env=child_env(), cwd=str(REPO), timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    text = cli("invalidate", "doc:9", "--wait", "10")
    assert "1 cached result(s) dropped" in text and "1 of 1 agent(s) answered" in text
    data = json.loads(cli("--json", "invalidate", "doc:9"))
    assert data["seq"] == 2 and data["dropped"] == 0
    stats = cli("stats")
    assert "result cache" in stats and "invalidations" in stats


def test_warm_up_after_invalidating_a_hot_key(mesh: Mesh) -> None:
    mesh.start_coordinator()
    start(mesh, "a")
    run(mesh, *(spec("hot", "a", ("doc:1",)) for _ in range(3)))
    with Client(mesh.address) as client:
        result = client.invalidate("doc:1", wait=10)
        assert result.dropped == 1 and result.warmups_submitted == 1
        assert_eventually(lambda: [t for t in client.list_tasks(tenant="swarmmesh-warmup") if t.ok],
                          what="warm-up finished")
        assert client.stats().warmups_total == 1
    [after] = run(mesh, spec("hot", "a"))
    assert after.outcome.cache_hit


def test_an_agent_that_joins_is_warmed_with_the_hot_keys_it_owns(mesh: Mesh) -> None:
    class Named:
        def __init__(self, agent_id: str) -> None:
            self.agent_id = agent_id

    ring = Rendezvous()
    agents = [Named("a"), Named("b")]
    def owner(key: str) -> str:
        return str(getattr(ring.first(key, agents), "agent_id", ""))  # type: ignore[arg-type]

    key = next(f"key-{i}" for i in range(1000) if owner(f"key-{i}") == "b")
    mesh.start_coordinator()
    mesh.start_sidecar("a", "--label", "pool=1", "--cache-dir", str(mesh.tmp / "cache-a"))
    hot = types_pb2.TaskSpec(kind="echo", payload=b"x", cache_key=key, required_labels={"pool": 1})
    run(mesh, hot, hot, hot)
    mesh.start_sidecar("b", "--label", "pool=1", "--cache-dir", str(mesh.tmp / "cache-b"))
    assert_eventually(lambda: any(agent == "b" for _, _, agent in mesh.executions()), what="warm-up on b")
    assert_eventually(lambda: mesh.ready_agents()["b"].cache.entries == 1, what="b holds the key")


def test_invalidate_rejects_bad_input(mesh: Mesh) -> None:
    mesh.start_coordinator()
    for request, field in ((tasks_pb2.InvalidateRequest(), "dependencies"),
                           (tasks_pb2.InvalidateRequest(dependencies=["a", ""]), "dependencies[1]"),
                           (tasks_pb2.InvalidateRequest(dependencies=["a"], wait_ms=60_001), "wait_ms")):
        with pytest.raises(grpc.RpcError) as err:
            mesh.stub.Invalidate(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in err.value.details()
    # No agents: nothing to wait for.
    reply = mesh.stub.Invalidate(tasks_pb2.InvalidateRequest(dependencies=["a"]), timeout=10)
    assert (reply.seq, reply.agents_total, reply.agents_answered, reply.dropped) == (1, 0, 0, 0)
