"""MeshCore: the coordinator's functional core.

Synchronous, socket-free and clock-free: every method that depends on time
takes `now` (seconds). All task state changes go through `_transition`, the
one place a journal or a watcher hooks into.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from coordinator.core import views
from coordinator.core.balancer import BalancerConfig, Strategy
from coordinator.core.dispatch import Dispatcher
from coordinator.core.fairness import FairnessConfig, FairShare, retry_after_ms
from coordinator.core.feedback import Feedback, HealthConfig
from coordinator.core.model import (
    Ack,
    AgentRecord,
    AgentState,
    CoreError,
    Counters,
    Heartbeat,
    Outcome,
    Registration,
    ResultIn,
    StatusCode,
    Submitted,
    TaskRecord,
    TaskSpec,
    TaskState,
)
from coordinator.core.queue import TaskQueue
from coordinator.core.recovery import Orphans, Restored, Saved, rebuild
from coordinator.core.registry import Registry, RouteKey
from coordinator.core.results import Results
from coordinator.core.retry import Retries, RetryConfig, Verdict, check_requeue, retry_reason
from coordinator.core.routing import Router
from coordinator.core.validation import Limits, check_batch, check_registration

# Called after every task state change with the record and its previous state
# (None when the task was just accepted). Runs on the hot path: keep it cheap.
Listener = Callable[[TaskRecord, "TaskState | None"], None]
TaskRef = tuple[str, int]  # (task_id, attempt)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    limits: Limits = field(default_factory=Limits)
    lease_timeout_s: float = 10.0
    # 0 = tasks have no deadline unless the submitter sets timeout_ms.
    default_timeout_ms: int = 0
    default_max_attempts: int = 5
    # How long past its deadline a running task may still report before the
    # coordinator fails it on the agent's behalf (covers a hung agent).
    deadline_grace_s: float = 2.0
    retention_s: float = 3600.0
    max_retained: int = 100_000
    max_queued: int = 1_000_000
    balancer: BalancerConfig = field(default_factory=BalancerConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)


class MeshCore:
    def __init__(self, config: CoreConfig | None = None, strategy: Strategy | None = None,
                 rng: random.Random | None = None) -> None:
        """`strategy`, if given, replaces the configured default strategy (the
        simulator passes one that knows true service times). `rng` draws the
        retries' backoff jitter: seeded, it replays the same schedule."""
        self.config = config or CoreConfig()
        # A fixed seed unless given one: the jitter needs spread, not secrecy.
        rng = rng if rng is not None else random.Random(0)
        self._retries = Retries(self.config.retry, self.config.default_max_attempts, rng)
        self.registry = Registry()
        self.feedback = Feedback(self.registry.records, self.config.health)
        self.router = Router(self.config.balancer, strategy)
        self.counters = Counters()
        self._queue = TaskQueue(FairShare(self.config.fairness))
        self._tasks: dict[str, TaskRecord] = {}
        self._idem: dict[tuple[str, str], str] = {}
        self._finished: OrderedDict[str, TaskRecord] = OrderedDict()
        self._deadlines: list[tuple[float, int, TaskRecord]] = []
        self._cancels: defaultdict[str, list[TaskRef]] = defaultdict(list)
        self._listeners: list[Listener] = []
        self._state_counts: dict[TaskState, int] = dict.fromkeys(TaskState, 0)
        self._prefix = uuid.uuid4().hex[:10]
        self._seq = 0
        self._dispatcher = Dispatcher(self._queue, self.registry, self.feedback, self.router, self._assign)
        # Checks an agent's result against its lease and acks it (see results.py).
        self._complete = Results(self._tasks, self.feedback, self.counters, self._settle,
                                 self.config.limits).complete
        self._last_tick: float | None = None
        self._dispatch_rate = 0.0  # tasks/s over all tenants, smoothed (for retry hints)
        self._orphans = Orphans()

    @property
    def strategy(self) -> Strategy:
        """The default strategy (task kinds may override it)."""
        return self.router.default

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- the one place task state changes -------------------------------------

    def _transition(self, rec: TaskRecord, new: TaskState) -> None:
        counts = self._state_counts
        old = rec.state
        counts[old] -= 1
        counts[new] += 1
        rec.state = new
        for listener in self._listeners:
            listener(rec, old)

    def _finish(self, rec: TaskRecord, state: TaskState, outcome: Outcome, now: float) -> None:
        rec.outcome = outcome
        rec.finished_at = now
        c = self.counters
        if state == TaskState.SUCCEEDED:
            c.succeeded += 1
        elif state == TaskState.FAILED:
            c.failed += 1
        elif state == TaskState.DEAD_LETTER:
            c.dead_lettered += 1
        else:
            c.cancelled += 1
        self._finished[rec.task_id] = rec
        self._transition(rec, state)

    # -- clients ----------------------------------------------------------------

    def submit(self, specs: list[TaskSpec], now: float) -> list[Submitted]:
        cfg = self.config
        check_batch(specs, cfg.limits)
        if len(self._queue) + len(specs) > cfg.max_queued:
            wait = retry_after_ms(len(self._queue) + len(specs) - cfg.max_queued, self._dispatch_rate)
            raise CoreError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"queue is full: {len(self._queue)} tasks pending, limit {cfg.max_queued}; "
                f"retry in about {wait} ms",
                retry_after_ms=wait,
            )
        if cfg.fairness.max_pending_per_tenant:
            incoming: dict[str, int] = {}
            for spec in specs:
                incoming[spec.tenant] = incoming.get(spec.tenant, 0) + 1
            self._queue.fair.admit(incoming, self._queue.tenants)
        out: list[Submitted] = []
        for spec in specs:
            if spec.idempotency_key:
                key = (spec.tenant, spec.idempotency_key)
                existing_id = self._idem.get(key)
                if existing_id is not None:
                    self.counters.deduplicated += 1
                    out.append(Submitted(existing_id, True, self._tasks[existing_id].state))
                    continue
            self._seq += 1
            task_id = f"{self._prefix}-{self._seq:x}"
            timeout_ms = spec.timeout_ms or cfg.default_timeout_ms
            deadline = now + timeout_ms / 1000 if timeout_ms else None
            rec = TaskRecord(
                task_id=task_id,
                spec=spec,
                seq=self._seq,
                created_at=now,
                queued_at=now,
                deadline=deadline,
                max_attempts=self._retries.max_attempts(spec),
            )
            self._tasks[task_id] = rec
            self._state_counts[TaskState.PENDING] += 1
            if spec.idempotency_key:
                self._idem[(spec.tenant, spec.idempotency_key)] = task_id
            if deadline is not None:
                heapq.heappush(self._deadlines, (deadline, rec.seq, rec))
            self._queue.push(rec)
            for listener in self._listeners:
                listener(rec, None)
            out.append(Submitted(task_id, False, TaskState.PENDING))
            self.counters.submitted += 1
        return out

    def get(self, task_id: str) -> TaskRecord:
        rec = self._tasks.get(task_id)
        if rec is None:
            raise CoreError(StatusCode.NOT_FOUND, f"task {task_id!r} is unknown (never submitted, or no longer retained)")
        return rec

    def pending_reason(self, rec: TaskRecord, now: float | None = None) -> str:
        """`now` (for a retry's countdown) defaults to the time of the last tick."""
        if rec.retry_at is not None and rec.state is TaskState.PENDING:
            return retry_reason(rec, now if now is not None else self._last_tick or rec.queued_at)
        return views.pending_reason(rec, self.registry, self._queue)

    def routing_reason(self, rec: TaskRecord) -> str:
        return views.routing_reason(rec)

    def list_tasks(
        self, states: Iterable[TaskState] = (), kind: str = "", tenant: str = "", agent_id: str = "", limit: int = 100
    ) -> tuple[list[TaskRecord], int]:
        return views.list_tasks(self._tasks, states, kind, tenant, agent_id, limit)

    def cancel(self, task_ids: list[str], now: float) -> list[TaskRecord]:
        recs = [self.get(t) for t in task_ids]  # all-or-nothing on unknown ids
        for rec in recs:
            if rec.state == TaskState.PENDING:
                self._unqueue(rec)
            elif rec.state == TaskState.ASSIGNED:
                agent = self.registry.session_of(rec.agent_id, rec.session)
                if agent is not None:
                    agent.in_flight.pop(rec.task_id, None)
                    self._cancels[agent.agent_id].append((rec.task_id, rec.attempt))
            else:
                continue
            self._finish(rec, TaskState.CANCELLED, Outcome(error="cancelled by client", error_type="cancelled"), now)
        return recs

    def requeue(self, task_ids: list[str], now: float) -> list[TaskRecord]:
        """Send dead letters back to the queue, each with a new run of attempts.
        All or nothing: an unknown id, or a task that is not a dead letter, fails the call."""
        recs = [self.get(t) for t in dict.fromkeys(task_ids)]
        check_requeue(recs)
        for rec in recs:
            del self._finished[rec.task_id]
            self._retries.rearm(rec, now, self.config.default_timeout_ms)
            if rec.deadline is not None:
                heapq.heappush(self._deadlines, (rec.deadline, rec.seq, rec))
            self.counters.requeued += 1
            self._pend(rec, now)
        return recs

    def take_cancels(self) -> dict[str, list[TaskRef]]:
        """Cancels the shell must send to agents (and forget)."""
        out = dict(self._cancels)
        self._cancels.clear()
        return out

    # -- agents -----------------------------------------------------------------

    def register(self, reg: Registration, now: float) -> tuple[AgentRecord, AgentRecord | None]:
        """Start a session for an agent. A live session of the same agent is
        fenced (its leases revoked) and returned so the shell can close it."""
        check_registration(reg, self.config.limits)
        old = self.registry.get(reg.agent_id)
        if old is not None:
            self._revoke(old, now)
            self.registry.remove(old, now)
        agent = self.registry.add(reg, now)
        self.feedback.on_register(agent, now)
        if self._orphans:
            self._adopt(agent, reg.held, now)
        return agent, old

    def disconnect(self, agent_id: str, session: int, now: float) -> None:
        agent = self.registry.session_of(agent_id, session)
        if agent is not None:
            self._revoke(agent, now)
            self.registry.remove(agent, now)

    def drain(self, agent_id: str) -> AgentRecord:
        agent = self.registry.get(agent_id)
        if agent is None:
            raise CoreError(StatusCode.NOT_FOUND, f"agent {agent_id!r} is not connected")
        self.registry.set_state(agent, AgentState.DRAINING)
        return agent

    def frame(
        self,
        agent_id: str,
        session: int,
        now: float,
        results: list[ResultIn] = [],  # noqa: B006 - never mutated
        credits: int = 0,
        heartbeat: Heartbeat | None = None,
        draining: bool = False,
    ) -> list[Ack]:
        """Apply one frame from an agent's stream. Bad items get a non-OK ack;
        they never fail the frame."""
        agent = self.touch(agent_id, session, now)
        acks = [self._complete(agent, r, now) for r in results]
        if credits:
            agent.credits = min(agent.credits + credits, agent.capacity)
        if heartbeat is not None:
            agent.heartbeat = heartbeat
            agent.heartbeat_at = now
            if heartbeat.latencies:
                self.feedback.on_heartbeat(agent, heartbeat, now)
        if draining and agent.state != AgentState.DRAINING:
            self.registry.set_state(agent, AgentState.DRAINING)
        return acks

    def touch(self, agent_id: str, session: int, now: float, *, heartbeat_again: bool = False) -> AgentRecord:
        """A frame arrived on the agent's stream: its lease runs from now.
        heartbeat_again: the frame repeats the agent's current heartbeat, and is all there is to apply."""
        agent = self.registry.session_of(agent_id, session)
        if agent is None:
            raise CoreError(StatusCode.FAILED_PRECONDITION, f"session {session} of agent {agent_id!r} was superseded")
        self.registry.heard(agent, now)
        if heartbeat_again:
            agent.heartbeat_at = now
        return agent

    def _revoke(self, agent: AgentRecord, now: float) -> None:
        """Take back every lease the agent's session holds."""
        for task_id, attempt in agent.in_flight.items():
            rec = self._tasks.get(task_id)
            if rec is None or rec.state != TaskState.ASSIGNED or rec.attempt != attempt or rec.agent_id != agent.agent_id:
                continue
            self._lease_lost(rec, now)
        agent.in_flight.clear()
        agent.credits = 0

    def _lease_lost(self, rec: TaskRecord, now: float) -> None:
        """The task's holder is gone: back to wait for another attempt, or a dead letter on its last."""
        rec.last_agent = rec.agent_id
        rec.last_failure = None  # the attempt reported nothing (tracing tells the two apart)
        if rec.attempt - rec.run_start >= rec.max_attempts:
            # A task that keeps killing its agents is the classic poison message.
            rec.agent_id = ""
            msg = f"lost after {rec.attempt} attempt(s): every agent holding it went away"
            self._finish(rec, TaskState.DEAD_LETTER, Outcome(error=msg, error_type="lease_lost"), now)
            return
        self._pend(rec, now)

    # -- retries (the policy is in retry.py) --------------------------------------

    def _settle(self, rec: TaskRecord, state: TaskState, outcome: Outcome, now: float) -> None:
        """The result of the attempt an agent held: the task finishes, or a failed
        attempt its kind retries sends it back to wait for the next one."""
        if state is TaskState.FAILED:
            verdict, delay = self._retries.judge(rec, outcome.error_type, now)
            if verdict is Verdict.RETRY:
                rec.last_failure = outcome
                self.counters.retried += 1
                self._pend(rec, now, delay)
                return
            if verdict is Verdict.DEAD_LETTER:
                state = TaskState.DEAD_LETTER
        self._finish(rec, state, outcome, now)

    def _pend(self, rec: TaskRecord, now: float, delay: float = 0.0) -> None:
        """Back to PENDING: into the queue, or first out of it for a retry's backoff."""
        rec.agent_id = ""
        rec.queued_at = now
        if delay > 0:
            self._retries.hold(rec, now + delay)
        else:
            self._queue.push(rec)
        self._transition(rec, TaskState.PENDING)

    def _unqueue(self, rec: TaskRecord) -> None:
        """A PENDING task leaves wherever it waits: the queue, or a backoff."""
        if rec.retry_at is None:
            self._queue.discard(rec)
        else:
            self._retries.forget(rec)

    # -- recovery (see recovery.py) ---------------------------------------------

    def restore(self, saved: Saved, now: float) -> Restored:
        """Rebuild from a journal, before any task or agent arrives. Listeners
        are not told: nothing changed, the journal holds it already."""
        if self._tasks or self.registry.live():
            raise RuntimeError("restore needs a core with no tasks and no agents")
        r = rebuild(saved)
        self._prefix = saved.id_prefix or self._prefix
        self._seq = max(self._seq, r.last_seq)
        self._tasks.update(r.tasks)
        self._idem.update(r.idem)
        for rec in r.tasks.values():
            self._state_counts[rec.state] += 1
        for rec in r.pending:
            self._queue.push(rec)
        for rec, due in r.backoff:
            self._retries.hold(rec, due)
        self._finished.update((rec.task_id, rec) for rec in r.finished)
        expires_at = now + self.config.lease_timeout_s
        for rec in r.assigned:
            self._orphans.hold(rec.agent_id, rec.task_id, rec.attempt, expires_at)
        self._deadlines = r.deadlines
        return r.report

    def _adopt(self, agent: AgentRecord, held: Iterable[TaskRef], now: float) -> None:
        """The agent's new session takes over the orphaned leases it says it
        holds; the ones it does not claim are lost at once."""
        leases = self._orphans.claim(agent.agent_id)
        for task_id, attempt in held:
            rec = self._tasks.get(task_id)
            if (rec is not None and leases.get(task_id) == attempt
                    and Orphans.still_orphaned(rec, agent.agent_id, attempt)):
                del leases[task_id]
                rec.session = agent.session
                agent.in_flight[task_id] = attempt
        self._orphaned_leases_lost(agent.agent_id, leases, now)

    def _orphaned_leases_lost(self, agent_id: str, leases: dict[str, int], now: float) -> None:
        for task_id, attempt in leases.items():
            rec = self._tasks.get(task_id)
            if rec is not None and Orphans.still_orphaned(rec, agent_id, attempt):
                self._lease_lost(rec, now)

    # -- dispatch -----------------------------------------------------------------

    def dispatch(self, now: float) -> dict[str, list[TaskRecord]]:
        """Assign as many pending tasks as free slots allow (see dispatch.py).
        Returns agent id -> the tasks newly assigned to it (each with its attempt set)."""
        return self._dispatcher.run(now)

    def _assign(self, rec: TaskRecord, agent: AgentRecord, now: float) -> None:
        rec.attempt += 1
        if rec.attempt > 1:
            self.counters.reassigned += 1
        rec.agent_id = agent.agent_id
        rec.session = agent.session
        rec.assigned_at = now
        rec.history.append(agent.agent_id)
        agent.in_flight[rec.task_id] = rec.attempt
        agent.credits -= 1
        self._transition(rec, TaskState.ASSIGNED)

    # -- time -------------------------------------------------------------------

    def tick(self, now: float) -> list[AgentRecord]:
        """Expire leases, deadlines and retention. Returns the agents whose
        lease expired (silent for lease_timeout_s) so the shell can close them."""
        expired = self.registry.silent_since(now - self.config.lease_timeout_s)
        for agent in expired:
            self._revoke(agent, now)
            self.registry.remove(agent, now)
        for agent_id, leases in self._orphans.expired(now):
            self._orphaned_leases_lost(agent_id, leases, now)
        for rec in self._retries.due(now):
            self._queue.push(rec)
        self._expire_deadlines(now)
        self._prune(now)
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        self.feedback.tick(now, dt, self._tasks)
        self._dispatch_rate = self._queue.fair.tick(self._queue.tenants, dt)
        self._queue.forget_idle()
        return expired

    def _expire_deadlines(self, now: float) -> None:
        heap = self._deadlines
        grace = self.config.deadline_grace_s
        while heap and heap[0][0] <= now:
            due, seq, rec = heapq.heappop(heap)
            if rec.deadline is not None and due < rec.deadline:
                continue  # from before a requeue moved the deadline
            if rec.state == TaskState.PENDING:
                self._unqueue(rec)
            elif rec.state == TaskState.ASSIGNED:
                assert rec.deadline is not None
                if now < rec.deadline + grace:
                    heapq.heappush(heap, (rec.deadline + grace, seq, rec))
                    continue
                agent = self.registry.session_of(rec.agent_id, rec.session)
                if agent is not None:
                    agent.in_flight.pop(rec.task_id, None)
                    self._cancels[agent.agent_id].append((rec.task_id, rec.attempt))
            else:
                continue
            where = "in the queue" if rec.state == TaskState.PENDING else f"on agent {rec.agent_id!r}"
            msg = f"deadline exceeded {where} ({rec.spec.timeout_ms or self.config.default_timeout_ms} ms)"
            self._finish(rec, TaskState.FAILED, Outcome(error=msg, error_type="deadline_exceeded"), now)
        # Finished tasks leave their entries behind; with long deadlines and high
        # throughput those would pin evicted records, so compact when mostly dead.
        live = self._state_counts[TaskState.PENDING] + self._state_counts[TaskState.ASSIGNED]
        if len(heap) > 2 * live + 1024:
            self._deadlines = [e for e in heap if not e[2].state.terminal]
            heapq.heapify(self._deadlines)

    def _prune(self, now: float) -> None:
        finished = self._finished
        cutoff = now - self.config.retention_s
        limit = self.config.max_retained
        while finished:
            task_id, rec = next(iter(finished.items()))
            if len(finished) <= limit and rec.finished_at is not None and rec.finished_at >= cutoff:
                break
            finished.popitem(last=False)
            del self._tasks[task_id]
            self._state_counts[rec.state] -= 1
            self.counters.evicted += 1
            key = (rec.spec.tenant, rec.spec.idempotency_key)
            if rec.spec.idempotency_key and self._idem.get(key) == task_id:
                del self._idem[key]

    # -- reading ------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def state_counts(self) -> dict[TaskState, int]:
        return dict(self._state_counts)

    def queued_by_kind(self) -> dict[str, int]:
        """Pending tasks per kind (over all tenants and required labels)."""
        out: dict[str, int] = {}
        for (kind, _required), n in self._queue.depths.items():
            out[kind] = out.get(kind, 0) + n
        return out

    def queued_by_class(self) -> dict[RouteKey, int]:
        """Pending tasks per routing class (kind, required labels), over all tenants."""
        return dict(self._queue.depths)
