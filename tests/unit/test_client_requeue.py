"""Requeueing dead letters from the client and the CLI, against the in-memory coordinator."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from swarmmesh import _cli_args, _cli_commands, cli, errors
from swarmmesh.client import AsyncClient
from swarmmesh.sync_client import Client
from swarmmesh.testing import FakeCoordinator, finished_task, rpc_error
from swarmmesh.types import TaskState
from swarmmesh.v1 import types_pb2

DEAD = types_pb2.TASK_STATE_DEAD_LETTER


async def test_requeue_by_ids_or_by_filter() -> None:
    fake = FakeCoordinator()
    fake.listed, fake.listed_total = [finished_task("d1", DEAD), finished_task("d2", DEAD)], 5
    c = AsyncClient(channel=fake.channel())
    page = await c.requeue(["a", "b", "a"])
    assert [(t.task_id, t.state) for t in page] == [("a", TaskState.PENDING), ("b", TaskState.PENDING)]
    assert list(fake.requests[-1][1].task_ids) == ["a", "b"] and not fake.requests[-1][1].all_dead_letters
    page = await c.requeue(all_dead_letters=True, kind="ocr", tenant="t", limit=2)
    request = fake.requests[-1][1]
    assert (request.all_dead_letters, request.kind, request.tenant, request.limit) == (True, "ocr", "t", 2)
    assert [t.task_id for t in page] == ["d1", "d2"] and page.total == 5
    fake.unknown = {"gone"}
    with pytest.raises(errors.NotFound, match="'gone'"):
        await c.requeue("gone")


def test_the_sync_client_requeues_too() -> None:
    fake = FakeCoordinator()
    with Client(channel_factory=fake.channel) as c:
        assert [t.task_id for t in c.requeue("x")] == ["x"]


def test_dead_letter_is_a_terminal_state_the_cli_filters_on() -> None:
    assert TaskState.DEAD_LETTER.is_terminal
    assert TaskState.parse("dead-letter") is TaskState.parse("TASK_STATE_DEAD_LETTER") is TaskState.DEAD_LETTER
    ns = _cli_args.build_parser().parse_args(["tasks", "--state", "dead_letter"])
    assert ns.state == [[TaskState.DEAD_LETTER]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCoordinator:
    coordinator = FakeCoordinator()

    def client(*_args: Any, **_kw: Any) -> AsyncClient:
        return AsyncClient(channel=coordinator.channel())

    monkeypatch.setattr(_cli_commands, "AsyncClient", client)
    return coordinator


def test_cli_requeue_prints_what_it_sent_back(fake: FakeCoordinator, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["requeue", "t1", "t2"]) == _cli_commands.EXIT_OK
    out = capsys.readouterr().out
    assert "t1" in out and "PENDING" in out and "requeued 2 of 2 dead letter(s)" in out
    fake.listed = [finished_task("d1", DEAD)]
    assert cli.main(["--json", "requeue", "--all-dead", "--kind", "ocr", "--limit", "10"]) == _cli_commands.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert [t["task_id"] for t in data["tasks"]] == ["d1"] and data["total"] == 1
    assert fake.requests[-1][1].kind == "ocr" and fake.requests[-1][1].limit == 10
    fake.listed = []
    assert cli.main(["requeue", "--all-dead"]) == _cli_commands.EXIT_OK
    assert "no dead letters to requeue" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["requeue"], "ID...) or give --all-dead"),
    (["requeue", "t1", "--all-dead"], "ID...) or give --all-dead"),
    (["requeue", "t1", "--kind", "ocr"], "--kind, --tenant and --limit"),
])
def test_cli_requeue_refuses_a_request_it_cannot_mean(
    fake: FakeCoordinator, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli.main(argv) == _cli_commands.EXIT_ERROR
    assert message in capsys.readouterr().err and not fake.requests


def test_cli_requeue_exits_with_the_status_on_errors(fake: FakeCoordinator, capsys: pytest.CaptureFixture[str]) -> None:
    fake.failing["RequeueTasks"] = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION, "task 't1' is PENDING, not DEAD_LETTER: only dead letters can be requeued"
    )
    assert cli.main(["requeue", "t1"]) == _cli_commands.EXIT_ERROR
    assert "error: FAILED_PRECONDITION: task 't1' is PENDING" in capsys.readouterr().err
