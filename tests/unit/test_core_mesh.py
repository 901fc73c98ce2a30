"""MeshCore with a hand-driven clock: routing, credits, leases, fencing, retention."""

from __future__ import annotations

from itertools import pairwise

import pytest

from coordinator.core.balancer import BalancerConfig, Pool
from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import (
    AgentRecord,
    AgentState,
    CoreError,
    Outcome,
    Registration,
    ResultIn,
    StatusCode,
    TaskRecord,
    TaskSpec,
    TaskState,
)
from coordinator.core.validation import Limits


def reg(agent_id: str, capacity: int = 2, labels: dict[str, int] | None = None, kinds: tuple[str, ...] = (),
        credits: int | None = None) -> Registration:
    return Registration(agent_id, tuple(sorted((labels or {}).items())), frozenset(kinds), capacity, "1",
                        capacity if credits is None else credits)


def spec(kind: str = "k", **kw: object) -> TaskSpec:
    if "required_labels" in kw:
        kw["required_labels"] = tuple(sorted(kw["required_labels"].items()))  # type: ignore[attr-defined]
    return TaskSpec(kind=kind, **kw)  # type: ignore[arg-type]


def ok(task_id: str, attempt: int, out: bytes = b"x") -> ResultIn:
    return ResultIn(task_id, attempt, TaskState.SUCCEEDED, Outcome(output=out))


@pytest.fixture
def core() -> MeshCore:
    return MeshCore(CoreConfig(lease_timeout_s=5.0, retention_s=100.0, max_retained=1000))


def test_tasks_go_only_to_agents_with_required_labels(core: MeshCore) -> None:
    math, _ = core.register(reg("math", labels={"math": 3}), 0)
    text, _ = core.register(reg("text", labels={"text": 3}), 0)
    ids = [s.task_id for s in core.submit([spec(required_labels={"math": 2}) for _ in range(2)], 0)]
    out = core.dispatch(0)
    assert set(out) == {"math"}
    assert sorted(r.task_id for r in out["math"]) == sorted(ids)
    assert not text.in_flight and len(math.in_flight) == 2


def test_level_below_requirement_is_not_eligible_and_reason_says_so(core: MeshCore) -> None:
    core.register(reg("a", labels={"math": 1}), 0)
    [s] = core.submit([spec(required_labels={"math": 3})], 0)
    assert core.dispatch(0) == {}
    reason = core.pending_reason(core.get(s.task_id))
    assert "math" in reason and ">= 3" in reason and "best is 1" in reason


def test_kind_filter_and_unroutable_class_does_not_block_others(core: MeshCore) -> None:
    core.register(reg("a", kinds=("resize",)), 0)
    [blocked] = core.submit([spec("ocr", priority=10)], 0)
    [fine] = core.submit([spec("resize")], 0)
    out = core.dispatch(0)
    assert [r.task_id for r in out["a"]] == [fine.task_id]
    assert "kind 'ocr'" in core.pending_reason(core.get(blocked.task_id))


def test_credits_bound_assignments_and_results_return_them(core: MeshCore) -> None:
    agent, _ = core.register(reg("a", capacity=3), 0)
    ids = [s.task_id for s in core.submit([spec() for _ in range(10)], 0)]
    assert len(core.dispatch(0)["a"]) == 3
    assert core.dispatch(0) == {}
    acks = core.frame("a", agent.session, 1, [ok(ids[0], 1)], credits=1)
    assert [a.code for a in acks] == [StatusCode.OK]
    assert len(core.dispatch(1)["a"]) == 1
    assert core.queue_depth == 6


def test_credits_never_exceed_capacity(core: MeshCore) -> None:
    agent, _ = core.register(reg("a", capacity=2), 0)
    core.frame("a", agent.session, 0, credits=1000)
    core.submit([spec() for _ in range(10)], 0)
    assert len(core.dispatch(0)["a"]) == 2


def test_priority_then_fifo(core: MeshCore) -> None:
    agent, _ = core.register(reg("a", capacity=1), 0)
    low = core.submit([spec(priority=0)], 0)[0].task_id
    high = core.submit([spec(priority=5)], 0)[0].task_id
    other_class_mid = core.submit([spec("other", priority=3)], 0)[0].task_id
    order = []
    for t in range(3):
        [rec] = core.dispatch(t)["a"]
        order.append(rec.task_id)
        core.frame("a", agent.session, t, [ok(rec.task_id, 1)], credits=1)
    assert order == [high, other_class_mid, low]


