"""The coordinator's configuration: one frozen object, from flags and environment."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from coordinator.core.balancer import BalancerConfig
from coordinator.core.fairness import FairnessConfig, parse_weights
from coordinator.core.feedback import HealthConfig
from coordinator.core.mesh import CoreConfig
from coordinator.core.routing import check_strategy, parse_overrides
from coordinator.core.validation import Limits
from coordinator.metrics.service import OTLP_MODES, split_listen
from coordinator.profile.config import ProfilerConfig
from coordinator.service.cache_sync import CacheSyncConfig
from swarmmesh import affinity
from swarmmesh.telemetry import TracingConfig


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Every field maps to a flag `--field-name` and an env var `SWARMMESH_FIELD_NAME`."""

    # host:port to serve on; port 0 picks a free port (see ready_file).
    listen: str = "127.0.0.1:7070"
    # Seconds between sidecar heartbeats (told to sidecars at registration).
    heartbeat_interval_s: float = 1.0
    # Seconds without any frame from a sidecar before its tasks are re-queued.
    lease_timeout_s: float = 10.0
    # Seconds between lease, deadline and retention sweeps.
    tick_interval_s: float = 0.2
    # Default task time budget in milliseconds; 0 = no deadline unless the task sets one.
    default_timeout_ms: int = 0
    # How many times a task may be handed out when agents die holding it.
    default_max_attempts: int = 5
    # Seconds past a deadline before the coordinator fails a task an agent still holds.
    deadline_grace_s: float = 2.0
    # Seconds a finished task (and its result) is kept; then it is dropped.
    result_retention_s: float = 3600.0
    # Finished tasks kept at most; the oldest are dropped first.
    max_retained_results: int = 100_000
    # Pending tasks at most; beyond it SubmitTasks answers RESOURCE_EXHAUSTED.
    max_queued_tasks: int = 1_000_000
    # Largest task payload accepted, in bytes.
    max_payload_bytes: int = 4 * 1024 * 1024
    # Most tasks in one SubmitTasks call.
    max_batch: int = 10_000
    # Largest gRPC message, in bytes (a batch of payloads must fit).
    max_message_bytes: int = 64 * 1024 * 1024
    # Balancing strategy for task kinds without an override: hybrid, round-robin,
    # least-loaded, performance, expertise or cache-affinity.
    strategy: str = "hybrid"
    # Per-kind strategies, "kind=strategy,kind2=strategy2".
    strategy_overrides: str = ""
    # Cache affinity: a key's owner keeps taking its tasks while its load is at
    # most (1 + slack) times the pool's average. Credits already cap what any
    # agent holds, so the bound only has to stop a hot key from monopolising
    # its owner; tighter values scatter hot keys and cost hit rate (W4).
    cache_load_slack: float = 2.0
    # Hybrid: tasks whose handlers take microseconds stay on the agent that took
    # the previous one while it holds fewer than this many tasks (an agent
    # already working answers sooner than one woken from idle); 0 = always spread.
    warm_in_flight: int = 4
    # Shares of dispatch when tenants compete, "tenant=weight,..."; unlisted tenants weigh 1.
    tenant_weights: str = ""
    # Pending tasks one tenant may have; beyond it RESOURCE_EXHAUSTED with a retry hint. 0 = no limit.
    max_pending_per_tenant: int = 0
    # Seconds of queue wait one priority level is worth.
    priority_step_s: float = 1.0
    # Seconds: no task is overtaken by a task of its tenant submitted more than this later.
    aging_bound_s: float = 60.0
    # Seconds over which an agent joining a running fleet ramps up to its capacity; 0 = off.
    slow_start_s: float = 10.0
    # Seconds an agent whose results keep failing is first ejected for (longer if it repeats); 0 = never.
    eject_base_s: float = 5.0
    # Seconds to let in-flight RPCs finish on shutdown.
    shutdown_grace_s: float = 5.0
    # Invalidations kept for agents that reconnect; one that missed older ones clears its cache.
    invalidation_log_size: int = 10_000
    # Seconds an Invalidate call waits for connected agents' reports by default.
    invalidate_wait_s: float = 2.0
    # Warm-up tasks submitted at most per trigger (hot key invalidated, agent joined); 0 = off.
    warmup_max_tasks: int = 32
    # Cache keys whose popularity is tracked, and the half-life of their counts in seconds.
    popularity_keys: int = 10_000
    popularity_half_life_s: float = 600.0
    # Seconds a profile looks back when the request does not say (swarmmesh profile --window).
    profile_window_s: float = 60.0
    # SQLite file that keeps the profiler's history across restarts. "auto" =
    # $XDG_STATE_HOME/swarmmesh/history-<host>-<port>.sqlite (~/.local/state by
    # default) for a fixed port, in memory only for port 0 (a throwaway
    # coordinator has no identity to resume); "" = in memory only.
    history_path: str = "auto"
    # Seconds one history row covers (older rows are merged to 1 and 10 minutes), and seconds kept.
    history_interval_s: float = 10.0
    history_retention_s: float = 604800.0
    # Memory leaks: seconds of an agent's memory the trend is fitted over, samples it needs,
    # and the growth in bytes per second that counts as a leak (16 KiB/s is ~56 MiB/h).
    leak_window_s: float = 300.0
    leak_min_samples: int = 10
    leak_min_growth_bytes_per_s: float = 16384.0
    # Memory an agent may use, in bytes, for "reaches its limit in ..."; 0 = unknown.
    agent_memory_limit_bytes: int = 0
    # Attempts of a kind in the profile window before the profiler judges it.
    profile_min_samples: int = 20
    # Share of busy slots at which a kind's agents count as saturated (0..1).
    saturation_utilization: float = 0.85
    # An agent this many times slower than its peers on a kind is reported.
    slow_agent_factor: float = 2.0
    # Hit rate on recently computed keys below which a kind's cache counts as cold (0..1).
    cold_cache_hit_rate: float = 0.5
    # Spans of every task over OTLP/gRPC: "on" or "off" (OTEL_SDK_DISABLED=true
    # or OTEL_TRACES_EXPORTER=none also turn it off).
    tracing: str = "on"
    # Collector endpoint (spans, and metrics when pushed), e.g. http://localhost:4317; "" = OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT or that default.
    otlp_endpoint: str = ""
    # Share of traces started here that are sampled, 0..1; -1 = from OTEL_TRACES_SAMPLER(_ARG).
    # Tasks that arrive with a trace context follow its decision.
    trace_sample_ratio: float = -1.0
    # host:port of the Prometheus scrape endpoint (GET /metrics); "" = none; port 0 = any free port.
    metrics_listen: str = ""
    # OTLP metrics push (to otlp_endpoint or OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, every
    # OTEL_METRIC_EXPORT_INTERVAL ms, default 60000): "auto" = when OTEL_METRICS_EXPORTER lists otlp; "on"; "off".
    otlp_metrics: str = "auto"
    # Agents with series of their own at most (by agent id); mesh-wide metrics count every agent.
    metrics_max_agents: int = 1000
    # CPUs to keep every thread of the coordinator on, e.g. "0" or "0-1"; "" = wherever the OS
    # puts them. One CPU makes each hand-off between gRPC's thread and the loop's cheaper
    # (see swarmmesh.affinity): worth it only where the coordinator has that CPU to itself.
    cpus: str = ""
    # If set, a JSON file {"address", "pid", "metrics_address"} is written here once serving.
    ready_file: str = ""
    log_level: str = "INFO"

    def tracing_config(self) -> TracingConfig:
        return TracingConfig.from_env(
            "swarmmesh-coordinator", enabled=self.tracing == "on", endpoint=self.otlp_endpoint,
            sample_ratio=self.trace_sample_ratio if self.trace_sample_ratio >= 0 else None,
        )

    def resolved_history_path(self, env: Mapping[str, str] | None = None) -> str:
        if self.history_path != "auto":
            return self.history_path
        host, _, port = self.listen.rpartition(":")
        if port in ("", "0"):
            return ""
        env = os.environ if env is None else env
        state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        name = f"history-{host.strip('[]').replace(':', '_') or 'any'}-{port}.sqlite"
        return os.path.join(state, "swarmmesh", name)

    def profiler(self) -> ProfilerConfig:
        return ProfilerConfig(
            window_s=self.profile_window_s, history_path=self.resolved_history_path(),
            history_interval_s=self.history_interval_s, history_retention_s=self.history_retention_s,
            leak_window_s=self.leak_window_s, leak_min_samples=self.leak_min_samples,
            leak_min_growth_bytes_per_s=self.leak_min_growth_bytes_per_s,
            agent_memory_limit_bytes=self.agent_memory_limit_bytes, min_samples=self.profile_min_samples,
            saturation_utilization=self.saturation_utilization, slow_agent_factor=self.slow_agent_factor,
            cold_cache_hit_rate=self.cold_cache_hit_rate, warmup_max_tasks=self.warmup_max_tasks,
            popularity_half_life_s=self.popularity_half_life_s,
        )

    def cache_sync(self) -> CacheSyncConfig:
        return CacheSyncConfig(
            invalidation_log_size=self.invalidation_log_size, invalidate_wait_s=self.invalidate_wait_s,
            warmup_max_tasks=self.warmup_max_tasks, popularity_keys=self.popularity_keys,
            popularity_half_life_s=self.popularity_half_life_s,
        )

    def core(self) -> CoreConfig:
        return CoreConfig(
            limits=Limits(max_payload_bytes=self.max_payload_bytes, max_batch=self.max_batch),
            lease_timeout_s=self.lease_timeout_s,
            default_timeout_ms=self.default_timeout_ms,
            default_max_attempts=self.default_max_attempts,
            deadline_grace_s=self.deadline_grace_s,
            retention_s=self.result_retention_s,
            max_retained=self.max_retained_results,
            max_queued=self.max_queued_tasks,
            balancer=BalancerConfig(strategy=self.strategy, overrides=parse_overrides(self.strategy_overrides),
                                    cache_load_slack=self.cache_load_slack, warm_in_flight=self.warm_in_flight),
            fairness=FairnessConfig(priority_step_s=self.priority_step_s, aging_bound_s=self.aging_bound_s,
                                    tenant_weights=parse_weights(self.tenant_weights),
                                    max_pending_per_tenant=self.max_pending_per_tenant),
            health=HealthConfig(slow_start_s=self.slow_start_s, outlier_ejection=self.eject_base_s > 0,
                                eject_base_s=self.eject_base_s),
        )

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="swarmmesh coordinator", description="Run the swarmmesh coordinator.")
        defaults = cls()
        for f in fields(cls):
            default = getattr(defaults, f.name)
            p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(default), default=None,
                           metavar=type(default).__name__.upper(),
                           help=f"(env SWARMMESH_{f.name.upper()}, default {default!r})")
        return p

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
                  ) -> CoordinatorConfig:
        """Flags override environment variables, which override defaults."""
        env = os.environ if env is None else env
        parser = cls.parser()
        ns = parser.parse_args(argv)
        defaults = cls()
        values: dict[str, object] = {}
        for f in fields(cls):
            kind = type(getattr(defaults, f.name))
            flag = getattr(ns, f.name)
            if flag is not None:
                values[f.name] = flag
            elif (raw := env.get(f"SWARMMESH_{f.name.upper()}")) is not None:
                try:
                    values[f.name] = kind(raw)
                except ValueError:
                    parser.error(f"SWARMMESH_{f.name.upper()}={raw!r} is not a valid {kind.__name__}")
        cfg = cls(**values)  # type: ignore[arg-type]
        problem = cfg.problem()
        if problem:
            parser.error(problem)
        return cfg

    def problem(self) -> str:
        """The first invalid setting, described; empty when all are valid."""
        if ":" not in self.listen:
            return f"listen: {self.listen!r} is not host:port"
        for name in ("heartbeat_interval_s", "lease_timeout_s", "tick_interval_s"):
            if getattr(self, name) <= 0:
                return f"{name}: must be positive"
        if self.lease_timeout_s <= self.heartbeat_interval_s:
            return "lease_timeout_s: must be longer than heartbeat_interval_s"
        if self.invalidate_wait_s < 0 or self.warmup_max_tasks < 0:
            return "invalidate_wait_s and warmup_max_tasks: must not be negative"
        if self.popularity_half_life_s <= 0:
            return "popularity_half_life_s: must be positive"
        for name in ("max_retained_results", "max_queued_tasks", "max_payload_bytes", "max_batch",
                     "default_max_attempts", "invalidation_log_size", "popularity_keys"):
            if getattr(self, name) < 1:
                return f"{name}: must be at least 1"
        if self.max_payload_bytes >= self.max_message_bytes:
            return "max_payload_bytes: must be smaller than max_message_bytes"
        if problem := self._cpus_problem():
            return problem
        if problem := self._metrics_problem():
            return problem
        if self.tracing not in ("on", "off"):
            return f"tracing: {self.tracing!r} is not on or off"
        if self.trace_sample_ratio > 1:
            return "trace_sample_ratio: must be at most 1 (or negative for OTEL_TRACES_SAMPLER)"
        try:
            self.profiler()
        except ValueError as e:
            return str(e)
        return self._balancing_problem()

    def pinned_cpus(self) -> frozenset[int]:
        """The CPUs named by `cpus` (none: not pinned)."""
        return affinity.parse_cpus(self.cpus)

    def _cpus_problem(self) -> str:
        try:
            cpus = self.pinned_cpus()
        except ValueError as e:
            return f"cpus: {e}"
        if cpus and (why := affinity.problem(cpus)):
            return f"cpus: {why}"
        return ""

    def _metrics_problem(self) -> str:
        if self.metrics_listen:
            try:
                split_listen(self.metrics_listen)
            except ValueError as e:
                return f"metrics_listen: {e}"
        if self.otlp_metrics not in OTLP_MODES:
            return f"otlp_metrics: {self.otlp_metrics!r} is not one of {', '.join(OTLP_MODES)}"
        if self.metrics_max_agents < 0:
            return "metrics_max_agents: must not be negative"
        return ""

    def _balancing_problem(self) -> str:
        problem = check_strategy(self.strategy)
        if problem:
            return problem
        try:
            parse_overrides(self.strategy_overrides)
            parse_weights(self.tenant_weights)
        except ValueError as e:
            return str(e)
        for name in ("max_pending_per_tenant", "priority_step_s", "aging_bound_s", "slow_start_s", "eject_base_s",
                     "warm_in_flight"):
            if getattr(self, name) < 0:
                return f"{name}: must not be negative"
        return ""
