"""gRPC statuses for the core's errors: what every service answers a caller's mistake with."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from coordinator.core.model import CoreError, StatusCode

R = TypeVar("R")
# The core's status codes are gRPC's numbers; this turns one back into grpc's enum.
STATUS: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def core_errors(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Answer a caller's mistake with its status instead of UNKNOWN."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except CoreError as e:
            # gRPC clients with a retry policy honour the pushback trailer.
            trailer = (("grpc-retry-pushback-ms", str(e.retry_after_ms)),) if e.retry_after_ms else ()
            await context.abort(STATUS[e.code], e.message, trailer)
            raise  # unreachable: abort raises

    return wrapper


def invalid(message: str) -> CoreError:
    return CoreError(StatusCode.INVALID_ARGUMENT, message)
