"""Tracing configuration from the standard OTEL_* environment variables.

Honoured: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER (otlp or none),
OTEL_EXPORTER_OTLP[_TRACES]_{ENDPOINT,HEADERS,TIMEOUT,COMPRESSION,INSECURE,CERTIFICATE},
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG) and
OTEL_BSP_{SCHEDULE_DELAY,MAX_QUEUE_SIZE,MAX_EXPORT_BATCH_SIZE}. Only OTLP over
gRPC is spoken.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://localhost:4317"

# Root sampling ratio per OTEL_TRACES_SAMPLER value (None = from OTEL_TRACES_SAMPLER_ARG).
# Children always follow their parent's decision, whatever the sampler says,
# so a task's trace is whole or absent across processes.
_SAMPLERS: dict[str, float | None] = {
    "always_on": 1.0,
    "parentbased_always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
    "traceidratio": None,
    "parentbased_traceidratio": None,
}


@dataclass(frozen=True, slots=True)
class TracingConfig:
    enabled: bool = True
    # gRPC target (host:port) of the OTLP collector, and whether to use TLS.
    target: str = "localhost:4317"
    secure: bool = False
    # Shown in messages: the endpoint as configured.
    endpoint: str = DEFAULT_ENDPOINT
    # The endpoint was configured (flag or environment), not the default.
    endpoint_set: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    # Deadline of one export call, in seconds.
    timeout_s: float = 10.0
    gzip: bool = False
    certificate_file: str = ""
    service_name: str = "swarmmesh"
    # Resource attributes (service.name included), as OpenTelemetry's SDK builds them.
    resource: tuple[tuple[str, str | int | float | bool], ...] = ()
    # Share of traces started here (roots) that are sampled, 0..1.
    sample_ratio: float = 1.0
    # Export at least this often, in seconds; sooner when a batch fills.
    schedule_delay_s: float = 1.0
    # Spans waiting for export at most; beyond it new spans are dropped (counted).
    max_queue: int = 65_536
    max_batch: int = 2048

    @classmethod
    def from_env(
        cls,
        service_name: str,
        *,
        enabled: bool = True,
        endpoint: str = "",
        sample_ratio: float | None = None,
        only_if_configured: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> TracingConfig:
        """Read the OTEL_* variables; `endpoint` and `sample_ratio`, when set
        (from a process's flags), win over them. `service_name` is the default
        when OTEL_SERVICE_NAME is unset. `only_if_configured`: off unless an
        endpoint is given or set in the environment.

        A config that comes out disabled is returned without reading the
        rest: the resource (OpenTelemetry's SDK detection) costs ~10 ms."""
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or default

        on = enabled and env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"
        exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
        if "otlp" not in exporters:
            if exporters - {"none", ""}:
                log.warning("OTEL_TRACES_EXPORTER=%s: only otlp is supported; tracing is off",
                            env.get("OTEL_TRACES_EXPORTER"))
            on = False
        endpoint_set = bool(endpoint or get("ENDPOINT"))
        if not on or (only_if_configured and not endpoint_set):
            return cls(enabled=False, service_name=service_name, endpoint_set=endpoint_set)
        url = endpoint or get("ENDPOINT", DEFAULT_ENDPOINT)
        target, secure = _target(url, get("INSECURE"))
        ratio = sample_ratio if sample_ratio is not None and sample_ratio >= 0 else _ratio(env)
        resource = _resource(service_name, env)
        return cls(
            enabled=on,
            target=target,
            secure=secure,
            endpoint=url,
            endpoint_set=endpoint_set,
            headers=_headers(get("HEADERS")),
            timeout_s=_number(get("TIMEOUT"), 10_000, "OTEL_EXPORTER_OTLP_TIMEOUT") / 1000,
            gzip=get("COMPRESSION").strip().lower() == "gzip",
            certificate_file=get("CERTIFICATE"),
            service_name=str(dict(resource)["service.name"]),
            resource=resource,
            sample_ratio=min(1.0, max(0.0, ratio)),
            schedule_delay_s=_number(env.get("OTEL_BSP_SCHEDULE_DELAY", ""), 1000, "OTEL_BSP_SCHEDULE_DELAY") / 1000,
            max_queue=int(_number(env.get("OTEL_BSP_MAX_QUEUE_SIZE", ""), 65_536, "OTEL_BSP_MAX_QUEUE_SIZE")),
            max_batch=int(_number(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", ""), 2048,
                                  "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")),
        )

    def disabled(self) -> TracingConfig:
        return replace(self, enabled=False)


def _target(url: str, insecure: str) -> tuple[str, bool]:
    """gRPC target and TLS flag, the way OpenTelemetry's OTLP gRPC exporter reads an endpoint."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    target = parts.netloc or parts.path
    if parts.scheme == "https":
        return target, True
    if parts.scheme == "http":
        return target, False
    return target, insecure.strip().lower() != "true"


def _headers(raw: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            # gRPC metadata keys must be lowercase.
            out.append((unquote(key.strip()).lower(), unquote(value.strip())))
    return tuple(out)


def _number(raw: str, default: float, name: str) -> float:
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


def _ratio(env: Mapping[str, str]) -> float:
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name not in _SAMPLERS:
        log.warning("OTEL_TRACES_SAMPLER=%s is not supported; sampling every trace", name)
        return 1.0
    fixed = _SAMPLERS[name]
    if fixed is not None:
        return fixed
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        return float(arg) if arg else 1.0
    except ValueError:
        log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio; sampling every trace", arg)
        return 1.0


def _resource(default_service: str, env: Mapping[str, str]) -> tuple[tuple[str, str | int | float | bool], ...]:
    """Resource attributes as OpenTelemetry's SDK builds them (OTEL_RESOURCE_ATTRIBUTES,
    telemetry.sdk.*), with the service name OTEL_SERVICE_NAME, then
    OTEL_RESOURCE_ATTRIBUTES, then this process's default decides."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    attrs = dict(Resource.create().attributes)
    named = str(attrs.get(SERVICE_NAME, ""))
    service = env.get("OTEL_SERVICE_NAME") or (named if named and not named.startswith("unknown_service") else "")
    attrs[SERVICE_NAME] = service or default_service
    return tuple((k, v) for k, v in attrs.items() if isinstance(v, str | int | float | bool))
