"""ResultStore and DependencyIndex: results, TTLs, transitive invalidation, eviction, healing."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from agent_sidecar.cache.index import FILENAME as INDEX_FILE
from agent_sidecar.cache.store import CacheUnavailable, ResultStore


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[ResultStore]:
    s = ResultStore(tmp_path / "cache", size_limit_bytes=64 * 1024 * 1024, eviction="least-recently-used", clock=clock)
    s.open()
    yield s
    s.close()


def put(store: ResultStore, key: str, deps: tuple[str, ...] = (), ttl: float = 0.0, output: bytes = b"v") -> bool:
    return store.put(key, output, "text/plain", ttl, deps, store.generation)


def test_put_get_and_ttl(store: ResultStore, clock: Clock) -> None:
    assert store.get("k") is None
    assert put(store, "k", ttl=10.0, output=b"hello")
    entry = store.get("k")
    assert entry is not None and entry.output == b"hello" and entry.content_type == "text/plain"
    assert entry.expires_at == clock.now + 10.0
    clock.now += 9.9
    assert store.get("k") is not None
    clock.now += 0.2
    assert store.get("k") is None
    put(store, "forever")
    clock.now += 1e6
    assert store.get("forever") is not None


def test_transitive_invalidation_across_a_three_level_chain(store: ResultStore) -> None:
    put(store, "a", ("doc:1",))
    put(store, "b", ("a", "doc:9"))
    put(store, "c", ("b",))
    put(store, "other", ("doc:2",))
    assert store.invalidate(["doc:1"], "E", 1) == 3
    assert [store.get(k) for k in ("a", "b", "c")] == [None, None, None]
    assert store.get("other") is not None
    assert store.sync_point() == ("E", 1)
    assert store.counters.invalidated == 3


def test_invalidating_a_cache_key_drops_it_and_its_dependents(store: ResultStore) -> None:
    put(store, "base")
    put(store, "derived", ("base",))
    assert store.invalidate(["base"], "E", 1) == 2
    assert store.invalidate(["base"], "E", 2) == 0  # nothing left to drop


def test_dependency_cycles_end(store: ResultStore) -> None:
    put(store, "x", ("y",))
    put(store, "y", ("x",))
    assert store.invalidate(["x"], "E", 1) == 2


def test_a_result_computed_before_an_invalidation_is_not_stored(store: ResultStore) -> None:
    since = store.generation
    store.invalidate(["doc:1"], "E", 1)
    assert not store.put("k", b"stale", "", 0, ("doc:1",), since)
    assert store.get("k") is None and store.counters.stale_skipped == 1
    # An unrelated invalidation does not hold back a result.
    assert store.put("k2", b"fine", "", 0, ("doc:2",), since)
    # Transitively: built from a key that invalidation dropped.
    put(store, "mid", ("doc:3",))
    since = store.generation
    store.invalidate(["doc:3"], "E", 2)
    assert not store.put("top", b"stale", "", 0, ("mid",), since)
    # A full clear holds back everything computed before it.
    since = store.generation
    store.clear("E", 3)
    assert not store.put("any", b"x", "", 0, (), since)


def test_the_cache_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    directory = tmp_path / "cache"
    first = ResultStore(directory, size_limit_bytes=1 << 26, eviction="least-recently-used", clock=clock)
    first.open()
    put(first, "a", ("doc:1",), output=b"A")
    put(first, "b", ("a",), output=b"B")
    first.invalidate(["nothing"], "epoch-1", 7)
    first.close()

    second = ResultStore(directory, size_limit_bytes=1 << 26, eviction="least-recently-used", clock=clock)
    second.open()
    try:
        assert second.sync_point() == ("epoch-1", 7)
        entry = second.get("b")
        assert entry is not None and entry.output == b"B"
        # The dependency index came back too.
        assert second.invalidate(["doc:1"], "epoch-1", 8) == 2
    finally:
        second.close()


def test_eviction_under_a_small_size_limit(tmp_path: Path, clock: Clock) -> None:
    limit = 160 * 1024
    s = ResultStore(tmp_path / "small", size_limit_bytes=limit, eviction="least-recently-used", clock=clock)
    s.open()
    try:
        for i in range(400):
            put(s, f"k{i}", (f"dep{i}",), output=os.urandom(1000))
        assert s.counters.evictions > 0
        snap = s.maintain()
        assert snap.entries < 400 and snap.bytes <= limit + 16 * 1024
        assert s.get("k399") is not None  # the newest survive
        assert s.get("k0") is None
        # Rows of evicted entries are pruned in slices by maintenance.
        for _ in range(5):
            s.maintain()
        index = s._idx()
        assert index.key_count() <= snap.entries + 10
    finally:
        s.close()


def test_a_corrupt_directory_is_rebuilt_with_a_warning(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    (directory / diskcache.core.DBNAME).write_bytes(b"this is not sqlite" * 100)
    (directory / INDEX_FILE).write_bytes(b"nor is this" * 100)
    s = ResultStore(directory, size_limit_bytes=1 << 26, eviction="least-recently-used", clock=clock)
    with caplog.at_level(logging.WARNING):
        s.open()
    try:
        assert "rebuilding it empty" in caplog.text
        assert s.available and s.counters.rebuilds == 1
        assert s.sync_point() == ("", 0)
        put(s, "k")
        assert s.get("k") is not None
    finally:
        s.close()


def test_a_directory_deleted_at_run_time_is_rebuilt(
    store: ResultStore, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, "k")
    store.invalidate(["x"], "E", 4)
    shutil.rmtree(store.directory)
    with caplog.at_level(logging.WARNING):
        snap = store.maintain()
    assert "deleted" in caplog.text and snap.available
    assert store.get("k") is None
    put(store, "k2")
    assert store.get("k2") is not None
    # The empty store is in sync with what had been applied.
    assert store.sync_point() == ("E", 4)


def test_recover_rebuilds_after_a_broken_call(store: ResultStore) -> None:
    put(store, "k")
    (store.directory / diskcache.core.DBNAME).unlink()
    store.recover(OSError(2, "No such file"))
    assert store.available and store.counters.rebuilds == 1


def test_a_corrupt_entry_is_a_miss(store: ResultStore) -> None:
    store._c().set("k", b"x")  # not a frame this store wrote
    assert store.get("k") is None and store.counters.corrupt_entries == 1


def test_one_directory_one_owner(store: ResultStore, clock: Clock) -> None:
    other = ResultStore(store.directory, size_limit_bytes=1 << 20, eviction="least-recently-used", clock=clock)
    with pytest.raises(CacheUnavailable):
        other.open()


def test_an_unusable_directory_turns_the_store_off_without_raising_later(tmp_path: Path, clock: Clock) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    s = ResultStore(blocker / "cache", size_limit_bytes=1 << 20, eviction="least-recently-used", clock=clock)
    with pytest.raises(CacheUnavailable):
        s.open()
    assert not s.available
    assert s.maintain().available is False  # no exception, no busy retry


def test_clear_records_the_sync_point(store: ResultStore) -> None:
    put(store, "a")
    put(store, "b", ("a",))
    assert store.clear("E2", 10) == 2
    assert store.sync_point() == ("E2", 10)
    assert store._idx().key_count() == 0
