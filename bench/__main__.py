"""`swarmmesh bench` / `python -m bench`: run workloads, print a table, write JSON.

Every workload starts real processes on loopback. With --runs N each workload
runs N times and the table shows medians; the JSON keeps every run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import (
    dask_peer,
    grpc_floor,
    w1_sequential,
    w1_throughput,
    w1_tracing,
    w2_floor,
    w2_latency,
    w3_agents,
    w4_cache,
)
from bench.report import render, summarize
from swarmmesh import eventloop, grpc_engine

WORKLOADS = ("w1", "w2", "w2floor", "w3", "w4", "seq", "floor", "tracing")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "event_loop": eventloop.loop_name(),
           "grpc_engine": grpc_engine.engine}
    for dist in ("swarmmesh", "grpcio", "protobuf", "distributed"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _machine() -> dict[str, Any]:
    import psutil

    return {
        "cpus_logical": os.cpu_count(),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def _plan(ns: argparse.Namespace) -> dict[str, Callable[[Path], Any]]:
    smoke = ns.smoke
    plan: dict[str, Callable[[Path], Any]] = {}
    if "w1" in ns.workloads:
        n = 2_000 if smoke else ns.w1_tasks
        plan["w1"] = lambda d: w1_throughput.run(d, tasks=n, sidecars=2 if smoke else 8)
    if "seq" in ns.workloads:
        plan["seq"] = lambda d: w1_sequential.run(d, rounds=30 if smoke else 500, sidecars=2 if smoke else 8)
    if "w2" in ns.workloads:
        plan["w2"] = lambda d: w2_latency.run(d, rate=200 if smoke else ns.w2_rate,
                                              duration_s=1.0 if smoke else ns.w2_seconds, sidecars=4)
    if "w2floor" in ns.workloads:
        plan["w2floor"] = lambda d: w2_floor.run(d, rate=200 if smoke else ns.w2_rate,
                                                 duration_s=1.0 if smoke else ns.w2_seconds, echoes=4)
    if "w3" in ns.workloads:
        agents = 40 if smoke else ns.w3_agents
        plan["w3"] = lambda d: w3_agents.run(d, agents=agents, processes=1 if smoke else 4,
                                             window_s=1.0 if smoke else 10.0, rate=50 if smoke else 200,
                                             load_s=1.0 if smoke else 10.0)
    if "w4" in ns.workloads:
        plan["w4"] = lambda d: w4_cache.run(d, tasks=2_000 if smoke else ns.w4_tasks, keys=500 if smoke else 10_000,
                                            entries=100 if smoke else 2_000, sidecars=2 if smoke else 8)
    if "tracing" in ns.workloads:
        plan["tracing"] = lambda d: w1_tracing.run(d, tasks=2_000 if smoke else ns.w1_tasks,
                                                   sidecars=2 if smoke else 8)
    if "floor" in ns.workloads:
        plan["floor"] = lambda d: grpc_floor.run(d, rounds=200 if smoke else 2000,
                                                 streams=0 if smoke else ns.w3_agents)
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="swarmmesh bench", description=__doc__.splitlines()[0])
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD",
                   help=f"which to run, from: {' '.join(WORKLOADS)} (default all)")
    p.add_argument("--runs", type=int, default=3, help="runs per workload; the table shows medians")
    p.add_argument("--json", default="bench-results/bench.json", help="where to write the results")
    p.add_argument("--compare-dask", action="store_true", help="also run W1 and sequential latency on Dask")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks that it all works")
    p.add_argument("--w1-tasks", type=int, default=20_000)
    p.add_argument("--w2-rate", type=float, default=1000.0)
    p.add_argument("--w2-seconds", type=float, default=10.0)
    p.add_argument("--w3-agents", type=int, default=5000)
    p.add_argument("--w4-tasks", type=int, default=50_000)
    ns = p.parse_args(argv)
    ns.workloads = ns.workloads or list(WORKLOADS)
    unknown = sorted(set(ns.workloads) - set(WORKLOADS))
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {' '.join(WORKLOADS)}")
    runs = 1 if ns.smoke else max(1, ns.runs)
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "smoke": ns.smoke,
        "runs": runs,
        "versions": _versions(),
        "machine": _machine(),
        "config": {k: v for k, v in vars(ns).items() if k != "json"},
        "workloads": {},
    }
    plan = _plan(ns)
    with tempfile.TemporaryDirectory(prefix="swarmmesh-bench-") as tmp:
        for name, job in plan.items():
            samples = []
            for i in range(runs):
                workdir = Path(tmp) / f"{name}-{i}"
                workdir.mkdir()
                print(f"running {name} ({i + 1}/{runs}) ...", file=sys.stderr, flush=True)
                samples.append(eventloop.run(job(workdir)))
            results["workloads"][name] = {"runs": samples, "median": summarize(samples)}
        if ns.compare_dask:
            if dask_peer.available():
                samples = []
                for i in range(runs):
                    print(f"running dask ({i + 1}/{runs}) ...", file=sys.stderr, flush=True)
                    samples.append(dask_peer.run(tasks=2_000 if ns.smoke else ns.w1_tasks,
                                                 rounds=30 if ns.smoke else 300))
                results["workloads"]["dask"] = {"runs": samples, "median": summarize(samples)}
            else:
                results["workloads"]["dask"] = {"skipped": "distributed is not installed (pip install -e '.[bench]')"}
    out = Path(ns.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, sort_keys=True))
    print(render(results))
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
