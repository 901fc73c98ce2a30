"""The profile from the coordinator's report through the wire to the client and the CLI (no sockets)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from coordinator.core.model import CoreError, StatusCode
from coordinator.profile import report as r
from coordinator.service.convert_profile import profile_to_proto
from coordinator.service.profile_service import check_request
from swarmmesh import Profile, Severity, cli
from swarmmesh import _convert as convert
from swarmmesh._render import dumps
from swarmmesh._render_profile import profile_text, sparkline
from swarmmesh.client import AsyncClient
from swarmmesh.errors import InvalidArgument
from swarmmesh.testing import FakeChannel
from swarmmesh.v1 import profile_pb2


def phases(queue_ms: float, exec_ms: float) -> tuple[r.PhaseStats, ...]:
    total = queue_ms + exec_ms + 0.5
    return (
        r.PhaseStats(r.QUEUE, 40, queue_ms, queue_ms, queue_ms * 1.5, queue_ms * 2, queue_ms * 3, queue_ms / total),
        r.PhaseStats(r.TRANSPORT, 40, 0.5, 0.4, 0.8, 1.2, 2.0, 0.5 / total),
        r.PhaseStats(r.EXECUTION, 40, exec_ms, exec_ms, exec_ms, exec_ms * 1.1, exec_ms * 1.2, exec_ms / total),
        r.PhaseStats(r.TOTAL, 40, total, total, total * 1.4, total * 2, total * 3, 1.0),
    )


REPORT = r.ProfileReport(
    generated_at=1_700_000_000.25,
    window_s=60.0,
    kinds=(r.KindProfile("vision", 40, 2, 0.7, phases(800.0, 50.0), 10, 0.3, 37, 1, 1, 1),),
    agents=(r.AgentProfile("vis-1", 40, 2, phases(800.0, 50.0), 0.98, 1, 300 << 20, 2.5e6, 1.0, 0.3),),
    findings=(
        r.Finding(r.Severity.CRITICAL, "saturated_kind", "vision",
                  "vision tasks wait 94% of their time in queue: the 1 vision agent is saturated (98% busy)",
                  ("add vision capacity: more agents or a higher --capacity",), (("utilization", 0.98),)),
        r.Finding(r.Severity.INFO, "cold_cache", "vision", "cache hit rate 30%", ()),
    ),
    forecasts=(r.Forecast("queue_depth", 37.0, 120.0, 0.0, 10.0, "the queue is already past 10"),),
    history=tuple(r.HistoryPoint(1_700_000_000.0 + 10 * i, 10.0, i, 1, 1, 1, 0.7, 0.0, 900.0, 0.3)
                  for i in range(5)),
)


def test_report_survives_the_wire_into_client_types() -> None:
    msg = profile_to_proto(REPORT)
    wire = profile_pb2.Profile.FromString(msg.SerializeToString())
    p = convert.profile_from_proto(wire)
    assert p.generated_at == datetime.fromtimestamp(1_700_000_000.25, tz=UTC)
    assert p.window_s == 60.0
    vision = p.kind("vision")
    assert vision is not None and vision.queued == 37 and vision.capacity == 1
    queue = vision.phase("queue")
    assert queue is not None and queue.p50_ms == 800.0 and queue.count == 40
    agent = p.agent("vis-1")
    assert agent is not None and agent.memory_growth_bytes_per_s == 2.5e6 and agent.memory_rss_bytes == 300 << 20
    assert [f.severity for f in p.findings] == [Severity.CRITICAL, Severity.INFO]
    assert p.findings[0].figures == {"utilization": 0.98}
    assert p.findings[0].recommendations == ("add vision capacity: more agents or a higher --capacity",)
    assert [f.category for f in p.problems()] == ["saturated_kind"]
    assert p.forecasts[0].seconds_to_threshold == 0.0
    assert [h.queue_depth for h in p.history] == [0, 1, 2, 3, 4] and p.history[0].at is not None


def test_unknown_severity_from_a_newer_server_is_unspecified() -> None:
    assert convert.severity_from_proto(99) is Severity.UNSPECIFIED
    assert convert.severity_from_proto(profile_pb2.Finding.SEVERITY_WARNING) is Severity.WARNING


@pytest.mark.parametrize(("window", "points", "field"), [
    (-1.0, 0, "window_s"), (math.nan, 0, "window_s"), (3601.0, 0, "window_s"), (math.inf, 0, "window_s"),
    (10.0, 10_001, "history_points"),
])
def test_service_rejects_bad_requests_naming_the_field(window: float, points: int, field: str) -> None:
    with pytest.raises(CoreError) as e:
        check_request(profile_pb2.GetProfileRequest(window_s=window, history_points=points))
    assert e.value.code == StatusCode.INVALID_ARGUMENT and e.value.message.startswith(field + ":")


def test_service_accepts_limits_and_defaults() -> None:
    check_request(profile_pb2.GetProfileRequest())
    check_request(profile_pb2.GetProfileRequest(window_s=3600, history_points=10_000, kind="nope"))


def test_client_checks_arguments_before_calling() -> None:
    for window in (0.0, -1.0, math.nan, 4000.0):
        with pytest.raises(InvalidArgument, match="window"):
            convert.profile_request_to_proto(window, "", "", 0)
    with pytest.raises(InvalidArgument, match="history_points"):
        convert.profile_request_to_proto(None, "", "", -1)
    req = convert.profile_request_to_proto(None, "k", "a", 5)
    assert (req.window_s, req.kind, req.agent_id, req.history_points) == (0.0, "k", "a", 5)


class FakeProfileStub:
    def __init__(self) -> None:
        self.requests: list[profile_pb2.GetProfileRequest] = []

    async def GetProfile(self, request: profile_pb2.GetProfileRequest, **_kw: Any) -> profile_pb2.Profile:
        self.requests.append(request)
        if request.kind == "bad":
            raise grpc.aio.AioRpcError(grpc.StatusCode.INVALID_ARGUMENT, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details="kind: bad")
        return profile_to_proto(REPORT)


async def test_async_client_profile_calls_the_profile_service() -> None:
    stub = FakeProfileStub()
    c = AsyncClient(channel=FakeChannel(stub))  # no socket
    p = await c.profile(window=30, kind="vision", history_points=3)
    assert isinstance(p, Profile) and p.kinds[0].kind == "vision"
    assert stub.requests[0].window_s == 30 and stub.requests[0].history_points == 3
    with pytest.raises(InvalidArgument, match="kind: bad"):
        await c.profile(kind="bad")


def test_text_output_tells_a_person_what_to_do() -> None:
    text = profile_text(convert.profile_from_proto(profile_to_proto(REPORT)))
    assert "kind vision: 40 succeeded, 2 failed" in text and "37 queued" in text
    for phase in ("queue", "transport", "execution", "total"):
        assert f"\n  {phase} " in text
    assert "94%" in text  # the queue's share
    assert "CRITICAL  saturated_kind (vision)" in text
    assert "-> add vision capacity" in text and "utilization=0.98" in text
    assert "+2.4 MiB/s" in text  # the agent's memory growth
    assert "already" in text and "history\n5 point(s)" in text


def test_healthy_profile_says_so() -> None:
    text = profile_text(Profile(window_s=60))
    assert "no task kinds seen" in text and "findings: none" in text


def test_json_output_is_plain_data() -> None:
    data = json.loads(dumps(convert.profile_from_proto(profile_to_proto(REPORT))))
    assert data["findings"][0]["severity"] == "CRITICAL" and data["findings"][0]["figures"] == {"utilization": 0.98}
    assert data["kinds"][0]["phases"][0]["phase"] == "queue"
    assert data["history"][0]["at"].startswith("2023-11-14T22:13:20")


def test_sparkline_scales_and_downsamples() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([2, 2]) == "▄▄" and sparkline([]) == ""
    assert len(sparkline(list(range(1000)), width=60)) == 60


def test_cli_parses_profile_options() -> None:
    ns = cli.build_parser().parse_args(["profile", "--window", "30", "--kind", "k", "--agent", "a",
                                        "--history", "20", "--json"])
    assert (ns.window, ns.kind, ns.agent, ns.history, ns.output_json) == (30.0, "k", "a", 20, True)
