"""Clients that open a Session stream and cancel it, ten thousand times: nothing of
them may stay behind in the coordinator."""

from __future__ import annotations

import asyncio

import grpc
import psutil
import pytest

from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc
from tests.faults.ledger import Ledger, naps, settle, submit
from tests.faults.report import Report, conclude
from tests.integration.conftest import Mesh
from tests.support import CHANNEL_OPTIONS

pytestmark = pytest.mark.faults

CYCLES = 10_000
WARM_UP = 1_000
CONCURRENCY = 16
# Generous: a leak of a few KiB per session would show as tens of MiB.
MAX_GROWTH_MIB = 30


async def churn(stub: tasks_pb2_grpc.TaskServiceStub, watched: list[str], cycles: int) -> None:
    """`cycles` sessions, CONCURRENCY at a time, each watching `watched` (finished tasks) and cancelled:
    half after reading the answer, half at once, before the coordinator may have read the watch."""
    request = tasks_pb2.SessionRequest(watches=[tasks_pb2.SessionWatch(id=1, task_ids=watched)])

    async def one(n: int) -> None:
        call = stub.Session()
        try:
            await call.write(request)
            if n % 2 == 0:
                await call.read()
        finally:
            call.cancel()

    async def worker(first: int) -> None:
        for n in range(first, cycles, CONCURRENCY):
            await one(n)

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / (1 << 20)


async def test_10000_session_open_cancel_cycles_keep_coordinator_rss_flat(mesh: Mesh, report: Report) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a")
    assert mesh.coordinator is not None
    ledger = Ledger()
    watched = submit(mesh.stub, ledger, naps("churn-before", 20, b"{}", kind="echo"))
    settle(lambda: mesh.stub, ledger, timeout=60)

    async with grpc.aio.insecure_channel(mesh.address, options=CHANNEL_OPTIONS) as channel:
        stub = tasks_pb2_grpc.TaskServiceStub(channel)
        await churn(stub, watched, WARM_UP)
        before = rss_mib(mesh.coordinator.pid)
        await churn(stub, watched, CYCLES)
        # One more call through the same channel: the cancels ahead of it have been taken.
        await stub.GetStats(tasks_pb2.GetStatsRequest(), timeout=30)
        after = rss_mib(mesh.coordinator.pid)

    # The coordinator still serves, and what it had finished is unchanged.
    submit(mesh.stub, ledger, naps("churn-after", 20, b"{}", kind="echo"))
    settle(lambda: mesh.stub, ledger, timeout=60)
    conclude(report, 8, f"{CYCLES:,} Session open/cancel cycles", ledger, at_risk=0, fault_at=None,
             note=f"coordinator RSS {before:.1f} MiB before, {after:.1f} MiB after")
    assert after - before < MAX_GROWTH_MIB, f"RSS grew {after - before:.1f} MiB over {CYCLES} sessions"
