"""The cold_cache finding: why a kind's cache misses what it computed recently,
and what would have kept those keys warm. Its figures are listed with the
other kinds' findings in diagnosis.py."""

from __future__ import annotations

import math

from coordinator.core.popularity import HOT_SCORE
from coordinator.profile import fmt
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.diagnosis import KindFacts
from coordinator.profile.report import Finding, Severity

# Strategies that send a cache key back to the agent that holds it.
CACHE_AWARE = frozenset(("cache-affinity", "hybrid"))


def cold_cache(k: KindFacts, cfg: ProfilerConfig) -> Finding | None:
    if k.repeats >= cfg.cold_min_repeats:
        rate = k.repeat_hits / k.repeats
        if rate < cfg.cold_cache_hit_rate:
            return _cold(k, rate, cfg)
    if k.lookups >= cfg.min_samples and k.total_s > 0:
        share = k.cache_s / k.total_s
        if share >= cfg.cache_share and k.cache_s >= cfg.queue_min_wait_s:
            summary = (f"cache lookups take {fmt.pct(share)} of {k.kind}'s time "
                       f"(mean {fmt.secs(k.cache_s)} a lookup)")
            recs = ("put the sidecars' cache on a fast local disk or tmpfs (--cache-dir)",
                    "--cache-eviction lrs makes a hit cheaper (lru writes on every hit)",
                    f"cache {k.kind} only if computing it costs more than looking it up")
            return Finding(Severity.WARNING, "cold_cache", k.kind, summary, recs,
                           (("cache_share", share), ("cache_s", k.cache_s), ("lookups", k.lookups)))
    return None


def _cold(k: KindFacts, rate: float, cfg: ProfilerConfig) -> Finding:
    misses = k.repeats - k.repeat_hits
    summary = (f"{k.kind} tasks miss the cache on {fmt.pct(1 - rate)} of lookups of keys computed in the last "
               f"{fmt.secs(cfg.key_memory_s)} ({misses} of {k.repeats})")
    recs: list[str] = []
    scattered = k.scattered / misses if misses else 0.0
    if scattered >= 0.5:
        summary += f": {fmt.pct(scattered)} of those ran on another agent than the one holding the result"
        if k.strategy in CACHE_AWARE:
            recs.append(f"{k.strategy} routing gave way to load: raise --cache-load-slack so keys stay with "
                        "the agent that holds them")
        else:
            recs.append(f"route {k.kind} by cache key: --strategy-overrides {k.kind}=cache-affinity "
                        f"(or hybrid); {k.strategy} ignores where results are cached")
    elif k.evictions:
        summary += f": the agents evicted {fmt.count(k.evictions)} entries"
    elif k.invalidations or k.invalidated or k.agents_joined:
        summary += ": " + _emptied(k)
    if k.evictions:
        recs.append(f"give the sidecars more cache (--cache-size-mb): they evicted {fmt.count(k.evictions)} "
                    "entries in the window")
    if k.invalidations or k.invalidated or k.agents_joined:
        recs.extend(_warmup_advice(k, misses, cfg))
    if k.cache_errors:
        recs.append(f"the sidecars reported {k.cache_errors} cache errors: check their --cache-dir "
                    "(disk full, permissions)")
    recs.append(f"if {k.kind} has a TTL (--cache-ttl), it may be shorter than the time between requests")
    return Finding(Severity.WARNING, "cold_cache", k.kind, summary, tuple(recs), (
        ("repeat_hit_rate", rate), ("repeats", k.repeats), ("lookups", k.lookups),
        ("hit_rate", k.hits / k.lookups if k.lookups else 0.0), ("scattered", k.scattered),
        ("unpopular", k.unpopular), ("evictions", k.evictions), ("invalidations", k.invalidations),
        ("invalidated", k.invalidated), ("warmups", k.warmups), ("cache_errors", k.cache_errors),
        ("agents_joined", k.agents_joined)))


def _emptied(k: KindFacts) -> str:
    """What emptied the caches: invalidations (the coordinator's count, entries as agents reported) and joins."""
    parts = []
    if k.invalidations:
        parts.append(f"{k.invalidations} invalidation(s) in the window invalidated "
                     + (f"{fmt.count(k.invalidated)} cached entries" if k.invalidated else "cached results"))
    elif k.invalidated:
        parts.append(f"the agents invalidated {fmt.count(k.invalidated)} cached entries")
    if k.agents_joined:
        parts.append(f"{k.agents_joined} agent(s) (re)joined with empty caches")
    return " and ".join(parts)


def _warmup_advice(k: KindFacts, misses: int, cfg: ProfilerConfig) -> list[str]:
    """What would have kept the keys warm, given why warm-up did not.

    Warm-up (coordinator/core/popularity.py) resubmits, after an invalidation or
    for an agent that joins, at most --warmup-max-tasks keys whose popularity
    (requests, halving every --popularity-half-life-s) is at least HOT_SCORE.
    """
    half = fmt.secs(cfg.popularity_half_life_s)
    popular = misses - k.unpopular
    out = []
    if k.unpopular:
        out.append(f"warm-up could not refill {k.unpopular} of the {misses} misses: those keys had been requested "
                   f"too rarely (it resubmits keys of popularity {HOT_SCORE:g}, requests halving every {half}: "
                   f"about {math.ceil(HOT_SCORE) + 1} requests within {half}); if clients will ask for them "
                   "again, warm them yourself: resubmit those cache keys at low priority right after "
                   "`swarmmesh invalidate`")
    if popular <= 0:
        return out
    limit = cfg.warmup_max_tasks
    # Warm-ups come in rounds of at most `limit`: one per invalidation, else one per agent that joined.
    triggers = max(1, k.invalidations or k.agents_joined)
    if limit <= 0:
        out.append(f"turn warm-up on (--warmup-max-tasks is 0): {popular} misses were of popular keys it would "
                   "have resubmitted after the invalidation or for the joining agent")
    elif k.warmups >= limit * triggers:
        out.append(f"raise --warmup-max-tasks above {limit}: warm-up resubmitted {k.warmups} keys, {limit} per "
                   f"invalidation or join, and {popular} misses were of popular keys beyond them")
    elif k.agents_joined and not k.invalidations and k.strategy not in CACHE_AWARE:
        out.append(f"warm-up fills a joining agent only under cache-aware routing: --strategy-overrides "
                   f"{k.kind}=cache-affinity (or hybrid); {k.strategy} does not say which keys it will get")
    else:
        out.append(f"{popular} misses were of popular keys ({k.warmups} warm-up tasks ran in the window): warm-up "
                   "waits until nothing is queued and agents have free credits, so requests that come right "
                   "after an invalidation can beat it; invalidate before a busy spell rather than in it")
    return out
