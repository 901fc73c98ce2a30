"""One dispatch pass: match queued tasks to free agent slots.

Order: the tenant with the lowest fair-share tag goes next; within it, the
task with the lowest queue key among its routing classes that have an agent
with a free slot; the class's strategy picks the agent. A strategy may leave
the task queued (it is waiting for a faster agent); then its class sits out
the rest of the pass, or, when the strategy names a spare agent, the
tenant's newest task of that class takes the spare's slot.

Per assignment: a tenant-heap step, a look at the tenant's active classes
(usually one), the strategy's pick (O(candidates)), and the bookkeeping in
MeshCore._assign. Everything per class (its pool, latency estimates) is
built once per pass.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from coordinator.core.balancer import Pool
from coordinator.core.fairness import Tenant
from coordinator.core.feedback import Feedback
from coordinator.core.model import AgentRecord, TaskRecord
from coordinator.core.queue import TaskQueue
from coordinator.core.registry import Registry, RouteKey
from coordinator.core.routing import Router

Assign = Callable[[TaskRecord, AgentRecord, float], None]

_NONE: dict[str, float] = {}
# Pools larger than SAMPLE_OVER agents offer a rotating sample of SAMPLE
# ready agents to the strategy each pass instead of every ready agent.
SAMPLE_OVER = 64
SAMPLE = 16
_MAX_POOLS = 10_000


class Dispatcher:
    def __init__(self, queue: TaskQueue, registry: Registry, feedback: Feedback, router: Router,
                 assign: Assign) -> None:
        self.queue = queue
        self.registry = registry
        self.feedback = feedback
        self.router = router
        self._assign = assign
        self._pools: dict[RouteKey, Pool] = {}
        self._turn = 0

    def pool(self, key: RouteKey, now: float) -> Pool | None:
        """The class's agents for this pass; None when none has a free slot.

        A class's pool is kept between passes and rebuilt only when the
        registry's eligible list or some agent's allowed concurrency changed;
        each pass only refreshes which agents have a free slot."""
        eligible = self.registry.eligible(key)
        if not eligible:
            return None
        generation = self.feedback.generation
        pool = self._pools.get(key)
        if pool is None or pool.source is not eligible or pool.generation != generation:
            agents = [a for a in eligible if a.allowed > 0]
            panic = not agents
            pool = Pool(key, self.router.for_kind(key[0]), agents or eligible, [], self.queue.depths, panic)
            pool.source, pool.generation = eligible, generation
            pool.overhead = self.feedback.config.dispatch_overhead_s
            if len(self._pools) > _MAX_POOLS:
                self._pools.clear()
            self._pools[key] = pool
        if len(pool.agents) > SAMPLE_OVER:
            ready = self._sample_ready(pool)
        elif pool.panic:
            ready = [a for a in pool.agents if a.credits > 0]
        else:
            ready = [a for a in pool.agents if a.credits > 0 and len(a.in_flight) < a.allowed]
        if not ready:
            return None
        pool.ready = ready
        pool.spare = None
        if pool.strategy.uses_latency:
            self._estimates(pool)
        return pool

    def _sample_ready(self, pool: Pool) -> list[AgentRecord]:
        """Up to SAMPLE agents with a free slot, from a rotating start.

        Scanning thousands of agents on every pass made dispatch O(fleet) per
        task (W3: 5,000 agents); a rotating sample is power-of-k choices, and
        the start moves so every agent keeps being offered work."""
        agents = pool.agents
        n = len(agents)
        self._turn = (self._turn + SAMPLE) % n
        panic = pool.panic
        ready: list[AgentRecord] = []
        for i in range(n):
            a = agents[(self._turn + i) % n]
            if a.credits > 0 and (panic or len(a.in_flight) < a.allowed):
                ready.append(a)
                if len(ready) >= SAMPLE:
                    break
        return ready

    def _estimates(self, pool: Pool) -> None:
        known = self.feedback.by_kind.get(pool.kind, _NONE)
        if len(pool.ids) > SAMPLE_OVER:
            # Large pools: estimates for the sampled candidates only. A task
            # then never waits for a busy faster agent, which in a fleet this
            # size is rarely worth it: another fast agent is usually free.
            base = self.feedback.baseline.get(pool.kind)
            if base is None:
                values = sorted(known[a.agent_id] for a in pool.ready if a.agent_id in known)
                base = values[len(values) // 2] if values else 1.0
            est = {a.agent_id: known.get(a.agent_id, base) for a in pool.ready}
            pool.est = est
            pool.fastest = min(est.values())
            pool.est_src = None
            return
        fill = pool.est_fill
        if pool.est_src is not known or pool.est_len != len(known):
            # Unmeasured agents look typical, so they get work and get measured.
            missing = [i for i in pool.ids if i not in known]
            fill = None
            if missing:
                base = self.feedback.baseline.get(pool.kind)
                if base is None:
                    values = sorted(known[i] for i in pool.ids if i in known)
                    base = values[len(values) // 2] if values else 1.0
                fill = dict.fromkeys(missing, base)
            pool.est_src, pool.est_len, pool.est_fill = known, len(known), fill
        est = {**known, **fill} if fill else known
        pool.est = est
        pool.fastest = min(map(est.__getitem__, pool.ids))

    def run(self, now: float) -> dict[str, list[TaskRecord]]:
        """Assign as many pending tasks as free slots allow. Returns agent id ->
        the tasks newly assigned to it."""
        out: dict[str, list[TaskRecord]] = {}
        queue = self.queue
        if not len(queue):
            return out
        pools: dict[RouteKey, Pool] = {}
        for key in queue.classes():
            pool = self.pool(key, now)
            if pool is not None:
                pools[key] = pool
        if not pools:
            return out
        order: list[tuple[float, int, Tenant]] = []
        for t in queue.tenants.values():
            for k in t.heaps:
                if k in pools:
                    order.append((t.finish, t.order, t))
                    break
        heapq.heapify(order)
        # One tenant (the common case) needs no fair-share ordering, only its count.
        shared = len(order) > 1
        head = queue.head
        charge = queue.fair.charge
        assign = self._assign
        while order and pools:
            t = order[0][2]
            best_entry = None
            best_key: RouteKey | None = None
            for key in t.heaps:
                if key in pools:
                    entry = head(t, key)
                    if entry is not None and (best_entry is None or entry < best_entry):
                        best_entry, best_key = entry, key
            if best_entry is None or best_key is None:
                heapq.heappop(order)
                continue
            pool = pools[best_key]
            strategy = pool.strategy
            agent = strategy.pick(best_entry[2], pool)
            if agent is None:
                spare = pool.spare
                rec = queue.pop_tail(t, best_key) if spare is not None else None
                if spare is None or rec is None:
                    del pools[best_key]
                    continue
                pool.spare = None
                agent = spare
            else:
                rec = queue.pop_head(t, best_key)
            rec.route_strategy = strategy.name
            rec.route_reason = pool.reason
            rec.route_score = pool.score
            rec.route_candidates = len(pool.ready)
            assign(rec, agent, now)
            lst = out.get(agent.agent_id)
            if lst is None:
                out[agent.agent_id] = [rec]
            else:
                lst.append(rec)
            if shared:
                charge(t)
                heapq.heapreplace(order, (t.finish, t.order, t))
            else:
                t.served += 1
            if agent.credits <= 0 or len(agent.in_flight) >= agent.allowed:
                self._full(agent, pools)
        return out

    def _full(self, agent: AgentRecord, pools: dict[RouteKey, Pool]) -> None:
        """Take an agent that has no free slot left out of every pool."""
        out_of_credit = agent.credits <= 0
        for key in list(pools):
            pool = pools[key]
            if out_of_credit or not pool.panic:
                ready = pool.ready
                for i, a in enumerate(ready):
                    if a is agent:  # identity: records compare equal field by field
                        del ready[i]
                        if not ready and not self._resample(pool):
                            del pools[key]
                        break

    def _resample(self, pool: Pool) -> bool:
        """A sampled pool whose candidates all filled up draws the next sample."""
        if len(pool.agents) <= SAMPLE_OVER:
            return False
        ready = self._sample_ready(pool)
        if not ready:
            return False
        pool.ready = ready
        if pool.strategy.uses_latency:
            self._estimates(pool)
        return True
