"""AsyncClient's submits over the ``TaskService.Session`` stream: encoding, batching,
coalescing, tracing and the answers each caller gets, against swarmmesh.testing's fake."""

from __future__ import annotations

import asyncio

import pytest

from swarmmesh import errors
from swarmmesh._tracing import SubmitTracing
from swarmmesh.client import AsyncClient
from swarmmesh.telemetry import Tracer, TracingConfig
from swarmmesh.telemetry.context import TRACEPARENT
from swarmmesh.testing import FakeCoordinator, SessionScript
from swarmmesh.types import TaskSpec, TaskState
from swarmmesh.v1 import tasks_pb2
from tests.support import eventually


async def test_submit_encodes_one_spec() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    task_id = await c.submit(
        "math.primes", {"n": 5}, required_labels={"math": 1}, priority=3, dependencies=["d"]
    )
    assert task_id == "t1"
    (call,) = fake.sessions
    (request,) = call.writes
    assert not request.watches
    (sub,) = request.submits
    (spec,) = sub.tasks
    assert (
        spec.kind == "math.primes" and spec.payload == b'{"n":5}' and spec.content_type == "application/json"
    )
    assert (
        dict(spec.required_labels) == {"math": 1} and spec.priority == 3 and list(spec.dependencies) == ["d"]
    )
    assert fake.requests == []  # no unary SubmitTasks


async def test_submits_reuse_one_session() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    assert [await c.submit("k") for _ in range(3)] == ["t1", "t2", "t3"]
    assert len(fake.sessions) == 1 and len(fake.writes) == 3
    ids = [s.id for s in fake.sessions[0].submits]
    assert len(set(ids)) == 3  # item ids are unique within the session


async def test_submit_many_chunks_in_order() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    specs = (TaskSpec("k", str(i)) for i in range(2500))
    submitted = await c.submit_many(specs, batch_size=1000)
    assert [s.task_id for s in submitted] == [f"t{i}" for i in range(1, 2501)]
    # One SessionSubmit per batch, one batch per write, in input order.
    assert [[len(s.tasks) for s in r.submits] for r in fake.writes] == [[1000], [1000], [500]]
    payloads = [t.payload for s in fake.sessions[0].submits for t in s.tasks]
    assert payloads == [str(i).encode() for i in range(2500)]
    assert all(s.state is TaskState.PENDING for s in submitted)
    assert len(fake.sessions) == 1


async def test_submit_many_reports_accepted_ids_when_a_later_batch_fails() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    specs = [TaskSpec("k"), TaskSpec("k"), TaskSpec("k"), TaskSpec(""), TaskSpec("k")]
    with pytest.raises(errors.InvalidArgument) as info:
        await c.submit_many(specs, batch_size=2)
    assert info.value.details == "tasks[1].kind: is required"
    assert info.value.accepted_task_ids == ("t1", "t2")
    assert any("spec #2" in note for note in info.value.__notes__)
    assert [len(s.tasks) for s in fake.sessions[0].submits] == [2, 2]  # the third batch is not sent


async def test_submit_many_first_batch_failing_has_no_accepted_ids() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.InvalidArgument, match=r"tasks\[0\]") as info:
        await c.submit_many([TaskSpec(""), TaskSpec("k")], batch_size=2)
    assert info.value.accepted_task_ids == ()
    assert not getattr(info.value, "__notes__", [])


