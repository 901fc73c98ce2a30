"""AsyncClient and Client against an in-memory stub (no sockets, no channel).

Submits and waits go over the ``TaskService.Session`` stream; the fake's
``Session()`` call answers each SessionSubmit and SessionWatch the way
coordinator/service/session.py does, and can be scripted to fail items, hold
tasks, or break the stream.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from swarmmesh import _client_args, _session, errors
from swarmmesh._tracing import SubmitTracing
from swarmmesh.client import AsyncClient
from swarmmesh.sync_client import Client
from swarmmesh.telemetry import Tracer, TracingConfig
from swarmmesh.telemetry.context import TRACEPARENT
from swarmmesh.types import TaskSpec, TaskState
from swarmmesh.v1 import tasks_pb2, types_pb2

TERMINAL = types_pb2.TASK_STATE_SUCCEEDED
OUTPUT = b'{"ok": true}'


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def task(task_id: str, state: Any = TERMINAL, output: bytes = b"") -> Any:
    return types_pb2.Task(task_id=task_id, state=state, outcome=types_pb2.TaskOutcome(output=output))


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Let the loop run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


class FakeCall:
    """Mimics a grpc.aio unary-stream call (WatchTasks, used by follow): async iterable with cancel()."""

    def __init__(
        self, batches: Iterable[list[Any]], error: Exception | None = None, hang: bool = False
    ) -> None:
        self._batches = list(batches)
        self._error = error
        self._hang = hang
        self.cancelled = False

    def cancel(self) -> bool:
        self.cancelled = True
        return True

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[Any]:
        for batch in self._batches:
            await asyncio.sleep(0)
            yield tasks_pb2.WatchTasksResponse(tasks=batch)
        if self._error is not None:
            raise self._error
        if self._hang:
            await asyncio.Event().wait()


_UNAVAILABLE = rpc_error(grpc.StatusCode.UNAVAILABLE, "the coordinator is restarting")
_END = object()


@dataclass
class SessionScript:
    """How one Session call behaves; the default answers everything and never ends."""

    #: after this many finished tasks were sent, the stream fails with `error` (None: ends cleanly).
    break_after: int | None = None
    error: BaseException | None = _UNAVAILABLE
    #: watched ids that do not finish until the test calls finish().
    hold: set[str] = field(default_factory=set)
    #: False: SessionSubmits get no ack until the test calls ack_held().
    ack_submits: bool = True
    #: acks of one request in reverse order (the client must match them by id).
    reverse_acks: bool = False
    #: each write waits for this event (a write "in flight").
    gate: asyncio.Event | None = None
    #: every write fails with this error (the call is then over).
    write_error: BaseException | None = None


class FakeSessionCall:
    """Mimics the grpc.aio.StreamStreamCall of TaskService.Session as swarmmesh/_session.py uses it."""

    def __init__(self, stub: FakeStub, script: SessionScript) -> None:
        self._stub = stub
        self.script = script
        self.writes: list[tasks_pb2.SessionRequest] = []
        self.in_flight = 0
        self.held_submits: list[tasks_pb2.SessionSubmit] = []
        self.watching: set[str] = set()  # held, unfinished
        self.finished_sent = 0
        self.cancelled = False
        self.done = False
        self._responses: asyncio.Queue[Any] = asyncio.Queue()

    # -- grpc.aio.StreamStreamCall -------------------------------------------

    async def write(self, request: tasks_pb2.SessionRequest) -> None:
        if self.done:
            raise asyncio.InvalidStateError("RPC already finished.")
        self.in_flight += 1
        try:
            if self.script.gate is not None:
                await self.script.gate.wait()
        finally:
            self.in_flight -= 1
        copy = tasks_pb2.SessionRequest()
        copy.CopyFrom(request)
        self.writes.append(copy)
        self._stub.writes.append(copy)
        if self.script.write_error is not None:
            self._end(self.script.write_error)
            raise self.script.write_error
        await asyncio.sleep(0)  # the network
        self._handle(copy)

    def __aiter__(self) -> AsyncIterator[tasks_pb2.SessionResponse]:
        return self._read()

    def cancel(self) -> bool:
        self.cancelled = True
        if self.done:
            return False
        self._end(asyncio.CancelledError())
        return True

    # -- the server's side (coordinator/service/session.py) ------------------

    def _handle(self, request: tasks_pb2.SessionRequest) -> None:
        acks: list[tasks_pb2.SessionAck] = []
        finished: list[Any] = []
        lean: list[Any] = []
        for sub in request.submits:
            if self.script.ack_submits:
                acks.append(self._stub.accept(sub))
            else:
                self.held_submits.append(sub)
        for w in request.watches:
            ids = list(dict.fromkeys(w.task_ids))
            failure = self._stub.check_watch(ids, len(self.watching))
            if failure is not None:
                acks.append(tasks_pb2.SessionAck(id=w.id, code=failure[0].value[0], message=failure[1]))
                continue
            acks.append(tasks_pb2.SessionAck(id=w.id))
            for task_id in ids:
                if task_id in self.script.hold:
                    self.watching.add(task_id)
                else:
                    (lean if w.omit_payloads else finished).append(self._stub.finished(task_id, w.omit_payloads))
        self.watching.difference_update(request.unwatch)
        if self.script.reverse_acks:
            acks.reverse()
        self._send(acks, finished, lean)

    def _send(self, acks: list[tasks_pb2.SessionAck], finished: list[Any], lean: list[Any] | None = None) -> None:
        lean = lean or []
        limit = self.script.break_after
        breaking = limit is not None and self.finished_sent + len(finished) + len(lean) >= limit
        if breaking:
            assert limit is not None
            finished = finished[: limit - self.finished_sent]
            lean = lean[: limit - self.finished_sent - len(finished)]
        self.finished_sent += len(finished) + len(lean)
        if acks or finished or lean:
            self._responses.put_nowait(tasks_pb2.SessionResponse(acks=acks, finished=finished,
                                                                 finished_without_payloads=lean))
        if breaking:
            self._end(self.script.error)

    def _end(self, error: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self._responses.put_nowait(_END if error is None else error)

    async def _read(self) -> AsyncIterator[tasks_pb2.SessionResponse]:
        while True:
            item = await self._responses.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    # -- for tests -------------------------------------------------------------

    def finish(self, *tasks: Any, lean: bool = False) -> None:
        """Send these finished tasks now (as the coordinator would when they end): whole copies,
        or with `lean` copies without payloads."""
        for t in tasks:
            self.watching.discard(t.task_id)
        if lean:
            self._send([], [], list(tasks))
        else:
            self._send([], list(tasks))

    def ack_held(self) -> None:
        held, self.held_submits = self.held_submits, []
        self._send([self._stub.accept(sub) for sub in held], [])

    def fail(self, error: BaseException | None) -> None:
        """End the stream: with this error, or cleanly (None)."""
        self._end(error)

    @property
    def submits(self) -> list[tasks_pb2.SessionSubmit]:
        return [s for r in self.writes for s in r.submits]

    @property
    def watches(self) -> list[tasks_pb2.SessionWatch]:
        return [w for r in self.writes for w in r.watches]

    @property
    def unwatched(self) -> list[str]:
        return [t for r in self.writes for t in r.unwatch]


class FakeStub:
    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []  # unary calls and WatchTasks
        self.watch_calls: list[FakeCall] = []
        self.watch_script: list[FakeCall] = []
        self.sessions: list[FakeSessionCall] = []
        self.session_script: list[SessionScript] = []
        self.writes: list[tasks_pb2.SessionRequest] = []  # on every session
        self.accepted: dict[str, Any] = {}  # task id -> TaskSpec
        self.unknown: set[str] = set()
        self.states: dict[str, Any] = {}
        self.max_watch_ids = 100_000
        self.max_watched = 1_000_000
        self.counter = 0

    # -- Session -------------------------------------------------------------

    def Session(self, **_kw: Any) -> FakeSessionCall:
        script = self.session_script.pop(0) if self.session_script else SessionScript()
        call = FakeSessionCall(self, script)
        self.sessions.append(call)
        return call

    def accept(self, sub: tasks_pb2.SessionSubmit) -> tasks_pb2.SessionAck:
        """One all-or-nothing batch, validated like SubmitTasks."""
        if not 1 <= len(sub.tasks) <= 10_000:
            return tasks_pb2.SessionAck(id=sub.id, code=3, message=f"tasks: {len(sub.tasks)} tasks, 1..10000")
        for i, spec in enumerate(sub.tasks):
            if not spec.kind:
                return tasks_pb2.SessionAck(id=sub.id, code=3, message=f"tasks[{i}].kind: is required")
        out = []
        for spec in sub.tasks:
            self.counter += 1
            task_id = f"t{self.counter}"
            self.accepted[task_id] = spec
            out.append(tasks_pb2.SubmittedTask(task_id=task_id, state=types_pb2.TASK_STATE_PENDING))
        return tasks_pb2.SessionAck(id=sub.id, tasks=out)

    def check_watch(self, ids: list[str], watching: int) -> tuple[grpc.StatusCode, str] | None:
        if not ids:
            return grpc.StatusCode.INVALID_ARGUMENT, "task_ids: is empty: name at least one task"
        if len(ids) > self.max_watch_ids:
            return (grpc.StatusCode.INVALID_ARGUMENT,
                    f"task_ids: {len(ids)} ids, the limit per watch is {self.max_watch_ids}")
        for task_id in ids:
            if task_id in self.unknown:
                return (grpc.StatusCode.NOT_FOUND,
                        f"task {task_id!r} is unknown (never submitted, or no longer retained)")
        if watching + len(ids) > self.max_watched:
            return (grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"task_ids: this session already watches {watching} unfinished tasks; "
                    f"{len(ids)} more would pass the limit of {self.max_watched}")
        return None

    def finished(self, task_id: str, omit_payloads: bool) -> Any:
        return task(task_id, self.states.get(task_id, TERMINAL), b"" if omit_payloads else OUTPUT)

    # -- unary calls and WatchTasks -------------------------------------------

    async def GetTask(self, request: Any, **_kw: Any) -> Any:
        self.requests.append(("GetTask", request))
        if request.task_id == "missing":
            raise rpc_error(grpc.StatusCode.NOT_FOUND, "task 'missing' is unknown")
        return task(request.task_id, output=b'{"ok": true}')

    async def ListTasks(self, request: Any, **_kw: Any) -> Any:
        self.requests.append(("ListTasks", request))
        return tasks_pb2.ListTasksResponse(tasks=[task("a"), task("b")], total=7)

    async def CancelTasks(self, request: Any, **_kw: Any) -> Any:
        self.requests.append(("CancelTasks", request))
        return tasks_pb2.CancelTasksResponse(
            tasks=[task(i, types_pb2.TASK_STATE_CANCELLED) for i in request.task_ids]
        )

    async def ListAgents(self, request: Any, **_kw: Any) -> Any:
        self.requests.append(("ListAgents", request))
        return tasks_pb2.ListAgentsResponse(
            agents=[types_pb2.Agent(agent_id="a1", state=types_pb2.AGENT_STATE_READY)]
        )

    async def DrainAgent(self, request: Any, **_kw: Any) -> Any:
        self.requests.append(("DrainAgent", request))
        return types_pb2.Agent(agent_id=request.agent_id, state=types_pb2.AGENT_STATE_DRAINING)

    async def GetStats(self, request: Any, **_kw: Any) -> Any:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")

    def WatchTasks(self, request: Any) -> FakeCall:
        self.requests.append(("WatchTasks", request))
        call = self.watch_script.pop(0) if self.watch_script else FakeCall([])
        self.watch_calls.append(call)
        return call


def make_client(stub: FakeStub, timeout: float | None = 30.0) -> AsyncClient:
    c = AsyncClient("127.0.0.1:1", timeout=timeout)
    c._stub = stub  # bypass the channel: these tests never open a socket
    return c


# -- submitting ----------------------------------------------------------------


async def test_submit_encodes_one_spec() -> None:
    stub = FakeStub()
    c = make_client(stub)
    task_id = await c.submit(
        "math.primes", {"n": 5}, required_labels={"math": 1}, priority=3, dependencies=["d"]
    )
    assert task_id == "t1"
    (call,) = stub.sessions
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
    assert stub.requests == []  # no unary SubmitTasks


async def test_submits_reuse_one_session() -> None:
    stub = FakeStub()
    c = make_client(stub)
    assert [await c.submit("k") for _ in range(3)] == ["t1", "t2", "t3"]
    assert len(stub.sessions) == 1 and len(stub.writes) == 3
    ids = [s.id for s in stub.sessions[0].submits]
    assert len(set(ids)) == 3  # item ids are unique within the session


async def test_submit_many_chunks_in_order() -> None:
    stub = FakeStub()
    c = make_client(stub)
    specs = (TaskSpec("k", str(i)) for i in range(2500))
    submitted = await c.submit_many(specs, batch_size=1000)
    assert [s.task_id for s in submitted] == [f"t{i}" for i in range(1, 2501)]
    # One SessionSubmit per batch, one batch per write, in input order.
    assert [[len(s.tasks) for s in r.submits] for r in stub.writes] == [[1000], [1000], [500]]
    payloads = [t.payload for s in stub.sessions[0].submits for t in s.tasks]
    assert payloads == [str(i).encode() for i in range(2500)]
    assert all(s.state is TaskState.PENDING for s in submitted)
    assert len(stub.sessions) == 1


async def test_submit_many_reports_accepted_ids_when_a_later_batch_fails() -> None:
    stub = FakeStub()
    c = make_client(stub)
    specs = [TaskSpec("k"), TaskSpec("k"), TaskSpec("k"), TaskSpec(""), TaskSpec("k")]
    with pytest.raises(errors.InvalidArgument) as info:
        await c.submit_many(specs, batch_size=2)
    assert info.value.details == "tasks[1].kind: is required"
    assert info.value.accepted_task_ids == ("t1", "t2")
    assert any("spec #2" in note for note in info.value.__notes__)
    assert [len(s.tasks) for s in stub.sessions[0].submits] == [2, 2]  # the third batch is not sent


async def test_submit_many_first_batch_failing_has_no_accepted_ids() -> None:
    stub = FakeStub()
    c = make_client(stub)
    with pytest.raises(errors.InvalidArgument, match=r"tasks\[0\]") as info:
        await c.submit_many([TaskSpec(""), TaskSpec("k")], batch_size=2)
    assert info.value.accepted_task_ids == ()
    assert not getattr(info.value, "__notes__", [])


async def test_submit_many_validates_batch_size() -> None:
    stub = FakeStub()
    c = make_client(stub)
    with pytest.raises(ValueError, match="batch_size"):
        await c.submit_many([TaskSpec("k")], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        await c.submit_many([TaskSpec("k")], batch_size=10_001)
    assert stub.sessions == []  # nothing was sent


async def test_submit_with_tracing_off_sends_trace_decided_false() -> None:
    stub = FakeStub()
    c = make_client(stub)
    await c.submit("k")
    await c.submit_many([TaskSpec("k")] * 2)
    subs = stub.sessions[0].submits
    assert len(subs) == 2 and all(s.trace_decided is False for s in subs)
    assert all(not t.trace_context for s in subs for t in s.tasks)


async def test_submit_with_tracing_on_sends_trace_decided_true() -> None:
    stub = FakeStub()
    c = make_client(stub)
    tracer = Tracer(TracingConfig(sample_ratio=1.0))  # never started: spans only queue
    c._tracing = SubmitTracing(tracer)
    assert await c.submit("k") == "t1"
    (sub,) = stub.sessions[0].submits
    assert sub.trace_decided is True
    assert TRACEPARENT in sub.tasks[0].trace_context
    assert tracer.stats()["queued"] == 1  # the submit span was recorded once the ack came


async def test_while_the_collector_fails_no_trace_is_started_and_a_callers_context_passes_on() -> None:
    stub = FakeStub()
    c = make_client(stub)
    tracer = Tracer(TracingConfig(sample_ratio=1.0))  # never started
    assert tracer.exporter is not None
    tracer.exporter.healthy = False  # as after a failed export
    c._tracing = SubmitTracing(tracer)
    caller = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
    await c.submit("k")
    await c.submit("k", trace_context={TRACEPARENT: caller})
    first, second = stub.sessions[0].submits
    assert first.trace_decided and not first.tasks[0].trace_context  # unsampled: nothing downstream traces it
    assert dict(second.tasks[0].trace_context) == {TRACEPARENT: caller}  # no submit span of ours in between
    assert tracer.stats()["queued"] == 0


async def test_a_short_ack_is_an_internal_error() -> None:
    stub = FakeStub()
    accept = stub.accept

    def short(sub: tasks_pb2.SessionSubmit) -> tasks_pb2.SessionAck:
        ack = accept(sub)
        del ack.tasks[-1]
        return ack

    stub.accept = short  # type: ignore[method-assign]
    c = make_client(stub)
    with pytest.raises(errors.Internal, match="0 results for 1"):
        await c.submit("k")


# -- session-specific submitting --------------------------------------------------


async def test_concurrent_submits_coalesce_into_fewer_writes() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(reverse_acks=True)]
    c = make_client(stub)
    ids = await asyncio.gather(*(c.submit("k", str(i)) for i in range(50)))
    assert len(stub.writes) < 50
    assert sum(len(r.submits) for r in stub.writes) == 50
    assert all(len(s.tasks) == 1 for s in stub.sessions[0].submits)  # each submit is its own item
    assert len(set(ids)) == 50
    # Each caller got the id of its own task, although the acks came reversed.
    assert [stub.accepted[task_id].payload for task_id in ids] == [str(i).encode() for i in range(50)]
    assert len(stub.sessions) == 1


async def test_submits_queued_during_a_write_go_out_as_one_request() -> None:
    gate = asyncio.Event()
    stub = FakeStub()
    stub.session_script = [SessionScript(gate=gate)]
    c = make_client(stub)
    first = asyncio.create_task(c.submit("k", "first"))
    await until(lambda: bool(stub.sessions) and stub.sessions[0].in_flight == 1)
    rest = [asyncio.create_task(c.submit("k", str(i))) for i in range(49)]
    assert c._session is not None
    await until(lambda: len(c._session._submits) == 49)  # type: ignore[union-attr]
    gate.set()
    ids = await asyncio.gather(first, *rest)
    assert [len(r.submits) for r in stub.writes] == [1, 49]
    assert stub.accepted[ids[0]].payload == b"first"
    assert [stub.accepted[t].payload for t in ids[1:]] == [str(i).encode() for i in range(49)]


async def test_a_failing_submit_fails_only_its_caller() -> None:
    stub = FakeStub()
    c = make_client(stub)
    results = await asyncio.gather(
        c.submit("k", "a"), c.submit("", "bad"), c.submit("k", "c"), return_exceptions=True
    )
    ok_a, bad, ok_c = results
    assert isinstance(bad, errors.InvalidArgument) and bad.details == "tasks[0].kind: is required"
    assert isinstance(ok_a, str) and isinstance(ok_c, str) and ok_a != ok_c
    assert stub.accepted[ok_a].payload == b"a" and stub.accepted[ok_c].payload == b"c"
    # The stream goes on.
    assert await c.submit("k") == "t3"
    assert len(stub.sessions) == 1 and not stub.sessions[0].done


async def test_a_submit_without_an_ack_raises_deadline_exceeded() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(ack_submits=False)]
    c = make_client(stub, timeout=0.05)
    with pytest.raises(errors.DeadlineExceeded, match=r"within 0\.05 s") as info:
        await c.submit("k", "late")
    assert type(info.value) is errors.DeadlineExceeded
    call = stub.sessions[0]
    assert len(call.held_submits) == 1
    # The late ack (t1) is dropped: the next caller gets its own id on the same session.
    call.script.ack_submits = True
    call.ack_held()
    assert await c.submit("k", "next") == "t2"
    assert stub.accepted["t2"].payload == b"next"
    assert len(stub.sessions) == 1


async def test_a_broken_stream_fails_pending_submits_and_the_next_submit_reopens() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(ack_submits=False, hold={"w"})]
    c = make_client(stub)
    pending = asyncio.create_task(c.submit("k"))
    waiting = asyncio.create_task(c.wait("w"))
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].held_submits) == 1
                and len(stub.sessions[0].watches) == 1)
    first = stub.sessions[0]
    first.fail(rpc_error(grpc.StatusCode.UNAVAILABLE, "connection reset"))
    with pytest.raises(errors.Unavailable, match="connection reset"):
        await pending
    with pytest.raises(errors.Unavailable, match="connection reset"):
        await waiting  # no progress on that session: no rewatch
    assert await c.submit("k", "again") == "t1"
    assert len(stub.sessions) == 2
    assert [len(s.tasks) for s in stub.sessions[1].submits] == [1]


async def break_under_a_pending_submit(error: BaseException | None, match: str | None = None
                                       ) -> tuple[FakeStub, AsyncClient]:
    """A client whose first session ends (with `error`, or cleanly) while a submit waits for
    its ack; that submit must fail with Unavailable."""
    stub = FakeStub()
    stub.session_script = [SessionScript(ack_submits=False)]
    c = make_client(stub)
    pending = asyncio.create_task(c.submit("k"))
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].held_submits) == 1)
    stub.sessions[0].fail(error)
    with pytest.raises(errors.Unavailable, match=match):
        await pending
    return stub, c


async def test_a_stream_that_ends_cleanly_fails_pending_submits() -> None:
    stub, c = await break_under_a_pending_submit(None, "ended the session")
    assert await c.submit("k") == "t1"
    assert len(stub.sessions) == 2


async def test_a_failed_write_maps_its_error_and_the_next_submit_reopens() -> None:
    stub = FakeStub()
    stub.session_script = [
        SessionScript(write_error=rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "frame too large"))
    ]
    c = make_client(stub)
    with pytest.raises(errors.ResourceExhausted, match="frame too large"):
        await c.submit("k")
    assert await c.submit("k") == "t1"
    assert len(stub.sessions) == 2


# -- waiting -----------------------------------------------------------------------


async def test_as_completed_dedupes_ids_and_yields_each_once() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"a", "b", "c"})]
    c = make_client(stub)
    stream = c.as_completed(["a", "b", "a", "c"])
    seen: list[Any] = []

    async def consume() -> None:
        async for t in stream:
            seen.append(t)

    consumer = asyncio.create_task(consume())
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].watches) == 1)
    call = stub.sessions[0]
    (watch,) = call.watches
    assert list(watch.task_ids) == ["a", "b", "c"] and watch.omit_payloads is False
    # Duplicates and unwatched ids on the stream are ignored.
    call.finish(task("a", output=OUTPUT), task("zzz"))
    call.finish(task("b"), task("a"))
    call.finish(task("c", types_pb2.TASK_STATE_FAILED))
    await consumer
    assert [t.task_id for t in seen] == ["a", "b", "c"]
    assert seen[0].output_json() == {"ok": True}
    assert seen[2].state is TaskState.FAILED
    assert len(stub.writes) == 1 and not call.cancelled  # the shared stream stays open
    assert c._session is not None and c._session._routes == {}  # nothing left routed


async def test_as_completed_yields_tasks_as_they_finish() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"slow"})]
    c = make_client(stub)
    stream = c.as_completed(["slow", "fast"])
    first = await anext(stream)
    assert first.task_id == "fast" and first.output_json() == {"ok": True}
    stub.sessions[0].finish(task("slow"))
    assert (await anext(stream)).task_id == "slow"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_as_completed_rewatches_the_rest_after_a_break_with_progress() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(break_after=1)]
    c = make_client(stub)
    assert [t.task_id async for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
    assert len(stub.sessions) == 2
    assert [list(w.task_ids) for w in stub.sessions[0].watches] == [["a", "b", "c"]]
    assert [list(w.task_ids) for w in stub.sessions[1].watches] == [["b", "c"]]


async def test_as_completed_rewatches_across_several_breaks() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(break_after=1), SessionScript(break_after=1, error=None)]
    c = make_client(stub)
    assert [t.task_id async for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
    assert [[list(w.task_ids) for w in s.watches] for s in stub.sessions] == [
        [["a", "b", "c"]], [["b", "c"]], [["c"]]
    ]


async def test_as_completed_gives_up_when_the_next_session_makes_no_progress() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(break_after=1), SessionScript(break_after=0, error=None)]
    c = make_client(stub)
    got = []
    with pytest.raises(errors.Unavailable, match="ended the session"):
        async for t in c.as_completed(["a", "b"]):
            got.append(t.task_id)
    assert got == ["a"]
    assert len(stub.sessions) == 2
    assert [list(w.task_ids) for w in stub.sessions[1].watches] == [["b"]]


async def test_as_completed_raises_the_error_of_a_session_broken_without_progress() -> None:
    stub = FakeStub()
    stub.session_script = [
        SessionScript(break_after=0, error=rpc_error(grpc.StatusCode.PERMISSION_DENIED, "no entry"))
    ]
    c = make_client(stub)
    with pytest.raises(errors.PermissionDenied, match="no entry"):
        async for _ in c.as_completed(["a", "b"]):
            pass
    assert len(stub.sessions) == 1


async def test_watch_ack_not_found_raises_not_found() -> None:
    stub = FakeStub()
    stub.unknown = {"x"}
    c = make_client(stub)
    with pytest.raises(errors.NotFound, match="'x' is unknown"):
        async for _ in c.as_completed(["ok", "x"]):
            pass
    # A bad watch fails alone: the session goes on.
    assert (await c.wait("ok")).task_id == "ok"
    assert len(stub.sessions) == 1 and not stub.sessions[0].done


async def test_watch_ack_resource_exhausted_raises_resource_exhausted() -> None:
    stub = FakeStub()
    stub.max_watched = 2
    c = make_client(stub)
    with pytest.raises(errors.ResourceExhausted, match="limit of 2"):
        await c.wait_all(["a", "b", "c"])
    assert list(await c.wait_all(["a", "b"])) == ["a", "b"]
    assert len(stub.sessions) == 1


async def test_as_completed_splits_huge_id_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_session, "MAX_WATCH_IDS", 3)
    stub = FakeStub()
    stub.max_watch_ids = 3  # the fake rejects a longer watch, as the coordinator does past its limit
    c = make_client(stub)
    ids = [f"id{i}" for i in range(8)]
    seen = [t async for t in c.as_completed(ids, omit_payloads=True)]
    assert sorted(t.task_id for t in seen) == sorted(ids)
    assert all(t.outcome is not None and t.outcome.output == b"" for t in seen)
    watches = stub.sessions[0].watches
    assert [list(w.task_ids) for w in watches] == [ids[0:3], ids[3:6], ids[6:8]]
    assert all(w.omit_payloads for w in watches)
    assert len({w.id for w in watches}) == 3


async def test_a_failed_chunk_fails_the_whole_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_session, "MAX_WATCH_IDS", 2)
    stub = FakeStub()
    stub.unknown = {"id3"}
    c = make_client(stub)
    with pytest.raises(errors.NotFound, match="'id3'"):
        await c.wait_all([f"id{i}" for i in range(5)])
    assert c._session is not None and not c._session.broken


async def test_as_completed_closing_early_stops_routing() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"b"})]
    c = make_client(stub)
    stream = c.as_completed(["a", "b"])
    first = await anext(stream)
    assert first.task_id == "a"
    await stream.aclose()  # no error
    session = c._session
    assert session is not None and "b" not in session._routes
    call = stub.sessions[0]
    assert not call.cancelled  # the session is shared: closing one watch leaves it open
    # b finishing later is ignored, and the session keeps working.
    call.finish(task("b"))
    assert (await c.wait("c")).task_id == "c"
    assert c._session is session and not session.broken


async def test_two_watches_of_one_task_both_get_it() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"x"})]
    c = make_client(stub)
    w1 = asyncio.create_task(c.wait("x"))
    w2 = asyncio.create_task(c.wait_all(["x", "y"]))
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].watches) == 2)
    stub.sessions[0].finish(task("x"))  # sent once per session
    assert (await w1).task_id == "x"
    assert list(await w2) == ["x", "y"]


async def test_a_lean_copy_serves_only_the_watches_that_omit_payloads() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"x"})]
    c = make_client(stub)
    lean = asyncio.create_task(c.wait_all(["x"], omit_payloads=True))
    whole = asyncio.create_task(c.wait("x"))
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].watches) == 2)
    stub.sessions[0].finish(task("x"), lean=True)
    assert (await lean)["x"].output == b""
    assert not whole.done() and "x" in c._session._routes  # still waiting for a whole copy
    stub.sessions[0].finish(task("x", output=b"whole"))
    assert (await whole).output == b"whole" and "x" not in c._session._routes


async def test_as_completed_empty_and_string_ids() -> None:
    stub = FakeStub()
    c = make_client(stub)
    assert [t async for t in c.as_completed([])] == []
    assert stub.sessions == []  # nothing to watch: no stream
    assert [t.task_id async for t in c.as_completed("solo")] == ["solo"]
    assert [list(w.task_ids) for w in stub.sessions[0].watches] == [["solo"]]
    with pytest.raises(TypeError, match="strings"):
        async for _ in c.as_completed(["a", 1]):  # type: ignore[list-item]
            pass


async def test_wait_and_wait_all() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"a", "b"})]
    c = make_client(stub)
    assert (await c.wait("z")).task_id == "z"
    result_task = asyncio.create_task(c.wait_all(["a", "b", "a"]))
    await until(lambda: len(stub.sessions[0].watches) == 2)
    stub.sessions[0].finish(task("b"))
    stub.sessions[0].finish(task("a"))
    result = await result_task
    assert list(result) == ["a", "b"]  # input order, not completion order
    assert all(t.ok for t in result.values())
    assert list(stub.sessions[0].watches[1].task_ids) == ["a", "b"]
    assert await c.wait_all([]) == {}


async def test_wait_all_omit_payloads() -> None:
    stub = FakeStub()
    c = make_client(stub)
    result = await c.wait_all(["a"], omit_payloads=True)
    assert stub.sessions[0].watches[0].omit_payloads is True
    assert result["a"].outcome is not None and result["a"].outcome.output == b""


async def test_wait_times_out_with_wait_timeout() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"a"})]
    c = make_client(stub)
    with pytest.raises(errors.WaitTimeout, match="1 of 1"):
        await c.wait("a", timeout=0.05)
    session = c._session
    assert session is not None and "a" not in session._routes  # the watch was released
    assert not stub.sessions[0].cancelled
    with pytest.raises(errors.WaitTimeout, match="1 of 2"):
        await c.wait_all(["a", "b"], timeout=0.05)


async def test_a_wait_given_up_unwatches_the_tasks_no_other_wait_is_waiting_for() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"a", "b"})]
    c = make_client(stub)
    patient = asyncio.create_task(c.wait("b"))
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].watches) == 1)
    with pytest.raises(errors.WaitTimeout):
        await c.wait_all(["a", "b"], timeout=0.05)
    call = stub.sessions[0]
    await until(lambda: call.unwatched == ["a"])  # "b" is still waited for
    assert call.watching == {"b"}
    call.finish(task("b"))
    assert (await patient).task_id == "b"
    # Finished normally: nothing to unwatch.
    assert call.unwatched == ["a"] and len(call.watches) == 2


async def a_wait_with_its_write_held() -> tuple[FakeStub, asyncio.Event, AsyncClient, asyncio.Task[Any]]:
    """A client waiting for task "a", its watch's write held in flight until the gate is set."""
    stub = FakeStub()
    gate = asyncio.Event()
    stub.session_script = [SessionScript(hold={"a"}, gate=gate)]
    c = make_client(stub)
    first = asyncio.create_task(c.wait("a"))
    await until(lambda: bool(stub.sessions) and stub.sessions[0].in_flight == 1)
    return stub, gate, c, first


