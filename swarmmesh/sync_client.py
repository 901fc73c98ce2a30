"""The synchronous client: :class:`AsyncClient`'s API on a private event loop
in a background thread, for code that does not run asyncio itself."""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from swarmmesh._client_args import dependency_names, task_ids_of
from swarmmesh._retry import DEFAULT_RECONNECT_TIMEOUT_S
from swarmmesh.client import DEFAULT_ADDRESS, AsyncClient
from swarmmesh.telemetry import Tracer
from swarmmesh.types import (
    AgentInfo,
    ClusterStats,
    InvalidateResult,
    PayloadLike,
    Profile,
    SubmittedTask,
    TaskInfo,
    TaskPage,
    TaskSpec,
    TaskState,
)

__all__ = ["Client"]

_T = TypeVar("_T")


async def _in_context(coro: Coroutine[Any, Any, _T], context: contextvars.Context) -> _T:
    # Cancelling the outer task (the caller gave up) cancels the awaited one too.
    return await asyncio.get_running_loop().create_task(coro, context=context)


async def _call(factory: Callable[[], _T]) -> _T:
    return factory()


class Client:
    """Synchronous client: the :class:`AsyncClient` API, blocking.

    Runs a private event loop in a daemon thread, so it also works where an
    event loop is already running (notebooks, async frameworks' sync hooks).
    Use it as a context manager or call :meth:`close`.

    ``address``, ``timeout``, ``tracing`` and ``reconnect_timeout`` are :class:`AsyncClient`'s.
    ``channel_factory`` stands for its ``channel``: a grpc.aio channel belongs
    to the event loop it is made on, so the client calls the factory once, on
    its own loop, while it is constructed, and closes that channel in
    :meth:`close`. For your own credentials or interceptors, or a fake from
    :mod:`swarmmesh.testing`.
    """

    def __init__(
        self, address: str = DEFAULT_ADDRESS, *, timeout: float | None = 30.0,
        tracing: bool | Tracer | None = None,
        channel_factory: Callable[[], grpc.aio.Channel] | None = None,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT_S,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="swarmmesh-client", daemon=True)
        self._thread.start()
        self._channel: grpc.aio.Channel | None = None
        if channel_factory is not None:
            try:
                self._channel = self._run(_call(channel_factory))
            except BaseException:
                self._stop_loop()
                raise
        self._async = AsyncClient(address, timeout=timeout, tracing=tracing, channel=self._channel,
                                  reconnect_timeout=reconnect_timeout)

    @property
    def address(self) -> str:
        return self._async.address

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and stop the background loop; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=10)
        finally:
            self._stop_loop()

    async def _close_all(self) -> None:
        try:
            await self._async.close()
        finally:
            if self._channel is not None:
                await self._channel.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        # The call runs in the caller's context (contextvars), so an
        # OpenTelemetry span active in the calling thread parents its tasks.
        future = asyncio.run_coroutine_threadsafe(_in_context(coro, contextvars.copy_context()), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: stop the call on the loop too
            raise

    def submit(
        self,
        kind: str,
        payload: PayloadLike = b"",
        *,
        content_type: str = "",
        required_labels: Mapping[str, int] | None = None,
        preferred_labels: Mapping[str, int] | None = None,
        priority: int = 0,
        tenant: str = "",
        timeout_ms: int = 0,
        idempotency_key: str = "",
        cache_key: str = "",
        dependencies: Sequence[str] = (),
        trace_context: Mapping[str, str] | None = None,
        max_attempts: int = 0,
    ) -> str:
        return self._run(
            self._async.submit(
                kind,
                payload,
                content_type=content_type,
                required_labels=required_labels,
                preferred_labels=preferred_labels,
                priority=priority,
                tenant=tenant,
                timeout_ms=timeout_ms,
                idempotency_key=idempotency_key,
                cache_key=cache_key,
                dependencies=dependencies,
                trace_context=trace_context,
                max_attempts=max_attempts,
            )
        )

    def submit_many(self, specs: Iterable[TaskSpec], *, batch_size: int = 1000) -> list[SubmittedTask]:
        return self._run(self._async.submit_many(list(specs), batch_size=batch_size))

    def get(self, task_id: str) -> TaskInfo:
        return self._run(self._async.get(task_id))

    def list_tasks(
        self,
        states: Iterable[TaskState | str] | TaskState | str = (),
        *,
        kind: str = "",
        tenant: str = "",
        agent_id: str = "",
        limit: int = 100,
    ) -> TaskPage:
        if not isinstance(states, str):
            states = list(states)
        return self._run(
            self._async.list_tasks(states, kind=kind, tenant=tenant, agent_id=agent_id, limit=limit)
        )

    def wait(self, task_id: str, timeout: float | None = None) -> TaskInfo:
        return self._run(self._async.wait(task_id, timeout=timeout))

    def wait_all(
        self, task_ids: Iterable[str], *, timeout: float | None = None, omit_payloads: bool = False
    ) -> dict[str, TaskInfo]:
        ids = task_ids_of(task_ids, "wait_all")
        return self._run(self._async.wait_all(ids, timeout=timeout, omit_payloads=omit_payloads))

    def run(
        self, specs: Iterable[TaskSpec], *, batch_size: int = 1000, timeout: float | None = None,
        omit_payloads: bool = False,
    ) -> list[TaskInfo]:
        return self._run(self._async.run(list(specs), batch_size=batch_size, timeout=timeout,
                                         omit_payloads=omit_payloads))

    def as_completed(
        self, task_ids: Iterable[str], *, omit_payloads: bool = False
    ) -> Generator[TaskInfo, None, None]:
        """Blocking iterator over tasks as they finish; closing it closes the stream."""
        ids = task_ids_of(task_ids, "as_completed")
        items: queue.SimpleQueue[TaskInfo | BaseException | None] = queue.SimpleQueue()
        unwound = threading.Event()

        async def pump() -> None:
            try:
                async for task in self._async.as_completed(ids, omit_payloads=omit_payloads):
                    items.put(task)
            except Exception as exc:
                items.put(exc)
            else:
                items.put(None)
            finally:
                unwound.set()

        if self._closed:
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while True:
                item = items.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not future.done():
                future.cancel()
                # Let the stream be cancelled on the loop before returning.
                unwound.wait(timeout=5)

    def cancel(self, task_ids: str | Iterable[str]) -> list[TaskInfo]:
        return self._run(self._async.cancel(task_ids_of(task_ids, "cancel")))

    def requeue(
        self,
        task_ids: str | Iterable[str] = (),
        *,
        all_dead_letters: bool = False,
        kind: str = "",
        tenant: str = "",
        limit: int = 0,
    ) -> TaskPage:
        """Send dead letters back to the queue (see :meth:`AsyncClient.requeue`)."""
        return self._run(self._async.requeue(
            task_ids_of(task_ids, "requeue"), all_dead_letters=all_dead_letters, kind=kind, tenant=tenant, limit=limit
        ))

    def agents(self, include_gone: bool = False) -> list[AgentInfo]:
        return self._run(self._async.agents(include_gone))

    def drain_agent(self, agent_id: str) -> AgentInfo:
        return self._run(self._async.drain_agent(agent_id))

    def stats(self) -> ClusterStats:
        return self._run(self._async.stats())

    def invalidate(self, dependencies: str | Iterable[str], *, wait: float | None = None) -> InvalidateResult:
        return self._run(self._async.invalidate(dependency_names(dependencies), wait=wait))

    def profile(
        self, *, window: float | None = None, kind: str = "", agent_id: str = "", history_points: int = 0
    ) -> Profile:
        return self._run(
            self._async.profile(window=window, kind=kind, agent_id=agent_id, history_points=history_points)
        )
