"""Exceptions raised by the swarmmesh client.

Every failed RPC surfaces as a :class:`SwarmMeshError` subclass chosen by its
gRPC status code, carrying the server's message unchanged in ``.details`` so
that a message such as ``tasks[3].kind: required`` reaches the caller intact.
Catch :class:`SwarmMeshError` for "anything the mesh said no to", or a
subclass for one condition.
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "RETRY_PUSHBACK_KEY",
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "SwarmMeshError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "WaitTimeout",
    "from_rpc_error",
]


class SwarmMeshError(Exception):
    """Base class: a gRPC status from the coordinator (or the channel).

    Attributes:
        code: the gRPC status code.
        details: the server's message, verbatim.
        accepted_task_ids: for a failed ``submit_many``, the ids of tasks from
            earlier batches that the coordinator had already accepted (batches
            are all-or-nothing, the whole call is not).
        retry_after_ms: the coordinator's hint of when a retry is likely to be
            accepted (its ``grpc-retry-pushback-ms``), in milliseconds; 0 = none.
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str = "", code: grpc.StatusCode | None = None, retry_after_ms: int = 0) -> None:
        super().__init__(details)
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.details: str = details
        self.accepted_task_ids: tuple[str, ...] = ()
        self.retry_after_ms: int = retry_after_ms

    @property
    def code_name(self) -> str:
        """The status code's canonical name, e.g. ``"INVALID_ARGUMENT"``."""
        return str(self.code.name)

    def __str__(self) -> str:
        return self.details or self.code_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code_name}, details={self.details!r})"


class Cancelled(SwarmMeshError):
    default_code = grpc.StatusCode.CANCELLED


class InvalidArgument(SwarmMeshError, ValueError):
    """The request was malformed; the message names the offending field."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(SwarmMeshError, TimeoutError):
    """The RPC did not finish within the client's timeout."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class WaitTimeout(DeadlineExceeded):
    """``wait``/``wait_all`` gave up before the task(s) became terminal.

    The tasks themselves keep running; only the waiting stopped.
    """


class NotFound(SwarmMeshError, LookupError):
    """An unknown task or agent id."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SwarmMeshError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(SwarmMeshError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(SwarmMeshError):
    """A limit was hit (batch size, queue depth, tenant quota, message size)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(SwarmMeshError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Unimplemented(SwarmMeshError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(SwarmMeshError):
    default_code = grpc.StatusCode.INTERNAL


class Unavailable(SwarmMeshError, ConnectionError):
    """The coordinator cannot be reached (not running, wrong address, restarting)."""

    default_code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(SwarmMeshError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[SwarmMeshError]] = {
    cls.default_code: cls
    for cls in (
        Cancelled,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Unimplemented,
        Internal,
        Unavailable,
        Unauthenticated,
    )
}
# Codes without a dedicated class share the closest one.
_BY_CODE[grpc.StatusCode.OUT_OF_RANGE] = InvalidArgument
_BY_CODE[grpc.StatusCode.ABORTED] = FailedPrecondition
_BY_CODE[grpc.StatusCode.DATA_LOSS] = Internal


#: The trailer in which the coordinator says when to try again (gRPC's own retry name for it).
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


def error_for(code: grpc.StatusCode, details: str, retry_after_ms: int = 0) -> SwarmMeshError:
    """Build the exception matching ``code``."""
    return _BY_CODE.get(code, SwarmMeshError)(details, code, retry_after_ms)


def from_rpc_error(err: Any) -> SwarmMeshError:
    """Translate a ``grpc.RpcError`` (sync or aio) into a :class:`SwarmMeshError`."""
    code = err.code() if callable(getattr(err, "code", None)) else None
    details = err.details() if callable(getattr(err, "details", None)) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return error_for(code, str(details or ""), _pushback_ms(err))


def _pushback_ms(err: Any) -> int:
    trailer = getattr(err, "trailing_metadata", None)
    pairs = trailer() if callable(trailer) else None
    for key, value in pairs or ():
        if key == RETRY_PUSHBACK_KEY:
            try:
                return max(0, int(value))
            except (TypeError, ValueError):
                return 0  # a malformed hint is no hint, not a failure of its own
    return 0
