"""TaskService.Session against a real coordinator and real sidecars.

Protocol-level checks drive the stream with raw grpc.aio stubs (write, read,
done_writing, cancel by hand); client-level checks go through AsyncClient,
which sends every submit and wait over one session.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence

import grpc
import pytest

from swarmmesh import AsyncClient, TaskSpec
from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2
from tests.integration.conftest import Mesh
from tests.support import assert_eventually

SUCCEEDED = types_pb2.TASK_STATE_SUCCEEDED
PENDING = types_pb2.TASK_STATE_PENDING
OK = 0
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
# Held back until a sidecar with this label starts: lets a test decide when tasks may finish.
LATE = {"late": 1}


def spec(payload: bytes = b"", kind: str = "k", **kw: object) -> types_pb2.TaskSpec:
    return types_pb2.TaskSpec(kind=kind, payload=payload, **kw)  # type: ignore[arg-type]


def submit(item_id: int, *specs: types_pb2.TaskSpec) -> tasks_pb2.SessionSubmit:
    return tasks_pb2.SessionSubmit(id=item_id, tasks=specs)


def watch(item_id: int, ids: Sequence[str], omit_payloads: bool = False) -> tasks_pb2.SessionWatch:
    return tasks_pb2.SessionWatch(id=item_id, task_ids=ids, omit_payloads=omit_payloads)


class RawSession:
    """One Session stream driven by hand: what was read so far is kept in `acks` and `finished`
    (every copy: whole ones, then a message's copies without payloads, also kept in `lean`)."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)])
        self.call = tasks_pb2_grpc.TaskServiceStub(self.channel).Session()
        self.acks: list[tasks_pb2.SessionAck] = []
        self.finished: list[types_pb2.Task] = []
        self.lean: list[types_pb2.Task] = []

    async def send(self, submits: Sequence[tasks_pb2.SessionSubmit] = (),
                   watches: Sequence[tasks_pb2.SessionWatch] = (), unwatch: Sequence[str] = ()) -> None:
        await self.call.write(tasks_pb2.SessionRequest(submits=submits, watches=watches, unwatch=unwatch))

    async def read_until(self, cond: Callable[[], bool], what: str, within: float = 60.0) -> None:
        async with asyncio.timeout(within):
            while not cond():
                msg = await self.call.read()
                if msg is grpc.aio.EOF:
                    raise AssertionError(f"the stream ended before {what}")
                self._take(msg)

    async def read_to_end(self, within: float = 60.0) -> None:
        async with asyncio.timeout(within):
            while (msg := await self.call.read()) is not grpc.aio.EOF:
                self._take(msg)

    def _take(self, msg: tasks_pb2.SessionResponse) -> None:
        self.acks.extend(msg.acks)
        self.finished.extend(msg.finished)
        self.finished.extend(msg.finished_without_payloads)
        self.lean.extend(msg.finished_without_payloads)

    async def acks_for(self, *ids: int) -> dict[int, tasks_pb2.SessionAck]:
        await self.read_until(lambda: set(ids) <= {a.id for a in self.acks}, f"acks {ids}")
        return {a.id: a for a in self.acks if a.id in ids}

    async def finished_for(self, ids: Sequence[str]) -> dict[str, types_pb2.Task]:
        await self.read_until(lambda: set(ids) <= {t.task_id for t in self.finished}, f"{len(ids)} finished")
        return {t.task_id: t for t in self.finished if t.task_id in ids}

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


def task_ids(ack: tasks_pb2.SessionAck) -> list[str]:
    return [t.task_id for t in ack.tasks]


def get_task(mesh: Mesh, task_id: str) -> types_pb2.Task:
    return mesh.stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), timeout=10)


# Known and reported, not what these tests are about: when a client cancels its session while the
# coordinator's write to it is in flight, session.serve sometimes ends with grpc's ExecuteBatchError
# (from context.write), which grpc logs with a traceback. Any other traceback fails the test.
CANCEL_NOISE = "ExecuteBatchError raised in core by servicer method [/swarmmesh.v1.TaskService/Session]"


def assert_coordinator_healthy(mesh: Mesh) -> None:
    coord = mesh.coordinator
    assert coord is not None and coord.popen.poll() is None, "the coordinator exited"
    mesh.stats()
    coord.output()  # flushes
    log = coord.log_file.read_text(errors="replace")
    assert log.count("Traceback") == log.count(CANCEL_NOISE), log[-5000:]


