"""Handlers the fault scenarios run in real sidecar processes; each execution is logged
through the integration handlers' execution log, so handler runs can be counted."""

from __future__ import annotations

from typing import Any

from tests.integration.handlers import echo

# Over the coordinator's default 4 MiB limit on payloads, which results share.
BIG_BYTES = 5 * 1024 * 1024


def big_result(ctx: Any) -> bytes:
    """Returns 5 MiB of output: more than the coordinator accepts."""
    echo(ctx)
    return b"\x01" * BIG_BYTES