async def test_a_task_watched_again_before_its_unwatch_went_out_stays_watched() -> None:
    stub, gate, c, first = await a_wait_with_its_write_held()
    first.cancel()  # "a" is left to nobody: an unwatch is queued
    await asyncio.gather(first, return_exceptions=True)
    again = asyncio.create_task(c.wait("a"))  # queued behind the held write, with the unwatch
    await until(lambda: c._session is not None and "a" in c._session._routes)
    gate.set()
    call = stub.sessions[0]
    await until(lambda: len(call.writes) == 2)
    assert call.unwatched == [] and call.watching == {"a"}
    call.finish(task("a"))
    assert (await again).task_id == "a"


async def test_a_watch_closed_before_it_was_sent_is_undone_in_the_same_message() -> None:
    stub, gate, c, first = await a_wait_with_its_write_held()
    session = c._session
    assert session is not None
    late = session.watch(["a", "z"], False)  # queued behind the held write
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    late.close()
    gate.set()
    call = stub.sessions[0]
    # The late watch and its undoing go together: the coordinator applies watches first.
    await until(lambda: len(call.writes) == 2)
    assert [sorted(r.unwatch) for r in call.writes] == [[], ["a", "z"]]
    assert [len(r.watches) for r in call.writes] == [1, 1]
    assert call.watching == set()


