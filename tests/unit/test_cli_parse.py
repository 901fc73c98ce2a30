"""CLI argument parsing, payload reading, delegation and error reporting (no sockets)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import grpc
import pytest

from swarmmesh import _cli_args, _cli_commands, _cli_delegate, cli, errors
from swarmmesh.types import TaskState


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_label_arg() -> None:
    assert _cli_args.label_arg("math=3") == ("math", 3)
    assert _cli_args.label_arg("gpu") == ("gpu", 0)
    for bad in ("=3", "math=x", "math=-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _cli_args.label_arg(bad)


def test_states_arg_accepts_lists_and_prefixes() -> None:
    assert _cli_args.states_arg("pending,TASK_STATE_FAILED") == [TaskState.PENDING, TaskState.FAILED]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown task state"):
        _cli_args.states_arg("done")


def test_submit_flags() -> None:
    ns = parse(
        "submit", "math.primes", '{"n": 5}', "--json", "--label", "math=2", "--label", "fast",
        "--prefer", "gpu=1", "--priority", "7", "--tenant", "t", "--timeout-ms", "900",
        "--idempotency-key", "k", "--wait", "--count", "1",
    )  # fmt: skip
    assert ns.kind == "math.primes" and ns.payload == '{"n": 5}' and ns.payload_json
    assert ns.label == [("math", 2), ("fast", 0)] and ns.prefer == [("gpu", 1)]
    assert (ns.priority, ns.tenant, ns.timeout_ms, ns.idempotency_key) == (7, "t", 900, "k")
    assert ns.wait and ns.count == 1
    assert ns.output_json is False  # --json after submit is about the payload
    spec = _cli_commands.spec_from_args(ns)
    assert spec.payload == b'{"n":5}' and spec.content_type == "application/json"
    assert spec.required_labels == {"math": 2, "fast": 0} and spec.preferred_labels == {"gpu": 1}


def test_global_options_before_or_after_the_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_cli_args.ENV_COORDINATOR, "10.0.0.1:9")
    ns = parse("tasks")
    assert ns.coordinator == "10.0.0.1:9"
    assert ns.output_json is False and ns.rpc_timeout == 30.0
    ns = parse(
        "--coordinator", "127.0.0.1:1", "--json", "tasks", "--state", "failed", "--state", "pending,assigned"
    )
    assert ns.coordinator == "127.0.0.1:1" and ns.output_json
    assert ns.state == [[TaskState.FAILED], [TaskState.PENDING, TaskState.ASSIGNED]]
    ns = parse("agents", "--all", "--json", "--coordinator", "127.0.0.1:2", "--rpc-timeout", "2")
    assert ns.include_gone and ns.output_json and ns.coordinator == "127.0.0.1:2" and ns.rpc_timeout == 2.0
    monkeypatch.delenv(_cli_args.ENV_COORDINATOR)
    assert parse("stats").coordinator == "127.0.0.1:7070"


def test_other_subcommands() -> None:
    assert parse("task", "abc", "--wait", "--wait-timeout", "2.5").wait_timeout == 2.5
    assert parse("cancel", "a", "b").task_ids == ["a", "b"]
    assert parse("drain", "agent-1").agent_id == "agent-1"
    assert parse("tasks", "--kind", "k", "--limit", "5", "--agent", "a").limit == 5
    ns = parse("demo", "--tasks", "10", "--quiet", "--keep-running")
    assert (ns.tasks, ns.quiet, ns.keep_running) == (10, True, True)


@pytest.mark.parametrize(
    "argv",
    [
        ["tasks", "--limit", "0"],
        ["submit"],
        ["submit", "k", "--label", "x=y"],
        ["submit", "k", "--count", "0"],
        ["cancel"],
        ["task", "x", "--wait-timeout", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == _cli_commands.EXIT_USAGE
    assert "COMMAND" in capsys.readouterr().err


def _payload_ns(payload: str | None, *, as_json: bool = False, content_type: str = "") -> argparse.Namespace:
    return argparse.Namespace(payload=payload, payload_json=as_json, content_type=content_type)


def test_read_payload_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _cli_commands.read_payload(_payload_ns(None)) == (b"", "")
    assert _cli_commands.read_payload(_payload_ns("hello")) == ("hello", "")
    data = tmp_path / "p.bin"
    data.write_bytes(b"\x00\xff")
    assert _cli_commands.read_payload(_payload_ns(f"@{data}", content_type="image/raw")) == (b"\x00\xff", "image/raw")
    js = tmp_path / "p.json"
    js.write_text('{ "a" : [1, 2] }')
    assert _cli_commands.read_payload(_payload_ns(f"@{js}", as_json=True)) == (b'{"a":[1,2]}', "application/json")
    assert _cli_commands.read_payload(_payload_ns("42", as_json=True)) == (b"42", "application/json")
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"from stdin")))
    assert _cli_commands.read_payload(_payload_ns("-")) == (b"from stdin", "")


def test_read_payload_errors(tmp_path: Path) -> None:
    with pytest.raises(_cli_commands.CLIError, match="not valid JSON"):
        _cli_commands.read_payload(_payload_ns("{bad", as_json=True))
    with pytest.raises(_cli_commands.CLIError, match="cannot read payload file"):
        _cli_commands.read_payload(_payload_ns(f"@{tmp_path / 'missing'}"))
    raw = tmp_path / "raw"
    raw.write_bytes(b"\xff\xfe")
    with pytest.raises(_cli_commands.CLIError, match="not UTF-8"):
        _cli_commands.read_payload(_payload_ns(f"@{raw}", as_json=True))


def test_split_delegated() -> None:
    assert _cli_delegate.split_delegated(["coordinator", "--listen", "127.0.0.1:0"]) == (
        "coordinator",
        ["--listen", "127.0.0.1:0"],
    )
    assert _cli_delegate.split_delegated(["--json", "coordinator", "--help"]) == ("coordinator", ["--help"])
    assert _cli_delegate.split_delegated(["--coordinator", "127.0.0.1:5", "sidecar", "--agent-id", "a"]) == (
        "sidecar",
        ["--coordinator", "127.0.0.1:5", "--agent-id", "a"],
    )
    assert _cli_delegate.split_delegated(["--coordinator=127.0.0.1:5", "sidecar"]) == (
        "sidecar",
        ["--coordinator", "127.0.0.1:5"],
    )
    assert _cli_delegate.split_delegated(["tasks", "coordinator"]) is None
    assert _cli_delegate.split_delegated(["--coordinator"]) is None
    assert _cli_delegate.split_delegated([]) is None


def test_delegation_calls_main_with_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("coordinator.__main__")

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 4

    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "coordinator.__main__", fake)
    assert cli.main(["coordinator", "--listen", "127.0.0.1:0", "--help"]) == 4
    assert seen == [["--listen", "127.0.0.1:0", "--help"]]


def test_delegation_to_a_missing_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(_cli_delegate.DELEGATES, "sidecar", ("swarmmesh_no_such_pkg.__main__", "x"))
    assert cli.main(["sidecar"]) == _cli_commands.EXIT_ERROR
    assert "not installed" in capsys.readouterr().err


class FailingClient:
    """Stands in for AsyncClient: every call raises the configured error."""

    error: Exception = errors.Unavailable("failed to connect to all addresses")

    def __init__(self, *_a: Any, **_kw: Any) -> None:
        pass

    async def __aenter__(self) -> FailingClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        async def fail(*_a: Any, **_kw: Any) -> Any:
            raise self.error

        return fail


def test_unreachable_coordinator_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli_commands, "AsyncClient", FailingClient)
    assert cli.main(["--coordinator", "127.0.0.1:1", "stats"]) == _cli_commands.EXIT_ERROR
    err = capsys.readouterr().err
    assert "cannot reach the coordinator at 127.0.0.1:1" in err
    assert "UNAVAILABLE" in err and "Traceback" not in err


def test_server_errors_show_code_and_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli_commands, "AsyncClient", FailingClient)
    monkeypatch.setattr(
        FailingClient, "error", errors.error_for(grpc.StatusCode.NOT_FOUND, "task 'x' is unknown")
    )
    assert cli.main(["task", "x"]) == _cli_commands.EXIT_ERROR
    assert "error: NOT_FOUND: task 'x' is unknown" in capsys.readouterr().err


def test_submit_refuses_count_with_idempotency_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_cli_commands, "AsyncClient", FailingClient)
    assert cli.main(["submit", "k", "--count", "2", "--idempotency-key", "a"]) == _cli_commands.EXIT_ERROR
    assert "--idempotency-key" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert "0.1.0" in capsys.readouterr().out


def test_json_output_is_valid(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from swarmmesh.types import AgentInfo, AgentState

    class AgentsClient(FailingClient):
        async def agents(self, include_gone: bool = False) -> list[AgentInfo]:
            return [AgentInfo("a1", AgentState.READY, labels={"math": 3}, capacity=8)]

    monkeypatch.setattr(_cli_commands, "AsyncClient", AgentsClient)
    assert cli.main(["agents", "--json"]) == _cli_commands.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data[0]["agent_id"] == "a1" and data[0]["state"] == "READY" and data[0]["labels"] == {"math": 3}
    assert cli.main(["agents"]) == _cli_commands.EXIT_OK
    out = capsys.readouterr().out
    assert "AGENT" in out and "a1" in out and "math=3" in out
