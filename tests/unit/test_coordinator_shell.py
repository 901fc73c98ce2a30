"""Coordinator pieces around the core: the watch hub, client sessions and the effects of dispatch."""

from __future__ import annotations

import asyncio

import pytest

from coordinator import flags
from coordinator.core.mesh import MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskSpec, TaskState
from coordinator.server import Coordinator
from coordinator.service.session import ClientSession
from coordinator.service.watch import WatchHub
from swarmmesh.v1 import tasks_pb2, types_pb2


def _core_with_hub() -> tuple[MeshCore, WatchHub, int]:
    core = MeshCore()
    hub = WatchHub()
    core.add_listener(hub.on_change)
    agent, _ = core.register(Registration("a", (), frozenset(), 10, "1", 10), 0)
    return core, hub, agent.session


def test_watcher_gets_each_task_once_when_terminal() -> None:
    core, hub, session = _core_with_hub()
    ids = [s.task_id for s in core.submit([TaskSpec("k") for _ in range(3)], 0)]
    w = hub.subscribe([core.get(t) for t in ids], all_updates=False, payloads=True)
    assert w.take() == [] and not w.done
    core.dispatch(0)
    assert w.take() == []
    core.frame("a", session, 1, [ResultIn(t, 1, TaskState.SUCCEEDED, Outcome(output=b"o")) for t in ids])
    got = w.take()
    assert sorted(t.task_id for t in got) == sorted(ids) and all(t.outcome.output == b"o" for t in got)
    assert w.done and hub.watched == 0


def test_all_updates_snapshot_each_state_and_unsubscribe_cleans_up() -> None:
    core, hub, _ = _core_with_hub()
    [s] = core.submit([TaskSpec("k", payload=b"p")], 0)
    w = hub.subscribe([core.get(s.task_id)], all_updates=True, payloads=False)
    core.dispatch(0)
    states = [t.state for t in w.take()]
    assert states == [TaskState.PENDING, TaskState.ASSIGNED]
    hub.unsubscribe(w)
    assert hub.watched == 0


def test_already_finished_tasks_are_delivered_at_once() -> None:
    core, hub, _ = _core_with_hub()
    [s] = core.submit([TaskSpec("k")], 0)
    core.cancel([s.task_id], 0)
    w = hub.subscribe([core.get(s.task_id)], all_updates=False, payloads=True)
    [t] = w.take()
    assert t.state == TaskState.CANCELLED and w.done


def test_tenant_follower_sees_only_its_tenant_and_never_ends() -> None:
    core, hub, session = _core_with_hub()
    w = hub.follow("blue", all_updates=False, payloads=True)
    subs = core.submit([TaskSpec("k", tenant="blue"), TaskSpec("k", tenant="red")], 0)
    core.dispatch(0)
    core.frame("a", session, 1, [ResultIn(s.task_id, 1, TaskState.SUCCEEDED, Outcome()) for s in subs])
    assert [t.task_id for t in w.take()] == [subs[0].task_id]
    assert not w.done
    hub.unsubscribe(w)
    core.submit([TaskSpec("k", tenant="blue")], 2)
    assert w.take() == []


async def test_a_fault_in_one_session_item_fails_that_item_only(caplog: pytest.LogCaptureFixture) -> None:
    # The Coordinator is built, never started: ClientSession only needs some of its parts.
    coord = Coordinator(flags.from_args(["--listen", "127.0.0.1:0", "--history-path", "", "--unsafe-no-journal"], {}))
    real_submit = coord.core.submit

    def submit(specs: list[TaskSpec], now: float) -> object:
        if specs[0].kind == "boom":
            raise RuntimeError("a bug")
        return real_submit(specs, now)

    coord.core.submit = submit  # type: ignore[method-assign]
    sess = _client_session(coord)
    sess.handle(tasks_pb2.SessionRequest(submits=[
        tasks_pb2.SessionSubmit(id=1, tasks=[types_pb2.TaskSpec(kind="boom")]),
        tasks_pb2.SessionSubmit(id=2, tasks=[types_pb2.TaskSpec(kind="fine")]),
    ], watches=[tasks_pb2.SessionWatch(id=3, task_ids=["nope"])]))
    response = sess.take()
    assert response is not None
    bad, good, unknown = response.acks
    assert (bad.id, bad.code) == (1, 13) and bad.message == "internal error: RuntimeError: a bug"
    assert good.code == 0 and len(good.tasks) == 1
    assert (unknown.id, unknown.code) == (3, 5) and "'nope'" in unknown.message
    assert "session submit 1 failed" in caplog.text
    sess.close()


