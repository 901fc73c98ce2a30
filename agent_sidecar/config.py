"""The sidecar's one configuration object, and how flags and environment map onto it.

Precedence: a command-line flag replaces the environment variable it corresponds
to, which replaces the default. Collection-valued settings (labels, kinds,
handlers) are replaced as a whole, not merged, so that what a flag says is
exactly what the sidecar uses.

| field                 | flag                      | environment variable            |
|-----------------------|---------------------------|---------------------------------|
| coordinator           | --coordinator             | SWARMMESH_COORDINATOR           |
| agent_id              | --agent-id                | SWARMMESH_AGENT_ID              |
| labels                | --label NAME=LEVEL (rep.) | SWARMMESH_LABELS="a=3,b=2"      |
| kinds                 | --kinds a,b               | SWARMMESH_KINDS="a,b"           |
| capacity              | --capacity                | SWARMMESH_CAPACITY              |
| default_handler       | --handler module:func     | SWARMMESH_HANDLER               |
| handlers              | --handler KIND=module:func| SWARMMESH_HANDLERS="k=m:f,..."  |
| version               | --version-tag             | SWARMMESH_VERSION_TAG           |
| heartbeat_interval_s  | --heartbeat-interval      | SWARMMESH_HEARTBEAT_INTERVAL    |
| reconnect_initial_s   | --reconnect-initial       | SWARMMESH_RECONNECT_INITIAL     |
| reconnect_max_s       | --reconnect-max           | SWARMMESH_RECONNECT_MAX         |
| register_timeout_s    | --register-timeout        | SWARMMESH_REGISTER_TIMEOUT      |
| drain_timeout_s       | --drain-timeout           | SWARMMESH_DRAIN_TIMEOUT         |
| held_results_max      | --held-results N          | SWARMMESH_HELD_RESULTS          |
| log_level             | --log-level               | SWARMMESH_LOG_LEVEL             |
| tracemalloc_top       | --tracemalloc-top N       | SWARMMESH_TRACEMALLOC_TOP       |
| tracing               | --tracing on|off          | SWARMMESH_TRACING               |
| otlp_endpoint         | --otlp-endpoint URL       | SWARMMESH_OTLP_ENDPOINT         |
| cache                 | --cache-*, --no-cache     | SWARMMESH_CACHE_* (cache/config)|
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from agent_sidecar.cache import config as cache_config
from agent_sidecar.cache.config import CacheConfig
from agent_sidecar.options import FieldPicker, arg_type, default_agent_id, split_list
from swarmmesh import affinity
from swarmmesh.telemetry import TracingConfig

DEFAULT_COORDINATOR = "127.0.0.1:7070"
ANY_KIND = "*"
# Mirrors the limits the coordinator enforces on Register, so a bad value fails
# at startup with a field name instead of as a rejected stream later.
MAX_AGENT_ID_CHARS = 128
MAX_KIND_CHARS = 128
MAX_CAPACITY = 10_000
MAX_LABEL_LEVEL = 2**32 - 1
MAX_TRACEMALLOC_TOP = 100
MAX_HELD_RESULTS = 10_000_000

_HANDLER_SPEC_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


@dataclass(frozen=True)
class SidecarConfig:
    """Everything a sidecar process needs; validated on construction."""

    # gRPC target of the coordinator's MeshService, "host:port".
    coordinator: str = DEFAULT_COORDINATOR
    # Stable identity; a new stream with the same id takes over the old one.
    agent_id: str = field(default_factory=default_agent_id)
    # Label name -> expertise level (0..2**32-1) used by the coordinator's routing.
    labels: Mapping[str, int] = field(default_factory=dict)
    # Task kinds advertised to the coordinator; empty = every kind the handlers
    # cover (all kinds when a default handler is configured).
    kinds: tuple[str, ...] = ()
    # Concurrent task slots (1..10000); also the size of the handler thread pool.
    capacity: int = 8
    # Task kind -> handler spec "module:function".
    handlers: Mapping[str, str] = field(default_factory=dict)
    # Handler spec "module:function" for any kind without its own handler.
    default_handler: str | None = None
    # Agent version reported at registration (free-form, e.g. a build tag).
    version: str = ""
    # Seconds between heartbeats; Registered.heartbeat_interval_ms overrides it.
    heartbeat_interval_s: float = 1.0
    # Reconnect backoff, seconds: full jitter over min(max, initial * 2**n).
    reconnect_initial_s: float = 0.1
    reconnect_max_s: float = 5.0
    # Seconds to wait for Registered after sending Register before retrying.
    register_timeout_s: float = 10.0
    # Seconds in-flight tasks may keep running once a drain starts.
    drain_timeout_s: float = 30.0
    # Results kept while the coordinator is unreachable (finished with no
    # stream up, or unanswered when the stream ended), to hand over when it is
    # back; once that many are kept, later ones are dropped. 0 = keep none.
    held_results_max: int = 10_000
    # Python logging level name.
    log_level: str = "INFO"
    # Top allocation sites (by live bytes, from tracemalloc) sent in heartbeats,
    # so the coordinator can say where a leaking agent's memory goes; 0 = off.
    # Tracing every allocation slows allocation-heavy handlers, hence opt-in.
    tracemalloc_top: int = 0
    # Spans of every attempt over OTLP/gRPC (OTEL_SDK_DISABLED=true or
    # OTEL_TRACES_EXPORTER=none also turn them off).
    tracing: bool = True
    # Collector endpoint; "" = OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT or http://localhost:4317.
    otlp_endpoint: str = ""
    # CPUs to keep every thread of the sidecar on (its handler threads too), e.g. frozenset({1});
    # empty = wherever the OS puts them (see swarmmesh.affinity).
    cpus: frozenset[int] = frozenset()
    # The result cache (agent_sidecar/cache/config.py).
    cache: CacheConfig = field(default_factory=CacheConfig)

    def __post_init__(self) -> None:
        # Frozen means frozen: copy the caller's mappings into read-only views.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "handlers", MappingProxyType(dict(self.handlers)))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        object.__setattr__(self, "cpus", frozenset(self.cpus))
        object.__setattr__(self, "log_level", str(self.log_level).upper())
        self._validate()

    def _validate(self) -> None:
        if not self.coordinator or any(c.isspace() for c in self.coordinator):
            raise ValueError(f"coordinator: expected a gRPC target like host:port, got {self.coordinator!r}")
        if not self.agent_id or len(self.agent_id) > MAX_AGENT_ID_CHARS:
            raise ValueError(f"agent_id: must be 1..{MAX_AGENT_ID_CHARS} characters, got {self.agent_id!r}")
        for name, level in self.labels.items():
            if not name:
                raise ValueError("labels: label names must not be empty")
            if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_LABEL_LEVEL:
                raise ValueError(
                    f"labels[{name!r}]: level must be an integer 0..{MAX_LABEL_LEVEL}, got {level!r}"
                )
        for kind in self.kinds:
            _check_kind("kinds", kind)
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise ValueError(f"capacity: must be an integer, got {self.capacity!r}")
        if not 1 <= self.capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity: must be 1..{MAX_CAPACITY}, got {self.capacity}")
        for kind, spec in self.handlers.items():
            _check_kind("handlers", kind)
            _check_spec(f"handlers[{kind!r}]", spec)
        if self.default_handler is not None:
            _check_spec("default_handler", self.default_handler)
        _check_positive("heartbeat_interval_s", self.heartbeat_interval_s)
        if self.cpus and (why := affinity.problem(self.cpus)):
            raise ValueError(f"cpus: {why}")
        _check_positive("reconnect_initial_s", self.reconnect_initial_s)
        _check_positive("reconnect_max_s", self.reconnect_max_s)
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s: must be >= reconnect_initial_s ({self.reconnect_initial_s}), "
                f"got {self.reconnect_max_s}"
            )
        _check_positive("register_timeout_s", self.register_timeout_s)
        if self.drain_timeout_s < 0:
            raise ValueError(f"drain_timeout_s: must be >= 0, got {self.drain_timeout_s}")
        if isinstance(self.held_results_max, bool) or not 0 <= self.held_results_max <= MAX_HELD_RESULTS:
            raise ValueError(f"held_results_max: must be 0..{MAX_HELD_RESULTS}, got {self.held_results_max!r}")
        if isinstance(self.tracemalloc_top, bool) or not 0 <= self.tracemalloc_top <= MAX_TRACEMALLOC_TOP:
            raise ValueError(f"tracemalloc_top: must be 0..{MAX_TRACEMALLOC_TOP}, got {self.tracemalloc_top!r}")
        if self.log_level not in _LOG_LEVELS:
            raise ValueError(f"log_level: must be one of {', '.join(_LOG_LEVELS)}, got {self.log_level!r}")

    def tracing_config(self) -> TracingConfig:
        return TracingConfig.from_env(
            "swarmmesh-sidecar", enabled=self.tracing, endpoint=self.otlp_endpoint,
        )

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


def _check_kind(field_name: str, kind: str) -> None:
    if not kind or len(kind) > MAX_KIND_CHARS:
        raise ValueError(f"{field_name}: a kind must be 1..{MAX_KIND_CHARS} characters, got {kind!r}")


def _check_spec(field_name: str, spec: str) -> None:
    if not _HANDLER_SPEC_RE.match(spec):
        raise ValueError(f"{field_name}: expected 'module:function', got {spec!r}")


def _check_positive(field_name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{field_name}: must be > 0 seconds, got {value}")


# --- text forms shared by flags and environment variables -------------------


def parse_label(text: str) -> tuple[str, int]:
    """'name=level' -> (name, level); a bare 'name' is level 0, as in the client CLI."""
    name, sep, level = text.partition("=")
    name = name.strip()
    if not name:
        raise ValueError(f"expected NAME=LEVEL, got {text!r}")
    if not sep:
        return name, 0
    try:
        value = int(level.strip())
    except ValueError:
        raise ValueError(f"level of label {name!r} must be an integer, got {level.strip()!r}") from None
    if not 0 <= value <= MAX_LABEL_LEVEL:
        raise ValueError(f"level of label {name!r} must be 0..{MAX_LABEL_LEVEL}, got {value}")
    return name, value


def parse_labels(text: str) -> dict[str, int]:
    """'text=3,lang=2' -> {'text': 3, 'lang': 2}."""
    return dict(parse_label(part) for part in split_list(text))


def parse_kinds(text: str) -> tuple[str, ...]:
    return tuple(split_list(text))


def parse_handler(text: str) -> tuple[str | None, str]:
    """'kind=module:function' -> (kind, spec); 'module:function' -> (None, spec).

    Module paths cannot contain '=', so the first '=' always ends the kind.
    '*=module:function' is the same as the default handler.
    """
    kind, sep, spec = text.partition("=")
    if not sep:
        return None, text.strip()
    kind = kind.strip()
    if not kind:
        raise ValueError(f"expected [KIND=]module:function, got {text!r}")
    return (None if kind == ANY_KIND else kind), spec.strip()


def parse_handlers(text: str) -> dict[str, str]:
    """'k1=m:f,k2=m:g' -> {'k1': 'm:f', 'k2': 'm:g'}; every entry needs a kind."""
    out: dict[str, str] = {}
    for part in split_list(text):
        kind, spec = parse_handler(part)
        if kind is None and "=" not in part:
            raise ValueError(f"expected KIND=module:function, got {part!r}")
        out[kind or ANY_KIND] = spec
    return out


# --- argparse ----------------------------------------------------------------




def build_parser(prog: str = "swarmmesh sidecar") -> argparse.ArgumentParser:
    """Flags for every SidecarConfig field; unset flags stay None so env can fill them."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run a swarmmesh sidecar: connect to the coordinator and run task handlers.",
        epilog=(
            "Environment: SWARMMESH_COORDINATOR, SWARMMESH_AGENT_ID, SWARMMESH_LABELS (text=3,lang=2), "
            "SWARMMESH_KINDS (a,b), SWARMMESH_CAPACITY, SWARMMESH_HANDLER (module:function), "
            "SWARMMESH_HANDLERS (kind=module:function,...), SWARMMESH_VERSION_TAG, "
            "SWARMMESH_HEARTBEAT_INTERVAL, SWARMMESH_RECONNECT_INITIAL, SWARMMESH_RECONNECT_MAX, "
            "SWARMMESH_REGISTER_TIMEOUT, SWARMMESH_DRAIN_TIMEOUT, SWARMMESH_HELD_RESULTS, SWARMMESH_LOG_LEVEL, SWARMMESH_TRACEMALLOC_TOP, "
            "SWARMMESH_CPUS (0-3), "
            f"{cache_config.ENV_HELP}. A flag replaces its environment variable."
        ),
    )
    p.add_argument("--coordinator", help=f"coordinator address host:port (default {DEFAULT_COORDINATOR})")
    p.add_argument("--agent-id", help="stable agent id (default hostname-pid)")
    p.add_argument(
        "--label",
        action="append",
        type=arg_type(parse_label),
        metavar="NAME=LEVEL",
        help="expertise label and level; repeatable",
    )
    p.add_argument("--kinds", type=arg_type(parse_kinds), help="comma-separated task kinds to advertise")
    p.add_argument("--capacity", type=int, help="concurrent task slots (default 8)")
    p.add_argument(
        "--handler",
        action="append",
        type=arg_type(parse_handler),
        metavar="[KIND=]module:function",
        help="handler for KIND, or the default handler without KIND=; repeatable",
    )
    p.add_argument("--version-tag", help="agent version reported to the coordinator")
    p.add_argument(
        "--heartbeat-interval", type=float, metavar="SECONDS", help="heartbeat period (default 1.0)"
    )
    p.add_argument(
        "--reconnect-initial", type=float, metavar="SECONDS", help="first backoff cap (default 0.1)"
    )
    p.add_argument("--reconnect-max", type=float, metavar="SECONDS", help="largest backoff cap (default 5.0)")
    p.add_argument(
        "--register-timeout", type=float, metavar="SECONDS", help="wait for Registered (default 10)"
    )
    p.add_argument(
        "--drain-timeout", type=float, metavar="SECONDS", help="in-flight grace on drain (default 30)"
    )
    p.add_argument("--held-results", type=int, metavar="N",
                   help="results kept while the coordinator is unreachable (default 10000)")
    p.add_argument("--log-level", type=str.upper, choices=_LOG_LEVELS, help="logging level (default INFO)")
    p.add_argument("--tracemalloc-top", type=int, metavar="N",
                   help="send the N largest allocation sites in heartbeats (tracemalloc; default 0 = off)")
    p.add_argument("--cpus", type=arg_type(affinity.parse_cpus), metavar="LIST",
                   help="CPUs to keep all the sidecar's threads on, e.g. 1 or 0-3 (default: the OS decides)")
    p.add_argument("--tracing", type=str.lower, choices=("on", "off"), help="export spans over OTLP (default on)")
    p.add_argument("--otlp-endpoint", metavar="URL",
                   help="OTLP/gRPC collector (default OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4317)")
    cache_config.add_arguments(p)
    return p


