"""Results from agents: check each one against the lease it answers, and ack it.

A result is accepted only from the session that holds the task's current
attempt. Accepting one releases the lease, updates the agent's tallies and
the balancer's latency estimate, and has MeshCore finish the task: nothing
here changes task state (see MeshCore._finish and _transition). Any other
result gets a non-OK ack saying why: a bad state, an unknown task, a lease
the agent never held, or one it held once and lost (a stale result).

An output over the payload limit is not kept: the attempt is recorded as a
failure naming the limit (error type `output_too_large`, which no default
retry policy retries, as the same handler would only produce it again), and
the ack says RESOURCE_EXHAUSTED so that the sidecar logs why.
"""

from __future__ import annotations

from collections.abc import Callable

from coordinator.core.feedback import Feedback
from coordinator.core.model import (
    Ack,
    AgentRecord,
    Counters,
    Outcome,
    ResultIn,
    StatusCode,
    TaskRecord,
    TaskState,
)
from coordinator.core.validation import Limits, too_large

Finish = Callable[[TaskRecord, TaskState, Outcome, float], None]

# Raw wire value -> state, for the states a result may report. A dict lookup:
# comparing an int against IntEnum members costs more, once per result.
_RESULT_STATES = {s.value: s for s in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)}
OUTPUT_TOO_LARGE = "output_too_large"


class Results:
    def __init__(self, tasks: dict[str, TaskRecord], feedback: Feedback, counters: Counters, finish: Finish,
                 limits: Limits | None = None) -> None:
        self._tasks = tasks
        self._limits = limits or Limits()
        self.feedback = feedback
        self.counters = counters
        self._finish = finish

    def complete(self, agent: AgentRecord, r: ResultIn, now: float) -> Ack:
        state = _RESULT_STATES.get(r.state)
        if state is None:
            return Ack(r.task_id, r.attempt, StatusCode.INVALID_ARGUMENT,
                       f"result for {r.task_id!r}: state {r.state} is not SUCCEEDED, FAILED or CANCELLED")
        rec = self._tasks.get(r.task_id)
        if rec is None:
            return Ack(r.task_id, r.attempt, StatusCode.NOT_FOUND, f"task {r.task_id!r} is unknown")
        me = agent.agent_id
        if (rec.state == TaskState.ASSIGNED and rec.attempt == r.attempt and rec.agent_id == me
                and rec.session == agent.session):
            agent.in_flight.pop(rec.task_id, None)
            outcome, ack = r.outcome, Ack(r.task_id, r.attempt, StatusCode.OK)
            if len(outcome.output) > self._limits.max_payload_bytes:
                problem = f"output: {too_large(len(outcome.output), self._limits)}"
                state = TaskState.FAILED
                outcome = Outcome(error=problem, error_type=OUTPUT_TOO_LARGE, duration_us=outcome.duration_us,
                                  agent_us=outcome.agent_us, cache_us=outcome.cache_us)
                ack = Ack(r.task_id, r.attempt, StatusCode.RESOURCE_EXHAUSTED,
                          f"result for task {r.task_id!r} attempt {r.attempt}: {problem}")
            if state is TaskState.SUCCEEDED:
                agent.completed += 1
            else:
                agent.failed += 1
            if state is not TaskState.CANCELLED:
                # Handler time as the sidecar measured it (0 for a sub-microsecond
                # handler); a cache hit says nothing about how fast the agent runs the kind.
                sample = -1.0 if outcome.cache_hit else outcome.duration_us / 1e6
                self.feedback.on_result(agent, rec.spec.kind, state is TaskState.FAILED, sample, now)
            self._finish(rec, state, outcome, now)
            return ack
        held_once = 1 <= r.attempt <= len(rec.history) and rec.history[r.attempt - 1] == me
        if not held_once:
            return Ack(r.task_id, r.attempt, StatusCode.PERMISSION_DENIED,
                       f"task {r.task_id!r} attempt {r.attempt} is not held by agent {me!r}")
        self.counters.stale_results += 1
        if rec.state.terminal:
            why = f"the task is already {rec.state.name} (attempt {rec.attempt})"
        elif rec.attempt != r.attempt:
            why = f"it was superseded by attempt {rec.attempt}"
        else:
            why = "its lease was revoked and the task re-queued"
        return Ack(r.task_id, r.attempt, StatusCode.FAILED_PRECONDITION,
                   f"result for task {r.task_id!r} attempt {r.attempt} rejected: {why}")
