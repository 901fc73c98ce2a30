"""How the sidecar dials the coordinator, and how long it waits to dial again.

`channel_options` sets the gRPC channel's keepalives and message limits and
keeps the channel's own reconnect backoff within ours; `backoff_delay` is our
delay between attempts. Its own module because these are the connection's
tunable numbers, pure functions of the config that are tested on their own,
apart from the stream that uses them.
"""

from __future__ import annotations

import random

from agent_sidecar.config import SidecarConfig

MAX_MESSAGE_BYTES = 32 * 1024 * 1024


def channel_options(config: SidecarConfig) -> list[tuple[str, int]]:
    def ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    return [
        # Detect a dead coordinator (host gone, no RST) within ~15 s.
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # The channel's own reconnect backoff defaults to up to 120 s, which would
        # make our calls fail fast long after the coordinator is back. Keep it
        # within our backoff so ours is the one that decides.
        ("grpc.initial_reconnect_backoff_ms", ms(config.reconnect_initial_s)),
        ("grpc.min_reconnect_backoff_ms", ms(config.reconnect_initial_s)),
        ("grpc.max_reconnect_backoff_ms", ms(config.reconnect_max_s)),
    ]


def backoff_delay(rng: random.Random, failures: int, initial_s: float, max_s: float) -> float:
    """Full jitter: uniform(0, min(max, initial * 2**failures)) seconds."""
    return rng.uniform(0.0, min(max_s, initial_s * 2 ** min(failures, 32)))
