"""The same W1 and sequential-latency measurements on Dask distributed, in the
same run, so the comparison holds on whatever machine runs it.

Dask is optional (`pip install -e '.[bench]'`); without it this is skipped.
"""

from __future__ import annotations

import time
from importlib import metadata
from typing import Any

import psutil

from bench.stats import latency_summary_ms


def _noop(x: int) -> None:
    return None


def _cpu_tree_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def run(*, tasks: int = 20_000, workers: int = 8, rounds: int = 300) -> dict[str, Any]:
    import dask
    from distributed import Client, LocalCluster

    # Typed as Any: distributed's constructors are untyped, and it is optional.
    new_cluster: Any = LocalCluster
    new_client: Any = Client

    me = psutil.Process()
    with dask.config.set({"distributed.worker.daemon": False, "distributed.logging.distributed": "error"}), \
            new_cluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, host="127.0.0.1") as cluster, \
            new_client(cluster) as client:
        client.gather(client.map(_noop, range(1000), pure=False))  # warm up
        c0 = _cpu_tree_s(me)
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(tasks), pure=False))
        elapsed = time.perf_counter() - t0
        cpu = _cpu_tree_s(me) - c0
        for _ in range(30):
            client.submit(_noop, 0, pure=False).result()
        samples = []
        for i in range(rounds):
            t1 = time.perf_counter()
            client.submit(_noop, i, pure=False).result()
            samples.append(time.perf_counter() - t1)
    return {
        "version": metadata.version("distributed"),
        "tasks": tasks,
        "workers": workers,
        "tasks_per_s": tasks / elapsed,
        "cpu_us_per_task": cpu / tasks * 1e6,
        "sequential": {"rounds": rounds, "latency": latency_summary_ms(samples)},
    }
