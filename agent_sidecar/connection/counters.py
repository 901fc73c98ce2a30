"""What the connection to the coordinator counts, and how often it warns.

Every event on the stream goes into `ConnectionCounters`; trouble that repeats
(rejected acks, failed reconnects) is also logged, as a WARNING at most once per
kind every `WARN_EVERY_S` and at DEBUG otherwise, so a long outage shows in the
counters without flooding the log. Its own module because the connection's
outbox, its frame handling and its reconnect loop all count and warn, and none
of them should import another just for that.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

# Repeated warnings of one kind (rejected acks, failed reconnects) are shown at
# most this often; the rest go to DEBUG and into the counters.
WARN_EVERY_S = 10.0


class RateLimitedWarning:
    """The log level for the next message of a kind: WARNING if none was shown lately."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def level(self, key: str) -> int:
        now = time.monotonic()
        if now - self._last.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._last[key] = now
            return logging.WARNING
        return logging.DEBUG


@dataclass(slots=True)
class ConnectionCounters:
    sessions: int = 0
    connect_failures: int = 0
    frames_sent: int = 0
    results_sent: int = 0
    # Results never sent: of attempts not assigned here, beyond the outage
    # buffer, or given up on after their streams kept ending (held.py).
    results_dropped: int = 0
    # Of those, dropped because the outage buffer was full.
    results_dropped_full: int = 0
    # Results kept for a later stream: finished with no stream up, or left
    # unanswered when theirs ended (once per stream end that kept them).
    results_kept: int = 0
    # Kept results written on a later stream.
    results_handed_over: int = 0
    # Handed-over results the coordinator rejected as stale, unknown or not
    # this agent's (expected: only counted, never resent).
    handed_over_rejected: int = 0
    assignments: int = 0
    cancels: int = 0
    acks_ok: int = 0
    acks_stale: int = 0
    acks_not_found: int = 0
    acks_denied: int = 0
    acks_other: int = 0
    invalidations: int = 0
