"""AsyncClient and Client against an in-memory stub (no sockets, no channel)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
import pytest

from swarmmesh import client as client_mod
from swarmmesh import errors
from swarmmesh.client import AsyncClient
from swarmmesh.sync_client import Client
from swarmmesh.types import TaskSpec, TaskState
from swarmmesh.v1 import tasks_pb2, types_pb2

TERMINAL = types_pb2.TASK_STATE_SUCCEEDED


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def task(task_id: str, state: Any = TERMINAL, output: bytes = b"") -> Any:
    return types_pb2.Task(task_id=task_id, state=state, outcome=types_pb2.TaskOutcome(output=output))


class FakeCall:
    """Mimics a grpc.aio unary-stream call: async iterable with cancel()."""

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


class FakeStub:
    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.watch_calls: list[FakeCall] = []
        self.watch_script: list[FakeCall] = []
        self.submit_fail_at: int | None = None
        self.counter = 0

    async def SubmitTasks(self, request: Any, **_kw: Any) -> Any:
        self.requests.append(("SubmitTasks", request))
        if self.submit_fail_at is not None and len(self.requests) - 1 == self.submit_fail_at:
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "tasks[1].kind: is required")
        out = []
        for _ in request.tasks:
            self.counter += 1
            out.append(
                tasks_pb2.SubmittedTask(task_id=f"t{self.counter}", state=types_pb2.TASK_STATE_PENDING)
            )
        return tasks_pb2.SubmitTasksResponse(tasks=out)

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
        if self.watch_script:
            call = self.watch_script.pop(0)
        else:
            call = FakeCall([[task(i) for i in request.task_ids]])
        self.watch_calls.append(call)
        return call


def make_client(stub: FakeStub) -> AsyncClient:
    c = AsyncClient("127.0.0.1:1")
    c._stub = stub  # bypass the channel: these tests never open a socket
    return c


async def test_submit_encodes_one_spec() -> None:
    stub = FakeStub()
    c = make_client(stub)
    task_id = await c.submit(
        "math.primes", {"n": 5}, required_labels={"math": 1}, priority=3, dependencies=["d"]
    )
    assert task_id == "t1"
    ((name, request),) = stub.requests
    assert name == "SubmitTasks"
    (spec,) = request.tasks
    assert (
        spec.kind == "math.primes" and spec.payload == b'{"n":5}' and spec.content_type == "application/json"
    )
    assert (
        dict(spec.required_labels) == {"math": 1} and spec.priority == 3 and list(spec.dependencies) == ["d"]
    )


async def test_submit_many_chunks_in_order() -> None:
    stub = FakeStub()
    c = make_client(stub)
    specs = (TaskSpec("k", str(i)) for i in range(2500))
    submitted = await c.submit_many(specs, batch_size=1000)
    assert [s.task_id for s in submitted] == [f"t{i}" for i in range(1, 2501)]
    assert [len(r.tasks) for _, r in stub.requests] == [1000, 1000, 500]
    assert all(s.state is TaskState.PENDING for s in submitted)


async def test_submit_many_reports_accepted_ids_when_a_later_batch_fails() -> None:
    stub = FakeStub()
    stub.submit_fail_at = 1
    c = make_client(stub)
    with pytest.raises(errors.InvalidArgument) as info:
        await c.submit_many([TaskSpec("k")] * 5, batch_size=2)
    assert info.value.details == "tasks[1].kind: is required"
    assert info.value.accepted_task_ids == ("t1", "t2")
    assert any("spec #2" in note for note in info.value.__notes__)


async def test_submit_many_validates_batch_size() -> None:
    c = make_client(FakeStub())
    with pytest.raises(ValueError, match="batch_size"):
        await c.submit_many([TaskSpec("k")], batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        await c.submit_many([TaskSpec("k")], batch_size=10_001)


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


async def test_as_completed_one_stream_dedupes_and_skips_non_terminal() -> None:
    stub = FakeStub()
    stub.watch_script = [
        FakeCall(
            [
                [task("a"), task("b", types_pb2.TASK_STATE_ASSIGNED)],
                [task("b"), task("a"), task("zzz")],
                [task("c", types_pb2.TASK_STATE_FAILED)],
            ]
        )
    ]
    c = make_client(stub)
    seen = [t.task_id async for t in c.as_completed(["a", "b", "a", "c"])]
    assert seen == ["a", "b", "c"]
    watches = [r for n, r in stub.requests if n == "WatchTasks"]
    assert len(watches) == 1
    assert list(watches[0].task_ids) == ["a", "b", "c"] and watches[0].all_updates is False
    assert stub.watch_calls[0].cancelled  # the call is always released


async def test_as_completed_rewatches_after_an_early_end_with_progress() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([[task("a")]]), FakeCall([[task("b")]])]
    c = make_client(stub)
    assert [t.task_id async for t in c.as_completed(["a", "b"])] == ["a", "b"]
    watches = [list(r.task_ids) for n, r in stub.requests if n == "WatchTasks"]
    assert watches == [["a", "b"], ["b"]]


async def test_as_completed_gives_up_when_a_stream_ends_without_progress() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([[task("a")]]), FakeCall([])]
    c = make_client(stub)
    got = []
    with pytest.raises(errors.Unavailable, match="1 task"):
        async for t in c.as_completed(["a", "b"]):
            got.append(t.task_id)
    assert got == ["a"]


async def test_as_completed_maps_stream_errors() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([], error=rpc_error(grpc.StatusCode.NOT_FOUND, "task 'x' is unknown"))]
    c = make_client(stub)
    with pytest.raises(errors.NotFound, match="'x'"):
        async for _ in c.as_completed(["x"]):
            pass


async def test_as_completed_splits_huge_id_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "MAX_WATCH_IDS", 3)
    stub = FakeStub()
    c = make_client(stub)
    ids = [f"id{i}" for i in range(8)]
    seen = [t.task_id async for t in c.as_completed(ids, omit_payloads=True)]
    assert sorted(seen) == sorted(ids)
    watches = [r for n, r in stub.requests if n == "WatchTasks"]
    assert sorted(len(r.task_ids) for r in watches) == [2, 3, 3]
    assert all(r.omit_payloads for r in watches)


async def test_as_completed_closing_early_cancels_the_stream() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([[task("a")]], hang=True)]
    c = make_client(stub)
    stream = c.as_completed(["a", "b"])
    first = await anext(stream)
    assert first.task_id == "a"
    await stream.aclose()
    assert stub.watch_calls[0].cancelled


async def test_as_completed_empty_and_string_ids() -> None:
    stub = FakeStub()
    c = make_client(stub)
    assert [t async for t in c.as_completed([])] == []
    assert [t.task_id async for t in c.as_completed("solo")] == ["solo"]


async def test_wait_and_wait_all() -> None:
    stub = FakeStub()
    c = make_client(stub)
    assert (await c.wait("a")).task_id == "a"
    stub.watch_script = [FakeCall([[task("b"), task("a")]])]
    result = await c.wait_all(["a", "b"])
    assert list(result) == ["a", "b"]  # input order, not completion order


async def test_wait_times_out_with_wait_timeout() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([], hang=True)]
    c = make_client(stub)
    with pytest.raises(errors.WaitTimeout, match="1 of 1"):
        await c.wait("a", timeout=0.05)
    assert stub.watch_calls[0].cancelled


async def test_closed_client_refuses_calls() -> None:
    c = make_client(FakeStub())
    await c.close()
    await c.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await c.get("x")


def test_sync_client_wraps_the_async_one() -> None:
    stub = FakeStub()
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        assert c.submit("k", "x") == "t1"
        assert [s.task_id for s in c.submit_many([TaskSpec("k")] * 3, batch_size=2)] == ["t2", "t3", "t4"]
        assert c.get("z").task_id == "z"
        assert c.wait("q").ok
        assert list(c.wait_all(["a", "b"])) == ["a", "b"]
        assert [t.task_id for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
        assert c.list_tasks("failed").total == 7
        assert c.cancel(["a"])[0].state is TaskState.CANCELLED
        assert c.agents()[0].agent_id == "a1"
        assert c.drain_agent("a1").agent_id == "a1"
        with pytest.raises(errors.Unavailable):
            c.stats()
    c.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        c.get("x")


def test_sync_as_completed_break_closes_the_stream() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([[task("a")]], hang=True)]
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        stream = c.as_completed(["a", "b"])
        assert next(stream).task_id == "a"
        stream.close()
        assert stub.watch_calls[0].cancelled


def test_sync_as_completed_raises_stream_errors() -> None:
    stub = FakeStub()
    stub.watch_script = [FakeCall([], error=rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many ids"))]
    with Client("127.0.0.1:1") as c:
        c._async._stub = stub
        with pytest.raises(errors.ResourceExhausted, match="too many ids"):
            list(c.as_completed(["a"]))


def test_channel_options() -> None:
    opts = dict(client_mod._channel_options("127.0.0.1:7070"))
    assert opts["grpc.max_send_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.enable_http_proxy"] == 0
    assert "grpc.enable_http_proxy" not in dict(client_mod._channel_options("mesh.example.com:7070"))