# -- 1: submit and watch on one stream ------------------------------------------------------------


async def test_submit_and_watch_on_one_session(mesh: Mesh) -> None:
    mesh.start_coordinator()
    s = RawSession(mesh.address)
    try:
        # No agent has the label yet: every task stays PENDING until the sidecar below starts.
        await s.send(submits=[submit(1, spec(b"one-a", required_labels=LATE), spec(b"one-b", required_labels=LATE)),
                              submit(2, spec(b"two", required_labels=LATE)),
                              submit(3, spec(b"three", required_labels=LATE))])
        acks = await s.acks_for(1, 2, 3)
        assert all(a.code == OK and not a.message for a in acks.values())
        ones, [two], [three] = task_ids(acks[1]), task_ids(acks[2]), task_ids(acks[3])
        assert len(set([*ones, two, three])) == 4
        assert all(t.state == PENDING and not t.deduplicated for a in acks.values() for t in a.tasks)

        # `three` is watched without payloads, then (own message, own ack) with them.
        await s.send(watches=[watch(10, ones), watch(11, [two], omit_payloads=True),
                              watch(12, [three], omit_payloads=True)])
        await s.send(watches=[watch(13, [three])])
        await s.acks_for(10, 11, 12, 13)
        assert [a.id for a in s.acks] == [1, 2, 3, 10, 11, 12, 13], "acks come in the order the items were sent"
        assert all(a.code == OK for a in s.acks)
        assert s.finished == [], "nothing can have finished: no agent matches"

        await asyncio.to_thread(mesh.start_sidecar, "a", "--label", "late=1")
        done = await s.finished_for([*ones, two, three])
        assert Counter(t.task_id for t in s.finished) == Counter([*ones, two, three]), "each task comes once"
        assert all(t.state == SUCCEEDED and t.agent_id == "a" for t in done.values())
        for task_id, payload in [(ones[0], b"one-a"), (ones[1], b"one-b"), (three, b"three")]:
            assert done[task_id].spec.payload == payload, "watched with payloads (at least once): payload kept"
            assert json.loads(done[task_id].outcome.output)["payload"] == payload.decode()
        lean = done[two]
        assert lean.spec.payload == b"" and lean.outcome.output == b"", "omit_payloads leaves the bytes out"
        assert [t.task_id for t in s.lean] == [two], "and says so: only that copy comes without payloads"
        assert lean.spec.kind == "k" and lean.task_id == two
        full = get_task(mesh, two)
        assert full.spec.payload == b"two" and json.loads(full.outcome.output)["payload"] == "two"

        # Terminal already: sent at once. Watched both ways in one message: the first copy has the bytes.
        before = len(s.finished)
        await s.send(watches=[watch(20, [two], omit_payloads=True), watch(21, [two])])
        await s.acks_for(20, 21)
        await s.read_until(lambda: len(s.finished) > before, "the terminal task again")
        first = s.finished[before]
        assert first.task_id == two and first.state == SUCCEEDED
        assert first.spec.payload == b"two" and first.outcome.output == full.outcome.output
        # Watched again, without payloads only: no bytes.
        before = len(s.finished)
        await s.send(watches=[watch(22, [ones[0]], omit_payloads=True)])
        await s.acks_for(22)
        await s.read_until(lambda: any(t.task_id == ones[0] for t in s.finished[before:]), "a lean copy")
        again = next(t for t in s.finished[before:] if t.task_id == ones[0])
        assert again.state == SUCCEEDED and again.spec.payload == b"" and again.outcome.output == b""
        # Without payloads, then with them in a later message: the later watch gets a copy with the bytes.
        before = len(s.finished)
        await s.send(watches=[watch(23, [ones[1]], omit_payloads=True)])
        await s.send(watches=[watch(24, [ones[1]])])
        await s.acks_for(23, 24)
        await s.read_until(lambda: any(t.spec.payload for t in s.finished[before:]), "a copy with the bytes")
        assert {t.task_id for t in s.finished[before:]} == {ones[1]}
    finally:
        await s.close()
    assert_coordinator_healthy(mesh)


