"""The cache path of the runner: hits, single-flight, TTL and refresh-ahead, failures."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent_sidecar.cache.config import CacheConfig
from agent_sidecar.cache.result_cache import ResultCache, derive_key
from agent_sidecar.handlers import HandlerRegistry, TaskContext
from agent_sidecar.runner.cache_path import CachePath
from agent_sidecar.runner.runner import Runner
from swarmmesh.v1 import mesh_pb2, types_pb2
from tests.support import eventually

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED
FAILED = types_pb2.TASK_STATE_FAILED


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.results: list[mesh_pb2.TaskResult] = []
        self.credits = 0

    def __call__(self, result: mesh_pb2.TaskResult | None, credits: int) -> None:
        if result is not None:
            self.results.append(result)
        self.credits += credits

    def result(self, task_id: str) -> mesh_pb2.TaskResult:
        (found,) = [r for r in self.results if r.task_id == task_id]
        return found


class Mesh:
    """A runner with a cache path over a real store in a temporary directory."""

    def __init__(self, tmp: Path, handlers: dict[str, Callable[[TaskContext], Any]], *, capacity: int = 64,
                 **config: Any) -> None:
        self.clock = Clock()
        self.cache = ResultCache(CacheConfig(**config), tmp / "cache", clock=self.clock)
        self.path = CachePath(self.cache)
        reg = HandlerRegistry()
        for kind, fn in handlers.items():
            reg.register(kind, fn)
        self.sink = Sink()
        self.runner = Runner(reg, capacity=capacity, agent_id="agent-1", on_result=self.sink, cache=self.path)
        self._n = 0

    async def run(self, kind: str = "k", payload: bytes = b"p", cache_key: str = "key", **kw: Any
                  ) -> mesh_pb2.TaskResult:
        task_id = self.submit(kind, payload, cache_key, **kw)
        await eventually(lambda: any(r.task_id == task_id for r in self.sink.results))
        await self.settled()
        return self.sink.result(task_id)

    def submit(self, kind: str = "k", payload: bytes = b"p", cache_key: str = "key", **kw: Any) -> str:
        self._n += 1
        task_id = f"t{self._n}"
        self.runner.submit(mesh_pb2.Assignment(task_id=task_id, attempt=1, kind=kind, payload=payload,
                                               cache_key=cache_key, **kw))
        return task_id

    async def settled(self) -> None:
        """Queued stores have reached the store (the cache thread runs calls in order)."""
        await self.cache._call(lambda: None, None)


@pytest.fixture
async def meshes() -> AsyncIterator[list[Mesh]]:
    made: list[Mesh] = []
    yield made
    for m in made:
        await m.runner.stop(0)
        await m.path.stop()
        await m.cache.stop()


async def start(made: list[Mesh], tmp: Path, handlers: dict[str, Callable[[TaskContext], Any]], **kw: Any) -> Mesh:
    m = Mesh(tmp, handlers, **kw)
    made.append(m)
    await m.cache.start()
    return m


async def test_a_hit_does_not_call_the_handler(tmp_path: Path, meshes: list[Mesh]) -> None:
    calls = []

    def handler(ctx: TaskContext) -> str:
        calls.append(ctx.task_id)
        return "computed"

    m = await start(meshes, tmp_path, {"k": handler})
    first = await m.run()
    assert first.state == SUCCEEDED and not first.outcome.cache_hit
    second = await m.run()
    assert second.state == SUCCEEDED and second.outcome.cache_hit
    assert second.outcome.output == b"computed" and second.outcome.content_type == "text/plain"
    assert calls == ["t1"]
    stats = m.cache.stats()
    assert (stats.hits, stats.misses) == (1, 1)
    assert m.sink.credits == 2


async def test_tasks_without_a_key_never_touch_the_cache(tmp_path: Path, meshes: list[Mesh]) -> None:
    m = await start(meshes, tmp_path, {"k": lambda ctx: "x"})
    for _ in range(3):
        assert (await m.run(cache_key="")).outcome.output == b"x"
    stats = m.cache.stats()
    assert (stats.hits, stats.misses) == (0, 0)


async def test_single_flight_runs_the_handler_once_for_50_identical_tasks(
    tmp_path: Path, meshes: list[Mesh]
) -> None:
    release = threading.Event()
    calls = 0

    def slow(ctx: TaskContext) -> dict[str, int]:
        nonlocal calls
        calls += 1
        release.wait(5)
        return {"answer": 42}

    m = await start(meshes, tmp_path, {"k": slow}, capacity=64)
    ids = [m.submit() for _ in range(50)]
    await eventually(lambda: calls == 1)
    await asyncio.sleep(0.05)  # the other 49 are waiting, not computing
    assert calls == 1
    release.set()
    await eventually(lambda: len(m.sink.results) == 50)
    assert calls == 1
    assert {r.outcome.output for r in m.sink.results} == {b'{"answer":42}'}
    assert all(r.state == SUCCEEDED for r in m.sink.results)
    assert sum(r.outcome.cache_hit for r in m.sink.results) == 49
    assert {r.task_id for r in m.sink.results} == set(ids)
    assert m.cache.counters.coalesced == 49


async def test_single_flight_shares_a_handler_error(tmp_path: Path, meshes: list[Mesh]) -> None:
    gate = asyncio.Event()
    calls = 0

    async def failing(ctx: TaskContext) -> None:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise ValueError("bad input")

    m = await start(meshes, tmp_path, {"k": failing})
    for _ in range(5):
        m.submit()
    await eventually(lambda: calls == 1)
    gate.set()
    await eventually(lambda: len(m.sink.results) == 5)
    assert calls == 1
    assert {(r.state, r.outcome.error) for r in m.sink.results} == {(FAILED, "ValueError: bad input")}
    await m.settled()
    assert (await m.cache.lookup("key"))[0] is None  # failures are not cached


async def test_a_waiter_computes_when_the_first_attempt_is_cancelled(
    tmp_path: Path, meshes: list[Mesh], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []

    async def slow(ctx: TaskContext) -> str:
        started.append(ctx.task_id)
        await asyncio.sleep(0.2 if ctx.task_id == "t1" else 0)
        return ctx.task_id

    m = await start(meshes, tmp_path, {"k": slow})
    followed: list[object] = []
    follow = m.path._follow

    async def following(
        slot: Any, runner: Runner, flight: object, start_ns: int
    ) -> mesh_pb2.TaskResult | None:
        followed.append(flight)
        return await follow(slot, runner, flight, start_ns)

    monkeypatch.setattr(m.path, "_follow", following)
    m.submit()
    await eventually(lambda: started == ["t1"])
    flight = m.path._flights["key"]
    m.submit()
    # Cancelling t1 before t2 waits on its flight would skip the path under test.
    await eventually(lambda: flight in followed)
    assert m.runner.cancel("t1", 1)
    await eventually(lambda: len(m.sink.results) == 1)
    assert started == ["t1", "t2"]
    assert m.sink.result("t2").outcome.output == b"t2"


async def test_a_waiter_keeps_its_own_deadline(tmp_path: Path, meshes: list[Mesh]) -> None:
    release = threading.Event()

    def slow(ctx: TaskContext) -> str:
        release.wait(5)
        return "late"

    m = await start(meshes, tmp_path, {"k": slow})
    m.submit()
    waiter = m.submit(timeout_ms=50)
    await eventually(lambda: len(m.sink.results) == 1)
    assert m.sink.result(waiter).outcome.error_type == "deadline_exceeded"
    release.set()
    await eventually(lambda: len(m.sink.results) == 2)


async def test_ttl_expiry(tmp_path: Path, meshes: list[Mesh]) -> None:
    calls = 0

    def handler(ctx: TaskContext) -> int:
        nonlocal calls
        calls += 1
        return calls

    m = await start(meshes, tmp_path, {"k": handler}, ttls={"k": 10.0}, refresh_fraction=0)
    assert (await m.run()).outcome.output == b"1"
    m.clock.now += 9
    assert (await m.run()).outcome.cache_hit
    m.clock.now += 2
    late = await m.run()
    assert not late.outcome.cache_hit and late.outcome.output == b"2"


async def test_refresh_ahead_keeps_a_hot_key_fresh(tmp_path: Path, meshes: list[Mesh]) -> None:
    calls: list[int] = []

    def handler(ctx: TaskContext) -> int:
        calls.append(ctx.attempt)
        return len(calls)

    m = await start(meshes, tmp_path, {"k": handler}, ttls={"k": 10.0}, refresh_fraction=0.2)
    await m.run()  # stored at t=0, expires at t=10
    m.clock.now += 1
    assert (await m.run()).outcome.cache_hit  # hot, but not near expiry
    assert calls == [1]
    m.clock.now += 7.5  # t=8.5: in the last 20% of the TTL
    hit = await m.run()
    assert hit.outcome.cache_hit and hit.outcome.output == b"1"
    await eventually(lambda: m.cache.counters.refreshes == 1)
    assert calls == [1, 0]  # attempt 0: the background refresh
    await m.settled()
    m.clock.now += 3  # t=11.5: the original would have expired
    after = await m.run()
    assert after.outcome.cache_hit and after.outcome.output == b"2"


async def test_a_cold_entry_is_not_refreshed(tmp_path: Path, meshes: list[Mesh]) -> None:
    release = threading.Event()
    calls = 0

    def handler(ctx: TaskContext) -> int:
        nonlocal calls
        calls += 1
        if ctx.attempt == 0:
            release.wait(5)  # a refresh, had one started, stays in flight to be seen
        return calls

    m = await start(meshes, tmp_path, {"k": handler}, ttls={"k": 10.0}, refresh_fraction=0.2)
    await m.run()
    m.clock.now += 9  # first hit, already near expiry: not hot yet
    assert (await m.run()).outcome.cache_hit
    try:
        assert not m.path._refreshes and "key" not in m.path._flights
    finally:
        release.set()
    assert calls == 1 and m.cache.counters.refreshes == 0


async def test_derived_keys_for_cacheable_kinds(tmp_path: Path, meshes: list[Mesh]) -> None:
    calls = 0

    def handler(ctx: TaskContext) -> str:
        nonlocal calls
        calls += 1
        return ctx.text()

    m = await start(meshes, tmp_path, {"k": handler, "plain": handler}, cacheable_kinds={"k"})
    assert not (await m.run("k", b"one", cache_key="")).outcome.cache_hit
    assert (await m.run("k", b"one", cache_key="")).outcome.cache_hit
    assert not (await m.run("k", b"two", cache_key="")).outcome.cache_hit
    assert not (await m.run("plain", b"one", cache_key="")).outcome.cache_hit
    assert not (await m.run("plain", b"one", cache_key="")).outcome.cache_hit
    assert calls == 4
    assert (await m.cache.lookup(derive_key("k", "", b"one")))[0] is not None


async def test_declared_dependencies_are_invalidated(tmp_path: Path, meshes: list[Mesh]) -> None:
    def handler(ctx: TaskContext) -> str:
        ctx.depends_on("doc:7")
        return "built from doc 7"

    m = await start(meshes, tmp_path, {"k": handler})
    await m.run(dependencies=["doc:1"])
    reports: list[tuple[int, int]] = []
    m.cache.apply([(1, ("doc:7",))], lambda seq, dropped: reports.append((seq, dropped)))
    await eventually(lambda: reports == [(1, 1)])
    assert not (await m.run()).outcome.cache_hit


async def test_a_cache_failure_never_fails_a_task(tmp_path: Path, meshes: list[Mesh],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    m = await start(meshes, tmp_path, {"k": lambda ctx: "ok"})

    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(m.cache.store, "put_many", broken)
    for _ in range(2):
        r = await m.run()
        assert r.state == SUCCEEDED and r.outcome.output == b"ok" and not r.outcome.cache_hit
    assert m.cache.stats().errors == 2
    monkeypatch.setattr(m.cache.store, "get_many", broken)
    for _ in range(2):
        r = await m.run()
        assert r.state == SUCCEEDED and r.outcome.output == b"ok" and not r.outcome.cache_hit
    # A failed lookup leaves the store generation unknown, so nothing is stored: one error each.
    assert m.cache.stats().errors == 4


async def test_sync_with_the_coordinator(tmp_path: Path, meshes: list[Mesh]) -> None:
    m = await start(meshes, tmp_path, {"k": lambda ctx: "v"})
    assert m.cache.sync_point() == ("", 0)
    m.cache.on_registered("E", 5, clear=True)
    assert m.cache.sync_point() == ("E", 5)
    await m.run(cache_key="a", dependencies=["doc:1"])
    await m.run(cache_key="b", dependencies=["a"])
    reports: list[tuple[int, int]] = []
    m.cache.apply([(5, ("doc:1",)), (6, ("doc:1",)), (7, ("doc:2",))],
                  lambda seq, dropped: reports.append((seq, dropped)))
    await eventually(lambda: len(reports) == 3)
    assert reports == [(5, 0), (6, 2), (7, 0)]  # 5 was already applied
    assert m.cache.sync_point() == ("E", 7)
    await m.settled()
    assert m.cache.store.sync_point() == ("E", 7)
    # A new epoch with a clear drops everything.
    await m.run(cache_key="c")
    m.cache.on_registered("F", 0, clear=True)
    await m.settled()
    assert (await m.cache.lookup("c"))[0] is None
    assert m.cache.store.sync_point() == ("F", 0)
