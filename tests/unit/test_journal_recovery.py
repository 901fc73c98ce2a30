"""MeshCore.restore and orphaned leases, with a hand-driven clock and no journal."""

from __future__ import annotations

import pytest

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import CoreError, Outcome, Registration, ResultIn, StatusCode, TaskSpec, TaskState
from coordinator.core.recovery import Saved, SavedTask
from coordinator.core.retry import RetryConfig, RetryPolicy
from coordinator.service.convert import registration_from_proto
from swarmmesh.v1 import mesh_pb2


def reg(agent_id: str, capacity: int = 4, held: tuple[tuple[str, int], ...] = ()) -> Registration:
    return Registration(agent_id, (), frozenset(), capacity, "1", capacity - len(held), held=held)


def ok(task_id: str, attempt: int, out: bytes = b"x") -> ResultIn:
    return ResultIn(task_id, attempt, TaskState.SUCCEEDED, Outcome(output=out))


def config() -> CoreConfig:
    return CoreConfig(lease_timeout_s=5.0, retention_s=100.0, max_retained=1000)


def saved(core: MeshCore) -> Saved:
    """What a journal would hold of `core`: every task's latest state."""
    recs, _ = core.list_tasks(limit=1_000_000)
    tasks = tuple(SavedTask(
        task_id=r.task_id, seq=r.seq, spec=r.spec, state=int(r.state), attempt=r.attempt, agent_id=r.agent_id,
        last_agent=r.last_agent, history=tuple(r.history), outcome=r.outcome, created_at=r.created_at,
        queued_at=r.queued_at, assigned_at=r.assigned_at, finished_at=r.finished_at, deadline=r.deadline,
        max_attempts=r.max_attempts, run_start=r.run_start, retry_at=r.retry_at, last_failure=r.last_failure)
        for r in recs)
    prefix = recs[0].task_id.rsplit("-", 1)[0] if recs else ""
    return Saved(id_prefix=prefix, last_seq=max((r.seq for r in recs), default=0), tasks=tasks)


def restarted(core: MeshCore, now: float) -> MeshCore:
    fresh = MeshCore(core.config)
    fresh.restore(saved(core), now)
    return fresh


def order_of_dispatch(core: MeshCore, now: float) -> list[str]:
    """Ids in the order one agent with one slot is handed them."""
    drain, _ = core.register(reg("drain", capacity=1), now)
    out: list[str] = []
    while core.queue_depth:
        [rec] = core.dispatch(now)["drain"]
        out.append(rec.task_id)
        core.frame("drain", drain.session, now, [ok(rec.task_id, rec.attempt)], credits=1)
    return out


def test_pending_tasks_come_back_in_the_order_they_would_have_run() -> None:
    core = MeshCore(config())
    t = 0.0
    for tenant in ("a", "b"):
        for prio in (0, 3, -2, 0, 5):
            t += 0.5
            core.submit([TaskSpec(kind="k", tenant=tenant, priority=prio)], t)
    # A lost lease puts a task back at the end of its wait.
    x, _ = core.register(reg("x", capacity=1), t)
    [lost] = core.dispatch(t)["x"]
    core.disconnect("x", x.session, t + 1)
    again = restarted(core, 20.0)
    assert again.queue_depth == core.queue_depth == 10
    assert again.get(lost.task_id).attempt == 1 and again.get(lost.task_id).last_agent == "x"
    # Each tenant's tasks run in the order they would have; the tenants' shares
    # start over (as after an idle spell), so only the interleaving may differ.
    before, after = order_of_dispatch(core, 20.0), order_of_dispatch(again, 20.0)
    for tenant in ("a", "b"):
        assert [t for t in after if again.get(t).spec.tenant == tenant] == \
               [t for t in before if core.get(t).spec.tenant == tenant]
    assert [again.get(t).spec.tenant for t in after[:4]] in (["a", "b"] * 2, ["b", "a"] * 2)