async def test_unwatched_tasks_are_not_sent(mesh: Mesh) -> None:
    mesh.start_coordinator()
    s = RawSession(mesh.address)
    try:
        await s.send(submits=[submit(1, spec(b"x", required_labels=LATE), spec(b"y", required_labels=LATE))])
        x, y = task_ids((await s.acks_for(1))[1])
        await s.send(watches=[watch(2, [x, y])])
        await s.acks_for(2)
        # Given up, in a message that also watches it again (watches apply first), with an id
        # the session never watched (ignored, and no ack).
        await s.send(watches=[watch(3, [x])], unwatch=[x, "never-watched"])
        await s.acks_for(3)
        await asyncio.to_thread(mesh.start_sidecar, "a", "--label", "late=1")
        await s.finished_for([y])
        await asyncio.to_thread(assert_eventually, lambda: get_task(mesh, x).state == SUCCEEDED)
        # x finished before this watch was read: a copy of x queued for the session would come first.
        before = len(s.finished)
        await s.send(watches=[watch(4, [y])])
        await s.read_until(lambda: len(s.finished) > before, "y again")
        assert [t.task_id for t in s.finished] == [y, y]
        assert [a.id for a in s.acks] == [1, 2, 3, 4]
    finally:
        await s.close()
    assert_coordinator_healthy(mesh)


# -- 2: bad items fail alone ------------------------------------------------------------------------


async def test_bad_items_fail_alone_with_their_unary_status(mesh: Mesh) -> None:
    mesh.start_coordinator("--max-queued-tasks", "10")
    stub = mesh.stub
    [known] = mesh.submit([spec(b"known")])  # PENDING: no sidecar yet
    ghosts = [f"ghost-{i}" for i in range(100_001)]
    s = RawSession(mesh.address)
    try:
        await s.send(
            submits=[submit(1, spec(b"good-1")),
                     submit(2, spec(kind="")),
                     submit(3, spec(b""), spec(kind="")),  # all-or-nothing: its good spec is not accepted
                     submit(4, spec(b"good-4")),
                     submit(5, *[spec(b"too-many") for _ in range(11)])],  # more than the queue's limit
            watches=[watch(6, ["ghost-0"]),
                     watch(7, []),
                     watch(8, ghosts),
                     watch(9, [known]),
                     watch(10, ghosts[:100_000]),  # exactly the limit: checked for unknown ids, not for size
                     watch(11, [known] * 2 + ghosts[1:100_000])])  # 100,000 distinct ids
        acks = await s.acks_for(*range(1, 12))
        assert [a.id for a in s.acks] == list(range(1, 12))
        codes = {i: a.code for i, a in acks.items()}
        assert codes == {1: OK, 2: INVALID_ARGUMENT, 3: INVALID_ARGUMENT, 4: OK, 5: RESOURCE_EXHAUSTED,
                         6: NOT_FOUND, 7: INVALID_ARGUMENT, 8: INVALID_ARGUMENT, 9: OK, 10: NOT_FOUND,
                         11: NOT_FOUND}, codes

        # The same code and message as the unary forms.
        for item, specs, message in [(2, [spec(kind="")], "tasks[0].kind: is required"),
                                     (3, [spec(b""), spec(kind="")], "tasks[1].kind: is required")]:
            with pytest.raises(grpc.RpcError) as unary:
                stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=specs), timeout=10)
            assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert acks[item].message == unary.value.details() == message
            assert not acks[item].tasks
        with pytest.raises(grpc.RpcError) as unary:
            list(stub.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=["ghost-0"]), timeout=10))
        assert unary.value.code() == grpc.StatusCode.NOT_FOUND
        assert acks[6].message == unary.value.details()
        assert "'ghost-0'" in acks[6].message and "unknown" in acks[6].message
        assert acks[10].message == acks[6].message, "the first unknown id is named"
        assert "'ghost-1'" in acks[11].message  # `known` came first, and was found
        assert acks[7].message.startswith("task_ids: is empty")
        with pytest.raises(grpc.RpcError) as unary:
            list(stub.WatchTasks(tasks_pb2.WatchTasksRequest(task_ids=ghosts), timeout=30))
        assert unary.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "task_ids: 100001 ids" in unary.value.details()
        assert acks[8].message == "task_ids: 100001 ids, the limit per watch is 100000"
        assert "queue is full" in acks[5].message and acks[5].retry_after_ms >= 100

        # The good items in the same message were accepted.
        [good1], [good4] = task_ids(acks[1]), task_ids(acks[4])
        stats = mesh.stats()
        assert stats.submitted_total == 3, "known, good-1, good-4: the rejected batches left nothing behind"
        assert {t.task_id for t in stub.ListTasks(tasks_pb2.ListTasksRequest(), timeout=10).tasks} == {
            known, good1, good4}

        # The same stream goes on: a good submit, and the watches deliver.
        await s.send(submits=[submit(12, spec(b"after"))], watches=[watch(13, [good1, good4])])
        acks = await s.acks_for(12, 13)
        assert acks[12].code == OK and acks[13].code == OK
        [after] = task_ids(acks[12])
        await s.send(watches=[watch(14, [after])])
        assert (await s.acks_for(14))[14].code == OK
        await asyncio.to_thread(mesh.start_sidecar, "a")
        done = await s.finished_for([known, good1, good4, after])
        assert all(t.state == SUCCEEDED for t in done.values())
        assert json.loads(done[after].outcome.output)["payload"] == "after"
    finally:
        await s.close()
    assert_coordinator_healthy(mesh)