async def test_submit_many_validates_batch_size() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(ValueError, match="batch_size"):
        await c.submit_many([TaskSpec("k")], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        await c.submit_many([TaskSpec("k")], batch_size=10_001)
    assert fake.sessions == []  # nothing was sent


async def test_submit_with_tracing_off_sends_trace_decided_false() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    await c.submit("k")
    await c.submit_many([TaskSpec("k")] * 2)
    subs = fake.sessions[0].submits
    assert len(subs) == 2 and all(s.trace_decided is False for s in subs)
    assert all(not t.trace_context for s in subs for t in s.tasks)


async def test_submit_with_tracing_on_sends_trace_decided_true() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    tracer = Tracer(TracingConfig(sample_ratio=1.0))  # never started: spans only queue
    c._tracing = SubmitTracing(tracer)
    assert await c.submit("k") == "t1"
    (sub,) = fake.sessions[0].submits
    assert sub.trace_decided is True
    assert TRACEPARENT in sub.tasks[0].trace_context
    assert tracer.stats()["queued"] == 1  # the submit span was recorded once the ack came


async def test_while_the_collector_fails_no_trace_is_started_and_a_callers_context_passes_on() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    tracer = Tracer(TracingConfig(sample_ratio=1.0))  # never started
    assert tracer.exporter is not None
    tracer.exporter.healthy = False  # as after a failed export
    c._tracing = SubmitTracing(tracer)
    caller = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
    await c.submit("k")
    await c.submit("k", trace_context={TRACEPARENT: caller})
    first, second = fake.sessions[0].submits
    assert first.trace_decided and not first.tasks[0].trace_context  # unsampled: nothing downstream traces it
    assert dict(second.tasks[0].trace_context) == {TRACEPARENT: caller}  # no submit span of ours in between
    assert tracer.stats()["queued"] == 0


async def test_a_short_ack_is_an_internal_error() -> None:
    fake = FakeCoordinator()
    accept = fake.accept

    def short(sub: tasks_pb2.SessionSubmit) -> tasks_pb2.SessionAck:
        ack = accept(sub)
        del ack.tasks[-1]
        return ack

    fake.accept = short  # type: ignore[method-assign]
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.Internal, match="0 results for 1"):
        await c.submit("k")


# -- session-specific submitting --------------------------------------------------


async def test_concurrent_submits_coalesce_into_fewer_writes() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(reverse_acks=True)]
    c = AsyncClient(channel=fake.channel())
    ids = await asyncio.gather(*(c.submit("k", str(i)) for i in range(50)))
    assert len(fake.writes) < 50
    assert sum(len(r.submits) for r in fake.writes) == 50
    assert all(len(s.tasks) == 1 for s in fake.sessions[0].submits)  # each submit is its own item
    assert len(set(ids)) == 50
    # Each caller got the id of its own task, although the acks came reversed.
    assert [fake.accepted[task_id].payload for task_id in ids] == [str(i).encode() for i in range(50)]
    assert len(fake.sessions) == 1


async def test_submits_queued_during_a_write_go_out_as_one_request() -> None:
    gate = asyncio.Event()
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(gate=gate)]
    c = AsyncClient(channel=fake.channel())
    first = asyncio.create_task(c.submit("k", "first"))
    await eventually(lambda: bool(fake.sessions) and fake.sessions[0].in_flight == 1)
    rest = [asyncio.create_task(c.submit("k", str(i))) for i in range(49)]
    assert c._session is not None
    await eventually(lambda: len(c._session._submits) == 49)  # type: ignore[union-attr]
    gate.set()
    ids = await asyncio.gather(first, *rest)
    assert [len(r.submits) for r in fake.writes] == [1, 49]
    assert fake.accepted[ids[0]].payload == b"first"
    assert [fake.accepted[t].payload for t in ids[1:]] == [str(i).encode() for i in range(49)]


async def test_a_failing_submit_fails_only_its_caller() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    results = await asyncio.gather(
        c.submit("k", "a"), c.submit("", "bad"), c.submit("k", "c"), return_exceptions=True
    )
    ok_a, bad, ok_c = results
    assert isinstance(bad, errors.InvalidArgument) and bad.details == "tasks[0].kind: is required"
    assert isinstance(ok_a, str) and isinstance(ok_c, str) and ok_a != ok_c
    assert fake.accepted[ok_a].payload == b"a" and fake.accepted[ok_c].payload == b"c"
    # The stream goes on.
    assert await c.submit("k") == "t3"
    assert len(fake.sessions) == 1 and not fake.sessions[0].done


async def test_a_submit_without_an_ack_raises_deadline_exceeded() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(ack_submits=False)]
    c = AsyncClient(channel=fake.channel(), timeout=0.05)
    with pytest.raises(errors.DeadlineExceeded, match=r"within 0\.05 s") as info:
        await c.submit("k", "late")
    assert type(info.value) is errors.DeadlineExceeded
    call = fake.sessions[0]
    assert len(call.held_submits) == 1
    # The late ack (t1) is dropped: the next caller gets its own id on the same session.
    call.script.ack_submits = True
    call.ack_held()
    assert await c.submit("k", "next") == "t2"
    assert fake.accepted["t2"].payload == b"next"
    assert len(fake.sessions) == 1
