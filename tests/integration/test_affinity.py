"""A coordinator pinned with --cpus: every thread it runs, gRPC's included, stays on those CPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarmmesh import Client, TaskSpec, affinity
from tests.integration.conftest import Mesh
from tests.support import REPO, child_env

ALLOWED = affinity.allowed() or frozenset()
pytestmark = pytest.mark.skipif(len(ALLOWED) < 2 or not os.path.isdir("/proc/self/task"),
                                reason="needs Linux and two CPUs to tell pinned from not")


def thread_cpus(pid: int) -> dict[int, frozenset[int]]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = frozenset(os.sched_getaffinity(int(tid)))
        except ProcessLookupError:
            pass  # ended since the listing
    return out


def test_a_pinned_coordinator_runs_every_thread_on_its_cpu(mesh: Mesh) -> None:
    cpu = max(ALLOWED)
    mesh.start_coordinator("--cpus", str(cpu))
    sidecar = mesh.start_sidecar("a")
    with Client(mesh.address) as c:  # traffic, so gRPC's threads are all up
        ids = [s.task_id for s in c.submit_many(TaskSpec("echo", str(i)) for i in range(20))]
        assert sorted(t.task_id for t in c.as_completed(ids) if t.ok) == sorted(ids)
    assert mesh.coordinator is not None
    pinned = thread_cpus(mesh.coordinator.pid)
    assert len(pinned) >= 3, pinned  # the loop's thread, gRPC's poller and more
    assert set(pinned.values()) == {frozenset({cpu})}
    assert set(thread_cpus(sidecar.pid).values()) == {ALLOWED}  # not pinned: the OS decides


def test_a_cpu_the_coordinator_may_not_use_stops_it_at_start(tmp_path: Path) -> None:
    outside = max(ALLOWED) + 1000
    done = subprocess.run([sys.executable, "-m", "coordinator", "--listen", "127.0.0.1:0", "--cpus", str(outside)],
                          capture_output=True, text=True, timeout=60, env=child_env(), cwd=str(REPO))
    assert done.returncode == 2
    assert f"cpus: CPU {outside} is not one this process may use" in done.stderr
