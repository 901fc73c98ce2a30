"""The coordinator's flags and environment variables, and how they map onto CoordinatorConfig.

Every setting is a flag `--name` and an environment variable `SWARMMESH_NAME`;
a flag wins over its variable, which wins over the field's default (an empty
variable counts as set: SWARMMESH_HISTORY_PATH= keeps the history in memory).
Each setting names the config field it sets; the names are flat, as they were
before the config was nested, so `--result-retention-s` sets core.retention_s.
Text is parsed here and nowhere else; the config then checks the values, and
its complaints are told by setting name.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from coordinator.config import CoordinatorConfig
from coordinator.core.fairness import parse_weights
from coordinator.core.retry import POLICY_FORM, format_retry_policies, parse_retry_policies
from coordinator.core.routing import parse_overrides
from coordinator.journal.config import parse_sync
from swarmmesh import affinity
from swarmmesh.switch import parse_switch

ENV_PREFIX = "SWARMMESH_"
N = TypeVar("N", int, float)


def _number(kind: type[N]) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid {kind.__name__}") from None

    return parse


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError(f"{text!r} is not on or off")
    return text == "on"


def _ratio(text: str) -> float | None:
    """A share 0..1; a negative number leaves it to OTEL_TRACES_SAMPLER (None)."""
    value = _number(float)(text)
    return None if value < 0 else value


def _pairs(items: Iterable[tuple[str, object]]) -> str:
    return ",".join(f"{k}={v}" for k, v in items)


@dataclass(frozen=True, slots=True)
class Setting:
    """One flag and environment variable, and the field of CoordinatorConfig it sets."""

    # Dotted path of the field, e.g. "core.balancer.strategy".
    path: str
    # The setting's name where it is not the field's own (the names predate the nesting).
    flat_name: str = ""
    # Text -> the field's value (ValueError says what is wrong); None = the field's type (str, int, float).
    parse: Callable[[str], object] | None = None
    # The field's value as text, for --help; None = repr.
    show: Callable[[Any], str] | None = None
    metavar: str = ""
    # Fields that follow from the value, by path.
    implies: Callable[[Any], Mapping[str, object]] | None = None
    # A flag that takes no value and sets the field to True (its variable still takes one).
    switch: bool = False

    @property
    def name(self) -> str:
        """The flag's name with underscores, e.g. "result_retention_s"."""
        return self.flat_name or self.path.rpartition(".")[2]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("server.listen"),
    Setting("server.heartbeat_interval_s"),
    Setting("server.tick_interval_s"),
    Setting("server.max_message_bytes"),
    Setting("server.shutdown_grace_s"),
    Setting("server.ready_file"),
    Setting("server.cpus", parse=affinity.parse_cpus, show=lambda v: repr(affinity.format_cpus(v)), metavar="LIST"),
    Setting("server.log_level"),
    Setting("core.lease_timeout_s"),
    Setting("core.default_timeout_ms"),
    Setting("core.default_max_attempts"),
    # Per-kind retry policies, "KIND=max_attempts:N,backoff:INITIAL-MAX,multiplier:M,on:TYPE|TYPE;..."
    # (docs/retries.md); kinds without one never retry a handler's error.
    Setting("core.retry.policies", flat_name="retry_policy", parse=parse_retry_policies,
            show=lambda v: repr(format_retry_policies(v)), metavar=POLICY_FORM + ";..."),
    Setting("core.deadline_grace_s"),
    Setting("core.retention_s", flat_name="result_retention_s"),
    Setting("core.max_retained", flat_name="max_retained_results"),
    Setting("core.max_queued", flat_name="max_queued_tasks"),
    Setting("core.limits.max_payload_bytes"),
    Setting("core.limits.max_batch"),
    Setting("core.balancer.strategy"),
    Setting("core.balancer.overrides", flat_name="strategy_overrides", parse=parse_overrides,
            show=lambda v: repr(_pairs(v)), metavar="KIND=STRATEGY,..."),
    Setting("core.balancer.cache_load_slack"),
    Setting("core.balancer.warm_in_flight"),
    Setting("core.fairness.tenant_weights", parse=parse_weights, show=lambda v: repr(_pairs(v)),
            metavar="TENANT=WEIGHT,..."),
    Setting("core.fairness.max_pending_per_tenant"),
    Setting("core.fairness.priority_step_s"),
    Setting("core.fairness.aging_bound_s"),
    Setting("core.health.slow_start_s"),
    # 0 = never eject.
    Setting("core.health.eject_base_s", implies=lambda v: {"core.health.outlier_ejection": v > 0}),
    Setting("cache.invalidation_log_size"),
    Setting("cache.invalidate_wait_s"),
    Setting("cache.warmup_max_tasks"),
    Setting("cache.popularity_keys"),
    Setting("cache.popularity_half_life_s"),
    Setting("profile.window_s", flat_name="profile_window_s"),
    Setting("profile.history_path"),
    Setting("profile.history_interval_s"),
    Setting("profile.history_retention_s"),
    Setting("profile.leak_window_s"),
    Setting("profile.leak_min_samples"),
    Setting("profile.leak_min_growth_bytes_per_s"),
    Setting("profile.agent_memory_limit_bytes"),
    Setting("profile.min_samples", flat_name="profile_min_samples"),
    Setting("profile.saturation_utilization"),
    Setting("profile.slow_agent_factor"),
    Setting("profile.cold_cache_hit_rate"),
    Setting("metrics.listen", flat_name="metrics_listen"),
    Setting("metrics.otlp", flat_name="otlp_metrics"),
    Setting("metrics.max_agents", flat_name="metrics_max_agents"),
    Setting("tracing.enabled", flat_name="tracing", parse=_on_off, show=lambda v: repr("on" if v else "off"),
            metavar="on|off"),
    Setting("tracing.otlp_endpoint"),
    Setting("tracing.sample_ratio", flat_name="trace_sample_ratio", parse=_ratio,
            show=lambda v: "-1" if v is None else repr(v), metavar="FLOAT"),
    # A path, sqlite:///path, or "auto" (a file of this address under $XDG_STATE_HOME; docs/journal.md).
    Setting("journal.location", flat_name="journal", metavar="PATH"),
    Setting("journal.sync", flat_name="journal_sync", parse=parse_sync, show=lambda v: repr(v.value),
            metavar="full|normal"),
    Setting("journal.unsafe_no_journal", parse=parse_switch, switch=True),
)
BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
_BY_PATH: Mapping[str, Setting] = {s.path: s for s in SETTINGS}
_DEFAULTS = CoordinatorConfig()
# A message's leading field, as a section names it: "listen: ..." or "balancer.overrides['ocr']: ...".
_LEADING_FIELD = re.compile(r"(?P<path>[\w.]+)(?P<rest>(\[[^\]]*\])?: .*)", re.DOTALL)