def test_least_loaded_spreads_work() -> None:
    core = MeshCore(CoreConfig(balancer=BalancerConfig(strategy="least-loaded")))
    a, _ = core.register(reg("a", capacity=10), 0)
    core.submit([spec() for _ in range(4)], 0)
    core.dispatch(0)
    b, _ = core.register(reg("b", capacity=10), 0)
    core.submit([spec() for _ in range(10)], 0)
    out = core.dispatch(0)
    # Rotation would split the new work evenly; evening out the load gives b a's head start first.
    assert len(out["a"]) == 3 and len(out["b"]) == 7
    assert len(a.in_flight) == len(b.in_flight) == 7
    assert {r.route_strategy for recs in out.values() for r in recs} == {"least-loaded"}


def test_disconnect_requeues_with_next_attempt_and_stale_result_is_rejected(core: MeshCore) -> None:
    a, _ = core.register(reg("a", capacity=1), 0)
    [s] = core.submit([spec()], 0)
    core.dispatch(0)
    core.disconnect("a", a.session, 1)
    rec = core.get(s.task_id)
    assert rec.state == TaskState.PENDING and rec.attempt == 1
    b, _ = core.register(reg("b", capacity=1), 2)
    core.dispatch(2)
    assert rec.state == TaskState.ASSIGNED and rec.attempt == 2 and rec.agent_id == "b"
    assert core.counters.reassigned == 1
    # "a" comes back and reports its old attempt: rejected, the task is untouched.
    a2, _ = core.register(reg("a", capacity=1), 3)
    [ack] = core.frame("a", a2.session, 3, [ok(s.task_id, 1, b"old")])
    assert ack.code == StatusCode.FAILED_PRECONDITION and "superseded by attempt 2" in ack.message
    [ack] = core.frame("b", b.session, 4, [ok(s.task_id, 2, b"new")], credits=1)
    assert ack.code == StatusCode.OK
    assert rec.state == TaskState.SUCCEEDED and rec.outcome is not None and rec.outcome.output == b"new"
    # Completion is recorded once: a duplicate is refused.
    [dup] = core.frame("b", b.session, 5, [ok(s.task_id, 2)])
    assert dup.code == StatusCode.FAILED_PRECONDITION and core.counters.succeeded == 1


def test_result_for_task_never_held_is_permission_denied(core: MeshCore) -> None:
    _a, _ = core.register(reg("a", capacity=1), 0)
    b, _ = core.register(reg("b", capacity=1, credits=0), 0)
    [s] = core.submit([spec()], 0)
    core.dispatch(0)
    [ack] = core.frame("b", b.session, 1, [ok(s.task_id, 1)])
    assert ack.code == StatusCode.PERMISSION_DENIED and "not held by agent 'b'" in ack.message
    assert core.get(s.task_id).state == TaskState.ASSIGNED


def test_unknown_task_and_bad_state_in_results(core: MeshCore) -> None:
    a, _ = core.register(reg("a"), 0)
    acks = core.frame("a", a.session, 0, [ok("nope", 1), ResultIn("nope", 1, 42, Outcome())])
    assert [x.code for x in acks] == [StatusCode.NOT_FOUND, StatusCode.INVALID_ARGUMENT]
    assert "42" in acks[1].message


def test_reregister_fences_old_session(core: MeshCore) -> None:
    a, _ = core.register(reg("a", capacity=1), 0)
    [s] = core.submit([spec()], 0)
    core.dispatch(0)
    a2, fenced = core.register(reg("a", capacity=1), 1)
    assert fenced is a and a2.session != a.session
    with pytest.raises(CoreError) as err:
        core.frame("a", a.session, 2, [ok(s.task_id, 1)])
    assert err.value.code == StatusCode.FAILED_PRECONDITION
    [rec] = core.dispatch(2)["a"]
    assert rec.attempt == 2


