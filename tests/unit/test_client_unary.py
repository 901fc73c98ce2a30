"""AsyncClient's unary calls and follow(), the channel it is given, and its channel options."""

from __future__ import annotations

import grpc
import pytest

from swarmmesh import _client_args, errors
from swarmmesh.client import AsyncClient
from swarmmesh.testing import FakeCoordinator, FakeWatchCall, finished_task, rpc_error
from swarmmesh.types import TaskState
from swarmmesh.v1 import types_pb2


async def test_unary_errors_are_mapped() -> None:
    fake = FakeCoordinator()
    fake.unknown = {"missing"}
    fake.failing["GetStats"] = rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.NotFound, match="unknown"):
        await c.get("missing")
    with pytest.raises(errors.Unavailable):
        await c.stats()


async def test_get_list_cancel_agents_drain() -> None:
    fake = FakeCoordinator()
    fake.listed, fake.listed_total = [finished_task("a"), finished_task("b")], 7
    fake.agents = [types_pb2.Agent(agent_id="a1", state=types_pb2.AGENT_STATE_READY)]
    c = AsyncClient(channel=fake.channel())
    assert (await c.get("x")).output_json() == {"ok": True}
    page = await c.list_tasks(["failed", TaskState.PENDING], kind="k", limit=5)
    assert [t.task_id for t in page] == ["a", "b"] and page.total == 7 and len(page) == 2
    request = fake.requests[-1][1]
    assert list(request.states) == [types_pb2.TASK_STATE_FAILED, types_pb2.TASK_STATE_PENDING]
    assert request.kind == "k" and request.limit == 5
    await c.list_tasks("succeeded")
    assert list(fake.requests[-1][1].states) == [types_pb2.TASK_STATE_SUCCEEDED]
    cancelled = await c.cancel("one")
    assert [t.state for t in cancelled] == [TaskState.CANCELLED]
    assert (await c.agents(include_gone=True))[0].agent_id == "a1"
    assert fake.requests[-1][1].include_gone is True
    assert (await c.drain_agent("a1")).state.value == "DRAINING"


async def test_follow_uses_watch_tasks_not_the_session() -> None:
    fake = FakeCoordinator()
    batches = [[finished_task("a")], [finished_task("b", types_pb2.TASK_STATE_ASSIGNED)]]
    fake.watch_script = [FakeWatchCall(batches, hang=True)]
    c = AsyncClient(channel=fake.channel())
    stream = c.follow("blue", all_updates=True, omit_payloads=True)
    assert (await anext(stream)).task_id == "a"
    assert (await anext(stream)).state is TaskState.ASSIGNED
    await stream.aclose()
    ((name, request),) = fake.requests
    assert name == "WatchTasks" and request.follow_tenant == "blue"
    assert request.all_updates and request.omit_payloads
    assert fake.watch_calls[0].cancelled
    assert fake.sessions == []


async def test_follow_maps_stream_errors() -> None:
    fake = FakeCoordinator()
    fake.watch_script = [FakeWatchCall([], error=rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "tenant: bad"))]
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.InvalidArgument, match="tenant: bad"):
        async for _ in c.follow("x"):
            pass
    assert fake.watch_calls[0].cancelled


async def test_a_given_channel_is_called_through_and_left_open() -> None:
    fake = FakeCoordinator()
    channel = fake.channel()
    async with AsyncClient("coordinator.invalid:1", channel=channel) as c:
        assert c.address == "coordinator.invalid:1"
        assert (await c.get("x")).task_id == "x"
    assert [name for name, _ in fake.requests] == ["GetTask"]
    assert not channel.closed  # the caller's to close


async def test_a_method_the_fake_lacks_is_unimplemented() -> None:
    c = AsyncClient(channel=FakeCoordinator().channel())
    with pytest.raises(errors.Unimplemented, match="Invalidate"):
        await c.invalidate("dep")


def test_channel_options() -> None:
    opts = dict(_client_args.channel_options("127.0.0.1:7070"))
    assert opts["grpc.max_send_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.max_receive_message_length"] == 32 * 1024 * 1024
    assert opts["grpc.enable_http_proxy"] == 0
    # An idle session stream still notices a dead connection.
    assert opts["grpc.keepalive_time_ms"] == 20_000 and opts["grpc.http2.max_pings_without_data"] == 0
    assert "grpc.enable_http_proxy" not in dict(_client_args.channel_options("mesh.example.com:7070"))
