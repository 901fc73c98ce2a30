"""Which asyncio event loop the swarmmesh processes run on.

`SWARMMESH_EVENT_LOOP=uvloop` runs on uvloop when it is installed (the `fast`
extra); `asyncio` (the default) runs on the standard loop.
"""

from __future__ import annotations

import asyncio
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

