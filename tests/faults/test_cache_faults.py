"""A sidecar's cache directory corrupted, then deleted, while tasks with cache keys stream in."""

from __future__ import annotations

import shutil
import time

import diskcache
import pytest

from swarmmesh.v1 import types_pb2
from tests.faults.ledger import Ledger, settle
from tests.faults.load import Submitter
from tests.faults.report import Report, conclude
from tests.integration.conftest import Mesh
from tests.support import assert_eventually

pytestmark = pytest.mark.faults

KEYS = 40


def cached(i: int) -> types_pb2.TaskSpec:
    key = f"key-{i % KEYS}"
    return types_pb2.TaskSpec(kind="echo", payload=key.encode(), cache_key=key, idempotency_key=f"cache-{i}")


def test_a_corrupted_then_deleted_cache_directory_under_load(mesh: Mesh, report: Report) -> None:
    mesh.start_coordinator()
    cache_dir = mesh.tmp / "cache-a"
    a = mesh.start_sidecar("a", "--capacity", "16", "--cache-dir", str(cache_dir))

    def hits() -> int:
        return int(mesh.ready_agents()["a"].cache.hits)

    ledger = Ledger()
    with Submitter(lambda: mesh.stub, ledger, cached, total=1_000_000, batch=20, pace_s=0.05) as load:
        assert_eventually(lambda: hits() > KEYS, what="the cache serves hits")
        broken_at = time.monotonic()
        before = set(ledger.acked)
        # Garbage over the live database and its write-ahead log, under the sidecar's open handles.
        (cache_dir / diskcache.core.DBNAME).write_bytes(b"\x00garbage" * 4096)
        for wal in cache_dir.glob("*-wal"):
            wal.write_bytes(b"junk")
        assert_eventually(lambda: "rebuilding it empty" in a.output(), timeout=30, what="corruption noticed")

        shutil.rmtree(cache_dir)
        assert_eventually(lambda: "deleted" in a.output() and cache_dir.is_dir(), timeout=30,
                          what="the deleted directory rebuilt")
        rebuilt = hits()
        assert_eventually(lambda: hits() > rebuilt + KEYS, timeout=30, what="hits again after the rebuild")
        cache_back_s = time.monotonic() - broken_at
        load.stop()

    settle(lambda: mesh.stub, ledger, timeout=60)
    at_risk = len(set(ledger.acked) - before)
    conclude(report, 5, "a sidecar's cache directory corrupted, then deleted, under load", ledger,
             at_risk=at_risk, fault_at=None, note=f"{len(ledger.acked)} tasks; the cache served hits again {cache_back_s:.1f} s after the corruption")
    assert a.popen.poll() is None, "the sidecar kept running"
    assert mesh.stats().succeeded_total == len(ledger.acked)