def _value_at(config: object, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def _parser_of(setting: Setting) -> Callable[[str], object]:
    if setting.parse is not None:
        return setting.parse
    kind = type(_value_at(_DEFAULTS, setting.path))
    if kind is str:
        return str
    if kind in (int, float):
        return _number(kind)
    raise TypeError(f"{setting.path}: a {kind.__name__} field needs a parse function")


def _set(values: dict[str, object], setting: Setting, raw: str) -> None:
    """Parse `raw` into the setting's field (and the fields it implies); ValueError says what is wrong."""
    value = _parser_of(setting)(raw)
    values[setting.path] = value
    if setting.implies is not None:
        values.update(setting.implies(value))


def build(values: Mapping[str, object]) -> CoordinatorConfig:
    """The defaults with these fields (by dotted path) replaced, and checked; ValueError names
    the field at fault by its setting's name where it has one."""
    config = _replaced(_DEFAULTS, "", values)
    assert isinstance(config, CoordinatorConfig)
    return config


def _replaced(obj: Any, prefix: str, values: Mapping[str, object]) -> object:
    changes: dict[str, object] = {}
    for f in fields(obj):
        path = prefix + f.name
        if path in values:
            changes[f.name] = values[path]
        elif any(p.startswith(path + ".") for p in values):
            changes[f.name] = _replaced(getattr(obj, f.name), path + ".", values)
    if not changes:
        return obj
    try:
        return replace(obj, **changes)
    except ValueError as e:
        raise ValueError(_told_by_name(prefix, str(e))) from None


def _told_by_name(prefix: str, message: str) -> str:
    """A section names the field at fault relative to itself; a user knows the setting's name."""
    m = _LEADING_FIELD.fullmatch(message)
    setting = None if m is None else _BY_PATH.get(prefix + m["path"])
    if m is None or setting is None:
        return message
    return setting.name + m["rest"]


def from_text(text: Mapping[str, str]) -> CoordinatorConfig:
    """The config from settings written as text, by name (e.g. {"lease_timeout_s": "7.5"});
    ValueError names the first setting at fault."""
    values: dict[str, object] = {}
    for name, raw in text.items():
        setting = BY_NAME.get(name)
        if setting is None:
            raise ValueError(f"{name}: not a coordinator setting")
        try:
            _set(values, setting, raw)
        except ValueError as e:
            # Some parsers (the core's, of pairs) name their setting already.
            message = str(e)
            raise ValueError(message if message.startswith(name) else f"{name}: {message}") from None
    return build(values)


def parser() -> argparse.ArgumentParser:
    """Flags for every setting, grouped by section; one not given stays None, for its
    environment variable to fill."""
    p = argparse.ArgumentParser(prog="swarmmesh coordinator", description="Run the swarmmesh coordinator.",
                                epilog="A flag wins over its environment variable, which wins over the default.")
    groups = {section: p.add_argument_group(section)
              for section in dict.fromkeys(s.path.partition(".")[0] for s in SETTINGS)}
    for s in SETTINGS:
        value = _value_at(_DEFAULTS, s.path)
        shown = s.show(value) if s.show is not None else repr(value)
        group = groups[s.path.partition(".")[0]]
        if s.switch:
            group.add_argument(s.flag, dest=s.name, default=None, action="store_const", const="1",
                               help=f"(env {s.env}=1, default off)")
            continue
        group.add_argument(
            s.flag, dest=s.name, default=None, metavar=s.metavar or type(value).__name__.upper(),
            help=f"(env {s.env}, default {shown})")
    return p


def from_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> CoordinatorConfig:
    """Flags (default sys.argv[1:]) over environment variables (default os.environ) over
    defaults; a bad value exits with a message, as argparse does."""
    env = os.environ if env is None else env
    p = parser()
    ns = p.parse_args(argv)
    values: dict[str, object] = {}
    for s in SETTINGS:
        flag = getattr(ns, s.name)
        raw, source = (flag, f"argument {s.flag}") if flag is not None else (env.get(s.env), s.env)
        if raw is None:
            continue
        try:
            _set(values, s, raw)
        except ValueError as e:
            p.error(f"{source}: {e}")
    try:
        return build(values)
    except ValueError as e:
        p.error(str(e))
