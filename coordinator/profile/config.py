"""The profiler's settings: windows, history, and the thresholds behind each finding.

The defaults aim at a production coordinator: a finding should mean that a
person has something to do. Each threshold says what it guards against.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# Fields whose coordinator setting has another name (the rest are the same).
FLAG_NAMES = {"window_s": "profile_window_s", "min_samples": "profile_min_samples"}


@dataclass(frozen=True, slots=True)
class ProfilerConfig:
    # Seconds a report looks back when the request does not say (at most 3600).
    window_s: float = 60.0

    # -- history --------------------------------------------------------------
    # SQLite file for the history; "" keeps it in memory (lost on restart).
    history_path: str = ""
    # Seconds one history row covers. Rows older than an hour are merged into
    # one-minute rows, older than a day into ten-minute rows.
    history_interval_s: float = 10.0
    # Seconds of history kept at all.
    history_retention_s: float = 7 * 86400.0

    # -- memory leaks -----------------------------------------------------------
    # Seconds of an agent's memory (from its heartbeats) the trend is fitted over.
    # The window must be mostly covered before anything is said, so growth in an
    # agent's first minutes (imports, caches filling) never alerts.
    leak_window_s: float = 300.0
    # Memory samples the fit needs at least.
    leak_min_samples: int = 10
    # Growth, in bytes per second, below which memory is not called leaking:
    # 16 KiB/s is about 56 MiB an hour, what a Python process leaking one object
    # graph per request typically shows; allocator noise fits well below it.
    leak_min_growth_bytes_per_s: float = 16 * 1024.0
    # How well a straight line must fit (R², 0..1); a sawtooth of garbage
    # collection fits badly and is not a leak.
    leak_min_r2: float = 0.6
    # Memory an agent may use, in bytes, to tell how long until it runs out; 0 = unknown.
    agent_memory_limit_bytes: int = 0

    # -- load -------------------------------------------------------------------
    # Finished attempts of a kind in the window before any finding about it.
    min_samples: int = 20
    # Eligible agents at least this busy (busy slots / capacity, window average) are saturated.
    saturation_utilization: float = 0.85
    # Tasks that spend at least this share of their time in the queue wait too long...
    queue_share: float = 0.5
    # ...provided the mean wait is also at least this many seconds (a 1 ms task
    # waiting 2 ms for a dispatch pass is not a problem).
    queue_min_wait_s: float = 0.05
    # Utilization below which waiting tasks mean something holds dispatch back.
    idle_utilization: float = 0.5
    # Seconds a routing class must stay unroutable, with tasks queued, before it is reported.
    unroutable_after_s: float = 10.0

    # -- slow agents --------------------------------------------------------------
    # An agent whose median handler time for a kind is this many times its peers'.
    slow_agent_factor: float = 2.0
    # Handler-time samples needed on the agent and on its peers.
    slow_min_samples: int = 10
    # ...and the medians must differ by at least this many seconds (microsecond
    # handlers differ by large factors that nobody needs to act on).
    slow_min_gap_s: float = 0.005

    # -- cache --------------------------------------------------------------------
    # A kind's cache is cold when lookups of keys it computed recently hit less
    # often than this (keys never seen before are not counted: unique keys are
    # not a cache problem).
    cold_cache_hit_rate: float = 0.5
    # Lookups of recently computed keys needed before the hit rate means anything.
    cold_min_repeats: int = 30
    # Seconds a computed key counts as "seen before".
    key_memory_s: float = 600.0
    # Cache lookups taking at least this share of a kind's time are too slow.
    cache_share: float = 0.5
    # The coordinator's warm-up settings (--warmup-max-tasks, --popularity-half-life-s),
    # so that advice about warming keys fits what warm-up does.
    warmup_max_tasks: int = 32
    popularity_half_life_s: float = 600.0

    # -- errors and transport -------------------------------------------------------
    # Failed share of a kind's attempts that is reported (critical from twice it, at most 0.9).
    error_rate: float = 0.2
    # Time between coordinator and agent taking this share of the total...
    transport_share: float = 0.5
    # ...and at least this many seconds on average.
    transport_min_s: float = 0.02

    # -- forecasts ----------------------------------------------------------------------
    # Seconds of history the trends are fitted over.
    forecast_window_s: float = 3600.0
    # Queue depth the forecast warns about; 0 = ten times the fleet's capacity (at least 100).
    forecast_queue_depth: float = 0.0
    # A queue that reaches that depth within this many seconds at its trend is a
    # finding (critical within an hour).
    queue_growth_horizon_s: float = 6 * 3600.0

    # -- cost ---------------------------------------------------------------------------------
    # Finished attempts measured in full per second; above it every n-th one is
    # (counts stay exact). Bounds memory and report time at any throughput.
    samples_per_s: int = 256
    # Cache keys remembered for the cold-cache check.
    max_cache_keys: int = 100_000
    # Agents whose registry record and latest heartbeat (memory, cache counters,
    # connection) are read per second at most; a larger fleet is read in rounds
    # of several seconds (5,000 agents: every 5 s). Reading one costs a few
    # microseconds, so this bounds the profiler's share of a large coordinator.
    agents_read_per_s: int = 1000

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str:
        """The first invalid setting, described (by its coordinator flag name); empty when all are valid."""
        if not 0 < self.window_s <= 3600:
            return f"profile_window_s: {self.window_s} is not in (0, 3600] seconds"
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                return f"{FLAG_NAMES.get(f.name, f.name)}: must not be negative"
        for name in ("history_interval_s", "history_retention_s", "leak_window_s", "forecast_window_s",
                     "popularity_half_life_s"):
            if getattr(self, name) <= 0:
                return f"{name}: must be positive"
        for name in ("saturation_utilization", "queue_share", "idle_utilization", "cold_cache_hit_rate", "cache_share",
                     "error_rate", "transport_share", "leak_min_r2"):
            if not 0 <= getattr(self, name) <= 1:
                return f"{name}: must be between 0 and 1"
        if self.leak_min_samples < 3:
            return "leak_min_samples: must be at least 3"
        if self.slow_agent_factor <= 1:
            return "slow_agent_factor: must be more than 1"
        if self.samples_per_s < 1 or self.max_cache_keys < 1 or self.agents_read_per_s < 1:
            return "samples_per_s, max_cache_keys and agents_read_per_s: must be at least 1"
        return ""