# -- closing -------------------------------------------------------------------------


async def test_closed_client_refuses_calls() -> None:
    c = make_client(FakeStub())
    await c.close()
    await c.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await c.get("x")
    with pytest.raises(RuntimeError, match="closed"):
        await c.submit("k")
    with pytest.raises(RuntimeError, match="closed"):
        await c.wait("x")


async def test_close_cancels_the_session_and_fails_what_waits_on_it() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(ack_submits=False, hold={"w"})]
    c = make_client(stub)
    pending = asyncio.create_task(c.submit("k"))
    waiting = asyncio.create_task(c.wait("w"))
    await until(lambda: bool(stub.sessions) and len(stub.sessions[0].writes) >= 1
                and len(stub.sessions[0].held_submits) == 1 and len(stub.sessions[0].watches) == 1)
    session = c._session
    assert session is not None
    await c.close()
    assert stub.sessions[0].cancelled
    with pytest.raises(errors.Unavailable, match="closed"):
        await pending
    with pytest.raises(errors.Unavailable, match="closed"):
        await waiting
    assert session._writer.done() and session._reader.done()
    await c.close()  # idempotent
    assert len(stub.sessions) == 1
    with pytest.raises(RuntimeError, match="closed"):
        await c.submit("k")


# -- other calls -----------------------------------------------------------------------


