"""Which cache keys are hot, and what to recompute ahead of demand (predictive warm-up).

Plain synchronous objects, no sockets, no clocks (time is passed in).

Popularity is a count per cache key that halves every `half_life_s`
seconds, so yesterday's favourites fade. Memory is bounded: at most
`max_keys` keys are kept (the table grows to twice that, then the coldest
half goes, which keeps an update O(1) amortised), and for each key the most
recent task spec, so the coordinator can submit it again. Specs with large
payloads are not kept, and all kept payloads together stay under
`max_spec_bytes`.

Warm-up resubmits those specs at the lowest priority, under the tenant
`WARMUP_TENANT`, with one attempt and no idempotency key, when

* a hot key's result is invalidated (it, or through the kept specs' own
  dependencies, transitively, something it was built from), or
* an agent joins with a cold cache: the hot keys the balancer would route to
  it (`owner`), so they are there before the first request.

The shell submits them only while no task is queued and agents have spare
credits, so they never displace real work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from coordinator.core.model import TaskSpec

WARMUP_TENANT = "swarmmesh-warmup"
WARMUP_PRIORITY = -1000
# A key counts as hot from this decayed number of requests on.
HOT_SCORE = 2.0


@dataclass(slots=True)
class _Key:
    score: float
    at: float
    spec: TaskSpec | None


@dataclass(frozen=True, slots=True)
class HotKey:
    key: str
    score: float
    spec: TaskSpec | None


class Popularity:
    """Decayed request counts per cache key, with the latest spec of each hot one."""

    def __init__(
        self,
        *,
        max_keys: int = 10_000,
        half_life_s: float = 600.0,
        max_payload_bytes: int = 64 * 1024,
        max_spec_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if max_keys < 1 or half_life_s <= 0:
            raise ValueError("max_keys must be >= 1 and half_life_s > 0")
        self._max_keys = max_keys
        self._rate = math.log(2) / half_life_s
        self._max_payload = max_payload_bytes
        self._max_spec_bytes = max_spec_bytes
        self._keys: dict[str, _Key] = {}
        self._spec_bytes = 0

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def spec_bytes(self) -> int:
        return self._spec_bytes

    def observe(self, specs: Iterable[TaskSpec], now: float) -> None:
        """Count every spec with a cache key (warm-ups excluded: they are not demand)."""
        keys = self._keys
        for spec in specs:
            key = spec.cache_key
            if not key or spec.tenant == WARMUP_TENANT:
                continue
            entry = keys.get(key)
            keep = spec if len(spec.payload) <= self._max_payload else None
            if entry is None:
                keys[key] = _Key(1.0, now, keep)
                self._spec_bytes += _size(keep)
            else:
                entry.score = self._decayed(entry, now) + 1.0
                entry.at = now
                self._spec_bytes += _size(keep) - _size(entry.spec)
                entry.spec = keep
        if len(keys) > 2 * self._max_keys or self._spec_bytes > self._max_spec_bytes:
            self._compact(now)

    def score(self, key: str, now: float) -> float:
        entry = self._keys.get(key)
        return 0.0 if entry is None else self._decayed(entry, now)

    def top(self, n: int, now: float, *, min_score: float = HOT_SCORE) -> list[HotKey]:
        """The `n` hottest keys with a score of at least `min_score`, hottest first."""
        ranked = sorted(
            ((self._decayed(e, now), key, e.spec) for key, e in self._keys.items()), key=lambda t: -t[0]
        )
        return [HotKey(key, score, spec) for score, key, spec in ranked[:n] if score >= min_score]

    def affected(self, names: Iterable[str], now: float, *, min_score: float = HOT_SCORE) -> list[HotKey]:
        """Hot keys whose results an invalidation of `names` drops, hottest first.

        Follows the kept specs' dependencies, so a key built from an invalidated
        key is found too. Keys without a kept spec cannot be resubmitted and are left out.
        """
        hot = {
            key: e
            for key, e in self._keys.items()
            if e.spec is not None and self._decayed(e, now) >= min_score
        }
        by_dep: dict[str, list[str]] = {}
        for key, e in hot.items():
            assert e.spec is not None
            for dep in e.spec.dependencies:
                by_dep.setdefault(dep, []).append(key)
        hit: set[str] = set()
        frontier = list(dict.fromkeys(names))
        seen = set(frontier)
        while frontier:
            name = frontier.pop()
            if name in hot:
                hit.add(name)
            for key in by_dep.get(name, ()):
                hit.add(key)
                if key not in seen:
                    seen.add(key)
                    frontier.append(key)
        found = [HotKey(key, self._decayed(hot[key], now), hot[key].spec) for key in hit]
        found.sort(key=lambda h: -h.score)
        return found

    def _decayed(self, entry: _Key, now: float) -> float:
        return entry.score * math.exp(-self._rate * max(0.0, now - entry.at))

    def _compact(self, now: float) -> None:
        ranked = sorted(self._keys.items(), key=lambda kv: -self._decayed(kv[1], now))
        kept = dict(ranked[: self._max_keys])
        total = 0
        for entry in kept.values():
            size = _size(entry.spec)
            # Hottest first: when over budget the colder keys lose their specs.
            if total + size > self._max_spec_bytes // 2:
                entry.spec = None
                size = 0
            total += size
        self._keys = kept
        self._spec_bytes = total


def _size(spec: TaskSpec | None) -> int:
    return 0 if spec is None else len(spec.payload) + 256


def warmup_spec(spec: TaskSpec) -> TaskSpec:
    """A copy of `spec` that runs only on spare capacity and is never deduplicated or retried."""
    return dataclasses.replace(
        spec,
        priority=WARMUP_PRIORITY,
        tenant=WARMUP_TENANT,
        idempotency_key="",
        trace_context=(),
        max_attempts=1,
    )


def plan_after_invalidation(
    popularity: Popularity, names: Iterable[str], now: float, limit: int
) -> list[TaskSpec]:
    """Warm-up specs for the hottest keys an invalidation of `names` dropped."""
    if limit <= 0:
        return []
    return [warmup_spec(h.spec) for h in popularity.affected(names, now)[:limit] if h.spec is not None]


def plan_for_agent(
    popularity: Popularity, owner: Callable[[str], str | None], agent_id: str, now: float, limit: int,
    *, scan: int = 1000,
) -> list[TaskSpec]:
    """Warm-up specs for the hottest keys (of the `scan` hottest) that `owner` routes to `agent_id`."""
    if limit <= 0:
        return []
    out: list[TaskSpec] = []
    for hot in popularity.top(scan, now):
        if hot.spec is not None and owner(hot.key) == agent_id:
            out.append(warmup_spec(hot.spec))
            if len(out) >= limit:
                break
    return out