def _client_session(coord: Coordinator) -> ClientSession:
    return ClientSession(coord.core, coord.agents, coord.hub, coord.cache_sync)


class _Outbox:
    """Stands in for an agent's stream: records what the coordinator queues on it."""

    def __init__(self, agent_id: str, session: int) -> None:
        self.agent_id = agent_id
        self.session = session
        self.assigned: list[list[str]] = []

    def send_assignments(self, recs: list[object], now: float) -> None:
        self.assigned.append([r.task_id for r in recs])  # type: ignore[attr-defined]


async def test_a_submission_is_dispatched_before_its_ack_is_queued() -> None:
    coord = Coordinator(flags.from_args(["--listen", "127.0.0.1:0", "--history-path", "", "--unsafe-no-journal"], {}))
    agent, _ = coord.core.register(Registration("a", (), frozenset(), 10, "1", 10), 0)
    outbox = _Outbox("a", agent.session)
    coord.agents.joined(outbox)  # type: ignore[arg-type]
    passes: list[float] = []
    real_dispatch = coord.core.dispatch

    def dispatch(now: float) -> object:
        passes.append(now)
        return real_dispatch(now)

    coord.core.dispatch = dispatch  # type: ignore[assignment]
    scheduled: list[asyncio.Handle] = []
    agents = coord.agents
    real_schedule = agents.schedule_dispatch

    def schedule_dispatch() -> None:
        real_schedule()
        assert agents._dispatch_soon is not None
        scheduled.append(agents._dispatch_soon)

    agents.schedule_dispatch = schedule_dispatch  # type: ignore[method-assign]
    sess = _client_session(coord)
    sess.handle(tasks_pb2.SessionRequest(submits=[
        tasks_pb2.SessionSubmit(id=1, tasks=[types_pb2.TaskSpec(kind="k"), types_pb2.TaskSpec(kind="k")])]))
    # Queued on the agent's stream before the ack, so its write starts first.
    response = sess.take()
    assert response is not None
    assert outbox.assigned == [[t.task_id for t in response.acks[0].tasks]]
    # The pass scheduled by the submission ran then, and does not run again when the loop gets to it
    # (a second pass would find nothing to assign, so only its calls show it).
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(passes) == 1
    [handle] = scheduled
    assert handle.cancelled()
    sess.close()


async def test_a_fault_in_the_dispatch_pass_still_acks_the_submission(caplog: pytest.LogCaptureFixture) -> None:
    coord = Coordinator(flags.from_args(["--listen", "127.0.0.1:0", "--history-path", "", "--unsafe-no-journal"], {}))

    def broken(now: float) -> dict[str, list[object]]:
        raise RuntimeError("a bug")

    coord.core.dispatch = broken  # type: ignore[assignment]
    sess = _client_session(coord)
    sess.handle(tasks_pb2.SessionRequest(submits=[
        tasks_pb2.SessionSubmit(id=1, tasks=[types_pb2.TaskSpec(kind="k")])]))
    response = sess.take()
    assert response is not None
    [ack] = response.acks
    assert ack.code == 0 and len(ack.tasks) == 1  # accepted, and the caller is told so
    assert coord.core.get(ack.tasks[0].task_id).state.name == "PENDING"
    assert "dispatch pass failed" in caplog.text
    sess.close()
