"""AsyncClient's waits (as_completed, wait, wait_all) as watches on the session stream:
routing, de-duplication, rewatching after a break, limits and giving up (riding out a
longer outage is test_client_reconnect's)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from swarmmesh import _session, errors
from swarmmesh.client import AsyncClient
from swarmmesh.testing import OUTPUT, FakeCoordinator, SessionScript, finished_task, rpc_error
from swarmmesh.types import TaskState
from swarmmesh.v1 import types_pb2
from tests.support import eventually


async def test_as_completed_dedupes_ids_and_yields_each_once() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a", "b", "c"})]
    c = AsyncClient(channel=fake.channel())
    stream = c.as_completed(["a", "b", "a", "c"])
    seen: list[Any] = []

    async def consume() -> None:
        async for t in stream:
            seen.append(t)

    consumer = asyncio.create_task(consume())
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].watches) == 1)
    call = fake.sessions[0]
    (watch,) = call.watches
    assert list(watch.task_ids) == ["a", "b", "c"] and watch.omit_payloads is False
    # Duplicates and unwatched ids on the stream are ignored.
    call.finish(finished_task("a", output=OUTPUT), finished_task("zzz"))
    call.finish(finished_task("b"), finished_task("a"))
    call.finish(finished_task("c", types_pb2.TASK_STATE_FAILED))
    await consumer
    assert [t.task_id for t in seen] == ["a", "b", "c"]
    assert seen[0].output_json() == {"ok": True}
    assert seen[2].state is TaskState.FAILED
    assert len(fake.writes) == 1 and not call.cancelled  # the shared stream stays open
    assert c._session is not None and c._session._routes == {}  # nothing left routed


async def test_as_completed_yields_tasks_as_they_finish() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"slow"})]
    c = AsyncClient(channel=fake.channel())
    stream = c.as_completed(["slow", "fast"])
    first = await anext(stream)
    assert first.task_id == "fast" and first.output_json() == {"ok": True}
    fake.sessions[0].finish(finished_task("slow"))
    assert (await anext(stream)).task_id == "slow"
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_as_completed_rewatches_the_rest_after_a_break_with_progress() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(break_after=1)]
    c = AsyncClient(channel=fake.channel())
    assert [t.task_id async for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
    assert len(fake.sessions) == 2
    assert [list(w.task_ids) for w in fake.sessions[0].watches] == [["a", "b", "c"]]
    assert [list(w.task_ids) for w in fake.sessions[1].watches] == [["b", "c"]]


async def test_as_completed_rewatches_across_several_breaks() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(break_after=1), SessionScript(break_after=1, error=None)]
    c = AsyncClient(channel=fake.channel())
    assert [t.task_id async for t in c.as_completed(["a", "b", "c"])] == ["a", "b", "c"]
    assert [[list(w.task_ids) for w in s.watches] for s in fake.sessions] == [
        [["a", "b", "c"]], [["b", "c"]], [["c"]]
    ]


async def test_with_retries_off_as_completed_gives_up_when_the_next_session_makes_no_progress() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(break_after=1), SessionScript(break_after=0, error=None)]
    c = AsyncClient(channel=fake.channel(), reconnect_timeout=0)
    got = []
    with pytest.raises(errors.Unavailable, match="ended the session"):
        async for t in c.as_completed(["a", "b"]):
            got.append(t.task_id)
    assert got == ["a"]
    assert len(fake.sessions) == 2
    assert [list(w.task_ids) for w in fake.sessions[1].watches] == [["b"]]


async def test_as_completed_raises_the_error_of_a_session_broken_without_progress() -> None:
    fake = FakeCoordinator()
    fake.session_script = [
        SessionScript(break_after=0, error=rpc_error(grpc.StatusCode.PERMISSION_DENIED, "no entry"))
    ]
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.PermissionDenied, match="no entry"):
        async for _ in c.as_completed(["a", "b"]):
            pass
    assert len(fake.sessions) == 1


async def test_watch_ack_not_found_raises_not_found() -> None:
    fake = FakeCoordinator()
    fake.unknown = {"x"}
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.NotFound, match="'x' is unknown"):
        async for _ in c.as_completed(["ok", "x"]):
            pass
    # A bad watch fails alone: the session goes on.
    assert (await c.wait("ok")).task_id == "ok"
    assert len(fake.sessions) == 1 and not fake.sessions[0].done


async def test_watch_ack_resource_exhausted_raises_resource_exhausted() -> None:
    fake = FakeCoordinator()
    fake.max_watched = 2
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.ResourceExhausted, match="limit of 2"):
        await c.wait_all(["a", "b", "c"])
    assert list(await c.wait_all(["a", "b"])) == ["a", "b"]
    assert len(fake.sessions) == 1


async def test_as_completed_splits_huge_id_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_session, "MAX_WATCH_IDS", 3)
    fake = FakeCoordinator()
    fake.max_watch_ids = 3  # the fake rejects a longer watch, as the coordinator does past its limit
    c = AsyncClient(channel=fake.channel())
    ids = [f"id{i}" for i in range(8)]
    seen = [t async for t in c.as_completed(ids, omit_payloads=True)]
    assert sorted(t.task_id for t in seen) == sorted(ids)
    assert all(t.outcome is not None and t.outcome.output == b"" for t in seen)
    watches = fake.sessions[0].watches
    assert [list(w.task_ids) for w in watches] == [ids[0:3], ids[3:6], ids[6:8]]
    assert all(w.omit_payloads for w in watches)
    assert len({w.id for w in watches}) == 3


async def test_a_failed_chunk_fails_the_whole_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_session, "MAX_WATCH_IDS", 2)
    fake = FakeCoordinator()
    fake.unknown = {"id3"}
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.NotFound, match="'id3'"):
        await c.wait_all([f"id{i}" for i in range(5)])
    assert c._session is not None and not c._session.broken


async def test_as_completed_closing_early_stops_routing() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"b"})]
    c = AsyncClient(channel=fake.channel())
    stream = c.as_completed(["a", "b"])
    first = await anext(stream)
    assert first.task_id == "a"
    await stream.aclose()  # no error
    session = c._session
    assert session is not None and "b" not in session._routes
    call = fake.sessions[0]
    assert not call.cancelled  # the session is shared: closing one watch leaves it open
    # b finishing later is ignored, and the session keeps working.
    call.finish(finished_task("b"))
    assert (await c.wait("c")).task_id == "c"
    assert c._session is session and not session.broken


async def test_two_watches_of_one_task_both_get_it() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"x"})]
    c = AsyncClient(channel=fake.channel())
    w1 = asyncio.create_task(c.wait("x"))
    w2 = asyncio.create_task(c.wait_all(["x", "y"]))
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].watches) == 2)
    fake.sessions[0].finish(finished_task("x"))  # sent once per session
    assert (await w1).task_id == "x"
    assert list(await w2) == ["x", "y"]


async def test_a_lean_copy_serves_only_the_watches_that_omit_payloads() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"x"})]
    c = AsyncClient(channel=fake.channel())
    lean = asyncio.create_task(c.wait_all(["x"], omit_payloads=True))
    whole = asyncio.create_task(c.wait("x"))
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].watches) == 2)
    fake.sessions[0].finish(finished_task("x"), lean=True)
    assert (await lean)["x"].output == b""
    assert not whole.done() and "x" in c._session._routes  # still waiting for a whole copy
    fake.sessions[0].finish(finished_task("x", output=b"whole"))
    assert (await whole).output == b"whole" and "x" not in c._session._routes


async def test_as_completed_empty_and_string_ids() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    assert [t async for t in c.as_completed([])] == []
    assert fake.sessions == []  # nothing to watch: no stream
    assert [t.task_id async for t in c.as_completed("solo")] == ["solo"]
    assert [list(w.task_ids) for w in fake.sessions[0].watches] == [["solo"]]
    with pytest.raises(TypeError, match="strings"):
        async for _ in c.as_completed(["a", 1]):  # type: ignore[list-item]
            pass


async def test_wait_and_wait_all() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a", "b"})]
    c = AsyncClient(channel=fake.channel())
    assert (await c.wait("z")).task_id == "z"
    result_task = asyncio.create_task(c.wait_all(["a", "b", "a"]))
    await eventually(lambda: len(fake.sessions[0].watches) == 2)
    fake.sessions[0].finish(finished_task("b"))
    fake.sessions[0].finish(finished_task("a"))
    result = await result_task
    assert list(result) == ["a", "b"]  # input order, not completion order
    assert all(t.ok for t in result.values())
    assert list(fake.sessions[0].watches[1].task_ids) == ["a", "b"]
    assert await c.wait_all([]) == {}


async def test_wait_all_omit_payloads() -> None:
    fake = FakeCoordinator()
    c = AsyncClient(channel=fake.channel())
    result = await c.wait_all(["a"], omit_payloads=True)
    assert fake.sessions[0].watches[0].omit_payloads is True
    assert result["a"].outcome is not None and result["a"].outcome.output == b""


async def test_wait_times_out_with_wait_timeout() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a"})]
    c = AsyncClient(channel=fake.channel())
    with pytest.raises(errors.WaitTimeout, match="1 of 1"):
        await c.wait("a", timeout=0.05)
    session = c._session
    assert session is not None and "a" not in session._routes  # the watch was released
    assert not fake.sessions[0].cancelled
    with pytest.raises(errors.WaitTimeout, match="1 of 2"):
        await c.wait_all(["a", "b"], timeout=0.05)


async def test_a_wait_given_up_unwatches_the_tasks_no_other_wait_is_waiting_for() -> None:
    fake = FakeCoordinator()
    fake.session_script = [SessionScript(hold={"a", "b"})]
    c = AsyncClient(channel=fake.channel())
    patient = asyncio.create_task(c.wait("b"))
    await eventually(lambda: bool(fake.sessions) and len(fake.sessions[0].watches) == 1)
    with pytest.raises(errors.WaitTimeout):
        await c.wait_all(["a", "b"], timeout=0.05)
    call = fake.sessions[0]
    await eventually(lambda: call.unwatched == ["a"])  # "b" is still waited for
    assert call.watching == {"b"}
    call.finish(finished_task("b"))
    assert (await patient).task_id == "b"
    # Finished normally: nothing to unwatch.
    assert call.unwatched == ["a"] and len(call.watches) == 2


async def a_wait_with_its_write_held() -> tuple[FakeCoordinator, asyncio.Event, AsyncClient, asyncio.Task[Any]]:
    """A client waiting for task "a", its watch's write held in flight until the gate is set."""
    fake = FakeCoordinator()
    gate = asyncio.Event()
    fake.session_script = [SessionScript(hold={"a"}, gate=gate)]
    c = AsyncClient(channel=fake.channel())
    first = asyncio.create_task(c.wait("a"))
    await eventually(lambda: bool(fake.sessions) and fake.sessions[0].in_flight == 1)
    return fake, gate, c, first


