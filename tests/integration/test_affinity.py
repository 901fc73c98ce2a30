"""Processes pinned with --cpus: every thread they run, gRPC's included, stays on those CPUs."""

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
two_cpus = pytest.mark.skipif(len(ALLOWED) < 2 or not os.path.isdir("/proc/self/task"),
                              reason="needs Linux and two CPUs to tell pinned from not")


def thread_cpus(pid: int) -> dict[int, frozenset[int]]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = frozenset(os.sched_getaffinity(int(tid)))
        except ProcessLookupError:
            pass  # ended since the listing
    return out


@two_cpus
def test_pinned_processes_run_every_thread_on_their_cpus(mesh: Mesh) -> None:
    cpu, other = max(ALLOWED), min(ALLOWED)
    mesh.start_coordinator("--cpus", str(cpu))
    free = mesh.start_sidecar("free", "--capacity", "2")
    pinned_sidecar = mesh.start_sidecar("pinned", "--capacity", "2", "--cpus", str(other))
    with Client(mesh.address) as c:  # traffic on both sidecars, so every thread is up
        ids = [s.task_id for s in c.submit_many(TaskSpec("echo", str(i)) for i in range(40))]
        done = list(c.as_completed(ids))
    assert sorted(t.task_id for t in done if t.ok) == sorted(ids)
    assert {t.agent_id for t in done} == {"free", "pinned"}
    assert mesh.coordinator is not None
    for proc, cpus in ((mesh.coordinator, {cpu}), (pinned_sidecar, {other})):
        threads = thread_cpus(proc.pid)
        assert len(threads) >= 3, threads  # the loop's thread, gRPC's poller and more
        assert set(threads.values()) == {frozenset(cpus)}
    assert set(thread_cpus(free.pid).values()) == {ALLOWED}  # not pinned: the OS decides


@two_cpus
def test_a_cpu_the_coordinator_may_not_use_stops_it_at_start(tmp_path: Path) -> None:
    outside = max(ALLOWED) + 1000
    done = subprocess.run([sys.executable, "-m", "coordinator", "--listen", "127.0.0.1:0", "--cpus", str(outside)],
                          capture_output=True, text=True, timeout=60, env=child_env(), cwd=str(REPO))
    assert done.returncode == 2
    assert f"cpus: CPU {outside} is not one this process may use" in done.stderr


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_pinning_covers_threads_already_running_and_those_started_after() -> None:
    # In a child process: pinning this one would pin the rest of the test run.
    may = affinity.allowed()
    assert may
    cpu = max(may)
    script = f"""
import os, threading
from swarmmesh import affinity
stop = threading.Event()
before = threading.Thread(target=stop.wait); before.start()
affinity.pin_process(frozenset({{{cpu}}}))
after = threading.Thread(target=stop.wait); after.start()
for tid in sorted(os.listdir("/proc/self/task")):
    print(tid, sorted(os.sched_getaffinity(int(tid))))
stop.set()
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 3  # the main thread and both others
    assert all(line.split(" ", 1)[1] == str([cpu]) for line in lines), out.stdout
