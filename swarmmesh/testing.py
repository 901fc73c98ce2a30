"""Fakes for testing code that uses the client without a coordinator.

:class:`FakeCoordinator` answers the client's calls in memory, the way the
coordinator's ``TaskService`` does: every submitted task is accepted and every
watched task finishes at once, unless a :class:`SessionScript` holds it, fails
items or breaks the stream. :class:`FakeChannel` is the ``grpc.aio.Channel``
that plugs it (or any object with methods named after the RPCs) into a client,
so no socket is opened::

    fake = FakeCoordinator()
    async with AsyncClient(channel=fake.channel()) as mesh:
        task_id = await mesh.submit("k", {"n": 1})
        assert (await mesh.wait(task_id)).ok
        assert fake.accepted[task_id].kind == "k"

    with Client(channel_factory=fake.channel) as mesh:
        ...

Everything the fake was asked is kept for assertions: ``requests`` (unary
calls and ``WatchTasks``), ``sessions`` (one :class:`FakeSessionCall` per
``Session`` stream, with its ``writes``) and ``accepted`` specs by task id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from swarmmesh.v1 import tasks_pb2, types_pb2

__all__ = [
    "OUTPUT",
    "FakeChannel",
    "FakeCoordinator",
    "FakeSessionCall",
    "FakeWatchCall",
    "SessionScript",
    "finished_task",
    "rpc_error",
]

#: The output of every task the fake finishes (unless watched without payloads).
OUTPUT = b'{"ok": true}'
_SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """The error a grpc.aio call raises when the server answers ``code``."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def finished_task(task_id: str, state: Any = _SUCCEEDED, output: bytes = b"") -> Any:
    """A ``swarmmesh.v1.Task`` message in ``state`` (a ``TASK_STATE_*`` value) with this output."""
    return types_pb2.Task(task_id=task_id, state=state, outcome=types_pb2.TaskOutcome(output=output))


class FakeChannel(grpc.aio.Channel):
    """A ``grpc.aio.Channel`` whose calls go to ``service``'s methods in this process.

    A method is found by the RPC's name (``GetTask``, ``Session``,
    ``GetProfile`` ...) and called as the generated stub's method would be:
    unary ones with the request and ``timeout``/``metadata`` keywords, their
    result awaited; streaming ones return the call object (see
    :class:`FakeWatchCall`, :class:`FakeSessionCall`). A method ``service``
    lacks answers UNIMPLEMENTED. Messages are passed as they are, not serialized.
    """

    def __init__(self, service: object) -> None:
        self.service = service
        self.closed = False

    def _multicallable(self, method: str, **_kw: Any) -> Callable[..., Any]:
        name = method.rsplit("/", 1)[-1]

        def call(*args: Any, **kwargs: Any) -> Any:
            handler = getattr(self.service, name, None)
            if handler is None:
                raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, f"{method}: not implemented by the fake")
            return handler(*args, **kwargs)

        return call

    unary_unary = unary_stream = stream_unary = stream_stream = _multicallable

    async def close(self, grace: float | None = None) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeChannel:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await asyncio.Event().wait()  # the state never changes

    async def channel_ready(self) -> None:
        return None


class FakeWatchCall:
    """A ``WatchTasks`` call (what ``AsyncClient.follow`` reads): the given batches, then
    ``error``, or the end of the stream, or (``hang``) nothing more until cancelled."""

    def __init__(self, batches: Iterable[list[Any]] = (), error: Exception | None = None,
                 hang: bool = False) -> None:
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


_END = object()


