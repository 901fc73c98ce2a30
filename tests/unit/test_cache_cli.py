"""The client side of the cache: `swarmmesh invalidate`, conversions and rendering."""

from __future__ import annotations

from swarmmesh import _convert
from swarmmesh import _render as render
from swarmmesh.cli import build_parser
from swarmmesh.types import AgentInfo, AgentState, CacheStats, ClusterStats, InvalidateResult
from swarmmesh.v1 import tasks_pb2, types_pb2


def test_invalidate_arguments() -> None:
    ns = build_parser().parse_args(["invalidate", "doc:1", "doc:2", "--wait", "3"])
    assert ns.dependencies == ["doc:1", "doc:2"] and ns.wait == 3.0
    assert build_parser().parse_args(["invalidate", "x"]).wait is None


def test_invalidate_result_conversion_and_text() -> None:
    msg = tasks_pb2.InvalidateResponse(seq=7, dropped=12, agents_answered=2, agents_total=3, warmups_submitted=4)
    result = _convert.invalidate_result_from_proto(msg)
    assert result == InvalidateResult(seq=7, dropped=12, agents_answered=2, agents_total=3, warmups_submitted=4)
    text = render.invalidate_text(result)
    assert "#7" in text and "12 cached result(s) dropped" in text and "2 of 3 agent(s)" in text
    assert "1 did not answer" in text and "4 popular" in text
    assert render.to_jsonable(result)["dropped"] == 12


def test_cluster_cache_totals_and_stats_text() -> None:
    agents = (
        AgentInfo("a", AgentState.READY, cache=CacheStats(hits=3, misses=1, entries=5, bytes=2048, errors=1)),
        AgentInfo("b", AgentState.READY, cache=CacheStats(hits=1, misses=3, entries=2, evictions=4)),
        AgentInfo("c", AgentState.READY),
    )
    stats = ClusterStats(agents=agents, invalidations_total=2, invalidation_epoch="e1", invalidation_seq=2)
    total = stats.cache
    assert (total.hits, total.misses, total.entries, total.evictions, total.errors) == (4, 4, 7, 4, 1)
    assert total.hit_rate == 0.5
    text = render.stats_text(stats)
    assert "hit rate 50%" in text and "e1#2" in text
    table = render.agents_table(agents)
    assert "CACHED" in table and "5 (2.0 KiB)" in table and "75%" in table


def test_stats_conversion_carries_the_log() -> None:
    msg = tasks_pb2.ClusterStats(invalidations_total=3, invalidation_epoch="ep", invalidation_seq=9, warmups_total=5,
                                 agents=[types_pb2.Agent(agent_id="a", cache=types_pb2.CacheStats(hits=1))])
    stats = _convert.stats_from_proto(msg)
    assert (stats.invalidations_total, stats.invalidation_epoch, stats.invalidation_seq, stats.warmups_total) == (
        3, "ep", 9, 5)
    assert stats.cache.hits == 1
