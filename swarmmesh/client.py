"""Python client for the swarmmesh coordinator's ``TaskService``.

:class:`AsyncClient` is the real implementation (grpc.aio): the calls of
the API, made through its base :class:`swarmmesh._connection.Connection`,
which keeps the channel and the session stream;
:class:`swarmmesh.sync_client.Client` runs it on a private event loop in a
background thread for synchronous code.

Example::

    async with AsyncClient("127.0.0.1:7070") as mesh:
        ids = [await mesh.submit("math.primes", {"n": 10_000}, required_labels={"math": 1})]
        async for task in mesh.as_completed(ids):
            print(task.task_id, task.output_json())
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import replace

import grpc

from swarmmesh import _convert
from swarmmesh._client_args import dependency_names, task_ids_of
from swarmmesh._connection import DEFAULT_ADDRESS, Connection
from swarmmesh._session import MAX_WATCH_IDS
from swarmmesh._tracing import current_parent
from swarmmesh.errors import (
    Internal,
    SwarmMeshError,
    WaitTimeout,
    from_rpc_error,
)
from swarmmesh.telemetry import TraceParent
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
from swarmmesh.v1 import tasks_pb2, types_pb2

__all__ = ["DEFAULT_ADDRESS", "MAX_SUBMIT_BATCH", "MAX_WATCH_IDS", "AsyncClient"]

#: Protocol limits (tasks.proto): tasks per submission; ids per watch (from _session).
MAX_SUBMIT_BATCH = 10_000


class AsyncClient(Connection):
    """Async client of one coordinator.

    Args:
        address: ``host:port`` of the coordinator's gRPC endpoint.
        timeout: deadline in seconds for each unary call (None = no deadline).
            Watching (``wait``, ``as_completed``) is not bound by it.

        tracing: give each submitted task a ``swarmmesh.submit`` span and a
            trace context, continuing the caller's OpenTelemetry span if one is
            active, exported over OTLP as the standard ``OTEL_*`` variables say.
            None (default): on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or its
            ``_TRACES_`` form) is set and ``OTEL_SDK_DISABLED`` is not true.
            True: on, with the default endpoint if none is set. A
            :class:`Tracer` is used as is (and not stopped by :meth:`close`).
            False: off.
        channel: a ``grpc.aio.Channel`` to call the coordinator through
            instead of opening an insecure one to ``address`` (which then only
            names it): for your own credentials, interceptors or options, or
            a fake from :mod:`swarmmesh.testing`. It must belong to the event
            loop the client runs on; the client does not close it.
        reconnect_timeout: seconds the client keeps trying to get back to a
            coordinator that stopped answering (a restart, a dropped link)
            before it raises :class:`~swarmmesh.errors.Unavailable`; 0 = never
            retry. Submissions are sent again under the same idempotency keys
            (one is made for each task submitted without one), and waits watch
            their unfinished tasks again on a new stream, with jittered
            exponential backoff or after the coordinator's retry hint. A
            coordinator that never answered (wrong address, not started) fails
            at once. See docs/restarts.md.

    The channel is opened lazily on first use inside the running event loop
    and is bound to that loop; use ``async with`` or call :meth:`close`.
    """

    # -- submitting -----------------------------------------------------------

    async def submit(
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
        """Submit one task and return its id (see :class:`TaskSpec` for the fields)."""
        spec = TaskSpec(
            kind=kind,
            payload=payload,
            content_type=content_type,
            required_labels=required_labels or {},
            preferred_labels=preferred_labels or {},
            priority=priority,
            tenant=tenant,
            timeout_ms=timeout_ms,
            idempotency_key=idempotency_key,
            cache_key=cache_key,
            dependencies=tuple(dependencies),
            trace_context=trace_context or {},
            max_attempts=max_attempts,
        )
        # Each submit is its own all-or-nothing SessionSubmit: concurrent calls
        # share the session's next message, not each other's fate.
        self._ensure_stub()
        parent = current_parent() if self._tracing is not None else None
        (result,) = await self._submit_batch([spec], [parent])
        return result.task_id

    async def submit_many(self, specs: Iterable[TaskSpec], *, batch_size: int = 1000) -> list[SubmittedTask]:
        """Submit many tasks in ``SubmitTasks`` calls of ``batch_size``; results in input order.

        Each call is all-or-nothing, the whole submission is not: if a batch
        is rejected, the raised error's ``accepted_task_ids`` holds the ids of
        the tasks accepted by earlier batches, and a note says where the
        rejected batch started (the server's ``tasks[i]`` index is relative to
        that batch).
        """
        if not 1 <= batch_size <= MAX_SUBMIT_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_SUBMIT_BATCH}, got {batch_size}")
        out: list[SubmittedTask] = []
        batch: list[TaskSpec] = []
        self._ensure_stub()
        parent = current_parent() if self._tracing is not None else None

        async def flush() -> None:
            offset = len(out)
            try:
                out.extend(await self._submit_batch(batch, [parent] * len(batch)))
            except SwarmMeshError as exc:
                if offset:
                    exc.accepted_task_ids = tuple(t.task_id for t in out)
                    exc.add_note(
                        f"submit_many: the batch starting at spec #{offset} was rejected; "
                        f"{offset} tasks from earlier batches were accepted (see accepted_task_ids)"
                    )
                raise
            batch.clear()

        for spec in specs:
            batch.append(spec)
            if len(batch) >= batch_size:
                await flush()
        if batch:
            await flush()
        return out

    async def _submit_batch(
        self, specs: Sequence[TaskSpec], parents: Sequence[TraceParent | None]
    ) -> list[SubmittedTask]:
        msgs = [_convert.task_spec_to_proto(s) for s in specs]
        made = self._keys.fill(msgs)
        tracing = self._tracing
        if tracing is None:
            results = await self._send_batch(msgs, False)
        else:
            pending, started = tracing.prepare(msgs, parents)
            try:
                results = await self._send_batch(msgs, True)
            except SwarmMeshError as exc:
                if pending:
                    tracing.finish(pending, msgs, started, None, f"{type(exc).__name__}: {exc}")
                raise
            if pending and len(results) == len(specs):
                tracing.finish(pending, msgs, started, results)
        if len(results) != len(specs):
            raise Internal(f"coordinator answered {len(results)} results for {len(specs)} submitted tasks")
        out = [_convert.submitted_from_proto(t) for t in results]
        # Under a key made here, a deduplicated answer is this client's own resend, not an
        # existing task of someone else's.
        return [replace(t, deduplicated=False) if t.deduplicated and m else t for t, m in zip(out, made, strict=True)]

    async def _send_batch(self, msgs: Sequence[types_pb2.TaskSpec], decided: bool
                          ) -> list[tasks_pb2.SubmittedTask]:
        """One all-or-nothing batch, sent again (same keys) while the coordinator is away."""
        retry = self._retrying()
        while True:
            session = self._open_session()
            try:
                return await session.submit(msgs, decided, self._timeout)
            except SwarmMeshError as exc:
                await self._pause_or_raise(exc, session, retry)

    # -- reading --------------------------------------------------------------

    async def get(self, task_id: str) -> TaskInfo:
        msg = await self._unary("GetTask", tasks_pb2.GetTaskRequest(task_id=task_id))
        return _convert.task_from_proto(msg)

    async def list_tasks(
        self,
        states: Iterable[TaskState | str] | TaskState | str = (),
        *,
        kind: str = "",
        tenant: str = "",
        agent_id: str = "",
        limit: int = 100,
    ) -> TaskPage:
        """Tasks matching every given filter, newest first (at most ``limit``, max 10000)."""
        wanted: list[TaskState | str] = [states] if isinstance(states, str) else list(states)
        request = tasks_pb2.ListTasksRequest(
            states=[_convert.task_state_to_proto(s) for s in wanted],
            kind=kind,
            tenant=tenant,
            agent_id=agent_id,
            limit=limit,
        )
        response = await self._unary("ListTasks", request)
        return TaskPage(
            tasks=tuple(_convert.task_from_proto(t) for t in response.tasks), total=response.total
        )

    # -- waiting --------------------------------------------------------------

    # A timeout parameter (not only asyncio.timeout) so that expiry raises WaitTimeout with the count left.
    async def wait(self, task_id: str, timeout: float | None = None) -> TaskInfo:  # noqa: ASYNC109
        """Wait until the task is terminal and return it.

        Raises :class:`WaitTimeout` after ``timeout`` seconds; the task itself
        is not affected.
        """
        result = await self.wait_all([task_id], timeout=timeout)
        return result[task_id]

    async def wait_all(
        self,
        task_ids: Iterable[str],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        omit_payloads: bool = False,
    ) -> dict[str, TaskInfo]:
        """Wait for every task; returns ``{task_id: TaskInfo}`` in the order given."""
        ids = task_ids_of(task_ids, "wait_all")
        done: dict[str, TaskInfo] = {}
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                async with contextlib.aclosing(self.as_completed(ids, omit_payloads=omit_payloads)) as stream:
                    async for task in stream:
                        done[task.task_id] = task
        except TimeoutError:
            if not deadline.expired():
                raise
            raise WaitTimeout(
                f"{len(ids) - len(done)} of {len(ids)} task(s) not finished after {timeout} s"
            ) from None
        return {task_id: done[task_id] for task_id in ids}

    async def as_completed(
        self, task_ids: Iterable[str], *, omit_payloads: bool = False
    ) -> AsyncGenerator[TaskInfo, None]:
        """Yield each task once, as it becomes terminal (already-terminal ones first).

        Watches on the client's session stream (100,000 ids per message). Ids
        are de-duplicated; an unknown id fails the watch with NotFound.
        ``omit_payloads`` leaves payload and output bytes out of the updates.
        If the session breaks (e.g. the coordinator restarts), the tasks not
        yet seen are watched again on a new one: at once if the broken one
        had made progress, else after a backoff pause, for as long as the
        client's ``reconnect_timeout`` allows without an answer.
        """
        ids = task_ids_of(task_ids, "as_completed")
        remaining = dict.fromkeys(ids)
        retry = self._retrying()
        while remaining:
            session = self._open_session()
            watch = session.watch(list(remaining), omit_payloads)
            progressed = False
            try:
                async for task in watch:
                    del remaining[task.task_id]
                    progressed = True
                    yield task
            except SwarmMeshError as exc:
                if progressed and session.broken and not self._closed:
                    retry.answered()
                    continue  # the stream was working until now: straight back
                await self._pause_or_raise(exc, session, retry)
            finally:
                watch.close()

    async def run(
        self,
        specs: Iterable[TaskSpec],
        *,
        batch_size: int = 1000,
        timeout: float | None = None,  # noqa: ASYNC109
        omit_payloads: bool = False,
    ) -> list[TaskInfo]:
        """Submit the tasks and wait for all of them; their final states, in input order.

        :meth:`submit_many` then :meth:`wait_all` (``timeout`` bounds the
        waiting, as there): a coordinator restart in between or during either
        is ridden out within ``reconnect_timeout``. A failed or cancelled task
        is returned, not raised: check ``TaskInfo.ok``.
        """
        submitted = await self.submit_many(specs, batch_size=batch_size)
        done = await self.wait_all([t.task_id for t in submitted], timeout=timeout, omit_payloads=omit_payloads)
        return [done[t.task_id] for t in submitted]

    async def follow(
        self, tenant: str, *, all_updates: bool = False, omit_payloads: bool = False
    ) -> AsyncGenerator[TaskInfo, None]:
        """Yield updates of every task of ``tenant`` from now on, until the caller stops.

        One server stream for a whole workload, with no ids needed in advance:
        open it before submitting. Only terminal updates unless ``all_updates``.
        """
        call = self._ensure_stub().WatchTasks(
            tasks_pb2.WatchTasksRequest(
                follow_tenant=tenant, all_updates=all_updates, omit_payloads=omit_payloads
            )
        )
        try:
            async for response in call:
                for msg in response.tasks:
                    yield _convert.task_from_proto(msg)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    # -- control --------------------------------------------------------------

    async def cancel(self, task_ids: str | Iterable[str]) -> list[TaskInfo]:
        """Cancel tasks; returns each as it is now (CANCELLED, or the terminal state it had reached)."""
        ids = task_ids_of(task_ids, "cancel")
        response = await self._unary("CancelTasks", tasks_pb2.CancelTasksRequest(task_ids=ids))
        return [_convert.task_from_proto(t) for t in response.tasks]

    async def requeue(
        self,
        task_ids: str | Iterable[str] = (),
        *,
        all_dead_letters: bool = False,
        kind: str = "",
        tenant: str = "",
        limit: int = 0,
    ) -> TaskPage:
        """Send dead letters (DEAD_LETTER tasks) back to the queue, each with a new run of attempts.

        Either ``task_ids`` (1..10000; all or nothing: an unknown id raises
        NotFound, a task that is not a dead letter FailedPrecondition), or
        ``all_dead_letters=True``: the newest ``limit`` dead letters (0 = 1000,
        at most 10000) of ``kind`` and ``tenant`` (empty = any). Returns the
        requeued tasks, and how many dead letters matched in all.
        """
        request = tasks_pb2.RequeueTasksRequest(
            task_ids=task_ids_of(task_ids, "requeue"),
            all_dead_letters=all_dead_letters,
            kind=kind,
            tenant=tenant,
            limit=limit,
        )
        response = await self._unary("RequeueTasks", request)
        return TaskPage(tasks=tuple(_convert.task_from_proto(t) for t in response.tasks), total=response.total)

    async def agents(self, include_gone: bool = False) -> list[AgentInfo]:
        response = await self._unary("ListAgents", tasks_pb2.ListAgentsRequest(include_gone=include_gone))
        return [_convert.agent_from_proto(a) for a in response.agents]

    async def drain_agent(self, agent_id: str) -> AgentInfo:
        """Ask an agent to finish its in-flight work and take no more."""
        msg = await self._unary("DrainAgent", tasks_pb2.DrainAgentRequest(agent_id=agent_id))
        return _convert.agent_from_proto(msg)

    async def stats(self) -> ClusterStats:
        return _convert.stats_from_proto(await self._unary("GetStats", tasks_pb2.GetStatsRequest()))

    async def invalidate(self, dependencies: str | Iterable[str], *, wait: float | None = None) -> InvalidateResult:
        """Drop, on every agent, the cached results that depend on these names (or are
        keyed by them), transitively.

        Args:
            dependencies: dependency names or cache keys (1..1000).
            wait: seconds the coordinator waits for the connected agents to
                report what they dropped (None = its default, 2 s; at most 60,
                and keep it under this client's timeout). Agents that are
                disconnected now catch up when they reconnect.
        """
        names = dependency_names(dependencies)
        wait_ms = 0 if wait is None else max(1, round(wait * 1000))
        request = tasks_pb2.InvalidateRequest(dependencies=names, wait_ms=wait_ms)
        return _convert.invalidate_result_from_proto(await self._unary("Invalidate", request))

    async def profile(
        self, *, window: float | None = None, kind: str = "", agent_id: str = "", history_points: int = 0
    ) -> Profile:
        """Where the mesh's time goes, what limits it, and what to do about it.

        Args:
            window: look at tasks finished in the last ``window`` seconds
                (None = the coordinator's default; at most 3600).
            kind, agent_id: only this task kind / agent (unknown ones give
                empty lists, not an error).
            history_points: how many points of the coordinator's downsampled
                history to include, oldest first (0 = none; at most 10000).
        """
        request = _convert.profile_request_to_proto(window, kind, agent_id, history_points)
        return _convert.profile_from_proto(await self._unary("GetProfile", request, service="profile"))