@dataclass
class SessionScript:
    """How one ``Session`` stream behaves; the default answers everything and never ends."""

    #: after this many finished tasks were sent, the stream fails with `error` (None: ends cleanly).
    break_after: int | None = None
    error: BaseException | None = field(
        default_factory=lambda: rpc_error(grpc.StatusCode.UNAVAILABLE, "the coordinator is restarting"))
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
    """A ``TaskService.Session`` stream as the client uses it (``write``, iteration, ``cancel``),
    answered as the coordinator's session service does, under its :class:`SessionScript`."""

    def __init__(self, coordinator: FakeCoordinator, script: SessionScript) -> None:
        self._coordinator = coordinator
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
        self._coordinator.writes.append(copy)
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

    # -- the server's side -----------------------------------------------------

    def _handle(self, request: tasks_pb2.SessionRequest) -> None:
        acks: list[tasks_pb2.SessionAck] = []
        finished: list[Any] = []
        lean: list[Any] = []
        for sub in request.submits:
            if self.script.ack_submits:
                acks.append(self._coordinator.accept(sub))
            else:
                self.held_submits.append(sub)
        for w in request.watches:
            ids = list(dict.fromkeys(w.task_ids))
            failure = self._coordinator.check_watch(ids, len(self.watching))
            if failure is not None:
                acks.append(tasks_pb2.SessionAck(id=w.id, code=failure[0].value[0], message=failure[1]))
                continue
            acks.append(tasks_pb2.SessionAck(id=w.id))
            for task_id in ids:
                if task_id in self.script.hold:
                    self.watching.add(task_id)
                else:
                    copies = lean if w.omit_payloads else finished
                    copies.append(self._coordinator.finished(task_id, w.omit_payloads))
        self.watching.difference_update(request.unwatch)
        if self.script.reverse_acks:
            acks.reverse()
        self._send(acks, finished, lean)

    def _send(self, acks: list[tasks_pb2.SessionAck], finished: list[Any], lean: list[Any] | None = None) -> None:
        lean = lean or []
        limit = self.script.break_after
        breaking = limit is not None and self.finished_sent + len(finished) + len(lean) >= limit
        if limit is not None and breaking:
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
        """Answer the submits held so far (see ``SessionScript.ack_submits``)."""
        held, self.held_submits = self.held_submits, []
        self._send([self._coordinator.accept(sub) for sub in held], [])

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