def test_silent_agent_lease_expires(core: MeshCore) -> None:
    _a, _ = core.register(reg("a", capacity=1), 0)
    core.register(reg("b", capacity=1, credits=0), 0)
    [s] = core.submit([spec()], 0)
    core.dispatch(0)
    core.frame("b", core.registry.get("b").session, 4.0)  # type: ignore[union-attr]
    assert core.tick(4.9) == []
    expired = core.tick(5.5)
    assert [x.agent_id for x in expired] == ["a"]
    assert core.get(s.task_id).state == TaskState.PENDING
    assert core.registry.get("a") is None and core.registry.get("b") is not None


def test_leases_expire_in_the_order_agents_fell_silent(core: MeshCore) -> None:
    for name in "abcd":
        core.register(reg(name), 0)
    session = {n: core.registry.get(n).session for n in "abcd"}  # type: ignore[union-attr]
    core.touch("a", session["a"], 2.0)
    core.frame("c", session["c"], 3.0)
    core.frame("a", session["a"], 4.0)  # a, heard first of the two, is now heard last
    assert [x.agent_id for x in core.tick(5.5)] == ["b", "d"]
    assert [x.agent_id for x in core.tick(8.5)] == ["c"]
    # An agent that registers again starts a fresh lease; its old session's is gone with it.
    core.register(reg("a"), 8.6)
    assert core.tick(9.5) == []
    assert [x.agent_id for x in core.tick(13.7)] == ["a"]
    assert core.registry.live() == []


def test_max_attempts_dead_letters_a_task_that_kills_its_agents(core: MeshCore) -> None:
    [s] = core.submit([spec(max_attempts=2)], 0)
    for t in range(2):
        a, _ = core.register(reg(f"a{t}", capacity=1), t)
        core.dispatch(t)
        core.disconnect(a.agent_id, a.session, t + 0.5)
    rec = core.get(s.task_id)
    assert rec.state == TaskState.DEAD_LETTER and rec.outcome is not None
    assert rec.outcome.error_type == "lease_lost" and rec.history == ["a0", "a1"]


def test_idempotency_key_returns_same_task(core: MeshCore) -> None:
    first = core.submit([spec(idempotency_key="k1")], 0)[0]
    again = core.submit([spec(idempotency_key="k1"), spec(idempotency_key="k1", tenant="other")], 1)
    assert again[0].task_id == first.task_id and again[0].deduplicated
    assert again[1].task_id != first.task_id and not again[1].deduplicated
    assert core.counters.deduplicated == 1


def test_validation_names_the_field(core: MeshCore) -> None:
    cases = [
        ([], "tasks: is empty"),
        ([spec(""), ], "tasks[0].kind: is required"),
        ([spec(), spec("a b")], "tasks[1].kind"),
        ([spec(priority=5000)], "tasks[0].priority"),
        ([spec(required_labels={"math": 500})], "tasks[0].required_labels['math']: level 500"),
        ([spec(tenant="")], "tasks[0].tenant: is required"),
        ([spec("k\tx")], "tasks[0].kind: 'k\\tx' has whitespace or control characters"),
        ([spec("k\u3000x")], "tasks[0].kind"),  # an ideographic space
        ([spec("k\xa0x")], "tasks[0].kind"),  # a no-break space
        ([spec(tenant="t\x00")], "tasks[0].tenant"),
        ([spec(content_type="text/plain\n")], "tasks[0].content_type"),
        ([spec(required_labels={"a b": 1})], "tasks[0].required_labels['a b']"),
    ]
    for specs, needle in cases:
        with pytest.raises(CoreError) as err:
            core.submit(specs, 0)
        assert err.value.code == StatusCode.INVALID_ARGUMENT
        assert needle in err.value.message, err.value.message
    assert core.counters.submitted == 0
    # A media type with parameters is a valid content type.
    core.submit([spec(content_type="text/plain; charset=utf-8")], 0)
    assert core.counters.submitted == 1


def test_a_payload_over_the_limit_is_resource_exhausted_naming_the_limit(core: MeshCore) -> None:
    with pytest.raises(CoreError) as err:
        core.submit([spec(), spec(payload=b"x" * (4 * 1024 * 1024 + 1))], 0)
    assert err.value.code == StatusCode.RESOURCE_EXHAUSTED
    assert "tasks[1].payload: is 4194305 bytes, the limit is 4194304 (max_payload_bytes)" in err.value.message
    assert err.value.retry_after_ms == 0, "the same payload would be refused again"
    assert core.counters.submitted == 0


