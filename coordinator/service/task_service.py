"""TaskService: the client API, a thin adapter over the core."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc

from coordinator.core.mesh import MeshCore
from coordinator.core.model import AgentState, CoreError, TaskState
from coordinator.service import convert, session
from coordinator.service.cache_sync import CacheSync
from coordinator.service.durability import Commits, NotDurable, committed
from coordinator.service.effects import AgentSessions
from coordinator.service.session import CHUNK, MAX_WATCH_IDS, ClientSession
from coordinator.service.shutdown import Shutdown
from coordinator.service.status import STATUS, core_errors, invalid
from coordinator.service.watch import WatchHub
from swarmmesh.telemetry.context import TRACE_DECIDED_HEADER
from swarmmesh.v1 import tasks_pb2, tasks_pb2_grpc, types_pb2

MAX_LIST = 10_000
MAX_INVALIDATE_WAIT_MS = 60_000
MAX_REQUEUE_DEFAULT = 1000  # dead letters a RequeueTasks with all_dead_letters and no limit sends back


class TaskService(tasks_pb2_grpc.TaskServiceServicer):
    def __init__(self, core: MeshCore, agents: AgentSessions, hub: WatchHub, cache_sync: CacheSync,
                 started_at: float, commits: Commits | None = None, recovered: tuple[int, float] = (0, 0.0),
                 shutdown: Shutdown | None = None) -> None:
        """`started_at`: when the coordinator started serving (seconds, for GetStats' uptime).
        `commits`: the journal; replies that report a change wait for its commit. `recovered`:
        the tasks recovered from it at start, and the seconds that took. `shutdown`: the
        coordinator's stop, which refuses submissions and new streams (None: never stopping)."""
        self._shutdown = shutdown or Shutdown()
        self._core = core
        self._agents = agents
        self._hub = hub
        self._cache_sync = cache_sync
        self._started_at = started_at
        self._commits = commits
        self._recovered = recovered

    async def _durable(self, context: grpc.aio.ServicerContext) -> None:
        """Return once what this call changed is committed; UNAVAILABLE if it cannot be."""
        try:
            await committed(self._commits)
        except NotDurable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))

    @core_errors
    async def SubmitTasks(self, request: tasks_pb2.SubmitTasksRequest, context: grpc.aio.ServicerContext
                          ) -> tasks_pb2.SubmitTasksResponse:
        if self._shutdown.closing:
            await self._shutdown.refuse(context)
        decided = any(k == TRACE_DECIDED_HEADER for k, _ in context.invocation_metadata() or ())
        reply = tasks_pb2.SubmitTasksResponse()
        session.accept(self._core, self._agents, self._cache_sync, request.tasks, decided, reply.tasks)
        self._agents.dispatch_now()  # before the reply: see AgentSessions.dispatch_now
        await self._durable(context)
        return reply

    async def Session(self, request_iterator: object, context: grpc.aio.ServicerContext) -> None:
        shutdown = self._shutdown
        if shutdown.closing:
            await shutdown.refuse(context)
        sess = ClientSession(self._core, self._agents, self._hub, self._cache_sync, self._commits, shutdown)
        with shutdown.stream(sess.wake):
            await session.serve(sess, context)

    @core_errors
    async def GetTask(self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext) -> types_pb2.Task:
        if not request.task_id:
            raise invalid("task_id: is required")
        rec = self._core.get(request.task_id)
        return convert.task_to_proto(rec, pending_reason=self._core.pending_reason(rec, time.time()),
                                     routing_reason=self._core.routing_reason(rec))

    @core_errors
    async def ListTasks(self, request: tasks_pb2.ListTasksRequest, context: grpc.aio.ServicerContext
                        ) -> tasks_pb2.ListTasksResponse:
        states = convert.task_states_from_proto(list(request.states))
        if request.limit > MAX_LIST:
            raise invalid(f"limit: {request.limit} is more than {MAX_LIST}")
        recs, total = self._core.list_tasks(states, request.kind, request.tenant, request.agent_id,
                                            request.limit or 100)
        return tasks_pb2.ListTasksResponse(tasks=[convert.task_to_proto(r, payloads=False) for r in recs],
                                           total=total)

    async def WatchTasks(self, request: tasks_pb2.WatchTasksRequest, context: grpc.aio.ServicerContext
                         ) -> AsyncIterator[tasks_pb2.WatchTasksResponse]:
        shutdown = self._shutdown
        if shutdown.closing:
            await shutdown.refuse(context)
        ids = list(dict.fromkeys(request.task_ids))
        payloads = not request.omit_payloads
        if request.follow_tenant:
            if ids:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    "follow_tenant: give either task_ids or follow_tenant, not both")
            watcher = self._hub.follow(request.follow_tenant, all_updates=request.all_updates, payloads=payloads)
        else:
            if not ids:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    "task_ids: is empty: name at least one task, or set follow_tenant")
            if len(ids) > MAX_WATCH_IDS:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"task_ids: {len(ids)} ids, the limit per stream is {MAX_WATCH_IDS}")
            try:
                recs = [self._core.get(t) for t in ids]
            except CoreError as e:
                await context.abort(STATUS[e.code], e.message)
            watcher = self._hub.subscribe(recs, all_updates=request.all_updates, payloads=payloads)
        try:
            with shutdown.stream(watcher.event):
                while True:
                    await watcher.event.wait()
                    watcher.event.clear()
                    tasks = watcher.take()
                    await self._durable(context)  # the updates taken are committed
                    for i in range(0, len(tasks), CHUNK):
                        yield tasks_pb2.WatchTasksResponse(tasks=tasks[i:i + CHUNK])
                    if watcher.done:
                        return
                    if shutdown.ending:
                        await shutdown.refuse(context)
        finally:
            self._hub.unsubscribe(watcher)

    @core_errors
    async def CancelTasks(self, request: tasks_pb2.CancelTasksRequest, context: grpc.aio.ServicerContext
                          ) -> tasks_pb2.CancelTasksResponse:
        if not request.task_ids:
            raise invalid("task_ids: is empty: name at least one task")
        recs = self._core.cancel(list(request.task_ids), time.time())
        self._agents.flush_cancels()
        await self._durable(context)
        return tasks_pb2.CancelTasksResponse(tasks=[convert.task_to_proto(r, payloads=False) for r in recs])

    @core_errors
    async def RequeueTasks(self, request: tasks_pb2.RequeueTasksRequest, context: grpc.aio.ServicerContext
                           ) -> tasks_pb2.RequeueTasksResponse:
        ids = list(request.task_ids)
        if request.all_dead_letters:
            if ids:
                raise invalid("task_ids: give either task_ids or all_dead_letters, not both")
            if request.limit > MAX_LIST:
                raise invalid(f"limit: {request.limit} is more than {MAX_LIST}")
            dead, total = self._core.list_tasks((TaskState.DEAD_LETTER,), request.kind, request.tenant, "",
                                                request.limit or MAX_REQUEUE_DEFAULT)
            ids = [r.task_id for r in dead]
        else:
            if not ids:
                raise invalid("task_ids: is empty: name at least one task, or set all_dead_letters")
            if len(ids) > MAX_LIST:
                raise invalid(f"task_ids: {len(ids)} ids, at most {MAX_LIST} per call")
            for name in ("kind", "tenant", "limit"):
                if getattr(request, name):
                    raise invalid(f"{name}: filters dead letters only with all_dead_letters")
            total = len(dict.fromkeys(ids))
        recs = self._core.requeue(ids, time.time())
        self._agents.schedule_dispatch()
        await self._durable(context)
        return tasks_pb2.RequeueTasksResponse(tasks=[convert.task_to_proto(r, payloads=False) for r in recs],
                                              total=total)

    @core_errors
    async def ListAgents(self, request: tasks_pb2.ListAgentsRequest, context: grpc.aio.ServicerContext
                         ) -> tasks_pb2.ListAgentsResponse:
        reg = self._core.registry
        agents = reg.live() + (reg.gone() if request.include_gone else [])
        return tasks_pb2.ListAgentsResponse(agents=[convert.agent_to_proto(a) for a in agents])

    @core_errors
    async def DrainAgent(self, request: tasks_pb2.DrainAgentRequest, context: grpc.aio.ServicerContext
                         ) -> types_pb2.Agent:
        if not request.agent_id:
            raise invalid("agent_id: is required")
        agent = self._core.drain(request.agent_id)
        self._agents.send_drain(agent.agent_id)
        return convert.agent_to_proto(agent)

    @core_errors
    async def GetStats(self, request: tasks_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
                       ) -> tasks_pb2.ClusterStats:
        core = self._core
        c = core.counters
        live = core.registry.live()
        return tasks_pb2.ClusterStats(
            tasks_by_state={s.name: n for s, n in core.state_counts().items()},
            queue_depth=core.queue_depth,
            agents_ready=sum(a.state == AgentState.READY for a in live),
            agents_draining=sum(a.state == AgentState.DRAINING for a in live),
            capacity_total=sum(a.capacity for a in live if a.state == AgentState.READY),
            in_flight=core.state_counts()[TaskState.ASSIGNED],
            submitted_total=c.submitted,
            succeeded_total=c.succeeded,
            failed_total=c.failed,
            cancelled_total=c.cancelled,
            stale_results_total=c.stale_results,
            reassigned_total=c.reassigned,
            deduplicated_total=c.deduplicated,
            evicted_total=c.evicted,
            retried_total=c.retried,
            dead_lettered_total=c.dead_lettered,
            requeued_total=c.requeued,
            uptime_s=time.time() - self._started_at,
            agents=[convert.agent_to_proto(a) for a in live],
            invalidations_total=self._cache_sync.log.appended,
            invalidation_epoch=self._cache_sync.log.epoch,
            invalidation_seq=self._cache_sync.log.head,
            warmups_total=self._cache_sync.warmups_total,
            recovered_tasks=self._recovered[0],
            recovery_s=self._recovered[1],
        )

    @core_errors
    async def Invalidate(self, request: tasks_pb2.InvalidateRequest, context: grpc.aio.ServicerContext
                         ) -> tasks_pb2.InvalidateResponse:
        if request.wait_ms > MAX_INVALIDATE_WAIT_MS:
            raise invalid(f"wait_ms: {request.wait_ms} is more than {MAX_INVALIDATE_WAIT_MS}")
        wait_s = request.wait_ms / 1000 if request.wait_ms else None
        r = await self._cache_sync.invalidate(list(request.dependencies), wait_s)
        return tasks_pb2.InvalidateResponse(seq=r.seq, dropped=r.dropped, agents_answered=r.agents_answered,
                                            agents_total=r.agents_total, warmups_submitted=r.warmups_submitted)
