"""Wire conversion, payload encoding, states and error mapping (no sockets)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import grpc
import pytest

from swarmmesh import _convert, errors
from swarmmesh.types import AgentState, SubmittedTask, TaskInfo, TaskOutcome, TaskSpec, TaskState
from swarmmesh.v1 import tasks_pb2, types_pb2


@pytest.mark.parametrize(
    ("payload", "content_type", "expected"),
    [
        (b"\x00\x01", "", (b"\x00\x01", "")),
        (bytearray(b"ab"), "application/x", (b"ab", "application/x")),
        ("héllo", "", ("héllo".encode(), "text/plain")),
        ("a,b", "text/csv", (b"a,b", "text/csv")),
        ({"n": 1, "s": "é"}, "", ('{"n":1,"s":"é"}'.encode(), "application/json")),
        ([1, 2], "", (b"[1,2]", "application/json")),
        ((1, "x"), "", (b'[1,"x"]', "application/json")),
        (None, "", (b"", "")),
    ],
)
def test_encode_payload(payload: object, content_type: str, expected: tuple[bytes, str]) -> None:
    assert _convert.encode_payload(payload, content_type) == expected  # type: ignore[arg-type]


def test_encode_payload_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="bytes, str, dict or list"):
        _convert.encode_payload(3.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="JSON-serialisable"):
        _convert.encode_payload({"x": object()})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        _convert.encode_payload({"x": float("nan")})


def test_task_spec_round_trip() -> None:
    spec = TaskSpec(
        kind="math.primes",
        payload={"n": 10},
        required_labels={"math": 2},
        preferred_labels={"fast": 1},
        priority=-5,
        tenant="t1",
        timeout_ms=1500,
        idempotency_key="k",
        cache_key="c",
        dependencies=["d1", "d2"],
        trace_context={"traceparent": "00-abc-def-01"},
        max_attempts=3,
    )
    msg = _convert.task_spec_to_proto(spec)
    assert msg.payload == b'{"n":10}'
    assert msg.content_type == "application/json"
    back = _convert.task_spec_from_proto(msg)
    assert back.payload == b'{"n":10}'
    assert back.required_labels == {"math": 2}
    assert back.preferred_labels == {"fast": 1}
    assert back.dependencies == ("d1", "d2")
    assert (back.priority, back.tenant, back.timeout_ms, back.max_attempts) == (-5, "t1", 1500, 3)
    assert (back.idempotency_key, back.cache_key) == ("k", "c")
    assert back.trace_context == {"traceparent": "00-abc-def-01"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (TaskSpec("k", required_labels={"m": -1}), r"required_labels\['m'\]"),
        (TaskSpec("k", preferred_labels={"m": "high"}), r"preferred_labels\['m'\]"),  # type: ignore[dict-item]
        (TaskSpec("k", required_labels={"": 1}), "non-empty"),
        (TaskSpec("k", priority=2**40), "kind 'k'"),
    ],
)
def test_task_spec_bad_values_are_invalid_argument(spec: TaskSpec, message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=message) as info:
        _convert.task_spec_to_proto(spec)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_dependencies_must_not_be_a_string() -> None:
    with pytest.raises(TypeError, match="dependencies"):
        _convert.task_spec_to_proto(TaskSpec("k", dependencies="abc"))


def _ts(seconds: int, nanos: int = 0) -> dict[str, int]:
    return {"seconds": seconds, "nanos": nanos}


def test_task_from_proto_terminal() -> None:
    msg = types_pb2.Task(
        task_id="t-1",
        spec=types_pb2.TaskSpec(kind="text.wordcount", payload=b"hi", content_type="text/plain"),
        state=types_pb2.TASK_STATE_SUCCEEDED,
        attempt=2,
        agent_id="a1",
        outcome=types_pb2.TaskOutcome(
            output=b'{"words": 1}', content_type="application/json", duration_us=250, cache_hit=True
        ),
        created_at=_ts(1_700_000_000),
        assigned_at=_ts(1_700_000_000, 500_000_000),
        finished_at=_ts(1_700_000_001, 250_000_000),
    )
    task = _convert.task_from_proto(msg)
    assert task.state is TaskState.SUCCEEDED and task.ok and task.terminal
    assert task.kind == "text.wordcount" and task.attempt == 2 and task.agent_id == "a1"
    assert task.output_json() == {"words": 1}
    assert task.output_text() == '{"words": 1}'
    assert task.outcome is not None and task.outcome.cache_hit and task.outcome.duration_us == 250
    assert task.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert task.latency_s == pytest.approx(1.25)


def test_conversions_built_without_init_set_every_field_as_init_would() -> None:
    # task_from_proto fills the frozen dataclasses' __dict__ directly (see _convert._frozen).
    msg = types_pb2.Task(
        task_id="t-9", state=types_pb2.TASK_STATE_FAILED, attempt=3, agent_id="a2", pending_reason="p",
        strategy="hybrid", routing_reason="r",
        spec=types_pb2.TaskSpec(kind="k", payload=b"x", content_type="text/plain", required_labels={"gpu": 1},
                                preferred_labels={"fast": 2}, priority=5, tenant="t", timeout_ms=9,
                                idempotency_key="i", cache_key="c", dependencies=["d"],
                                trace_context={"traceparent": "tp"}, max_attempts=4),
        outcome=types_pb2.TaskOutcome(output=b"o", content_type="text/plain", error="e", error_type="handler_error",
                                      duration_us=7, cache_hit=True),
        created_at=_ts(1_700_000_000), assigned_at=_ts(1_700_000_001), finished_at=_ts(1_700_000_002),
    )
    task = _convert.task_from_proto(msg)
    for obj in (task, task.spec, task.outcome):
        assert set(vars(obj)) == {f.name for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    spec = TaskSpec("k", b"x", "text/plain", {"gpu": 1}, {"fast": 2}, 5, "t", 9, "i", "c", ("d",),
                    {"traceparent": "tp"}, 4)
    outcome = TaskOutcome(b"o", "text/plain", "e", "handler_error", 7, True)
    at = [datetime.fromtimestamp(1_700_000_000 + i, UTC) for i in range(3)]
    assert task == TaskInfo("t-9", TaskState.FAILED, spec, 3, "a2", outcome, *at, "p", "hybrid", "r")
    assert task.spec == spec and hash(task.outcome) == hash(outcome)
    sub = _convert.submitted_from_proto(tasks_pb2.SubmittedTask(task_id="t-1", deduplicated=True,
                                                                state=types_pb2.TASK_STATE_PENDING))
    assert set(vars(sub)) == {f.name for f in dataclasses.fields(sub)}
    expected = SubmittedTask("t-1", True, TaskState.PENDING)
    assert sub == expected and hash(sub) == hash(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.attempt = 4  # type: ignore[misc]


def test_task_from_proto_pending_has_no_outcome_or_times() -> None:
    msg = types_pb2.Task(
        task_id="t-2", state=types_pb2.TASK_STATE_PENDING, pending_reason="no agent has label gpu"
    )
    task = _convert.task_from_proto(msg)
    assert task.outcome is None
    assert task.finished_at is None and task.created_at is None and task.latency_s is None
    assert not task.ok and not task.terminal
    assert task.output == b"" and task.error == "" and task.error_type == ""
    assert task.pending_reason == "no agent has label gpu"


def test_failed_task_error_fields() -> None:
    msg = types_pb2.Task(
        task_id="t-3",
        state=types_pb2.TASK_STATE_FAILED,
        outcome=types_pb2.TaskOutcome(error="boom", error_type="handler_error"),
    )
    task = _convert.task_from_proto(msg)
    assert task.terminal and not task.ok
    assert (task.error, task.error_type) == ("boom", "handler_error")
    with pytest.raises(ValueError):
        task.output_json()


def test_unknown_enum_values_map_to_unspecified() -> None:
    assert _convert.task_state_from_proto(99) is TaskState.UNSPECIFIED
    assert _convert.agent_state_from_proto(99) is AgentState.UNSPECIFIED


@pytest.mark.parametrize("text", ["failed", "FAILED", "TASK_STATE_FAILED", " Failed "])
def test_task_state_parse(text: str) -> None:
    assert TaskState.parse(text) is TaskState.FAILED
    assert _convert.task_state_to_proto(text) == types_pb2.TASK_STATE_FAILED


def test_task_state_parse_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="choose from pending"):
        TaskState.parse("done")
    assert TaskState.parse("canceled") is TaskState.CANCELLED


def test_agent_and_stats_from_proto() -> None:
    agent = types_pb2.Agent(
        agent_id="math-agent",
        labels={"math": 3},
        kinds=["math.primes"],
        capacity=8,
        state=types_pb2.AGENT_STATE_READY,
        in_flight=2,
        completed=10,
        failed=1,
        latencies=[types_pb2.KindLatency(kind="math.primes", ewma_ms=1.5, completed=10)],
        cache=types_pb2.CacheStats(hits=3, misses=1),
        last_seen=_ts(1_700_000_000),
    )
    stats = tasks_pb2.ClusterStats(
        tasks_by_state={"SUCCEEDED": 10}, agents_ready=1, submitted_total=11, uptime_s=2.5, agents=[agent]
    )
    converted = _convert.stats_from_proto(stats)
    assert converted.tasks_by_state == {"SUCCEEDED": 10}
    assert converted.submitted_total == 11 and converted.uptime_s == 2.5
    (a,) = converted.agents
    assert a.state is AgentState.READY and a.labels == {"math": 3} and a.kinds == ("math.primes",)
    assert a.latencies[0].ewma_ms == 1.5
    assert a.cache is not None and a.cache.hit_rate == 0.75
    assert a.connected_at is None and a.last_seen is not None
    no_cache = _convert.agent_from_proto(types_pb2.Agent(agent_id="x"))
    assert no_cache.cache is None and no_cache.state is AgentState.UNSPECIFIED


def test_submitted_from_proto() -> None:
    s = _convert.submitted_from_proto(
        tasks_pb2.SubmittedTask(task_id="t", deduplicated=True, state=types_pb2.TASK_STATE_PENDING)
    )
    assert (s.task_id, s.deduplicated, s.state) == ("t", True, TaskState.PENDING)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.OUT_OF_RANGE, errors.InvalidArgument),
        (grpc.StatusCode.DATA_LOSS, errors.Internal),
        (grpc.StatusCode.UNKNOWN, errors.SwarmMeshError),
    ],
)
def test_from_rpc_error_keeps_code_and_message(
    code: grpc.StatusCode, cls: type[errors.SwarmMeshError]
) -> None:
    rpc_error = grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="tasks[3].kind: required"
    )
    err = errors.from_rpc_error(rpc_error)
    assert type(err) is cls
    assert err.code is code
    assert err.details == "tasks[3].kind: required"
    assert str(err) == "tasks[3].kind: required"
    assert err.code_name == code.name
    assert code.name in repr(err)


def test_error_hierarchy_matches_builtin_exceptions() -> None:
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.Unavailable, ConnectionError)
    assert issubclass(errors.WaitTimeout, TimeoutError)
    assert issubclass(errors.WaitTimeout, errors.SwarmMeshError)
    assert str(errors.SwarmMeshError()) == "UNKNOWN"


def test_output_json_of_spec_payload_is_compact() -> None:
    msg = _convert.submit_request_to_proto([TaskSpec("a", {"x": [1, 2]}), TaskSpec("b", "t")])
    assert [
        json.loads(t.payload) if t.content_type == "application/json" else t.payload for t in msg.tasks
    ] == [
        {"x": [1, 2]},
        b"t",
    ]