def test_an_output_over_the_limit_fails_the_task_naming_the_limit_once() -> None:
    core = MeshCore(CoreConfig(limits=Limits(max_payload_bytes=10)))
    a, _ = core.register(reg("a"), 0)
    big, fits = core.submit([spec(), spec()], 0)
    core.dispatch(0)
    over, ok_ack = core.frame("a", a.session, 1, [ok(big.task_id, 1, b"x" * 11), ok(fits.task_id, 1, b"x" * 10)])
    assert over.code == StatusCode.RESOURCE_EXHAUSTED and "the limit is 10 (max_payload_bytes)" in over.message
    assert ok_ack.code == StatusCode.OK
    rec = core.get(big.task_id)
    assert rec.state == TaskState.FAILED and rec.attempt == 1 and rec.outcome is not None
    assert rec.outcome.error == "output: is 11 bytes, the limit is 10 (max_payload_bytes)"
    assert rec.outcome.error_type == "output_too_large" and rec.outcome.output == b""
    assert core.dispatch(2) == {}, "not retried"
    assert core.get(fits.task_id).state == TaskState.SUCCEEDED


def test_registration_is_validated(core: MeshCore) -> None:
    for bad, needle in [(reg(""), "register.agent_id"), (reg("a", capacity=0), "register.capacity"),
                        (reg("a", capacity=1, credits=5), "register.credits")]:
        with pytest.raises(CoreError) as err:
            core.register(bad, 0)
        assert needle in err.value.message


def test_queue_limit_is_resource_exhausted() -> None:
    core = MeshCore(CoreConfig(max_queued=3))
    core.submit([spec(), spec()], 0)
    with pytest.raises(CoreError) as err:
        core.submit([spec(), spec()], 0)
    assert err.value.code == StatusCode.RESOURCE_EXHAUSTED


def test_deadline_in_queue_and_on_agent(core: MeshCore) -> None:
    [queued] = core.submit([spec("nobody", timeout_ms=1000)], 0)
    a, _ = core.register(reg("a", kinds=("k",)), 0)
    [running] = core.submit([spec(timeout_ms=1000)], 0)
    core.dispatch(0)
    core.tick(1.5)
    assert core.get(queued.task_id).state == TaskState.FAILED
    assert core.get(running.task_id).state == TaskState.ASSIGNED  # still within the grace
    core.tick(3.5)
    rec = core.get(running.task_id)
    assert rec.state == TaskState.FAILED and rec.outcome is not None
    assert rec.outcome.error_type == "deadline_exceeded" and "agent 'a'" in rec.outcome.error
    assert core.take_cancels() == {"a": [(running.task_id, 1)]}
    assert not a.in_flight and core.queue_depth == 0


def test_cancel_pending_and_assigned(core: MeshCore) -> None:
    a, _ = core.register(reg("a", capacity=1), 0)
    ids = [s.task_id for s in core.submit([spec(), spec()], 0)]
    core.dispatch(0)
    with pytest.raises(CoreError):
        core.cancel([ids[0], "missing"], 1)
    assert core.get(ids[0]).state == TaskState.ASSIGNED
    recs = core.cancel(ids, 1)
    assert [r.state for r in recs] == [TaskState.CANCELLED] * 2
    assert core.take_cancels() == {"a": [(ids[0], 1)]}
    assert core.queue_depth == 0
    [ack] = core.frame("a", a.session, 2, [ok(ids[0], 1)], credits=1)
    assert ack.code == StatusCode.FAILED_PRECONDITION


def test_retention_by_count_and_age() -> None:
    core = MeshCore(CoreConfig(retention_s=10.0, max_retained=3))
    a, _ = core.register(reg("a", capacity=100), 0)
    ids = [s.task_id for s in core.submit([spec(idempotency_key=f"k{i}") for i in range(5)], 0)]
    core.dispatch(0)
    core.frame("a", a.session, 1, [ok(t, 1) for t in ids], credits=5)
    core.tick(1)
    assert core.counters.evicted == 2
    with pytest.raises(CoreError) as err:
        core.get(ids[0])
    assert err.value.code == StatusCode.NOT_FOUND
    core.frame("a", a.session, 20)
    core.tick(20)
    assert core.counters.evicted == 5 and core.state_counts()[TaskState.SUCCEEDED] == 0
    # The idempotency key is released with the task.
    assert not core.submit([spec(idempotency_key="k0")], 21)[0].deduplicated


