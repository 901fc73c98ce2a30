"""Retries with backoff, dead letters and requeues in the core, on a hand-driven clock."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import CoreError, Outcome, Registration, ResultIn, StatusCode, TaskSpec, TaskState
from coordinator.core.retry import RetryConfig, RetryPolicy, format_retry_policies, parse_retry_policies
from coordinator.tracing import TaskTracer
from swarmmesh.telemetry import Tracer, TracingConfig

SEED = 7
POLICY = RetryPolicy(max_attempts=3, initial_s=1.0, multiplier=2.0, max_s=5.0, retry_on=frozenset({"transient"}))


def make(*policies: tuple[str, RetryPolicy], **kw: object) -> MeshCore:
    cfg = CoreConfig(lease_timeout_s=1e6, retry=RetryConfig(policies or (("k", POLICY),)), **kw)  # type: ignore[arg-type]
    core = MeshCore(cfg, rng=random.Random(SEED))
    core.register(Registration("a", (), frozenset(), 4, "1", 4), 0)
    return core


def session(core: MeshCore) -> int:
    agent = core.registry.get("a")
    assert agent is not None
    return agent.session


def fail(core: MeshCore, task_id: str, attempt: int, now: float, error_type: str = "transient") -> None:
    outcome = Outcome(error=f"boom {attempt}", error_type=error_type)
    [ack] = core.frame("a", session(core), now, [ResultIn(task_id, attempt, TaskState.FAILED, outcome)], credits=1)
    assert ack.code == StatusCode.OK, ack.message


def run_once(core: MeshCore, now: float) -> int:
    """Dispatch at `now`; the attempt the one task got."""
    [[rec]] = core.dispatch(now).values()
    return rec.attempt


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    got = [POLICY.backoff_s(n, random.Random(SEED)) for n in range(1, 7)]
    caps = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert got == [random.Random(SEED).uniform(0, cap) for cap in caps]
    assert all(0 <= d <= cap for d, cap in zip(got, caps, strict=True))
    assert RetryPolicy(initial_s=0.0).backoff_s(3, random.Random(SEED)) == 0.0


def test_a_retryable_failure_waits_out_its_backoff_then_runs_as_the_next_attempt() -> None:
    core = make()
    [s] = core.submit([TaskSpec(kind="k")], 0)
    assert run_once(core, 0) == 1
    fail(core, s.task_id, 1, 10.0)
    rec = core.get(s.task_id)
    delay = random.Random(SEED).uniform(0, 1.0)
    assert rec.state is TaskState.PENDING and rec.outcome is None and rec.agent_id == ""
    assert rec.retry_at == pytest.approx(10.0 + delay)
    assert core.pending_reason(rec, 10.0) == f"retrying in {delay:.1f} s after attempt 1 failed: boom 1"
    assert core.queue_depth == 0 and core.dispatch(10.0) == {}
    core.tick(10.0 + delay)
    assert rec.retry_at is None and core.queue_depth == 1
    assert run_once(core, 10.0 + delay) == 2
    assert core.counters.retried == 1 and core.counters.failed == 0


def test_exhausting_the_attempts_lands_in_dead_letter_with_the_last_error() -> None:
    core = make()
    [s] = core.submit([TaskSpec(kind="k")], 0)
    now = 0.0
    for attempt in (1, 2, 3):
        assert run_once(core, now) == attempt
        fail(core, s.task_id, attempt, now)
        now += 10.0
        core.tick(now)
    rec = core.get(s.task_id)
    assert rec.state is TaskState.DEAD_LETTER and rec.state.terminal
    assert rec.outcome is not None and rec.outcome.error == "boom 3" and rec.outcome.error_type == "transient"
    assert (core.counters.retried, core.counters.dead_lettered, core.counters.failed) == (2, 1, 0)
    assert core.state_counts()[TaskState.DEAD_LETTER] == 1
    assert core.list_tasks([TaskState.DEAD_LETTER]) == ([rec], 1)


def test_errors_the_kind_does_not_retry_fail_at_once() -> None:
    core = make(("k", POLICY), ("any", RetryPolicy(retry_on=frozenset({"*"}))))
    specs = [TaskSpec(kind="k"), TaskSpec(kind="no-policy"), TaskSpec(kind="any", timeout_ms=60_000)]
    ids = [s.task_id for s in core.submit(specs, 0)]
    core.dispatch(0)
    fail(core, ids[0], 1, 1.0, "handler_error")  # not in k's list
    fail(core, ids[1], 1, 1.0, "transient")  # a kind without a policy keeps handler errors final
    fail(core, ids[2], 1, 1.0, "deadline_exceeded")  # never retried, even under "*"
    for task_id, error_type in zip(ids, ("handler_error", "transient", "deadline_exceeded"), strict=True):
        rec = core.get(task_id)
        assert rec.state is TaskState.FAILED and rec.outcome is not None and rec.outcome.error_type == error_type
    assert core.counters.retried == 0


def test_a_retry_that_could_not_start_before_the_deadline_fails_with_the_error() -> None:
    core = make(("k", RetryPolicy(initial_s=50.0, max_s=50.0, retry_on=frozenset({"transient"}))))
    [s] = core.submit([TaskSpec(kind="k", timeout_ms=1000)], 0)
    core.dispatch(0)
    # SEED's first draw from [0, 50) is far past the 1 s deadline.
    fail(core, s.task_id, 1, 0.5)
    rec = core.get(s.task_id)
    assert rec.state is TaskState.FAILED and rec.outcome is not None and rec.outcome.error == "boom 1"


def test_a_task_waiting_out_its_backoff_can_be_cancelled_or_expire() -> None:
    core = make()
    cancelled, expiring = (s.task_id for s in core.submit([TaskSpec(kind="k"), TaskSpec(kind="k", timeout_ms=600)], 0))
    core.dispatch(0)
    fail(core, cancelled, 1, 0.1)
    fail(core, expiring, 1, 0.1)
    assert core.get(expiring).retry_at is not None  # SEED's second draw is under 0.5 s, before the deadline
    core.cancel([cancelled], 0.2)
    core.tick(0.6)
    assert core.get(cancelled).state is TaskState.CANCELLED
    rec = core.get(expiring)
    assert rec.state is TaskState.FAILED and rec.outcome is not None and rec.outcome.error_type == "deadline_exceeded"
    core.tick(10.0)
    assert core.queue_depth == 0 and core.dispatch(10.0) == {}


def dead_letter(core: MeshCore, spec: TaskSpec, now: float = 0.0) -> str:
    [s] = core.submit([spec], now)
    for attempt in range(1, 4):
        core.tick(now)
        assert run_once(core, now) == attempt
        fail(core, s.task_id, attempt, now)
        now += 10.0
    assert core.get(s.task_id).state is TaskState.DEAD_LETTER
    return s.task_id


def test_requeue_starts_a_new_run_of_attempts_with_attempt_numbers_going_on() -> None:
    core = make()
    task_id = dead_letter(core, TaskSpec(kind="k"))
    [rec] = core.requeue([task_id, task_id], 100.0)
    assert rec.state is TaskState.PENDING and rec.outcome is None and rec.finished_at is None
    assert rec.last_failure is not None and rec.last_failure.error == "boom 3"
    assert core.queue_depth == 1 and core.counters.requeued == 1
    now = 100.0
    for attempt in (4, 5):
        core.tick(now)
        assert run_once(core, now) == attempt
        fail(core, task_id, attempt, now)
        now += 10.0
        assert rec.state is TaskState.PENDING  # a full budget again: 3 attempts from the requeue
    core.tick(now)
    assert run_once(core, now) == 6
    [ack] = core.frame("a", session(core), now, [ResultIn(task_id, 6, TaskState.SUCCEEDED, Outcome(output=b"ok"))])
    assert ack.code == StatusCode.OK and core.get(task_id).state is TaskState.SUCCEEDED


def test_requeue_counts_the_deadline_again_from_the_requeue() -> None:
    core = make()
    task_id = dead_letter(core, TaskSpec(kind="k", timeout_ms=60_000))
    core.requeue([task_id], 100.0)
    core.tick(100.0)  # the first run's deadline (60 s) has passed; its heap entry is stale
    rec = core.get(task_id)
    assert rec.state is TaskState.PENDING and rec.deadline == pytest.approx(160.0)
    core.tick(161.0)
    rec = core.get(task_id)
    assert rec.state is TaskState.FAILED and rec.outcome is not None and rec.outcome.error_type == "deadline_exceeded"


def test_requeue_of_a_task_that_is_not_a_dead_letter_is_failed_precondition_for_the_whole_call() -> None:
    core = make()
    dead = dead_letter(core, TaskSpec(kind="k"))
    [pending] = core.submit([TaskSpec(kind="other", required_labels=(("gpu", 1),))], 50.0)
    with pytest.raises(CoreError) as e:
        core.requeue([dead, pending.task_id], 60.0)
    assert e.value.code == StatusCode.FAILED_PRECONDITION
    assert repr(pending.task_id) in e.value.message and "PENDING" in e.value.message
    assert core.get(dead).state is TaskState.DEAD_LETTER and core.counters.requeued == 0


def test_requeue_of_an_unknown_id_is_not_found_naming_it() -> None:
    core = make()
    dead = dead_letter(core, TaskSpec(kind="k"))
    with pytest.raises(CoreError) as e:
        core.requeue([dead, "no-such-task"], 60.0)
    assert e.value.code == StatusCode.NOT_FOUND and "'no-such-task'" in e.value.message
    assert core.get(dead).state is TaskState.DEAD_LETTER


def test_the_attempt_budget_comes_from_the_spec_then_the_kind_then_the_default() -> None:
    core = make(("k", POLICY), ("*", RetryPolicy(max_attempts=7)), default_max_attempts=4)
    no_default = make(("k", POLICY), default_max_attempts=4)
    specs = [TaskSpec(kind="k", max_attempts=9), TaskSpec(kind="k"), TaskSpec(kind="other")]
    assert [core.get(s.task_id).max_attempts for s in core.submit(specs, 0)] == [9, 3, 7]
    assert no_default.get(no_default.submit([TaskSpec(kind="other")], 0)[0].task_id).max_attempts == 4


def test_a_task_that_kills_every_agent_holding_it_is_a_dead_letter_without_any_policy() -> None:
    core = MeshCore(CoreConfig(lease_timeout_s=5.0))
    [s] = core.submit([TaskSpec(kind="k", max_attempts=1)], 0)
    a, _ = core.register(Registration("a", (), frozenset(), 1, "1", 1), 0)
    core.dispatch(0)
    core.disconnect("a", a.session, 1)
    rec = core.get(s.task_id)
    assert rec.state is TaskState.DEAD_LETTER and rec.outcome is not None and rec.outcome.error_type == "lease_lost"
    assert core.counters.dead_lettered == 1


def test_a_retried_attempt_is_traced_with_its_error_and_a_requeued_run_ends_in_a_span_of_its_own() -> None:
    core = make()
    tracer = Tracer(TracingConfig(enabled=False, sample_ratio=1.0))
    spans: list[Any] = []
    tracer.record = spans.append  # type: ignore[assignment]
    core.add_listener(TaskTracer(tracer).on_change)
    task_id = dead_letter(core, TaskSpec(kind="k"))
    attempts = [sp for sp in spans if sp[0].startswith("swarmmesh.attempt")]
    assert [sp[8] for sp in attempts] == ["boom 1", "boom 2", "boom 3"]
    assert dict(attempts[0][7])["swarmmesh.error.type"] == "transient"
    [first] = [sp for sp in spans if sp[0] == "swarmmesh.task k"]
    assert dict(first[7])["swarmmesh.task.state"] == "DEAD_LETTER" and first[8] == "boom 3"
    core.requeue([task_id], 100.0)
    assert run_once(core, 100.0) == 4
    core.frame("a", session(core), 101.0, [ResultIn(task_id, 4, TaskState.SUCCEEDED, Outcome())])
    second = [sp for sp in spans if sp[0] == "swarmmesh.task k"][1]
    assert second[2] != first[2] and dict(second[7])["swarmmesh.task.state"] == "SUCCEEDED"


def test_policies_parse_from_one_line() -> None:
    got = dict(parse_retry_policies("ocr = max_attempts:5, backoff:0.5-30, multiplier:3, on:timeout|transient; *="))
    assert got["ocr"] == RetryPolicy(5, 0.5, 3.0, 30.0, frozenset({"timeout", "transient"}))
    assert got["*"] == RetryPolicy()
    assert dict(parse_retry_policies("k=backoff:90"))["k"].max_s == 90.0
    assert parse_retry_policies("") == ()
    pairs = parse_retry_policies("ocr=max_attempts:5,backoff:0.5-30,on:a|b;*=")
    assert parse_retry_policies(format_retry_policies(pairs)) == pairs


@pytest.mark.parametrize(("text", "names"), [
    ("ocr", "'ocr' is not KIND="),
    ("ocr=max_attempts:0.5", "retry_policy['ocr']: max_attempts: '0.5'"),
    ("ocr=backoff:5-1", "backoff: '1' is not a number from 5"),
    ("ocr=multiplier:nan", "multiplier: 'nan'"),
    ("ocr=tries:3", "'tries:3' is not KEY:VALUE"),
    ("ocr=on:transient|deadline_exceeded", "deadline_exceeded is never retried"),
    ("ocr=on:a||b", "names an empty error type"),
    ("ocr=max_attempts:2,max_attempts:3", "max_attempts is given twice"),
    ("ocr=;ocr=max_attempts:2", "kind 'ocr' has two policies"),
])
def test_bad_policies_name_the_part(text: str, names: str) -> None:
    with pytest.raises(ValueError, match="retry_policy") as e:
        parse_retry_policies(text)
    assert names in str(e.value)


def test_the_simulator_follows_retries_through_to_the_end() -> None:
    from simulator.report import run_one
    from simulator.scenarios import EXPERIMENTS

    [run] = [r for r in EXPERIMENTS["errors"](5.0).runs if r.label == "hybrid, no ejection"]
    policy = RetryPolicy(max_attempts=4, initial_s=0.01, max_s=0.05)
    retrying = replace(run, scenario=replace(run.scenario, core=replace(
        run.scenario.core, retry=RetryConfig((("*", policy),)))))
    plain, retried = run_one(run, seed=1).summary(), run_one(retrying, seed=1).summary()
    # Half of agent-0's attempts fail; retried elsewhere, almost every task ends well.
    assert plain.failed > 10 * max(retried.failed, 1) and retried.tasks >= 0.9 * plain.tasks
