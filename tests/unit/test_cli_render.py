"""Table formatting and how the CLI renders tasks, agents and stats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from swarmmesh import _render as render
from swarmmesh._table import format_bytes, format_duration, format_kv, format_table, truncate
from swarmmesh.types import (
    AgentInfo,
    AgentState,
    CacheStats,
    ClusterStats,
    SubmittedTask,
    TaskInfo,
    TaskOutcome,
    TaskSpec,
    TaskState,
)


def test_format_table_aligns_numbers_right() -> None:
    text = format_table(("NAME", "COUNT", "NOTE"), [("alpha", 3, "x"), ("b", 120, None)])
    assert text.splitlines() == [
        "NAME   COUNT  NOTE",
        "-----  -----  ----",
        "alpha      3  x",
        "b        120  -",
    ]


def test_format_table_explicit_alignment_and_cells() -> None:
    text = format_table(("A", "B"), [(1.5, True), (2.25, "multi\nline")], align="lr", indent="  ")
    assert text.splitlines() == [
        "  A" + " " * 14 + "B",
        "  ----  ----------",
        "  1.50         yes",
        "  2.25  multi line",
    ]


def test_format_table_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="row 0"):
        format_table(("A", "B"), [(1,)])
    with pytest.raises(ValueError, match="align"):
        format_table(("A",), [(1,)], align="c")


def test_format_table_empty() -> None:
    assert format_table(("A", "BB"), []).splitlines() == ["A  BB", "-  --"]


def test_format_kv() -> None:
    assert format_kv([("a", 1), ("longer", "x\ny"), ("none", None)]).splitlines() == [
        "a:      1",
        "longer: x",
        "        y",
        "none:   -",
    ]
    assert format_kv([]) == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (0.0004, "400 µs"), (0.0123, "12.3 ms"), (4.24, "4.2 s"), (187, "3m07s"), (7500, "2h05m")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_bytes_and_truncate() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("ab\ncd", 10) == "ab cd"


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _task(state: TaskState = TaskState.SUCCEEDED, **kw: object) -> TaskInfo:
    outcome = TaskOutcome(output=b'{"count": 3}', content_type="application/json", duration_us=1500)
    defaults: dict[str, object] = {
        "task_id": "t-1",
        "state": state,
        "spec": TaskSpec("math.primes", b'{"n":10}', "application/json", required_labels={"math": 1}),
        "attempt": 1,
        "agent_id": "math-agent",
        "outcome": outcome,
        "created_at": T0,
        "finished_at": T0 + timedelta(milliseconds=12),
    }
    defaults.update(kw)
    return TaskInfo(**defaults)  # type: ignore[arg-type]


def test_task_detail_shows_pretty_json_output() -> None:
    text = render.task_detail(_task())
    assert "state:" in text and "SUCCEEDED" in text
    assert "required labels: math=1" in text
    assert "latency:         12.0 ms" in text
    assert "handler time:    1.5 ms" in text
    assert '"count": 3' in text


def test_task_detail_failed_and_pending() -> None:
    failed = _task(
        TaskState.FAILED, outcome=TaskOutcome(error="ValueError: empty", error_type="handler_error")
    )
    text = render.task_detail(failed)
    assert "error type:      handler_error" in text and "ValueError: empty" in text
    pending = _task(TaskState.PENDING, outcome=None, finished_at=None, pending_reason="no agent with gpu")
    assert "pending reason:  no agent with gpu" in render.task_detail(pending)


def test_tasks_table() -> None:
    failed = _task(
        TaskState.FAILED, task_id="t-2", outcome=TaskOutcome(error="boom", error_type="handler_error")
    )
    lines = render.tasks_table([_task(), failed]).splitlines()
    assert lines[0].split() == [
        "TASK",
        "ID",
        "KIND",
        "STATE",
        "AGENT",
        "ATTEMPT",
        "CREATED",
        "LATENCY",
        "HANDLER",
        "RESULT",
    ]
    assert '{"count": 3}' in lines[2]
    assert "[handler_error] boom" in lines[3]


def test_agents_and_stats_text() -> None:
    agent = AgentInfo(
        "text-agent",
        AgentState.READY,
        labels={"text": 3, "lang": 2},
        kinds=("text.wordcount",),
        capacity=8,
        in_flight=2,
        completed=10,
        cache=CacheStats(hits=1, misses=3),
        memory_rss_bytes=40 * 1024 * 1024,
    )
    table = render.agents_table([agent])
    assert "lang=2,text=3" in table and "2/8" in table and "25%" in table and "40.0 MiB" in table
    stats = ClusterStats(tasks_by_state={"SUCCEEDED": 4}, agents_ready=1, submitted_total=4, agents=(agent,))
    text = render.stats_text(stats)
    assert "succeeded=4" in text and "1 ready" in text and "text-agent" in text


def test_json_rendering() -> None:
    data = json.loads(render.dumps(_task()))
    assert data["state"] == "SUCCEEDED" and data["ok"] is True
    assert data["outcome"]["output"] == {"count": 3}  # JSON output embedded as JSON
    assert data["spec"]["payload"] == {"n": 10}
    assert data["created_at"] == "2024-01-01T00:00:00+00:00"
    assert data["latency_s"] == pytest.approx(0.012)
    binary = _task(outcome=TaskOutcome(output=b"\xff\x00"))
    assert json.loads(render.dumps(binary))["outcome"]["output"] == {"base64": "/wA="}
    text = _task(outcome=TaskOutcome(output=b"plain", content_type="text/plain"))
    assert json.loads(render.dumps(text))["outcome"]["output"] == "plain"
    submitted = json.loads(render.dumps([SubmittedTask("t", False, TaskState.PENDING)]))
    assert submitted == [{"task_id": "t", "deduplicated": False, "state": "PENDING"}]
