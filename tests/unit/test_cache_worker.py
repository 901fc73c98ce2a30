"""CacheWorker: calls queued on the loop run on one thread, batched, in order, stores last."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent_sidecar.cache.store import CacheUnavailable, PutItem, ResultStore
from agent_sidecar.cache.worker import CacheWorker


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[CacheWorker]:
    store = ResultStore(tmp_path / "c", size_limit_bytes=1 << 26, eviction="least-recently-used")
    w = CacheWorker(store)
    await w.call(store.open)
    yield w
    await w.call(store.close)
    w.shutdown()


def item(key: str, since: int, deps: tuple[str, ...] = ()) -> PutItem:
    return PutItem(key, key.encode(), "text/plain", 0.0, deps, since)


async def test_a_burst_goes_over_in_few_batches(worker: CacheWorker) -> None:
    await worker.store_result(item("k", 0))
    before = worker.batches
    found = await asyncio.gather(*(worker.lookup("k") for _ in range(50)))
    assert all(entry is not None and entry.output == b"k" for entry, _ in found)
    assert worker.batches - before <= 2


async def test_lookups_see_invalidations_queued_before_them(worker: CacheWorker) -> None:
    store = worker.store
    await worker.store_result(item("a", store.generation, ("doc:1",)))
    dropped = worker.call(store.invalidate, ["doc:1"], "E", 1)
    entry, generation = await worker.lookup("a")
    assert entry is None and await dropped == 1 and generation == store.generation


async def test_stores_run_after_the_rest_of_their_batch(worker: CacheWorker) -> None:
    store = worker.store
    since = store.generation
    gate = threading.Event()
    busy = worker.call(gate.wait, 5)  # the thread is busy: what follows forms one batch
    stored = worker.store_result(item("x", since, ("doc:2",)))
    invalidated = worker.call(store.invalidate, ["doc:2"], "E", 1)
    gate.set()
    await busy
    # The store ran after the invalidation queued behind it, and was refused:
    # its result was computed before that invalidation.
    assert await stored is False and await invalidated == 0
    assert (await worker.lookup("x"))[0] is None


async def test_failures_reach_the_caller_and_heal_the_store(
    worker: CacheWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = worker.store
    recovered: list[BaseException] = []
    recover = store.recover

    def recording(exc: BaseException) -> None:
        recovered.append(exc)
        recover(exc)

    monkeypatch.setattr(store, "recover", recording)

    def boom() -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await worker.call(boom)
    assert [str(e) for e in recovered] == ["no"]
    assert (await worker.lookup("nothing"))[0] is None  # the worker keeps going
    assert await worker.store_result(item("after", store.generation)) is True
    entry, _ = await worker.lookup("after")
    assert entry is not None and entry.output == b"after"


async def test_a_shut_down_worker_refuses_calls(tmp_path: Path) -> None:
    w = CacheWorker(ResultStore(tmp_path / "c", size_limit_bytes=1 << 20, eviction="none"))
    w.shutdown()
    with pytest.raises(CacheUnavailable):
        w.lookup("k")
