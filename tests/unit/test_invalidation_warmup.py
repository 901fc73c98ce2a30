"""Key popularity and warm-up planning (no sockets, no clocks)."""

from __future__ import annotations

from coordinator.core.model import TaskSpec
from coordinator.core.popularity import (
    WARMUP_PRIORITY,
    WARMUP_TENANT,
    Popularity,
    plan_after_invalidation,
    plan_for_agent,
    warmup_spec,
)


def spec(key: str, deps: tuple[str, ...] = (), payload: bytes = b"p", tenant: str = "t") -> TaskSpec:
    return TaskSpec(kind="k", payload=payload, cache_key=key, dependencies=deps, tenant=tenant,
                    idempotency_key="idem", trace_context=(("traceparent", "x"),), priority=5)


def test_counts_decay_with_the_half_life() -> None:
    p = Popularity(half_life_s=10.0)
    p.observe([spec("a")] * 4 + [spec("")], now=0.0)
    assert len(p) == 1
    assert abs(p.score("a", 0.0) - 4.0) < 1e-9
    assert abs(p.score("a", 10.0) - 2.0) < 1e-9
    p.observe([spec("a")], now=10.0)
    assert abs(p.score("a", 10.0) - 3.0) < 1e-9
    assert p.score("missing", 0.0) == 0.0


def test_top_and_the_hot_threshold() -> None:
    p = Popularity()
    p.observe([spec("hot")] * 5 + [spec("warm")] * 2 + [spec("cold")], now=0.0)
    assert [h.key for h in p.top(10, 0.0)] == ["hot", "warm"]
    assert [h.key for h in p.top(1, 0.0)] == ["hot"]


def test_warmups_are_not_demand() -> None:
    p = Popularity()
    p.observe([spec("a", tenant=WARMUP_TENANT)] * 3, now=0.0)
    assert len(p) == 0


def test_memory_is_bounded() -> None:
    p = Popularity(max_keys=100, max_spec_bytes=100 * 1024)
    for i in range(1000):
        p.observe([spec(f"k{i}")] * (1 + i % 3), now=0.0)
        assert len(p) <= 200
    # The hottest survive compaction.
    assert all(h.score >= 3.0 for h in p.top(50, 0.0))
    p.observe([spec("big", payload=b"x" * (1 << 20))] * 5, now=0.0)
    (big,) = [h for h in p.top(500, 0.0) if h.key == "big"]
    assert big.spec is None  # too large to keep for resubmission
    for i in range(300):
        p.observe([spec(f"m{i}", payload=b"y" * 60_000)] * 3, now=0.0)
    assert p.spec_bytes <= 100 * 1024 + 60_256


def test_warmup_spec_runs_last_once_without_dedup() -> None:
    w = warmup_spec(spec("a"))
    assert (w.priority, w.tenant, w.idempotency_key, w.trace_context, w.max_attempts) == (
        WARMUP_PRIORITY, WARMUP_TENANT, "", (), 1)
    assert (w.kind, w.payload, w.cache_key) == ("k", b"p", "a")


def test_after_invalidation_follows_dependencies_transitively() -> None:
    p = Popularity()
    p.observe([spec("a", ("doc:1",))] * 5, now=0.0)
    p.observe([spec("b", ("a",))] * 4, now=0.0)
    p.observe([spec("c", ("b",))] * 3, now=0.0)
    p.observe([spec("d", ("doc:2",))] * 6, now=0.0)
    p.observe([spec("e", ("doc:1",))], now=0.0)  # not hot
    planned = plan_after_invalidation(p, ["doc:1"], 0.0, limit=10)
    assert [s.cache_key for s in planned] == ["a", "b", "c"]
    assert all(s.tenant == WARMUP_TENANT for s in planned)
    assert [s.cache_key for s in plan_after_invalidation(p, ["b"], 0.0, limit=10)] == ["b", "c"]
    assert len(plan_after_invalidation(p, ["doc:1"], 0.0, limit=2)) == 2
    assert plan_after_invalidation(p, ["doc:1"], 0.0, limit=0) == []


def test_for_agent_picks_the_hot_keys_it_owns() -> None:
    p = Popularity()
    for i in range(10):
        p.observe([spec(f"k{i}")] * (i + 2), now=0.0)

    def owner(key: str) -> str:
        return "new" if int(key[1:]) % 2 else "old"

    planned = plan_for_agent(p, owner, "new", 0.0, limit=3)
    assert [s.cache_key for s in planned] == ["k9", "k7", "k5"]
    assert plan_for_agent(p, owner, "nobody", 0.0, limit=3) == []
