"""Order among queued tasks: fair share across tenants, priorities with aging,
per-tenant limits with retry hints, and the queue structure underneath."""

from __future__ import annotations

from collections import Counter

import pytest

from coordinator.core.fairness import FairnessConfig, FairShare, parse_weights, retry_after_ms
from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import CoreError, Registration, StatusCode, TaskRecord, TaskSpec, TaskState
from coordinator.core.queue import TaskQueue


def core_with(**fair: object) -> MeshCore:
    return MeshCore(CoreConfig(lease_timeout_s=1e9, fairness=FairnessConfig(**fair)))  # type: ignore[arg-type]


def join(core: MeshCore, agent_id: str, capacity: int) -> None:
    core.register(Registration(agent_id, (), frozenset(), capacity, "1", capacity), 0)


def order_of(core: MeshCore, now: float, field: str = "tenant") -> list[object]:
    out = []
    for recs in core.dispatch(now).values():
        out.extend(recs)
    out.sort(key=lambda r: r.assigned_at or 0)
    return [getattr(r.spec, field) for r in out]


def drain_one_by_one(core: MeshCore, n: int, now: float = 1.0) -> list[TaskRecord]:
    """Dispatch to a one-slot agent and complete each task: the dispatch order."""
    agent = core.registry.get("one")
    assert agent is not None
    order = []
    for i in range(n):
        [rec] = core.dispatch(now + i)["one"]
        order.append(rec)
        core.frame("one", agent.session, now + i, [], credits=1)
        agent.in_flight.clear()
        rec.state = TaskState.SUCCEEDED  # test shortcut: the slot is free again
    return order


def test_equal_tenants_alternate_even_when_one_submitted_far_more() -> None:
    core = core_with()
    join(core, "one", 1)
    core.submit([TaskSpec(kind="k", tenant="flood") for _ in range(100)], 0)
    core.submit([TaskSpec(kind="k", tenant="quiet") for _ in range(5)], 0)
    order = [r.spec.tenant for r in drain_one_by_one(core, 10)]
    assert order == ["flood", "quiet"] * 5


def test_weights_set_the_shares() -> None:
    core = core_with(tenant_weights=(("gold", 3.0),))
    join(core, "one", 1)
    core.submit([TaskSpec(kind="k", tenant="gold") for _ in range(100)], 0)
    core.submit([TaskSpec(kind="k", tenant="basic") for _ in range(100)], 0)
    counts = Counter(r.spec.tenant for r in drain_one_by_one(core, 40))
    assert counts == {"gold": 30, "basic": 10}


def test_an_idle_tenant_gets_its_share_at_once_but_no_credit_for_idling() -> None:
    core = core_with()
    join(core, "one", 1)
    core.submit([TaskSpec(kind="k", tenant="busy") for _ in range(100)], 0)
    drain_one_by_one(core, 20)
    core.submit([TaskSpec(kind="k", tenant="late") for _ in range(100)], 30)
    order = [r.spec.tenant for r in drain_one_by_one(core, 6, now=30)]
    assert order.count("late") == 3  # alternating, not 20 in a row to "catch up"


def test_priorities_order_work_within_a_tenant_but_not_across_tenants() -> None:
    core = core_with()
    join(core, "one", 1)
    core.submit([TaskSpec(kind="k", tenant="a", priority=0) for _ in range(3)], 0)
    core.submit([TaskSpec(kind="k", tenant="a", priority=5)], 0.1)
    core.submit([TaskSpec(kind="k", tenant="b", priority=100) for _ in range(3)], 0.2)
    order = [(r.spec.tenant, r.spec.priority) for r in drain_one_by_one(core, 4)]
    assert order == [("a", 5), ("b", 100), ("a", 0), ("b", 100)]


def test_aging_lets_old_low_priority_work_ahead_of_much_newer_urgent_work() -> None:
    core = core_with(priority_step_s=1.0, aging_bound_s=60.0)
    join(core, "one", 1)
    [low] = core.submit([TaskSpec(kind="k", priority=0)], 0.0)
    core.submit([TaskSpec(kind="k", priority=3)], 2.0)  # 3 levels = 3 s: overtakes low
    core.submit([TaskSpec(kind="k", priority=3)], 3.5)  # submitted 3.5 s later: does not
    drained = drain_one_by_one(core, 3, now=10)
    assert [(r.spec.priority, r.created_at) for r in drained] == [(3, 2.0), (0, 0.0), (3, 3.5)]
    assert drained[1] is core.get(low.task_id) and drained[1].assigned_at == 11