async def test_unary_errors_are_mapped() -> None:
    c = make_client(FakeStub())
    with pytest.raises(errors.NotFound, match="unknown"):
        await c.get("missing")
    with pytest.raises(errors.Unavailable):
        await c.stats()


async def test_get_list_cancel_agents_drain() -> None:
    stub = FakeStub()
    c = make_client(stub)
    assert (await c.get("x")).output_json() == {"ok": True}
    page = await c.list_tasks(["failed", TaskState.PENDING], kind="k", limit=5)
    assert [t.task_id for t in page] == ["a", "b"] and page.total == 7 and len(page) == 2
    request = stub.requests[-1][1]
    assert list(request.states) == [types_pb2.TASK_STATE_FAILED, types_pb2.TASK_STATE_PENDING]
    assert request.kind == "k" and request.limit == 5
    await c.list_tasks("succeeded")
    assert list(stub.requests[-1][1].states) == [types_pb2.TASK_STATE_SUCCEEDED]
    cancelled = await c.cancel("one")
    assert [t.state for t in cancelled] == [TaskState.CANCELLED]
    assert (await c.agents(include_gone=True))[0].agent_id == "a1"
    assert stub.requests[-1][1].include_gone is True
    assert (await c.drain_agent("a1")).state.value == "DRAINING"


