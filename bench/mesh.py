"""Starting a benchmark mesh: the demo's LocalMesh with no-op agents."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.procstat import CpuMeter
from swarmmesh import affinity
from swarmmesh.demo.mesh import LocalMesh
from swarmmesh.demo.workload import DemoAgent

NOOP = "bench.handlers:noop"


def coordinator_cpus() -> str:
    """Where every benchmark pins its coordinator (`--cpus`, see swarmmesh.affinity): the first
    CPU this process may use; "" where threads cannot be pinned."""
    may = affinity.allowed()
    return str(min(may)) if may else ""


def pin_like_coordinator() -> None:
    """Pin this process where the benchmarks pin their coordinators: for a floor's server that
    stands in for one, so the floor and the mesh differ only in what runs on gRPC."""
    if cpus := coordinator_cpus():
        affinity.pin_process(affinity.parse_cpus(cpus))


def bench_mesh(workdir: Path, sidecars: int, capacity: int, *, coordinator_args: Sequence[str] = (),
               handler: str = NOOP, env: Mapping[str, str] | None = None) -> LocalMesh:
    agents = [DemoAgent(f"bench-{i}", {"bench": 1}, ("noop",), capacity) for i in range(sidecars)]
    if cpus := coordinator_cpus():
        coordinator_args = ["--cpus", cpus, *coordinator_args]
    return LocalMesh(workdir, agents, handler=f"noop={handler}", coordinator_args=coordinator_args, env=env)


def meter_for(mesh: LocalMesh) -> CpuMeter:
    """Every process of the mesh plus this one (the client)."""
    return CpuMeter({**mesh.pids(), "client": os.getpid()})
