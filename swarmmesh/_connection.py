"""The client's connection to one coordinator: channel, stubs, session and tracer.

:class:`Connection` is the base of :class:`~swarmmesh.client.AsyncClient`. It
opens the gRPC channel lazily, on first use inside the running event loop (or
calls through the channel its caller gave it, which it leaves open),
together with the service stubs and (when tracing is on) the submit tracer;
keeps the :class:`~swarmmesh._session.Session` stream that submits and waits
share, opening a new one after it breaks; knows whether a failure is one to
retry (:mod:`swarmmesh._retry`); makes unary calls under the client's
deadline, raising :mod:`swarmmesh.errors` instead of ``grpc.RpcError``; and
closes all of it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

import grpc

from swarmmesh._client_args import channel_options
from swarmmesh._retry import DEFAULT_RECONNECT_TIMEOUT_S, Backoff, KeyMaker, Retrying, retryable
from swarmmesh._session import Session
from swarmmesh._tracing import SubmitTracing
from swarmmesh._version import __version__
from swarmmesh.errors import SwarmMeshError, from_rpc_error
from swarmmesh.telemetry import Tracer, TracingConfig
from swarmmesh.v1 import profile_pb2_grpc, tasks_pb2_grpc

__all__ = ["DEFAULT_ADDRESS", "Connection"]

DEFAULT_ADDRESS = "127.0.0.1:7070"


class Connection:
    """What :class:`~swarmmesh.client.AsyncClient` calls through (see its docstring for the arguments)."""

    def __init__(
        self, address: str = DEFAULT_ADDRESS, *, timeout: float | None = 30.0,
        tracing: bool | Tracer | None = None, channel: grpc.aio.Channel | None = None,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S,
    ) -> None:
        self._address = address
        self._timeout = timeout
        self._backoff = Backoff(window_s=reconnect_timeout)
        self._keys = KeyMaker()
        # Whether the coordinator ever answered this client: before that, UNAVAILABLE
        # means a wrong address or a coordinator not started, and is not retried.
        self._reached = False
        self._tracing_option = tracing
        self._tracing: SubmitTracing | None = None
        # The caller's channel is theirs to close; only one opened here is closed by close().
        self._given_channel = channel
        self._channel: Any = None
        self._stub: Any = None
        self._profile_stub: Any = None
        self._closed = False
        # Submits and waits go over one Session stream, opened on first use and
        # again after it breaks.
        self._session: Session | None = None

    @property
    def address(self) -> str:
        return self._address

    async def __aenter__(self) -> Self:
        self._ensure_stub()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (unless the caller gave it); idempotent. Open watch streams are cancelled."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        channel, self._channel, self._stub, self._profile_stub = self._channel, None, None, None
        if channel is not None:
            await channel.close()
        tracing, self._tracing = self._tracing, None
        if tracing is not None and not isinstance(self._tracing_option, Tracer):
            await asyncio.to_thread(tracing.tracer.stop, 2.0)

    def _ensure_stub(self) -> Any:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._stub is None:
            channel = self._given_channel
            if channel is None:
                channel = self._channel = grpc.aio.insecure_channel(
                    self._address, options=channel_options(self._address))
            self._stub = tasks_pb2_grpc.TaskServiceStub(channel)
            self._profile_stub = profile_pb2_grpc.ProfileServiceStub(channel)
            tracer = self._make_tracer()
            if tracer is not None and tracer.enabled:
                tracer.start()
                self._tracing = SubmitTracing(tracer)
        return self._stub

    def _open_session(self) -> Session:
        stub = self._ensure_stub()
        if self._session is None or self._session.broken:
            if self._session is not None:
                self._reached |= self._session.answered
            self._session = Session(stub)
        return self._session

    def _retrying(self) -> Retrying:
        return Retrying(self._backoff)

    async def _pause_or_raise(self, exc: SwarmMeshError, session: Session, retry: Retrying) -> None:
        """After `exc` from an operation on `session`: wait before the next attempt if it is
        an outage to ride out and there is time left; otherwise raise it."""
        if session.answered:
            self._reached = True
            retry.heard_from(session)
        if not (self._reached and not self._closed and retryable(exc)):
            raise exc
        await retry.pause(exc)
        if self._closed:
            raise exc

    def _make_tracer(self) -> Tracer | None:
        option = self._tracing_option
        if isinstance(option, Tracer):
            return option
        if option is False:
            return None
        config = TracingConfig.from_env("swarmmesh-client", only_if_configured=not option)
        return Tracer(config, __version__) if config.enabled else None

    async def _unary(self, method: str, request: Any, *, service: str = "tasks",
                     metadata: tuple[tuple[str, str], ...] | None = None) -> Any:
        self._ensure_stub()
        rpc = getattr(self._profile_stub if service == "profile" else self._stub, method)
        try:
            response = await rpc(request, timeout=self._timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        self._reached = True
        return response
