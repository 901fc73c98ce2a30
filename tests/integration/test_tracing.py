"""One trace per task across the client, coordinator and sidecar processes,
checked with a real OTLP/gRPC receiver in the test process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from swarmmesh import Client, TaskState
from swarmmesh.telemetry import Tracer, TracingConfig
from tests.integration.conftest import Mesh
from tests.otlp import OtlpReceiver, ReceivedSpan, receiver, tracing_env
from tests.support import assert_eventually, free_port

pytestmark = pytest.mark.integration

USER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
USER_SPAN = 0x00F067AA0BA902B7


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    yield from receiver()


def client_tracer(env: dict[str, str], **overrides: str) -> Tracer:
    tracer = Tracer(TracingConfig.from_env("swarmmesh-client", env={**env, **overrides}), "test")
    tracer.start()
    return tracer


def by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    out: dict[str, list[ReceivedSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def only(spans: dict[str, list[ReceivedSpan]], name: str) -> ReceivedSpan:
    assert len(spans.get(name, [])) == 1, f"{name}: {spans.get(name)}"
    return spans[name][0]


def test_one_task_yields_one_trace_linked_across_client_coordinator_and_sidecar(
        mesh: Mesh, otlp: OtlpReceiver) -> None:
    mesh.start_coordinator(env=otlp.env())
    mesh.start_sidecar("a1", handler="traced", env=otlp.env())
    tracer = client_tracer(otlp.env())
    user = SpanContext(USER_TRACE, USER_SPAN, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    with Client(mesh.address, tracing=tracer) as client:
        # A span active in the caller's code: the task continues that trace.
        with otel_trace.use_span(NonRecordingSpan(user)):
            task_id = client.submit("vision", {"img": 1}, tenant="acme", priority=7)
        info = client.wait(task_id, timeout=60)
    tracer.stop(5)
    assert info.state is TaskState.SUCCEEDED

    trace_hex = f"{USER_TRACE:032x}"
    names = ("swarmmesh.submit vision", "swarmmesh.task vision", "swarmmesh.queue", "swarmmesh.attempt 1",
             "swarmmesh.execute vision", "swarmmesh.handler vision")
    assert_eventually(lambda: all(n in by_name(otlp.trace(trace_hex)) for n in names), timeout=30,
                      what="every span of the task reached the receiver")
    spans = by_name(otlp.trace(trace_hex))
    submit, task, queue, attempt, execute, handler = (only(spans, n) for n in names)

    # Three processes, one trace, each span the child of the one before.
    assert submit.service == "swarmmesh-client"
    assert {task.service, queue.service, attempt.service} == {"swarmmesh-coordinator"}
    assert {execute.service, handler.service} == {"swarmmesh-sidecar"}
    assert submit.parent_id == f"{USER_SPAN:016x}"
    assert task.parent_id == submit.span_id
    assert queue.parent_id == task.span_id and attempt.parent_id == task.span_id
    assert execute.parent_id == attempt.span_id
    assert handler.parent_id == execute.span_id
    # The handler was given a context naming its own span, so user code inside it continues the trace.
    given = json.loads(info.output)["trace_context"]["traceparent"]
    assert given == f"00-{trace_hex}-{handler.span_id}-01"

    # What a person filters on in Jaeger.
    assert submit.attributes["swarmmesh.task.id"] == task.attributes["swarmmesh.task.id"] == task_id
    assert task.attributes["swarmmesh.task.kind"] == "vision"
    assert task.attributes["swarmmesh.tenant"] == "acme"
    assert task.attributes["swarmmesh.priority"] == 7
    assert task.attributes["swarmmesh.task.state"] == "SUCCEEDED"
    assert attempt.attributes["swarmmesh.agent.id"] == "a1"
    assert attempt.attributes["swarmmesh.attempt"] == 1
    assert attempt.attributes["swarmmesh.strategy"]
    assert execute.attributes["swarmmesh.cache.hit"] is False
    assert execute.attributes["swarmmesh.agent.id"] == "a1"
    # Phases nest in time: queue wait and the attempt inside the task, the handler inside execute.
    assert task.start_ns <= queue.start_ns <= queue.end_ns <= attempt.start_ns <= attempt.end_ns <= task.end_ns
    assert execute.start_ns <= handler.start_ns <= handler.end_ns <= execute.end_ns
    assert all(s.error is None for s in (submit, task, queue, attempt, execute, handler))
    assert len(otlp.traces()) == 1


def test_a_reassigned_task_shows_both_attempts_in_one_trace(mesh: Mesh, otlp: OtlpReceiver) -> None:
    mesh.start_coordinator(env=otlp.env())
    victim = mesh.start_sidecar("a1", handler="paced", env=otlp.env())
    tracer = client_tracer(otlp.env())
    with Client(mesh.address, tracing=tracer) as client:
        task_id = client.submit("render", {"ms": {"a1": 600_000, "b1": 5}})
        assert_eventually(lambda: client.get(task_id).state is TaskState.ASSIGNED, what="assigned to a1")
        victim.kill9()
        mesh.start_sidecar("b1", handler="paced", env=otlp.env())
        info = client.wait(task_id, timeout=60)
    tracer.stop(5)
    assert info.state is TaskState.SUCCEEDED and info.attempt == 2 and info.agent_id == "b1"

    def complete() -> dict[str, list[ReceivedSpan]] | None:
        traces = otlp.traces()
        if len(traces) != 1:
            return None
        spans = by_name(next(iter(traces.values())))
        wanted = ("swarmmesh.task render", "swarmmesh.attempt 1", "swarmmesh.attempt 2", "swarmmesh.execute render")
        return spans if all(n in spans for n in wanted) and len(spans.get("swarmmesh.queue", [])) == 2 else None

    spans = assert_eventually(complete, timeout=30, what="both attempts in one trace")
    task = only(spans, "swarmmesh.task render")
    first, second = only(spans, "swarmmesh.attempt 1"), only(spans, "swarmmesh.attempt 2")
    assert task.attributes["swarmmesh.attempts"] == 2
    assert first.parent_id == second.parent_id == task.span_id
    assert first.attributes["swarmmesh.agent.id"] == "a1"
    assert first.error is not None and "lease lost" in first.error
    assert second.attributes["swarmmesh.agent.id"] == "b1" and second.error is None
    assert first.end_ns <= second.start_ns
    # The surviving sidecar's work hangs under the second attempt (a1 died with its spans).
    execute = only(spans, "swarmmesh.execute render")
    assert execute.parent_id == second.span_id and execute.attributes["swarmmesh.attempt"] == 2
    assert sorted(q.attributes["swarmmesh.attempt"] for q in spans["swarmmesh.queue"]) == [1, 2]


def test_sampling_keeps_each_trace_whole_or_absent(mesh: Mesh, otlp: OtlpReceiver) -> None:
    # The coordinator and sidecar would sample every trace they start; they
    # must follow the client's decision instead.
    mesh.start_coordinator(env=otlp.env())
    mesh.start_sidecar("a1", env=otlp.env())
    tracer = client_tracer(otlp.env(), OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.3")
    with Client(mesh.address, tracing=tracer) as client:
        ids = [t.task_id for t in client.submit_many([_spec(i) for i in range(200)])]
        assert all(t.state is TaskState.SUCCEEDED for t in client.wait_all(ids, timeout=120).values())
    tracer.stop(5)
    sampled = {s.trace_id for s in otlp.spans if s.service == "swarmmesh-client"}
    assert 20 <= len(sampled) <= 110, len(sampled)  # 30% of 200, loosely

    def whole() -> bool:
        traces = otlp.traces()
        return set(traces) == sampled and all(len(spans) == 6 for spans in traces.values())

    assert_eventually(whole, timeout=30, what="every sampled trace whole, no other trace")


def test_a_closed_collector_port_changes_nothing(mesh: Mesh) -> None:
    env = tracing_env(f"http://127.0.0.1:{free_port()}")
    mesh.start_coordinator(env=env)
    for agent in ("a1", "a2"):
        mesh.start_sidecar(agent, env=env)
    tracer = client_tracer(env)
    with Client(mesh.address, tracing=tracer) as client:
        ids = [t.task_id for t in client.submit_many([_spec(i) for i in range(2000)])]
        done = list(client.wait_all(ids, timeout=120).values())
    tracer.stop(2)
    assert len(done) == 2000 and all(t.state is TaskState.SUCCEEDED for t in done)
    # After the first failed export nothing more is even built: recorders check the exporter.
    assert tracer.stats()["exported"] == 0 and not tracer.live
    # One warning says what is wrong; it does not repeat per batch.
    assert mesh.coordinator is not None
    assert_eventually(lambda: "cannot export spans" in mesh.coordinator.output(), what="the coordinator warned")  # type: ignore[union-attr]
    assert mesh.coordinator.output().count("cannot export spans") == 1


def test_spans_flow_again_once_a_collector_comes_back(mesh: Mesh) -> None:
    port = free_port()
    env = tracing_env(f"http://127.0.0.1:{port}")
    mesh.start_coordinator(env=env)
    mesh.start_sidecar("a1", env=env)
    with Client(mesh.address, tracing=False) as client:
        first = client.submit("echo", b"1")
        client.wait(first, timeout=60)
        assert mesh.coordinator is not None
        assert_eventually(lambda: "cannot export spans" in mesh.coordinator.output(),  # type: ignore[union-attr]
                          what="the coordinator noticed the collector is down")
        late = OtlpReceiver().start(port)  # the collector comes up where it was expected
        try:
            since: set[str] = set()

            def traced() -> bool:
                task_id = client.submit("echo", b"2")
                client.wait(task_id, timeout=60)
                since.add(task_id)
                return any(s.name == "swarmmesh.task echo" and s.attributes.get("swarmmesh.task.id") in since
                           for s in late.spans)
            assert_eventually(traced, timeout=60, interval=0.5, what="a task traced after the collector came back")
        finally:
            late.stop()


def test_a_slow_collector_does_not_hold_up_tasks_or_shutdown(mesh: Mesh) -> None:
    slow = OtlpReceiver(delay_s=20.0).start()
    try:
        env = {**slow.env(), "OTEL_EXPORTER_OTLP_TIMEOUT": "30000"}
        mesh.start_coordinator(env=env)
        sidecar = mesh.start_sidecar("a1", env=env)
        with Client(mesh.address, tracing=False) as client:
            ids = [t.task_id for t in client.submit_many([_spec(i) for i in range(1000)])]
            done = client.wait_all(ids, timeout=60)
        assert all(t.state is TaskState.SUCCEEDED for t in done.values())
        # Unless both processes are already waiting on the collector, nothing below tests a slow one.
        assert_eventually(lambda: {"swarmmesh-coordinator", "swarmmesh-sidecar"} <= set(slow.started),
                          what="exports from the coordinator and the sidecar reached the collector")
        # Stopping gives spans a bounded flush, not the collector's 30 s timeout.
        assert sidecar.stop(timeout=15) == 0
        assert mesh.coordinator is not None and mesh.coordinator.stop(timeout=15) == 0
    finally:
        slow.stop()


def _spec(i: int) -> object:
    from swarmmesh import TaskSpec

    return TaskSpec(kind="echo", payload=json.dumps({"i": i}).encode(), content_type="application/json")
