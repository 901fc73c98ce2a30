"""coordinator/tracing.TaskTracer over a real MeshCore with a hand-driven clock."""

from __future__ import annotations

from typing import Any

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import UNSAMPLED, Outcome, Registration, ResultIn, TaskSpec, TaskState
from coordinator.service.convert import assignment_to_proto
from coordinator.tracing import TaskTracer
from swarmmesh.telemetry import Tracer, TracingConfig
from swarmmesh.telemetry.context import parse_traceparent

CLIENT_TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def setup(ratio: float = 1.0, max_attempts: int = 5) -> tuple[MeshCore, list[Any]]:
    core = MeshCore(CoreConfig(lease_timeout_s=5.0, default_max_attempts=max_attempts))
    tracer = Tracer(TracingConfig(enabled=False, sample_ratio=ratio))
    spans: list[Any] = []
    tracer.record = spans.append  # capture instead of exporting
    core.add_listener(TaskTracer(tracer).on_change)
    return core, spans


def reg(agent: str) -> Registration:
    return Registration(agent, (), frozenset(), 4, "1", 4)


def names(spans: list[Any]) -> list[str]:
    return [s[0] for s in spans]


def test_a_task_continues_the_submitters_trace_and_its_assignment_names_the_attempt_span() -> None:
    core, spans = setup()
    agent, _ = core.register(reg("a"), 0)
    [s] = core.submit([TaskSpec("k", trace_context=(("traceparent", CLIENT_TP),), tenant="t", priority=3)], 1.0)
    [rec] = core.dispatch(1.5)["a"]
    a = assignment_to_proto(rec, 1.5)
    parent = parse_traceparent(a.trace_context["traceparent"])
    assert parent is not None and parent.sampled
    assert parent.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    core.frame("a", agent.session, 2.0, [ResultIn(s.task_id, 1, TaskState.SUCCEEDED, Outcome(cache_hit=True))])
    queue, attempt, task = spans
    assert names(spans) == ["swarmmesh.queue", "swarmmesh.attempt 1", "swarmmesh.task k"]
    assert task[3] == 0x00F067AA0BA902B7  # child of the client's span
    assert queue[3] == attempt[3] == task[2]
    assert attempt[2] == parent.span_id
    assert (queue[5], queue[6]) == (1.0, 1.5) and (attempt[5], attempt[6]) == (1.5, 2.0)
    assert (task[5], task[6]) == (1.0, 2.0)
    attrs = dict(task[7])
    assert attrs["swarmmesh.tenant"] == "t" and attrs["swarmmesh.priority"] == 3
    assert attrs["swarmmesh.cache.hit"] is True and attrs["swarmmesh.agent.id"] == "a"
    assert dict(attempt[7])["swarmmesh.agent.id"] == "a"


def test_an_unsampled_submitter_means_no_spans_and_no_context_for_the_sidecar() -> None:
    core, spans = setup()
    core.register(reg("a"), 0)
    off = CLIENT_TP[:-2] + "00"
    core.submit([TaskSpec("k", trace_context=(("traceparent", off),))], 0)
    [rec] = core.dispatch(0)["a"]
    assert rec.trace is UNSAMPLED
    assert not assignment_to_proto(rec, 0).trace_context  # the decision is final: the sidecar records nothing
    assert spans == []


def test_with_tracing_off_the_submitters_context_passes_through() -> None:
    core = MeshCore(CoreConfig())
    core.register(reg("a"), 0)
    core.submit([TaskSpec("k", trace_context=(("traceparent", CLIENT_TP),))], 0)
    [rec] = core.dispatch(0)["a"]
    assert rec.trace is None and assignment_to_proto(rec, 0).trace_context["traceparent"] == CLIENT_TP


def test_tasks_without_context_start_traces_at_the_configured_ratio() -> None:
    core, spans = setup(ratio=0.0)
    core.submit([TaskSpec("k") for _ in range(50)], 0)
    assert spans == [] and all(r.trace is UNSAMPLED for r in core.list_tasks()[0])
    core, spans = setup(ratio=1.0)
    core.submit([TaskSpec("k")], 0)
    [rec] = core.list_tasks()[0]
    assert rec.trace is not None and rec.trace.parent_id == 0


def test_a_lost_lease_ends_the_attempt_with_an_error_and_the_next_attempt_follows() -> None:
    core, spans = setup()
    a, _ = core.register(reg("a"), 0)
    [s] = core.submit([TaskSpec("k")], 0)
    core.dispatch(0)
    core.disconnect("a", a.session, 1.0)  # the agent died holding it
    b, _ = core.register(reg("b"), 2.0)
    core.dispatch(2.0)
    core.frame("b", b.session, 3.0, [ResultIn(s.task_id, 2, TaskState.SUCCEEDED, Outcome())])
    assert names(spans) == ["swarmmesh.queue", "swarmmesh.attempt 1", "swarmmesh.queue", "swarmmesh.attempt 2",
                            "swarmmesh.task k"]
    first, second = spans[1], spans[3]
    assert "lease lost" in first[8] and dict(first[7])["swarmmesh.agent.id"] == "a"
    assert second[8] == "" and dict(second[7])["swarmmesh.agent.id"] == "b"
    assert first[2] != second[2]
    assert (spans[2][5], spans[2][6]) == (1.0, 2.0)  # the second wait: re-queued at 1.0, assigned at 2.0
    assert dict(spans[4][7])["swarmmesh.attempts"] == 2


def test_a_task_cancelled_in_the_queue_and_a_failed_one_carry_their_outcome() -> None:
    core, spans = setup()
    [s] = core.submit([TaskSpec("k")], 0)
    core.cancel([s.task_id], 1.0)
    assert names(spans) == ["swarmmesh.queue", "swarmmesh.task k"]
    assert dict(spans[1][7])["swarmmesh.task.state"] == "CANCELLED" and spans[1][8] == ""
    spans.clear()
    a, _ = core.register(reg("a"), 0)
    [s] = core.submit([TaskSpec("k")], 2.0)
    core.dispatch(2.0)
    core.frame("a", a.session, 3.0, [ResultIn(s.task_id, 1, TaskState.FAILED,
                                              Outcome(error="ValueError: no", error_type="handler_error"))])
    attempt, task = spans[1], spans[2]
    assert attempt[8] == "ValueError: no" and task[8] == "ValueError: no"
    assert dict(task[7])["swarmmesh.error.type"] == "handler_error"


def test_a_task_its_tracing_submitter_left_without_context_is_not_traced() -> None:
    core, spans = setup(ratio=1.0)  # would sample every trace it starts
    core.register(reg("a"), 0)
    core.submit([TaskSpec("k", trace_unsampled=True)], 0)
    [rec] = core.dispatch(0)["a"]
    assert rec.trace is UNSAMPLED and not assignment_to_proto(rec, 0).trace_context and spans == []
