"""Choosing gRPC's I/O engine around its first import."""

from __future__ import annotations

import pytest

from swarmmesh import grpc_engine


@pytest.fixture(autouse=True)
def _keep_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_engine, "engine", grpc_engine.engine)


def test_iomgr_by_default_for_the_import_only() -> None:
    env: dict[str, str] = {}
    with grpc_engine.chosen(env, modules={}):
        assert env["GRPC_EXPERIMENTS"] == "-event_engine_listener,-event_engine_client"
    assert env == {}, "child processes make their own choice"
    assert grpc_engine.engine == "iomgr"


def test_environment_restored_when_the_import_fails() -> None:
    env: dict[str, str] = {}
    with pytest.raises(ImportError), grpc_engine.chosen(env, modules={}):
        raise ImportError("no grpc")
    assert env == {}


def test_eventengine_on_request_leaves_grpc_alone() -> None:
    env = {"SWARMMESH_GRPC_ENGINE": " EventEngine "}
    with grpc_engine.chosen(env, modules={}):
        assert "GRPC_EXPERIMENTS" not in env
    assert grpc_engine.engine == "eventengine"


def test_an_explicit_grpc_experiments_decides() -> None:
    env = {"GRPC_EXPERIMENTS": "tcp_rcv_lowat"}
    with grpc_engine.chosen(env, modules={}):
        assert env["GRPC_EXPERIMENTS"] == "tcp_rcv_lowat"
    assert env == {"GRPC_EXPERIMENTS": "tcp_rcv_lowat"}
    assert grpc_engine.engine == "GRPC_EXPERIMENTS=tcp_rcv_lowat"


def test_too_late_once_grpc_is_imported() -> None:
    env: dict[str, str] = {}
    with grpc_engine.chosen(env, modules={"grpc": object()}):
        assert env == {}
    assert grpc_engine.engine == "eventengine", "gRPC read its configuration before the choice"


def test_unknown_name_falls_back_to_iomgr() -> None:
    assert grpc_engine.wanted({"SWARMMESH_GRPC_ENGINE": "quantum"}) == "iomgr"
    assert grpc_engine.wanted({"SWARMMESH_GRPC_ENGINE": ""}) == "iomgr"