async def test_a_task_watched_again_before_its_unwatch_went_out_stays_watched() -> None:
    fake, gate, c, first = await a_wait_with_its_write_held()
    first.cancel()  # "a" is left to nobody: an unwatch is queued
    await asyncio.gather(first, return_exceptions=True)
    again = asyncio.create_task(c.wait("a"))  # queued behind the held write, with the unwatch
    await eventually(lambda: c._session is not None and "a" in c._session._routes)
    gate.set()
    call = fake.sessions[0]
    await eventually(lambda: len(call.writes) == 2)
    assert call.unwatched == [] and call.watching == {"a"}
    call.finish(finished_task("a"))
    assert (await again).task_id == "a"


async def test_a_watch_closed_before_it_was_sent_is_undone_in_the_same_message() -> None:
    fake, gate, c, first = await a_wait_with_its_write_held()
    session = c._session
    assert session is not None
    late = session.watch(["a", "z"], False)  # queued behind the held write
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    late.close()
    gate.set()
    call = fake.sessions[0]
    # The late watch and its undoing go together: the coordinator applies watches first.
    await eventually(lambda: len(call.writes) == 2)
    assert [sorted(r.unwatch) for r in call.writes] == [[], ["a", "z"]]
    assert [len(r.watches) for r in call.writes] == [1, 1]
    assert call.watching == set()
