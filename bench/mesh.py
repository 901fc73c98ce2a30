"""Starting a benchmark mesh: the demo's LocalMesh with no-op agents."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.procstat import CpuMeter
from swarmmesh.demo.mesh import LocalMesh
from swarmmesh.demo.workload import DemoAgent

NOOP = "bench.handlers:noop"


def bench_mesh(workdir: Path, sidecars: int, capacity: int, *, coordinator_args: Sequence[str] = (),
               handler: str = NOOP, env: Mapping[str, str] | None = None) -> LocalMesh:
    """The coordinator keeps its journal (at the default sync) in `workdir`, as a user's would be on."""
    agents = [DemoAgent(f"bench-{i}", {"bench": 1}, ("noop",), capacity) for i in range(sidecars)]
    return LocalMesh(workdir, agents, handler=f"noop={handler}", coordinator_args=coordinator_args, env=env)


def meter_for(mesh: LocalMesh) -> CpuMeter:
    """Every process of the mesh plus this one (the client)."""
    return CpuMeter({**mesh.pids(), "client": os.getpid()})