async def test_follow_uses_watch_tasks_not_the_session() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([[task("a")], [task("b", types_pb2.TASK_STATE_ASSIGNED)]], hang=True)]
    c = make_client(stub)
    stream = c.follow("blue", all_updates=True, omit_payloads=True)
    assert (await anext(stream)).task_id == "a"
    assert (await anext(stream)).state is TaskState.ASSIGNED
    await stream.aclose()
    ((name, request),) = stub.requests
    assert name == "WatchTasks" and request.follow_tenant == "blue"
    assert request.all_updates and request.omit_payloads
    assert stub.watch_calls[0].cancelled
    assert stub.sessions == []


async def test_follow_maps_stream_errors() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([], error=rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "tenant: bad"))]
    c = make_client(stub)
    with pytest.raises(errors.InvalidArgument, match="tenant: bad"):
        async for _ in c.follow("x"):
            pass
    assert stub.watch_calls[0].cancelled


# -- the sync client -------------------------------------------------------------------


def test_sync_client_wraps_the_async_one() -> None:
    stub = FakeStub()
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        assert c.submit("k", "x") == "t1"
        assert [s.task_id for s in c.submit_many([TaskSpec("k")] * 3, batch_size=2)] == ["t2", "t3", "t4"]
        assert c.get("z").task_id == "z"
        assert c.wait("q").ok
        assert list(c.wait_all(["b", "a", "b"])) == ["b", "a"]
        assert [t.task_id for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
        assert c.list_tasks("failed").total == 7
        assert c.cancel(["a"])[0].state is TaskState.CANCELLED
        assert c.agents()[0].agent_id == "a1"
        assert c.drain_agent("a1").agent_id == "a1"
        with pytest.raises(errors.Unavailable):
            c.stats()
        with pytest.raises(errors.InvalidArgument, match="kind: is required"):
            c.submit("")
        (call,) = stub.sessions  # everything went over one session
        assert [len(s.tasks) for s in call.submits] == [1, 2, 1, 1]
        assert [list(w.task_ids) for w in call.watches] == [["q"], ["b", "a"], ["a", "b", "c"]]
        assert not call.cancelled
    assert call.cancelled  # closing the client cancelled the session
    c.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        c.get("x")
    with pytest.raises(RuntimeError, match="closed"):
        c.submit("k")


def test_sync_wait_timeout() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"a"})]
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        with pytest.raises(errors.WaitTimeout, match="1 of 1"):
            c.wait("a", timeout=0.05)