def test_every_field_that_matters_survives() -> None:
    core = MeshCore(config())
    spec = TaskSpec(kind="k", payload=b"p", content_type="t", required_labels=(("gpu", 1),),
                    preferred_labels=(("fast", 2),), priority=2, tenant="t1", timeout_ms=60_000,
                    idempotency_key="key", cache_key="c", dependencies=("d",), trace_context=(("traceparent", "x"),),
                    max_attempts=3)
    [s] = core.submit([spec], 1.0)
    again = restarted(core, 2.0)
    a, b = core.get(s.task_id), again.get(s.task_id)
    assert (b.spec, b.seq, b.created_at, b.deadline, b.max_attempts, b.state, b.queued_at) == \
           (a.spec, a.seq, a.created_at, a.deadline, a.max_attempts, a.state, a.queued_at)
    assert again.state_counts()[TaskState.PENDING] == 1


def test_new_ids_continue_after_recovered_ones_and_keys_still_deduplicate() -> None:
    core = MeshCore(config())
    first = core.submit([TaskSpec(kind="k", idempotency_key="once", tenant="t")], 0)[0]
    core.submit([TaskSpec(kind="k") for _ in range(3)], 0)
    again = restarted(core, 1.0)
    dup = again.submit([TaskSpec(kind="k", idempotency_key="once", tenant="t")], 1.0)[0]
    assert dup.deduplicated and dup.task_id == first.task_id
    new = again.submit([TaskSpec(kind="k")], 1.0)[0]
    assert new.task_id.rsplit("-", 1)[0] == first.task_id.rsplit("-", 1)[0]
    assert again.get(new.task_id).seq == 5


def test_ids_skip_past_the_high_water_mark_of_compacted_tasks() -> None:
    core = MeshCore(config())
    core.restore(Saved(id_prefix="p", last_seq=41), 0)
    assert core.submit([TaskSpec(kind="k")], 0)[0].task_id == "p-2a"


def test_finished_results_are_readable_and_leave_in_retention_order() -> None:
    core = MeshCore(CoreConfig(lease_timeout_s=5.0, retention_s=100.0, max_retained=2))
    agent, _ = core.register(reg("a"), 0)
    ids = [s.task_id for s in core.submit([TaskSpec(kind="k") for _ in range(3)], 0)]
    recs = core.dispatch(0)["a"]
    # Finish them newest first: retention drops by finish time, not by id.
    for i, rec in enumerate(reversed(recs)):
        core.frame("a", agent.session, 1.0 + i, [ok(rec.task_id, rec.attempt, out=rec.task_id.encode())], credits=1)
    again = MeshCore(core.config)
    again.restore(saved(core), 5.0)
    assert again.get(ids[0]).outcome == Outcome(output=ids[0].encode())
    assert again.get(ids[0]).state == TaskState.SUCCEEDED
    again.tick(5.0)
    with pytest.raises(CoreError):
        again.get(ids[2])  # finished first
    assert again.get(ids[1]).state == TaskState.SUCCEEDED


def assigned_and_restarted(held_by: str = "a", n: int = 2) -> tuple[MeshCore, list[str]]:
    core = MeshCore(config())
    core.register(reg(held_by), 0)
    ids = [s.task_id for s in core.submit([TaskSpec(kind="k") for _ in range(n)], 0)]
    core.dispatch(0)
    again = restarted(core, 10.0)
    assert again.state_counts()[TaskState.ASSIGNED] == n and again.queue_depth == 0
    return again, ids


def test_an_agent_that_still_holds_its_tasks_has_its_results_recorded_not_rerun() -> None:
    core, [t1, t2] = assigned_and_restarted()
    agent, _ = core.register(reg("a", held=((t1, 1), (t2, 1))), 11.0)
    assert agent.in_flight == {t1: 1, t2: 1}
    [ack] = core.frame("a", agent.session, 11.5, [ok(t1, 1, out=b"kept")])
    assert ack.code == StatusCode.OK
    assert core.get(t1).state == TaskState.SUCCEEDED and core.get(t1).outcome == Outcome(output=b"kept")
    assert core.get(t1).attempt == 1
    core.frame("a", agent.session, 15.5)
    core.tick(16.0)  # past the orphaned leases' expiry: the adopted one is the session's now
    assert core.get(t2).state == TaskState.ASSIGNED and core.get(t2).session == agent.session


def test_orphaned_leases_the_agent_does_not_claim_go_back_at_once() -> None:
    core, [t1, t2] = assigned_and_restarted()
    agent, _ = core.register(reg("a", held=((t1, 1), (t2, 7))), 11.0)  # t2 at a wrong attempt
    assert agent.in_flight == {t1: 1}
    assert core.get(t2).state == TaskState.PENDING and core.get(t2).last_agent == "a"
    [rec] = core.dispatch(11.0)["a"]
    assert (rec.task_id, rec.attempt) == (t2, 2)
    # A late result for the attempt it gave up is stale, not someone else's.
    [ack] = core.frame("a", agent.session, 12.0, [ok(t2, 1)])
    assert ack.code == StatusCode.FAILED_PRECONDITION


