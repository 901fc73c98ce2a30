"""Which event loop the processes run on."""

from __future__ import annotations

import asyncio
import sys

import pytest

from swarmmesh import eventloop


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARMMESH_EVENT_LOOP", raising=False)
    assert eventloop.loop_name() == "uvloop"


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMMESH_EVENT_LOOP", " Asyncio ")
    assert eventloop.loop_name() == "asyncio"


def test_the_standard_loop_where_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARMMESH_EVENT_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert eventloop.loop_name() == "asyncio"


def test_run_runs_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    for name in ("uvloop", "asyncio"):
        monkeypatch.setenv("SWARMMESH_EVENT_LOOP", name)
        assert eventloop.run(which()) == name