# -- 3: half-close ----------------------------------------------------------------------------------


async def test_half_close_still_gets_acks_and_finished_tasks_then_ok(mesh: Mesh) -> None:
    mesh.start_coordinator()
    earlier = mesh.submit([spec(b"earlier-%d" % i, required_labels=LATE) for i in range(3)])
    s = RawSession(mesh.address)
    try:
        await s.send(submits=[submit(1, spec(b"new-0", required_labels=LATE), spec(b"new-1", required_labels=LATE))])
        new = task_ids((await s.acks_for(1))[1])
        # Submits and watches, then half-close at once, before any of their acks is read.
        await s.send(submits=[submit(2, spec(b"new-2", required_labels=LATE))],
                     watches=[watch(3, earlier + new), watch(4, ["ghost"])])
        await s.call.done_writing()
        acks = await s.acks_for(2, 3, 4)
        assert acks[2].code == OK and acks[3].code == OK and acks[4].code == NOT_FOUND
        [new2] = task_ids(acks[2])
        # The watched tasks cannot finish before this sidecar starts: the stream must wait for them.
        await asyncio.to_thread(mesh.start_sidecar, "a", "--label", "late=1")
        await s.read_to_end()
        assert await s.call.code() == grpc.StatusCode.OK
        watched = earlier + new
        assert Counter(t.task_id for t in s.finished) == Counter(watched), "every watched task, once"
        assert all(t.state == SUCCEEDED and t.spec.payload for t in s.finished)
        assert [a.id for a in s.acks] == [1, 2, 3, 4]
        # The task submitted with the half-close ran too (unwatched).
        assert_eventually(lambda: get_task(mesh, new2).state == SUCCEEDED, what="new-2 runs")
    finally:
        await s.close()

    # Half-close with nothing watched: the acks, then OK at once.
    s = RawSession(mesh.address)
    try:
        await s.send(submits=[submit(7, spec(b"x"))], watches=[watch(8, [])])
        await s.call.done_writing()
        await s.read_to_end()
        assert await s.call.code() == grpc.StatusCode.OK
        assert [(a.id, a.code) for a in s.acks] == [(7, OK), (8, INVALID_ARGUMENT)]
        assert s.finished == []
    finally:
        await s.close()
    assert_coordinator_healthy(mesh)


# -- 4: a client that never reads -------------------------------------------------------------------