def from_namespace(ns: argparse.Namespace, env: Mapping[str, str] | None = None) -> SidecarConfig:
    """Merge parsed flags over environment variables into a validated config.

    Raises ValueError naming the field or the environment variable at fault.
    """
    env = os.environ if env is None else env
    pick = FieldPicker(env)
    pick("coordinator", ns.coordinator, "SWARMMESH_COORDINATOR")
    pick("agent_id", ns.agent_id, "SWARMMESH_AGENT_ID")
    pick("labels", None if ns.label is None else dict(ns.label), "SWARMMESH_LABELS", parse_labels)
    pick("kinds", ns.kinds, "SWARMMESH_KINDS", parse_kinds)
    pick("capacity", ns.capacity, "SWARMMESH_CAPACITY", int)
    flag_default, flag_handlers = _split_handler_flags(ns.handler)
    pick("default_handler", flag_default, "SWARMMESH_HANDLER")
    pick("handlers", flag_handlers, "SWARMMESH_HANDLERS", parse_handlers)
    pick("version", ns.version_tag, "SWARMMESH_VERSION_TAG")
    pick("heartbeat_interval_s", ns.heartbeat_interval, "SWARMMESH_HEARTBEAT_INTERVAL", float)
    pick("reconnect_initial_s", ns.reconnect_initial, "SWARMMESH_RECONNECT_INITIAL", float)
    pick("reconnect_max_s", ns.reconnect_max, "SWARMMESH_RECONNECT_MAX", float)
    pick("register_timeout_s", ns.register_timeout, "SWARMMESH_REGISTER_TIMEOUT", float)
    pick("drain_timeout_s", ns.drain_timeout, "SWARMMESH_DRAIN_TIMEOUT", float)
    pick("held_results_max", ns.held_results, "SWARMMESH_HELD_RESULTS", int)
    pick("log_level", ns.log_level, "SWARMMESH_LOG_LEVEL")
    pick("tracemalloc_top", ns.tracemalloc_top, "SWARMMESH_TRACEMALLOC_TOP", int)
    pick("tracing", None if ns.tracing is None else ns.tracing == "on", "SWARMMESH_TRACING", _on_off)
    pick("otlp_endpoint", ns.otlp_endpoint, "SWARMMESH_OTLP_ENDPOINT")
    pick("cpus", ns.cpus, "SWARMMESH_CPUS", affinity.parse_cpus)
    kw = pick.values
    kw["cache"] = cache_config.from_namespace(ns, env)

    # SWARMMESH_HANDLERS may name "*" too; the explicit default wins over it.
    handlers: dict[str, str] = dict(kw.get("handlers", {}))
    star = handlers.pop(ANY_KIND, None)
    if star is not None:
        kw.setdefault("default_handler", star)
    if "handlers" in kw:
        kw["handlers"] = handlers
    return SidecarConfig(**kw)


def _on_off(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"must be on or off, got {raw!r}")
    return value == "on"


def _split_handler_flags(
    values: Sequence[tuple[str | None, str]] | None,
) -> tuple[str | None, dict[str, str] | None]:
    """--handler values -> (default handler or None, kind map or None if no KIND= flag)."""
    if not values:
        return None, None
    default: str | None = None
    kinds: dict[str, str] | None = None
    for kind, spec in values:
        if kind is None:
            default = spec
        else:
            kinds = kinds if kinds is not None else {}
            kinds[kind] = spec
    return default, kinds


def from_env_and_args(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> SidecarConfig:
    """Parse argv (default sys.argv[1:]) and env (default os.environ) into a config.

    Invalid flags exit via argparse; invalid environment values raise ValueError.
    """
    parser = build_parser()
    ns = parser.parse_args(argv)
    return from_namespace(ns, env)