def test_sync_as_completed_break_stops_routing() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"b"})]
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        stream = c.as_completed(["a", "b"])
        assert next(stream).task_id == "a"
        stream.close()
        session = c._async._session
        assert session is not None and "b" not in session._routes
        (call,) = stub.sessions
        assert not call.cancelled
        assert c.wait("c").task_id == "c"  # the session keeps working
        assert len(stub.sessions) == 1


def test_sync_as_completed_raises_watch_errors() -> None:
    stub = FakeStub()
    stub.max_watched = 1
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        with pytest.raises(errors.ResourceExhausted, match="limit of 1"):
            list(c.as_completed(["a", "b"]))
        stub.unknown = {"nope"}
        with pytest.raises(errors.NotFound, match="'nope'"):
            c.wait("nope")


def test_sync_submit_reopens_after_a_broken_session() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(write_error=rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))]
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        with pytest.raises(errors.Unavailable, match="reset"):
            c.submit("k")
        assert c.submit("k") == "t1"
        assert len(stub.sessions) == 2


def test_channel_options() -> None:
    opts = dict(_client_args.channel_options("127.0.0.1:7070"))
    assert opts["grpc.max_send_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.enable_http_proxy"] == 0
    # An idle session stream still notices a dead connection.
    assert opts["grpc.keepalive_time_ms"] == 20_000 and opts["grpc.http2.max_pings_without_data"] == 0
    assert "grpc.enable_http_proxy" not in dict(_client_args.channel_options("mesh.example.com:7070"))


