"""Cold caches after invalidations: counted from the coordinator's own record, and advice that fits warm-up."""

from __future__ import annotations

from coordinator.profile.cache_log import CacheLog, CacheTotals
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.report import Finding, Severity
from tests.unit.profile_mesh import Sim, by_category, figures

KEYS = [f"page-{i}" for i in range(40)]


def invalidated_in_first_second(requests_before: int, config: ProfilerConfig | None = None,
                                warmups: int = 0) -> tuple[Sim, Finding]:
    """Agents join, each key is requested `requests_before` times at once, invalidated before the
    agents' first heartbeat, and requested once more."""
    sim = Sim(config)
    sim.run(0.3)
    for i in range(2):
        sim.add_agent(f"r{i}", capacity=64, kinds=("render",), service=0.005)
    sim.submit_keys("render", KEYS * requests_before)
    sim.run(0.3)
    assert sim.invalidate(KEYS, warmups=warmups) >= len(KEYS)
    sim.submit_keys("render", KEYS)
    sim.run(3)
    [f] = by_category(sim.report(), "cold_cache")
    return sim, f


def test_invalidations_in_an_agents_first_second_are_counted() -> None:
    # The sidecars' first heartbeat already carries the invalidations: as a baseline it hides
    # them; the coordinator's own record does not.
    _, f = invalidated_in_first_second(requests_before=1)
    assert f.severity == Severity.WARNING and f.subject == "render"
    fig = figures(f)
    assert fig["invalidations"] == 1 and fig["invalidated"] == 40
    assert fig["repeats"] == 40 and fig["repeat_hit_rate"] == 0 and fig["scattered"] == 0
    assert "1 invalidation(s) in the window invalidated 40 cached entries" in f.summary


def test_warmup_advice_for_keys_requested_once_says_why_warmup_could_not_help() -> None:
    _, f = invalidated_in_first_second(requests_before=1)
    assert figures(f)["unpopular"] == 40
    assert not any("keep --warmup-max-tasks above 0" in r for r in f.recommendations)
    [advice] = [r for r in f.recommendations if "warm" in r]
    assert advice.startswith("warm-up could not refill 40 of the 40 misses: those keys had been requested too rarely")
    assert "about 3 requests within 10.0 min" in advice and "right after `swarmmesh invalidate`" in advice


def test_warmup_advice_for_popular_keys_names_the_setting_that_limits_it() -> None:
    # Popular keys: warm-up should have covered them. Off: turn it on.
    _, f = invalidated_in_first_second(requests_before=3, config=ProfilerConfig(warmup_max_tasks=0))
    assert figures(f)["unpopular"] == 0
    assert any(r.startswith("turn warm-up on (--warmup-max-tasks is 0): 40 misses were of popular keys")
               for r in f.recommendations), f.recommendations
    # It resubmitted all it may and keys still missed: raise the limit.
    _, f = invalidated_in_first_second(requests_before=3, config=ProfilerConfig(warmup_max_tasks=32), warmups=32)
    assert any(r.startswith("raise --warmup-max-tasks above 32: warm-up resubmitted 32 keys")
               for r in f.recommendations), f.recommendations
    # Nothing resubmitted: warm-up had no room.
    _, f = invalidated_in_first_second(requests_before=3)
    assert any("0 warm-up tasks ran in the window" in r and "nothing is queued" in r for r in f.recommendations)


def test_cache_log_keeps_increments_with_their_time() -> None:
    log = CacheLog()
    log.note(10.0, CacheTotals())
    log.note(11.0, CacheTotals(1, 40, 0))
    log.note(12.0, CacheTotals(1, 40, 0))
    log.note(13.0, CacheTotals(3, 45, 7))
    assert log.since(0) == CacheTotals(3, 45, 7)
    assert log.since(12) == CacheTotals(2, 5, 7)
    assert log.since(14) == CacheTotals()
