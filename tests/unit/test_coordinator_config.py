"""The coordinator's config: sections checked when built, and the flags and environment variables onto them."""

from __future__ import annotations

import dataclasses

import pytest

from coordinator import flags
from coordinator.config import CoordinatorConfig, MetricsConfig, ServerConfig, TracesConfig
from coordinator.core.balancer import BalancerConfig
from coordinator.core.mesh import CoreConfig
from coordinator.journal.config import JournalConfig
from coordinator.profile.config import ProfilerConfig
from coordinator.server import Coordinator
from coordinator.service.cache_sync import CacheSyncConfig

# The settings from before the nesting: users, the demo, the bench, deploy/compose.yaml and the
# tests pass them, so each must keep working.
FLAT_NAMES = (
    "listen", "heartbeat_interval_s", "lease_timeout_s", "tick_interval_s", "default_timeout_ms",
    "default_max_attempts", "deadline_grace_s", "result_retention_s", "max_retained_results", "max_queued_tasks",
    "max_payload_bytes", "max_batch", "max_message_bytes", "strategy", "strategy_overrides", "cache_load_slack",
    "warm_in_flight", "tenant_weights", "max_pending_per_tenant", "priority_step_s", "aging_bound_s",
    "slow_start_s", "eject_base_s", "shutdown_grace_s", "invalidation_log_size", "invalidate_wait_s",
    "warmup_max_tasks", "popularity_keys", "popularity_half_life_s", "profile_window_s", "history_path",
    "history_interval_s", "history_retention_s", "leak_window_s", "leak_min_samples",
    "leak_min_growth_bytes_per_s", "agent_memory_limit_bytes", "profile_min_samples", "saturation_utilization",
    "slow_agent_factor", "cold_cache_hit_rate", "tracing", "otlp_endpoint", "trace_sample_ratio",
    "metrics_listen", "otlp_metrics", "metrics_max_agents", "cpus", "ready_file", "log_level",
)


def test_flags_override_env_over_defaults() -> None:
    env = {"SWARMMESH_LEASE_TIMEOUT_S": "7.5", "SWARMMESH_LISTEN": "0.0.0.0:9000"}
    cfg = flags.from_args(["--listen", "127.0.0.1:0", "--unsafe-no-journal"], env)
    assert cfg.server.listen == "127.0.0.1:0" and cfg.core.lease_timeout_s == 7.5
    assert cfg.core.lease_timeout_s == 7.5