def test_draining_agent_gets_no_new_work(core: MeshCore) -> None:
    a, _ = core.register(reg("a", capacity=4), 0)
    core.frame("a", a.session, 0, draining=True)
    assert a.state == AgentState.DRAINING
    core.submit([spec()], 0)
    assert core.dispatch(0) == {}


def test_listener_sees_every_transition(core: MeshCore) -> None:
    seen: list[tuple[str, TaskState]] = []
    core.add_listener(lambda r, _old: seen.append((r.task_id, r.state)))
    a, _ = core.register(reg("a"), 0)
    [s] = core.submit([spec()], 0)
    core.dispatch(0)
    core.frame("a", a.session, 1, [ok(s.task_id, 1)], credits=1)
    assert [st for _, st in seen] == [TaskState.PENDING, TaskState.ASSIGNED, TaskState.SUCCEEDED]


def test_cancelled_and_expired_entries_do_not_pile_up(core: MeshCore) -> None:
    ids = [s.task_id for s in core.submit([spec("nobody", timeout_ms=1) for _ in range(3000)], 0)]
    core.cancel(ids[:2000], 0)
    core.tick(1.0)  # the rest expire in the queue
    assert core.queue_depth == 0
    assert core._queue.entries() < 1100
    assert len(core._deadlines) < 1100
    assert core.counters.submitted == 3000


class Recording:
    """Takes the first agent offered and remembers every pool it was offered."""

    name = "recording"
    uses_latency = False

    def __init__(self) -> None:
        self.offered: list[list[str]] = []

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        self.offered.append([a.agent_id for a in pool.ready])
        return pool.ready[0] if pool.ready else None


def test_a_large_fleet_is_offered_to_the_strategy_as_a_rotating_sample() -> None:
    from coordinator.core.dispatch import SAMPLE, SAMPLE_OVER

    strategy = Recording()
    core = MeshCore(CoreConfig(), strategy=strategy)
    n = SAMPLE_OVER * 4
    for i in range(n):
        core.register(reg(f"a{i}", capacity=1), 0)
    for t in range(n // SAMPLE):
        core.submit([spec()], t)
        core.dispatch(t)
    passes = strategy.offered
    assert len(passes) == n // SAMPLE
    assert all(len(ready) == SAMPLE for ready in passes)
    # Each pass starts where the last sample ended, so together they cover the fleet once.
    assert all(not set(x) & set(y) for x, y in pairwise(passes))
    assert len({a for ready in passes for a in ready}) == n
    strategy.offered.clear()
    core.submit([spec() for _ in range(n)], 100)
    out = core.dispatch(100)
    assert sum(len(v) for v in out.values()) == n - n // SAMPLE
    assert strategy.offered and max(len(ready) for ready in strategy.offered) <= SAMPLE
    core.submit([spec()], 101)
    assert core.dispatch(101) == {}  # no free slot anywhere


def test_a_repeated_heartbeat_is_another_reading_for_the_profiler(core: MeshCore) -> None:
    from coordinator.core.model import Heartbeat
    from coordinator.profile.fleet import Fleet

    fleet = Fleet(leak_window_s=150)  # a memory reading at most once a second
    a, _ = core.register(reg("a"), 0)
    core.frame("a", a.session, 1.0, heartbeat=Heartbeat(memory_rss_bytes=100))
    for t in range(2, 6):
        fleet.sample(float(t), core.registry.live())
        core.touch("a", a.session, t + 0.5, heartbeat_again=True)  # the same bytes again
    track = fleet.tracks["a"]
    assert [t for t, _ in track.memory] == [2.0, 3.0, 4.0, 5.0], "one memory reading per sample, repeats included"
    fleet.sample(5.2, core.registry.live())
    assert len(track.memory) == 4, "no heartbeat since the last sample: nothing new to read"