async def test_a_client_that_never_reads_does_not_harm_others(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a", "--capacity", "32")
    # A finished task with some bytes: every watch of it makes the coordinator queue a copy to send.
    [big] = mesh.submit([spec(b"x" * 32 * 1024)])
    assert_eventually(lambda: get_task(mesh, big).state == SUCCEEDED, what="the big task finishes")

    hog = RawSession(mesh.address)
    written = 0
    attempts = 50_000
    # Well past the coordinator's bound on unsent acks (10,000 per session).
    plenty = asyncio.Event()

    async def flood() -> None:
        nonlocal written
        for i in range(attempts):
            await hog.send(submits=[submit(2 * i + 1, spec(b"hog", tenant="hog"))], watches=[watch(2 * i + 2, [big])])
            written += 1
            if written == 12_000:
                plenty.set()

    flooding = asyncio.create_task(flood())
    try:
        async with asyncio.timeout(60):
            await plenty.wait()

        # Meanwhile, another client is served as usual.
        async with asyncio.timeout(60), AsyncClient(mesh.address) as other:
            task_id = await other.submit("k", b"other")
            done = await other.wait(task_id, timeout=60)
            assert done.ok and json.loads(done.output)["payload"] == "other"
            ids = [t.task_id for t in await other.submit_many(TaskSpec("k", f"o{i}") for i in range(200))]
            assert sorted([t.task_id async for t in other.as_completed(ids)]) == sorted(ids)
            stats = await other.stats()
            assert stats.agents_ready == 1
        assert not flooding.done(), "the coordinator stopped reading a session whose client does not read"
        assert written < attempts
    finally:
        await hog.close()
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)

    # After the cancel: every task the hog got accepted still runs, and the mesh works.
    def hog_tasks_done() -> bool:
        page = mesh.stub.ListTasks(tasks_pb2.ListTasksRequest(tenant="hog", states=[
            types_pb2.TASK_STATE_PENDING, types_pb2.TASK_STATE_ASSIGNED]), timeout=10)
        return page.total == 0

    assert_eventually(hog_tasks_done, timeout=120, what="the hog's accepted tasks finish")
    accepted = mesh.stub.ListTasks(tasks_pb2.ListTasksRequest(tenant="hog", limit=1), timeout=10).total
    # Two acks per message: the coordinator read about 5,000 of them, then left the rest in flow control.
    assert 0 < accepted < written, (accepted, written)
    stats = mesh.stats()
    assert stats.tasks_by_state.get("SUCCEEDED", 0) >= accepted
    [after] = mesh.submit([spec(b"after")])
    got, _ = mesh.wait_all([after], timeout=60)
    assert got[after].state == SUCCEEDED
    assert_coordinator_healthy(mesh)


# -- 5: cancelling a session ------------------------------------------------------------------------


async def test_cancelled_session_loses_no_accepted_task(mesh: Mesh) -> None:
    mesh.start_coordinator()
    [watched] = mesh.submit([spec(b"watched", required_labels=LATE)])
    s = RawSession(mesh.address)
    try:
        await s.send(submits=[submit(i, *[spec(b"t%d-%d" % (i, j), tenant="t5", required_labels=LATE)
                                         for j in range(10)]) for i in range(1, 4)],
                     watches=[watch(4, [watched])])

        def accepted() -> int:
            return mesh.stub.ListTasks(tasks_pb2.ListTasksRequest(tenant="t5"), timeout=10).total

        assert_eventually(lambda: accepted() == 30, what="the session's 30 tasks are accepted")
    finally:
        await s.close()  # cancels the stream; no response was read
    assert await s.call.code() == grpc.StatusCode.CANCELLED
    ids = [t.task_id for t in mesh.stub.ListTasks(tasks_pb2.ListTasksRequest(tenant="t5"), timeout=10).tasks]
    assert all(get_task(mesh, i).state == PENDING for i in ids)

    mesh.start_sidecar("a", "--label", "late=1")
    got, updates = mesh.wait_all([*ids, watched], timeout=60)
    assert updates == 31 and all(t.state == SUCCEEDED for t in got.values())
    assert sorted(json.loads(t.outcome.output)["payload"] for t in got.values() if t.task_id != watched) == sorted(
        f"t{i}-{j}" for i in range(1, 4) for j in range(10))
    assert_coordinator_healthy(mesh)


# -- 6: the Python client over the session ----------------------------------------------------------