@pytest.mark.parametrize(("argv", "env"), [
    (["--lease-timeout-s", "0.5", "--heartbeat-interval-s", "1"], {}),
    ([], {"SWARMMESH_MAX_BATCH": "lots"}),
    (["--listen", "nowhere"], {}),
])
def test_bad_settings_exit_with_a_message(argv: list[str], env: dict[str, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        flags.from_args(argv, env)
    assert "error:" in capsys.readouterr().err


def test_history_is_kept_on_disk_only_for_a_coordinator_with_a_fixed_port() -> None:
    def at(listen: str) -> ServerConfig:
        return ServerConfig(listen=listen)

    env = {"XDG_STATE_HOME": "/state"}
    assert CoordinatorConfig(server=at("0.0.0.0:7070")).resolved_history_path(env) == \
        "/state/swarmmesh/history-0.0.0.0-7070.sqlite"
    assert CoordinatorConfig(server=at("127.0.0.1:0"), journal=JournalConfig(unsafe_no_journal=True)
                             ).resolved_history_path(env) == ""  # throwaway: memory only
    assert CoordinatorConfig(server=at("0.0.0.0:7070"), profile=ProfilerConfig(history_path="")
                             ).resolved_history_path(env) == ""
    assert CoordinatorConfig(profile=ProfilerConfig(history_path="/x/h.sqlite")).resolved_history_path(env) == \
        "/x/h.sqlite"
    assert CoordinatorConfig(server=at("0.0.0.0:7070")).resolved_history_path({}).endswith(
        "/.local/state/swarmmesh/history-0.0.0.0-7070.sqlite")



def test_every_setting_keeps_its_flag_and_environment_variable_and_help_shows_both() -> None:
    assert not set(FLAT_NAMES) - set(flags.BY_NAME)  # settings may be added, none may go
    assert len(flags.BY_NAME) == len(flags.SETTINGS)  # and no two share a name
    text = flags.parser().format_help()
    for name in FLAT_NAMES:
        setting = flags.BY_NAME[name]
        assert setting.flag == "--" + name.replace("_", "-") and setting.env == "SWARMMESH_" + name.upper()
        assert setting.flag in text and setting.env in text
    assert "(env SWARMMESH_STRATEGY, default 'hybrid')" in text
    assert "(env SWARMMESH_TRACE_SAMPLE_RATIO, default -1)" in text


def test_text_becomes_typed_fields_at_the_edge() -> None:
    cfg = flags.from_args(
        ["--tracing", "off", "--cpus", "", "--strategy-overrides", "ocr=expertise", "--trace-sample-ratio", "-1"],
        {"SWARMMESH_TENANT_WEIGHTS": "gold=3,silver=1.5", "SWARMMESH_EJECT_BASE_S": "0",
         "SWARMMESH_RESULT_RETENTION_S": "60", "SWARMMESH_HISTORY_PATH": ""})
    assert cfg.tracing.enabled is False and cfg.tracing.sample_ratio is None
    assert cfg.server.cpus == frozenset()
    assert cfg.core.balancer.overrides == (("ocr", "expertise"),)
    assert cfg.core.fairness.tenant_weights == (("gold", 3.0), ("silver", 1.5))
    assert cfg.core.health.eject_base_s == 0 and not cfg.core.health.outlier_ejection
    assert cfg.core.retention_s == 60.0
    assert cfg.profile.history_path == ""  # an empty variable is a value: history in memory


def test_each_default_is_the_sections_own() -> None:
    cfg = CoordinatorConfig()
    assert cfg.core == CoreConfig() and cfg.cache == CacheSyncConfig() and cfg.server == ServerConfig()
    assert cfg.profile == ProfilerConfig(history_path="auto")
    assert flags.from_args([], {}) == cfg


@pytest.mark.parametrize(("build", "named"), [
    (lambda: ServerConfig(listen="nowhere"), "listen"),
    (lambda: ServerConfig(tick_interval_s=0), "tick_interval_s"),
    (lambda: ServerConfig(log_level="loud"), "log_level"),
    (lambda: MetricsConfig(otlp="yes"), "otlp"),
    (lambda: TracesConfig(sample_ratio=1.5), "sample_ratio"),
    (lambda: CacheSyncConfig(popularity_keys=0), "popularity_keys"),
    (lambda: CoordinatorConfig(core=CoreConfig(max_retained=0)), "core.max_retained"),
    (lambda: CoordinatorConfig(core=CoreConfig(balancer=BalancerConfig(strategy="fastest"))),
     "core.balancer.strategy"),
    (lambda: CoordinatorConfig(core=CoreConfig(lease_timeout_s=0.5)), "core.lease_timeout_s"),
])
def test_a_bad_value_fails_on_construction_naming_its_field(build: object, named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named}: "):
        build()  # type: ignore[operator]


def test_a_coordinator_cannot_be_given_a_bad_config() -> None:
    good = CoordinatorConfig()
    with pytest.raises(ValueError, match="max_batch"):
        Coordinator(dataclasses.replace(good, core=dataclasses.replace(
            good.core, limits=dataclasses.replace(good.core.limits, max_batch=0))))


def test_errors_from_flags_name_the_flag_not_the_field() -> None:
    for text, message in (
        ({"max_retained_results": "0"}, "max_retained_results: must be at least 1"),
        ({"metrics_listen": "9464"}, "metrics_listen: '9464' is not host:port"),
        ({"strategy_overrides": "ocr=fastest"}, "strategy_overrides['ocr']: 'fastest' is not a strategy"),
        ({"max_batch": "lots"}, "max_batch: 'lots' is not a valid int"),
        ({"tracing": "maybe"}, "tracing: 'maybe' is not on or off"),
    ):
        with pytest.raises(ValueError) as e:
            flags.from_text(text)
        assert str(e.value).startswith(message), (text, str(e.value))