# -- a broken session's callers and tasks --------------------------------------


async def test_concurrent_submit_many_each_get_their_own_error() -> None:
    stub = FakeStub()
    c = make_client(stub)
    a = asyncio.create_task(c.submit_many([TaskSpec("k", "a0"), TaskSpec("k", "a1")], batch_size=1))
    b = asyncio.create_task(c.submit_many([TaskSpec("k", "b0"), TaskSpec("k", "b1")], batch_size=1))
    accept = stub.accept
    held = []

    def hold_second_batches(sub):
        if sub.tasks[0].payload.endswith(b"1"):
            held.append(sub)
            return tasks_pb2.SessionAck(id=0)  # unanswered: the batch stays pending
        return accept(sub)

    stub.accept = hold_second_batches
    await until(lambda: len(held) == 2)
    stub.sessions[0].fail(rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))
    ea = await asyncio.gather(a, return_exceptions=True)
    eb = await asyncio.gather(b, return_exceptions=True)
    ea, eb = ea[0], eb[0]
    ida = {t for t, s in stub.accepted.items() if s.payload == b"a0"}
    idb = {t for t, s in stub.accepted.items() if s.payload == b"b0"}
    assert ea is not eb and len(ea.__notes__) == 1
    assert ea.accepted_task_ids == tuple(ida)
    assert eb.accepted_task_ids == tuple(idb)