async def test_client_many_concurrent_submits_and_waits(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a", "--capacity", "64")
    async with AsyncClient(mesh.address) as c:

        async def submit_and_wait(i: int) -> tuple[str, str]:
            task_id = await c.submit("k", f"p{i}")
            done = await c.wait(task_id, timeout=120)
            assert done.ok and done.task_id == task_id
            return task_id, json.loads(done.output)["payload"]

        results = await asyncio.gather(*(submit_and_wait(i) for i in range(200)))
        assert [p for _, p in results] == [f"p{i}" for i in range(200)]
        assert len({t for t, _ in results}) == 200

        submitted = await c.submit_many((TaskSpec("k", f"m{i}") for i in range(5000)), batch_size=1000)
        ids = [s.task_id for s in submitted]
        assert len(set(ids)) == 5000 and not any(s.deduplicated for s in submitted)
        seen = [t async for t in c.as_completed(ids, omit_payloads=True)]
        assert Counter(t.task_id for t in seen) == Counter(ids), "each id exactly once"
        assert all(t.ok and t.output == b"" for t in seen)
        # Already terminal now: waiting again gets every one at once, with the bytes this time.
        full = await c.wait_all(ids[:100], timeout=60)
        assert [json.loads(t.output)["payload"] for t in full.values()] == [f"m{i}" for i in range(100)]
        assert (await c.stats()).succeeded_total == 5200


async def test_client_wait_gets_payloads_while_a_lean_watch_of_the_task_is_in_flight(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a")
    async with AsyncClient(mesh.address) as c:
        raced = lean_ones = 0
        for i in range(10):
            task_id = await c.submit("k", f"in-{i}")
            assert (await c.wait(task_id, timeout=60)).ok
            session = c._session  # private state: the only way to line up the race deterministically
            assert session is not None
            lean = asyncio.create_task(c.wait_all([task_id], omit_payloads=True, timeout=60))
            # Yield until the session's writer has sent the lean watch (its copy not back yet) ...
            async with asyncio.timeout(10):
                while not lean.done() and not (task_id in session._routes and not session._watches):  # noqa: ASYNC110
                    await asyncio.sleep(0)
            if lean.done():
                continue  # the lean copy came back already: not the case under test
            raced += 1
            # ... then wait() for the same task, asking for its payload and output.
            full = await c.wait(task_id, timeout=60)
            await lean
            if not full.output or full.spec.payload != f"in-{i}".encode():
                lean_ones += 1
        assert raced, "the lean watch was never in flight when wait() started"
        assert lean_ones == 0, f"wait() returned {lean_ones} of {raced} tasks without their payload and output"


# -- 7: deduplication -------------------------------------------------------------------------------


async def test_idempotency_key_deduplicates_through_the_session(mesh: Mesh) -> None:
    mesh.start_coordinator()
    mesh.start_sidecar("a")
    s = RawSession(mesh.address)
    try:
        await s.send(submits=[submit(1, spec(b"first", idempotency_key="key-1")),
                              submit(2, spec(b"second", idempotency_key="key-1"), spec(b"other", tenant="t2",
                                                                                          idempotency_key="key-1"))])
        acks = await s.acks_for(1, 2)
        [first] = acks[1].tasks
        dup, other = acks[2].tasks
        assert not first.deduplicated
        assert dup.deduplicated and dup.task_id == first.task_id
        assert not other.deduplicated and other.task_id != first.task_id, "keys are per tenant"
        await s.send(watches=[watch(3, [first.task_id])])
        done = await s.finished_for([first.task_id])
        assert json.loads(done[first.task_id].outcome.output)["payload"] == "first"
        # Terminal now; still the same task, on the same stream.
        await s.send(submits=[submit(4, spec(b"third", idempotency_key="key-1"))])
        [again] = (await s.acks_for(4))[4].tasks
        assert again.deduplicated and again.task_id == first.task_id and again.state == SUCCEEDED
    finally:
        await s.close()
    # And through the client: same id, deduplicated=True; shared with the unary form.
    async with AsyncClient(mesh.address) as c:
        assert await c.submit("k", b"via-client", idempotency_key="key-1") == first.task_id
        [sub] = await c.submit_many([TaskSpec("k", b"x", idempotency_key="key-1")])
        assert sub.deduplicated and sub.task_id == first.task_id
        new = await c.submit("k", b"new", idempotency_key="key-2")
    [unary] = mesh.stub.SubmitTasks(tasks_pb2.SubmitTasksRequest(tasks=[spec(idempotency_key="key-2")]),
                                    timeout=10).tasks
    assert unary.deduplicated and unary.task_id == new
    stats = mesh.stats()
    assert stats.deduplicated_total == 5 and stats.submitted_total == 3
