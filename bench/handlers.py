"""Handlers for benchmark agents: no work at all, so the mesh's cost is what shows."""

from __future__ import annotations

from typing import Any


async def noop(ctx: Any) -> None:
    return None


def noop_sync(ctx: Any) -> None:
    return None
