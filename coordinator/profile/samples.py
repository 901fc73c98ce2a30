"""Finished attempts, recorded cheaply and read back per window.

The hot path (`Profiler.on_change`) only appends the finished TaskRecord to a
list; `Recorder.drain` does the accounting in batches from the ticker. A
finished record no longer changes, so reading it a few hundred milliseconds
later gives the same figures, and a batch loop costs less per attempt than a
call per attempt would.

Attempts land in one-second buckets by the time they finished. Per (kind,
agent) a bucket keeps exact counts (attempts, failures by error type, cache
lookups and hits) and a sample of full timings: every attempt while the
fleet finishes fewer than `samples_per_s` a second, every n-th (n a power of
two, the bucket's `stride`) above it. All samples of one bucket therefore
stand for `stride` attempts each, which keeps windowed percentiles unbiased
when the rate changes within a window. Buckets older than two minutes are
folded into one-minute buckets with a smaller budget, and dropped after an
hour. Memory is bounded at any throughput: about 14 MB of samples at most,
plus ~150 bytes per (kind, agent) pair active in each bucket (100 agents
running 10 kinds at 10,000 tasks/s: about 22 MB in all).

A sample is (queue, transport, cache, execution, total) seconds, flags and
when the attempt was assigned: queue is the wait that ended in this
attempt's assignment, transport the round trip less the sidecar's own time,
total the two together; queue and the assignment time place the wait in
time, to read how busy the agents were while tasks waited.

Cache keys are remembered for `key_memory_s` with who computed them last and
how popular they are: requests that halve every `half_life_s`, as the
coordinator's warm-up counts them (coordinator/core/popularity.py), so a
miss can be told apart as one warm-up would have prevented or not. Warm-up
tasks are not requests, and their misses are what they are for, not a cold
cache: they count as lookups, never as repeats.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from coordinator.core.model import TaskRecord, TaskState
from coordinator.core.popularity import HOT_SCORE, WARMUP_TENANT

FAILED = 1
HIT = 2
Sample = tuple[float, float, float, float, float, int, float]
PairKey = tuple[str, str]  # (kind, agent id); agent "" = failed before any agent took it

FINE_HORIZON_S = 120
COARSE_WIDTH_S = 60
COARSE_HORIZON_S = 3600 + COARSE_WIDTH_S
# Samples per second of history kept once folded into minute buckets.
COARSE_PER_S = 8

_CANCELLED = TaskState.CANCELLED
_FAILED = TaskState.FAILED
_DEAD_LETTER = TaskState.DEAD_LETTER
# The error type of tasks whose deadline passed while they waited in the queue.
EXPIRED_IN_QUEUE = "expired_in_queue"
# Failures the coordinator made on an agent's behalf carry no agent timing.
_NOT_TIMED = frozenset(("lease_lost", "deadline_exceeded"))


@dataclass(slots=True)
class Counts:
    """Exact counts of finished attempts."""

    n: int = 0
    failed: int = 0
    # Attempts whose task carried a cache key, and of those the hits.
    lookups: int = 0
    hits: int = 0
    # Lookups of keys a finished attempt computed before this one started
    # (within key_memory_s): these should hit.
    repeats: int = 0
    repeat_hits: int = 0
    # Repeat misses on another agent than the one that computed the key.
    scattered: int = 0
    # Repeat misses of keys too rarely requested for warm-up to resubmit them
    # (popularity under HOT_SCORE before this request).
    unpopular: int = 0

    def add_counts(self, other: Counts) -> None:
        self.n += other.n
        self.failed += other.failed
        self.lookups += other.lookups
        self.hits += other.hits
        self.repeats += other.repeats
        self.repeat_hits += other.repeat_hits
        self.scattered += other.scattered
        self.unpopular += other.unpopular


@dataclass(slots=True)
class PairStats(Counts):
    """One (kind, agent) in one bucket."""

    # None until the first sample: most pairs of a busy second keep none.
    samples: list[Sample] | None = None
    errors: dict[str, int] | None = None


@dataclass(slots=True)
class Bucket:
    start: float
    width: float
    # Every kept sample stands for this many attempts.
    stride: int
    # Attempts offered for sampling so far (the stride counts them).
    seen: int = 0
    kept: int = 0
    pairs: dict[PairKey, PairStats] = field(default_factory=dict)
    # Tasks accepted, per kind.
    arrivals: dict[str, int] = field(default_factory=dict)


def _pow2_at_least(x: float) -> int:
    return 1 if x <= 1 else 1 << math.ceil(math.log2(x))


def thin(bucket: Bucket, factor: int) -> None:
    """Keep every `factor`-th sample (in one pass over all pairs), so the
    survivors stand for `factor` times as many attempts each."""
    if factor <= 1:
        return
    offset = 0
    kept = 0
    for ps in bucket.pairs.values():
        if not ps.samples:
            continue
        n = len(ps.samples)
        ps.samples = ps.samples[(-offset) % factor::factor] or None
        offset += n
        kept += len(ps.samples or ())
    bucket.stride *= factor
    bucket.kept = kept


def _fold(into: Bucket, b: Bucket) -> None:
    """Add bucket b's counts and (already thinned to into.stride) samples to `into`."""
    for key, src in b.pairs.items():
        dst = into.pairs.get(key)
        if dst is None:
            dst = into.pairs[key] = PairStats()
        dst.add_counts(src)
        if src.samples:
            if dst.samples is None:
                dst.samples = []
            dst.samples.extend(src.samples)
        if src.errors:
            errs = dst.errors if dst.errors is not None else {}
            for k, v in src.errors.items():
                errs[k] = errs.get(k, 0) + v
            dst.errors = errs
    for kind, v in b.arrivals.items():
        into.arrivals[kind] = into.arrivals.get(kind, 0) + v
    into.seen += b.seen
    into.kept += b.kept


