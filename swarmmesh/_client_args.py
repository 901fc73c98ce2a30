"""What both clients share before a call: channel options and argument checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Send/receive limit on the channel; large enough for a 10,000-task batch of small payloads.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
_LOOPBACK_PREFIXES = ("127.", "localhost", "[::1]", "::1", "unix:")


def channel_options(address: str) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # The session stream stays open while idle: a connection that died
        # without a reset (host gone) must fail it within ~30 s, so that the
        # next call opens a new one (the coordinator allows pings every 5 s).
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC's own reconnect backoff grows to 120 s: a restarted coordinator
        # would go unnoticed long after it is back, while the client's retries
        # fail fast. Keep it within the client's retry pauses (swarmmesh._retry).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    if address.startswith(_LOOPBACK_PREFIXES):
        # An http_proxy in the environment must not capture loopback traffic.
        options.append(("grpc.enable_http_proxy", 0))
    return options


def task_ids_of(task_ids: str | Iterable[str], what: str) -> list[str]:
    if isinstance(task_ids, str):
        return [task_ids]
    ids = list(dict.fromkeys(task_ids))  # de-duplicate, keep order
    for task_id in ids:
        if not isinstance(task_id, str):
            raise TypeError(f"{what}: task ids must be strings, got {type(task_id).__name__}")
    return ids


def dependency_names(dependencies: str | Iterable[str]) -> list[str]:
    names = [dependencies] if isinstance(dependencies, str) else list(dict.fromkeys(dependencies))
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"invalidate: dependency names must be strings, got {type(name).__name__}")
    return names