async def test_a_write_error_ends_the_broken_sessions_tasks() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(write_error=rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))]
    c = make_client(stub)
    with pytest.raises(errors.Unavailable):
        await c.submit("k")
    old = c._session
    assert await c.submit("k") == "t1"  # a new session
    await c.close()
    assert old._writer.done()


async def test_a_read_error_ends_the_broken_sessions_writer() -> None:
    _, c = await break_under_a_pending_submit(rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))
    old = c._session
    assert await c.submit("k") == "t1"  # a new session replaces it
    await c.close()  # closes only the new one
    assert old._writer.done()


async def test_close_during_as_completed_after_progress_raises_unavailable() -> None:
    stub = FakeStub()
    stub.session_script = [SessionScript(hold={"b"})]
    c = make_client(stub)
    stream = c.as_completed(["a", "b"])
    assert (await anext(stream)).task_id == "a"
    nxt = asyncio.create_task(anext(stream))
    await until(lambda: "b" in c._session._routes and not nxt.done())
    await c.close()
    exc = (await asyncio.gather(nxt, return_exceptions=True))[0]
    assert isinstance(exc, errors.Unavailable)


async def test_no_session_task_is_left_pending(caplog: pytest.LogCaptureFixture) -> None:
    stub, c = await break_under_a_pending_submit(rpc_error(grpc.StatusCode.UNAVAILABLE, "reset"))
    assert await c.submit("k") == "t1"
    stub.sessions.pop(0)
    for _ in range(3):
        gc.collect()
    assert not any("destroyed but it is pending" in r.getMessage() for r in caplog.records)
    await c.close()
