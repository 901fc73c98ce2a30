"""How the swarmmesh processes run: their asyncio event loop, and their heap after start-up.

`SWARMMESH_EVENT_LOOP=uvloop` runs on uvloop when it is installed (the `fast`
extra); `asyncio` (the default) runs on the standard loop.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    wanted = os.environ.get("SWARMMESH_EVENT_LOOP", "asyncio").strip().lower()
    if wanted == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "asyncio"
        return "uvloop"
    return "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the configured loop."""
    if loop_name() == "uvloop":
        import uvloop

        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)


def settle_heap() -> None:
    """Call once a process has started: keep what start-up allocated out of the collector's scans.

    Imports (grpc, protobuf, OpenTelemetry) leave a few hundred thousand
    long-lived objects, and every full collection walks them all: in the
    coordinator that was a 33 ms pause, the largest single stall a task saw
    at 1,000 tasks/s. They live as long as the process, so nothing is lost
    by freezing them; objects allocated later are collected as usual.
    """
    gc.collect()
    gc.freeze()