class Recorder:
    def __init__(self, samples_per_s: int = 256, key_memory_s: float = 600.0, max_keys: int = 100_000,
                 half_life_s: float = 600.0) -> None:
        self._budget = samples_per_s
        self._key_memory = key_memory_s
        self._max_keys = max_keys
        self._decay = math.log(2) / half_life_s
        self._fine: dict[int, Bucket] = {}
        self._coarse: dict[int, Bucket] = {}
        self._newest = -1
        # cache key -> (when the last attempt that computed or read it finished, its agent,
        # the key's popularity then); in recency order.
        self._keys: dict[str, tuple[float, str, float]] = {}
        # kind -> required labels seen on its tasks -> when last seen (who may run the kind).
        self.routes: dict[str, dict[tuple[tuple[str, int], ...], float]] = {}

    # -- writing -------------------------------------------------------------------

    def _bucket(self, sec: int) -> Bucket:
        b = self._fine.get(sec)
        if b is None:
            prev = self._fine.get(self._newest)
            stride = _pow2_at_least(prev.seen / self._budget) if prev is not None else 1
            b = self._fine[sec] = Bucket(float(sec), 1.0, stride)
            self._newest = max(self._newest, sec)
        return b

    def drain(self, finished: list[TaskRecord], arrived: list[TaskRecord]) -> None:
        """Account for attempts that finished and tasks that arrived since the last drain."""
        for rec in arrived:
            arrivals = self._bucket(int(rec.created_at)).arrivals
            kind = rec.spec.kind
            arrivals[kind] = arrivals.get(kind, 0) + 1
        keys = self._keys
        memory = self._key_memory
        decay = self._decay
        budget2 = 2 * self._budget
        cur_sec = -1
        b: Bucket | None = None
        for rec in finished:
            state = rec.state
            if state is _CANCELLED:
                continue
            fin = rec.finished_at or 0.0
            sec = int(fin)
            if sec != cur_sec or b is None:
                b = self._bucket(sec)
                cur_sec = sec
            spec = rec.spec
            o = rec.outcome
            if o is None:
                continue
            if state is _FAILED or state is _DEAD_LETTER:
                failed = True
                err = o.error_type or "error"
                agent = rec.last_agent if err == "lease_lost" else rec.agent_id
                if not agent and err == "deadline_exceeded":
                    err = EXPIRED_IN_QUEUE
            else:
                failed = False
                err = ""
                agent = rec.agent_id
            key = (spec.kind, agent)
            ps = b.pairs.get(key)
            if ps is None:
                ps = b.pairs[key] = PairStats()
            ps.n += 1
            if failed:
                ps.failed += 1
                errs = ps.errors
                if errs is None:
                    errs = ps.errors = {}
                errs[err] = errs.get(err, 0) + 1
            hit = o.cache_hit
            ck = spec.cache_key
            if ck:
                assigned = rec.assigned_at
                ps.lookups += 1
                if hit:
                    ps.hits += 1
                prev = keys.get(ck)
                demand = spec.tenant != WARMUP_TENANT
                score = 0.0
                if prev is not None:
                    score = prev[2] * math.exp(decay * (prev[0] - fin)) if prev[2] else 0.0
                    if demand and assigned is not None and prev[0] <= assigned and fin - prev[0] <= memory:
                        ps.repeats += 1
                        if hit:
                            ps.repeat_hits += 1
                        else:
                            if prev[1] != agent:
                                ps.scattered += 1
                            if score < HOT_SCORE:
                                ps.unpopular += 1
                    if not failed:
                        del keys[ck]  # re-inserted below: the dict stays in recency order
                if not failed:
                    keys[ck] = (fin, agent, score + 1.0 if demand else score)
            seen = b.seen
            b.seen = seen + 1
            if seen % b.stride:
                continue
            assigned = rec.assigned_at
            if assigned is None:
                continue
            if failed and err in _NOT_TIMED and not o.agent_us and not o.duration_us:
                continue
            ex = o.duration_us * 1e-6
            ca = o.cache_us * 1e-6
            if hit:
                # The handler did not run; older sidecars report the lookup as its duration.
                if not ca:
                    ca = ex
                ex = 0.0
            rt = fin - assigned
            ag = o.agent_us * 1e-6
            tr = rt - ag if ag else rt - ex - ca
            q = assigned - rec.queued_at
            kept = ps.samples
            if kept is None:
                kept = ps.samples = []
            kept.append((q, tr if tr > 0.0 else 0.0, ca, ex, q + rt, (FAILED if failed else 0) | (HIT if hit else 0),
                         assigned))
            routes = self.routes.get(spec.kind)
            if routes is None:
                routes = self.routes[spec.kind] = {}
            routes[spec.required_labels] = fin
            b.kept += 1
            if b.kept >= budget2:
                thin(b, 2)
        if len(keys) > self._max_keys:
            self._keys = dict(itertools.islice(keys.items(), len(keys) - self._max_keys, None))

    def expire(self, now: float) -> None:
        """Fold buckets older than two minutes into minute buckets; drop what is older than an hour."""
        cutoff = int(now) - FINE_HORIZON_S
        old = [sec for sec in self._fine if sec < cutoff]
        for sec in sorted(old):
            b = self._fine.pop(sec)
            minute = sec // COARSE_WIDTH_S
            into = self._coarse.get(minute)
            if into is None:
                into = self._coarse[minute] = Bucket(float(minute * COARSE_WIDTH_S), float(COARSE_WIDTH_S), 1)
            # Enough stride that this second keeps at most COARSE_PER_S samples.
            want = max(into.stride, b.stride, _pow2_at_least(b.seen / COARSE_PER_S))
            thin(into, want // into.stride)
            thin(b, want // b.stride)
            _fold(into, b)
        horizon = now - COARSE_HORIZON_S
        for minute in [m for m, b in self._coarse.items() if b.start < horizon]:
            del self._coarse[minute]
        keys = self._keys
        if keys:
            first = next(iter(keys.values()))
            if first[0] < now - self._key_memory:
                self._keys = {k: v for k, v in keys.items() if v[0] >= now - self._key_memory}
        for kind in list(self.routes):
            routes = self.routes[kind]
            for labels in [labels for labels, t in routes.items() if t < now - COARSE_HORIZON_S]:
                del routes[labels]
            if not routes:
                del self.routes[kind]

    # -- reading --------------------------------------------------------------------

    def window(self, start: float, end: float) -> list[Bucket]:
        """Buckets that began within [start, end]: the window, rounded to whole buckets."""
        out = [b for b in self._coarse.values() if start <= b.start <= end]
        out.extend(b for b in self._fine.values() if start <= b.start <= end)
        return out
