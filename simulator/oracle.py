"""The oracle: a strategy that knows every agent's true mean service time.

It plugs into the real dispatcher like any strategy: it sends each task to
the free agent with the earliest expected completion, and uses the same rule
as the latency-aware strategies for leaving a task queued for a busy faster
agent, with exact speeds instead of learned ones. It is the bar the hybrid
strategy is measured against.
"""

from __future__ import annotations

from collections.abc import Callable

from coordinator.core.balancer import FASTEST, ONLY, Pool, wait_or_run
from coordinator.core.model import AgentRecord, TaskRecord


class Oracle:
    name = "oracle"
    uses_latency = False

    def __init__(self, true_mean: Callable[[str, str], float], patience: float = 0.5) -> None:
        # (agent_id, kind) -> true mean service time in seconds, at the current simulated time.
        self._true_mean = true_mean
        self._patience = patience

    def pick(self, task: TaskRecord, pool: Pool) -> AgentRecord | None:
        ready = pool.ready
        if not ready:
            return None
        kind = task.spec.kind
        est = {a.agent_id: self._true_mean(a.agent_id, kind) for a in pool.agents}
        pool.fastest = min(est.values())
        best = ready[0]
        best_key = (est[best.agent_id], len(best.in_flight) / pool.cap(best))
        for a in ready[1:]:
            key = (est[a.agent_id], len(a.in_flight) / pool.cap(a))
            if key < best_key:
                best, best_key = a, key
        pool.reason = FASTEST if len(ready) > 1 else ONLY
        pool.score = best_key[0]
        # Exact speeds: any truly faster busy agent is worth considering.
        return wait_or_run(pool, best, best_key[0], est, 1.0 + 1e-9, self._patience)
