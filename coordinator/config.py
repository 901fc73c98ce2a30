"""The coordinator's configuration: one frozen object, nested by concern, validated when built.

    CoordinatorConfig
      server    ServerConfig      the gRPC port, message size, heartbeats and sweeps, shutdown, CPUs, logs
      core      CoreConfig        leases, deadlines, retention and input limits (coordinator/core/mesh.py);
                                  balancing is the core's too: core.balancer (strategies), core.fairness
                                  (tenants, priorities) and core.health (slow start, ejection)
      cache     CacheSyncConfig   invalidation log, warm-ups, key popularity (service/cache_sync.py)
      profile   ProfilerConfig    windows, history and thresholds (profile/config.py)
      metrics   MetricsConfig     the Prometheus endpoint and OTLP metrics push
      tracing   TracesConfig      spans over OTLP
      journal   JournalConfig     where the journal is and how it syncs (journal/config.py)

A section belongs to the part that reads it, and each default is written
once, there. Fields are typed (a bool, a frozenset of CPUs, pairs); text is
parsed only at the edge, coordinator/flags.py, which maps each flag and
environment variable onto a field. Each section checks itself on
construction; CoordinatorConfig checks its core section (check_core: the core
runs with whatever it is given, the simulator's and the tests' settings too)
and the settings that span sections, so any config a Coordinator gets is
valid: a bad value raises ValueError naming the field. Sections for later
concerns (security) join the same way: a field here, a Setting for each flag
in coordinator/flags.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from coordinator.core.mesh import CoreConfig
from coordinator.core.routing import check_strategy
from coordinator.journal.config import JournalConfig
from coordinator.metrics.service import OTLP_MODES, split_listen
from coordinator.profile.config import ProfilerConfig
from coordinator.service.cache_sync import CacheSyncConfig
from swarmmesh import affinity
from swarmmesh.telemetry import TracingConfig

# profile.history_path and journal.location: a file per fixed address, see CoordinatorConfig.state_file.
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    # host:port to serve on; port 0 picks a free port (see ready_file).
    listen: str = "127.0.0.1:7070"
    # Seconds between sidecar heartbeats (told to sidecars at registration).
    heartbeat_interval_s: float = 1.0
    # Seconds between lease, deadline and retention sweeps.
    tick_interval_s: float = 0.2
    # Largest gRPC message, in bytes (a batch of payloads must fit).
    max_message_bytes: int = 64 * 1024 * 1024
    # Seconds to let in-flight RPCs finish on shutdown.
    shutdown_grace_s: float = 5.0
    # If set, a JSON file {"address", "pid", "metrics_address"} is written here once serving.
    ready_file: str = ""
    # CPUs to keep every thread of the coordinator on; empty = wherever the OS puts them.
    # One CPU makes each hand-off between gRPC's thread and the loop's cheaper (see
    # swarmmesh.affinity): worth it only where the coordinator has that CPU to itself.
    cpus: frozenset[int] = frozenset()
    # Python logging level name.
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpus", frozenset(self.cpus))
        object.__setattr__(self, "log_level", str(self.log_level).upper())
        if ":" not in self.listen:
            raise ValueError(f"listen: {self.listen!r} is not host:port")
        for name in ("heartbeat_interval_s", "tick_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive")
        if self.max_message_bytes < 1:
            raise ValueError("max_message_bytes: must be at least 1")
        if self.cpus and (why := affinity.problem(self.cpus)):
            raise ValueError(f"cpus: {why}")
        if self.log_level not in logging.getLevelNamesMapping():
            raise ValueError(f"log_level: {self.log_level!r} is not a logging level")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    # host:port of the Prometheus scrape endpoint (GET /metrics); "" = none; port 0 = any free port.
    listen: str = ""
    # OTLP metrics push (to tracing.otlp_endpoint or OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT, every
    # OTEL_METRIC_EXPORT_INTERVAL ms, default 60000): "auto" = when OTEL_METRICS_EXPORTER lists otlp; "on"; "off".
    otlp: str = "auto"
    # Agents with series of their own at most (by agent id); mesh-wide metrics count every agent.
    max_agents: int = 1000

    def __post_init__(self) -> None:
        if self.listen:
            try:
                split_listen(self.listen)
            except ValueError as e:
                raise ValueError(f"listen: {e}") from None
        if self.otlp not in OTLP_MODES:
            raise ValueError(f"otlp: {self.otlp!r} is not one of {', '.join(OTLP_MODES)}")
        if self.max_agents < 0:
            raise ValueError("max_agents: must not be negative")


@dataclass(frozen=True, slots=True)
class TracesConfig:
    # Spans of every task over OTLP/gRPC (OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none
    # also turn them off).
    enabled: bool = True
    # Collector endpoint (spans, and metrics when pushed), e.g. http://localhost:4317;
    # "" = OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT or that default.
    otlp_endpoint: str = ""
    # Share of traces started here that are sampled, 0..1; None = from OTEL_TRACES_SAMPLER(_ARG).
    # Tasks that arrive with a trace context follow its decision.
    sample_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.sample_ratio is not None and not 0 <= self.sample_ratio <= 1:
            raise ValueError("sample_ratio: must be between 0 and 1 (None: OTEL_TRACES_SAMPLER decides)")

    def tracer_config(self) -> TracingConfig:
        return TracingConfig.from_env("swarmmesh-coordinator", enabled=self.enabled, endpoint=self.otlp_endpoint,
                                      sample_ratio=self.sample_ratio)


def check_core(core: CoreConfig) -> None:
    """ValueError naming the first field of `core` (relative to it) that the coordinator cannot run with."""
    if not core.lease_timeout_s > 0:
        raise ValueError("lease_timeout_s: must be positive")
    for name, count in (("max_retained", core.max_retained), ("max_queued", core.max_queued),
                        ("default_max_attempts", core.default_max_attempts),
                        ("limits.max_payload_bytes", core.limits.max_payload_bytes),
                        ("limits.max_batch", core.limits.max_batch)):
        if count < 1:
            raise ValueError(f"{name}: must be at least 1")
    if problem := check_strategy(core.balancer.strategy, "balancer.strategy"):
        raise ValueError(problem)
    for kind, name in core.balancer.overrides:
        if problem := check_strategy(name, f"balancer.overrides[{kind!r}]"):
            raise ValueError(problem)
    for tenant, weight in core.fairness.tenant_weights:
        if not 0 < weight < float("inf"):
            raise ValueError(f"fairness.tenant_weights[{tenant!r}]: {weight} is not a positive weight")
    not_negative: tuple[tuple[str, float], ...] = (
        ("balancer.warm_in_flight", core.balancer.warm_in_flight),
        ("fairness.max_pending_per_tenant", core.fairness.max_pending_per_tenant),
        ("fairness.priority_step_s", core.fairness.priority_step_s),
        ("fairness.aging_bound_s", core.fairness.aging_bound_s),
        ("health.slow_start_s", core.health.slow_start_s),
        ("health.eject_base_s", core.health.eject_base_s),
    )
    for name, value in not_negative:
        if value < 0:
            raise ValueError(f"{name}: must not be negative")


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Everything a coordinator process needs (see the module's note); valid once built."""

    server: ServerConfig = field(default_factory=ServerConfig)
    core: CoreConfig = field(default_factory=CoreConfig)
    cache: CacheSyncConfig = field(default_factory=CacheSyncConfig)
    # The coordinator's history_path is "auto": $XDG_STATE_HOME/swarmmesh/history-<host>-<port>.sqlite
    # (~/.local/state by default) for a fixed port, in memory only for port 0 (a throwaway
    # coordinator has no identity to resume); "" (ProfilerConfig's own default) = in memory only.
    # Its warm-up settings follow `cache` (see profiler()).
    profile: ProfilerConfig = field(default_factory=lambda: ProfilerConfig(history_path=AUTO))
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracesConfig = field(default_factory=TracesConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)

    def __post_init__(self) -> None:
        try:
            check_core(self.core)
        except ValueError as e:
            raise ValueError(f"core.{e}") from None
        if self.core.lease_timeout_s <= self.server.heartbeat_interval_s:
            raise ValueError("core.lease_timeout_s: must be longer than server.heartbeat_interval_s")
        if self.core.limits.max_payload_bytes >= self.server.max_message_bytes:
            raise ValueError("core.limits.max_payload_bytes: must be smaller than server.max_message_bytes")
        journal = self.journal
        if not journal.unsafe_no_journal and journal.location == AUTO and not self.state_file("journal"):
            raise ValueError(f"journal: {self.server.listen} has no fixed port to name the journal's file "
                             "after; give --journal PATH (the demo and tests use their temporary directory) "
                             "or --unsafe-no-journal")

    def state_file(self, name: str, env: Mapping[str, str] | None = None) -> str:
        """$XDG_STATE_HOME/swarmmesh/<name>-<host>-<port>.sqlite (~/.local/state by default): a file
        of this coordinator's address; "" for port 0, which names no coordinator to resume."""
        host, _, port = self.server.listen.rpartition(":")
        if port in ("", "0"):
            return ""
        env = os.environ if env is None else env
        state = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        return os.path.join(state, "swarmmesh", f"{name}-{host.strip('[]').replace(':', '_') or 'any'}-{port}.sqlite")

    def resolved_history_path(self, env: Mapping[str, str] | None = None) -> str:
        path = self.profile.history_path
        return self.state_file("history", env) if path == AUTO else path

    def resolved_journal_location(self, env: Mapping[str, str] | None = None) -> str:
        """Where the journal is; "" when there is none (unsafe_no_journal)."""
        if self.journal.unsafe_no_journal:
            return ""
        location = self.journal.location
        return self.state_file("journal", env) if location == AUTO else location

    def profiler(self) -> ProfilerConfig:
        """The profiler's settings as it runs: its history file resolved, and the warm-ups
        it advises about the ones the cache sync performs."""
        return replace(self.profile, history_path=self.resolved_history_path(),
                       warmup_max_tasks=self.cache.warmup_max_tasks,
                       popularity_half_life_s=self.cache.popularity_half_life_s)