class FakeCoordinator:
    """The coordinator's ``TaskService`` in memory, as seen through :class:`FakeChannel`.

    Task ids are ``t1``, ``t2`` ... in order of acceptance. Set the attributes
    to shape the answers: ``states`` (task id -> ``TASK_STATE_*`` it finishes
    in), ``unknown`` (ids that answer NOT_FOUND), ``listed``/``listed_total``
    (what ``ListTasks`` returns, and the dead letters ``RequeueTasks`` with
    ``all_dead_letters`` sends back), ``agents``, ``stats``, the watch limits,
    ``failing`` (RPC name -> the error each call of it raises),
    ``session_script`` and ``watch_script`` (how the next streams behave).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []  # unary calls and WatchTasks
        self.watch_calls: list[FakeWatchCall] = []
        self.watch_script: list[FakeWatchCall] = []
        self.sessions: list[FakeSessionCall] = []
        self.session_script: list[SessionScript] = []
        self.writes: list[tasks_pb2.SessionRequest] = []  # on every session
        self.accepted: dict[str, Any] = {}  # task id -> TaskSpec
        self.keys: dict[tuple[str, str], str] = {}  # (tenant, idempotency key) -> task id
        self.unknown: set[str] = set()
        self.states: dict[str, Any] = {}
        self.listed: list[Any] = []
        self.listed_total: int | None = None  # None: len(listed)
        self.agents: list[Any] = []
        self.stats: Any = tasks_pb2.ClusterStats()
        self.failing: dict[str, BaseException] = {}
        self.max_watch_ids = 100_000
        self.max_watched = 1_000_000
        self.counter = 0

    def channel(self) -> FakeChannel:
        """A channel to give a client (``channel=``, or ``channel_factory=`` as is)."""
        return FakeChannel(self)

    # -- Session -------------------------------------------------------------

    def Session(self, **_kw: Any) -> FakeSessionCall:
        script = self.session_script.pop(0) if self.session_script else SessionScript()
        call = FakeSessionCall(self, script)
        self.sessions.append(call)
        return call

    def accept(self, sub: tasks_pb2.SessionSubmit) -> tasks_pb2.SessionAck:
        """One all-or-nothing batch, validated like SubmitTasks; a known idempotency key (per
        tenant) answers its task, deduplicated."""
        if not 1 <= len(sub.tasks) <= 10_000:
            return tasks_pb2.SessionAck(id=sub.id, code=3, message=f"tasks: {len(sub.tasks)} tasks, 1..10000")
        for i, spec in enumerate(sub.tasks):
            if not spec.kind:
                return tasks_pb2.SessionAck(id=sub.id, code=3, message=f"tasks[{i}].kind: is required")
        out = []
        for spec in sub.tasks:
            key = (spec.tenant, spec.idempotency_key)
            known = self.keys.get(key) if spec.idempotency_key else None
            if known is not None:
                out.append(tasks_pb2.SubmittedTask(task_id=known, deduplicated=True,
                                                   state=types_pb2.TASK_STATE_PENDING))
                continue
            self.counter += 1
            task_id = f"t{self.counter}"
            self.accepted[task_id] = spec
            if spec.idempotency_key:
                self.keys[key] = task_id
            out.append(tasks_pb2.SubmittedTask(task_id=task_id, state=types_pb2.TASK_STATE_PENDING))
        return tasks_pb2.SessionAck(id=sub.id, tasks=out)

    def check_watch(self, ids: list[str], watching: int) -> tuple[grpc.StatusCode, str] | None:
        """The code and message a watch of `ids` is refused with, or None."""
        if not ids:
            return grpc.StatusCode.INVALID_ARGUMENT, "task_ids: is empty: name at least one task"
        if len(ids) > self.max_watch_ids:
            return (grpc.StatusCode.INVALID_ARGUMENT,
                    f"task_ids: {len(ids)} ids, the limit per watch is {self.max_watch_ids}")
        for task_id in ids:
            if task_id in self.unknown:
                return grpc.StatusCode.NOT_FOUND, _unknown(task_id)
        if watching + len(ids) > self.max_watched:
            return (grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"task_ids: this session already watches {watching} unfinished tasks; "
                    f"{len(ids)} more would pass the limit of {self.max_watched}")
        return None

    def finished(self, task_id: str, omit_payloads: bool) -> Any:
        return finished_task(task_id, self.states.get(task_id, _SUCCEEDED), b"" if omit_payloads else OUTPUT)

    # -- unary calls and WatchTasks -------------------------------------------

    def _called(self, name: str, request: Any) -> None:
        self.requests.append((name, request))
        error = self.failing.get(name)
        if error is not None:
            raise error

    async def GetTask(self, request: Any, **_kw: Any) -> Any:
        self._called("GetTask", request)
        if request.task_id in self.unknown:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, _unknown(request.task_id))
        return self.finished(request.task_id, False)

    async def ListTasks(self, request: Any, **_kw: Any) -> Any:
        self._called("ListTasks", request)
        total = len(self.listed) if self.listed_total is None else self.listed_total
        return tasks_pb2.ListTasksResponse(tasks=self.listed, total=total)

    async def CancelTasks(self, request: Any, **_kw: Any) -> Any:
        self._called("CancelTasks", request)
        return tasks_pb2.CancelTasksResponse(
            tasks=[finished_task(i, types_pb2.TASK_STATE_CANCELLED) for i in request.task_ids]
        )

    async def RequeueTasks(self, request: Any, **_kw: Any) -> Any:
        self._called("RequeueTasks", request)
        for task_id in request.task_ids:
            if task_id in self.unknown:
                raise rpc_error(grpc.StatusCode.NOT_FOUND, _unknown(task_id))
        ids = list(request.task_ids) if not request.all_dead_letters else [t.task_id for t in self.listed]
        total = len(ids) if self.listed_total is None or not request.all_dead_letters else self.listed_total
        return tasks_pb2.RequeueTasksResponse(
            tasks=[types_pb2.Task(task_id=i, state=types_pb2.TASK_STATE_PENDING) for i in ids], total=total
        )

    async def ListAgents(self, request: Any, **_kw: Any) -> Any:
        self._called("ListAgents", request)
        return tasks_pb2.ListAgentsResponse(agents=self.agents)

    async def DrainAgent(self, request: Any, **_kw: Any) -> Any:
        self._called("DrainAgent", request)
        return types_pb2.Agent(agent_id=request.agent_id, state=types_pb2.AGENT_STATE_DRAINING)

    async def GetStats(self, request: Any, **_kw: Any) -> Any:
        self._called("GetStats", request)
        return self.stats

    def WatchTasks(self, request: Any, **_kw: Any) -> FakeWatchCall:
        self._called("WatchTasks", request)
        call = self.watch_script.pop(0) if self.watch_script else FakeWatchCall()
        self.watch_calls.append(call)
        return call


def _unknown(task_id: str) -> str:
    return f"task {task_id!r} is unknown (never submitted, or no longer retained)"