def test_the_aging_bound_caps_any_priority_advantage() -> None:
    core = core_with(priority_step_s=1.0, aging_bound_s=10.0)
    join(core, "one", 1)
    core.submit([TaskSpec(kind="k", priority=-1000)], 0.0)
    core.submit([TaskSpec(kind="k", priority=1000)], 10.5)
    order = [r.spec.priority for r in drain_one_by_one(core, 2, now=20)]
    assert order == [-1000, 1000]  # 10.5 s later is past the bound, whatever the priorities


def test_per_tenant_limit_refuses_with_a_retry_hint_and_spares_other_tenants() -> None:
    core = core_with(max_pending_per_tenant=10)
    core.submit([TaskSpec(kind="k", tenant="a") for _ in range(8)], 0)
    with pytest.raises(CoreError) as e:
        core.submit([TaskSpec(kind="k", tenant="a") for _ in range(3)], 0)
    assert e.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "tenant 'a'" in e.value.message and "limit is 10" in e.value.message
    assert 100 <= e.value.retry_after_ms <= 30_000 and f"{e.value.retry_after_ms} ms" in e.value.message
    core.submit([TaskSpec(kind="k", tenant="b") for _ in range(10)], 0)  # b is unaffected
    assert core.queue_depth == 18


def test_retry_hint_follows_the_tenants_dispatch_rate() -> None:
    assert retry_after_ms(100, 1000.0) == 100
    assert retry_after_ms(5000, 1000.0) == 5000
    assert retry_after_ms(1, 0.0) == 1000
    assert retry_after_ms(10**9, 1.0) == 30_000


def test_full_queue_answers_with_a_retry_hint() -> None:
    core = MeshCore(CoreConfig(max_queued=5))
    core.submit([TaskSpec(kind="k") for _ in range(5)], 0)
    with pytest.raises(CoreError) as e:
        core.submit([TaskSpec(kind="k")], 0)
    assert e.value.code == StatusCode.RESOURCE_EXHAUSTED and e.value.retry_after_ms > 0


def test_parse_weights() -> None:
    assert parse_weights(" a=2, b=0.5 ,") == (("a", 2.0), ("b", 0.5))
    for bad in ("a", "a=0", "=1", "a=x", "a=-1"):
        with pytest.raises(ValueError, match="tenant_weights"):
            parse_weights(bad)


def test_pop_tail_takes_the_newest_lowest_priority_task() -> None:
    q = TaskQueue(FairShare())
    recs = [TaskRecord(f"t{i}", TaskSpec(kind="k", priority=p), i, float(i), None, 5)
            for i, p in enumerate([0, 5, 0, 5])]
    for r in recs:
        q.push(r)
    t = q.tenants["default"]
    key = ("k", ())
    assert q.pop_tail(t, key) is recs[2]  # newest of the lowest priority
    assert q.pop_tail(t, key) is recs[0]
    entry = q.head(t, key)
    assert entry is not None and entry[2] is recs[1]
    assert len(q) == 2 and q.depths[key] == 2


def test_requeued_tasks_keep_their_place_and_dead_entries_do_not_pile_up() -> None:
    core = MeshCore(CoreConfig(lease_timeout_s=5))
    join(core, "a", 1)
    ids = [core.submit([TaskSpec(kind="k")], t)[0].task_id for t in (0.0, 0.1, 0.2)]
    [first] = core.dispatch(0)["a"]
    assert first.task_id == ids[0]
    agent = core.registry.get("a")
    assert agent is not None
    core.disconnect("a", agent.session, 1)  # lease lost: back in the queue
    join(core, "b", 1)
    [again] = core.dispatch(2)["b"]
    assert again.task_id == ids[0] and again.attempt == 2  # ahead of newer work
    assert core._queue.entries() <= 3


def test_pending_reason_names_the_tenant_queue() -> None:
    core = core_with()
    [s] = core.submit([TaskSpec(kind="k", tenant="acme")], 0)
    assert "no agent is connected" in core.pending_reason(core.get(s.task_id))
    join(core, "busy", 1)
    core.submit([TaskSpec(kind="k", tenant="acme")], 0)
    core.dispatch(0)
    rec = next(core.get(i) for i in core._tasks if core.get(i).state == TaskState.PENDING)
    assert "tenant 'acme'" in core.pending_reason(rec)