def test_another_agent_cannot_claim_an_orphaned_lease() -> None:
    core, [t1, _] = assigned_and_restarted()
    other, _ = core.register(reg("b", held=((t1, 1),)), 11.0)
    assert not other.in_flight
    assert core.get(t1).state == TaskState.ASSIGNED


def test_orphaned_leases_nobody_claims_expire_in_tick() -> None:
    core, [t1, t2] = assigned_and_restarted()
    core.tick(14.9)
    assert core.get(t1).state == TaskState.ASSIGNED
    core.tick(15.0)
    assert core.queue_depth == 2
    assert {core.get(t).state for t in (t1, t2)} == {TaskState.PENDING}
    core.register(reg("b"), 15.0)
    assert sorted(r.attempt for r in core.dispatch(15.0)["b"]) == [2, 2]


def test_an_orphan_on_its_last_attempt_ends_as_a_lease_lost_live_would() -> None:
    core = MeshCore(config())
    agent, _ = core.register(reg("a"), 0)
    [s, live] = core.submit([TaskSpec(kind="k", max_attempts=1) for _ in range(2)], 0)
    core.dispatch(0)
    again = restarted(core, 1.0)
    again.tick(6.0)
    core.disconnect("a", agent.session, 6.0)
    rec, expected = again.get(s.task_id), core.get(live.task_id)
    assert rec.state.terminal and rec.state == expected.state
    assert rec.outcome is not None and rec.outcome.error_type == "lease_lost"


def test_a_cancelled_orphan_is_not_adopted_or_requeued() -> None:
    core, [t1, _] = assigned_and_restarted()
    core.cancel([t1], 10.5)
    agent, _ = core.register(reg("a", held=((t1, 1),)), 11.0)
    assert t1 not in agent.in_flight
    assert core.get(t1).state == TaskState.CANCELLED


def test_restore_needs_an_empty_core_and_held_is_bounded_by_capacity() -> None:
    core = MeshCore(config())
    core.submit([TaskSpec(kind="k")], 0)
    with pytest.raises(RuntimeError):
        core.restore(Saved(), 0)
    with pytest.raises(CoreError) as e:
        core.register(Registration("a", (), frozenset(), 1, "1", 0, held=(("x", 1), ("y", 1))), 0)
    assert e.value.code == StatusCode.INVALID_ARGUMENT and "register.held" in e.value.message


def test_a_retry_waiting_out_its_backoff_still_waits_after_a_restart() -> None:
    policy = RetryPolicy(max_attempts=3, initial_s=30.0, multiplier=1.0, max_s=30.0, retry_on=frozenset({"flaky"}))
    cfg = CoreConfig(lease_timeout_s=5.0, retry=RetryConfig(policies=(("k", policy),)))
    core = MeshCore(cfg)
    agent, _ = core.register(reg("a"), 0)
    [s] = core.submit([TaskSpec(kind="k")], 0)
    core.dispatch(0)
    core.frame("a", agent.session, 1.0, [ResultIn(s.task_id, 1, TaskState.FAILED, Outcome(error_type="flaky"))])
    due = core.get(s.task_id).retry_at
    assert due is not None and due > 1.0
    again = restarted(core, 1.0)
    rec = again.get(s.task_id)
    assert (rec.state, rec.retry_at, rec.last_failure) == (TaskState.PENDING, due, Outcome(error_type="flaky"))
    b, _ = again.register(reg("b"), 1.0)
    assert again.dispatch(1.0) == {}
    again.frame("b", b.session, due)
    again.tick(due)
    [got] = again.dispatch(due)["b"]
    assert (got.task_id, got.attempt) == (s.task_id, 2)


def test_register_held_reaches_the_core_as_task_refs() -> None:
    msg = mesh_pb2.Register(agent_id="a", capacity=2, credits=1, held=[mesh_pb2.TaskRef(task_id="t", attempt=3)])
    assert registration_from_proto(msg, "peer").held == (("t", 3),)
