"""A micro-benchmark of the core's hot path (not a test: it asserts nothing).

Drives MeshCore with no-op work: N tasks over 8 agents of 64 slots, results
returned at once. Two shapes: "batched" submits 1,000 tasks at a time and
dispatches as many as fit per pass (a busy coordinator); "trickle" returns
one result and runs one dispatch pass per task (the per-pass overhead laid bare).
"""

from __future__ import annotations

import time
from dataclasses import replace

from coordinator.core.balancer import BalancerConfig
from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskSpec

_OK = Outcome(duration_us=100)


def _core(strategy: str, agents: int, capacity: int) -> tuple[MeshCore, dict[str, int]]:
    core = MeshCore(replace(CoreConfig(max_retained=200_000), balancer=BalancerConfig(strategy=strategy)))
    sessions = {}
    for i in range(agents):
        rec, _ = core.register(Registration(f"a{i}", (), frozenset(), capacity, "1", capacity), 0.0)
        sessions[rec.agent_id] = rec.session
    return core, sessions


def batched(strategy: str, n: int, agents: int = 8, capacity: int = 64, batch: int = 1000) -> dict[str, float]:
    core, sessions = _core(strategy, agents, capacity)
    spec = TaskSpec(kind="noop")
    now, done, submitted = 0.0, 0, 0
    t_submit = t_dispatch = t_results = 0.0
    clock = time.perf_counter
    while done < n:
        if submitted < n and core.queue_depth < 4 * batch:
            t0 = clock()
            core.submit([spec] * batch, now)
            t_submit += clock() - t0
            submitted += batch
        now += 0.001
        t0 = clock()
        out = core.dispatch(now)
        t1 = clock()
        t_dispatch += t1 - t0
        for agent_id, recs in out.items():
            core.frame(agent_id, sessions[agent_id], now, [ResultIn(r.task_id, r.attempt, 3, _OK) for r in recs],
                       credits=len(recs))
            done += len(recs)
        t_results += clock() - t1
        if int(now * 1000) % 200 == 0:
            core.tick(now)
    return {"submit": t_submit / n * 1e6, "dispatch": t_dispatch / n * 1e6, "results": t_results / n * 1e6}


def trickle(strategy: str, n: int, agents: int = 8, capacity: int = 64) -> dict[str, float]:
    core, sessions = _core(strategy, agents, capacity)
    spec = TaskSpec(kind="noop")
    core.submit([spec] * min(n, 10_000), 0.0)
    submitted = min(n, 10_000)
    out = core.dispatch(0.0)
    inflight = [(a, r) for a, recs in out.items() for r in recs]
    clock = time.perf_counter
    t_dispatch = t_results = 0.0
    now = 0.0
    for i in range(n):
        if submitted < n and core.queue_depth < 1000:
            core.submit([spec] * 1000, now)
            submitted += 1000
        now += 0.0001
        agent_id, rec = inflight[i]
        t0 = clock()
        core.frame(agent_id, sessions[agent_id], now, [ResultIn(rec.task_id, rec.attempt, 3, _OK)], credits=1)
        t1 = clock()
        for a, recs in core.dispatch(now).items():
            inflight.extend((a, r) for r in recs)
        t_dispatch += clock() - t1
        t_results += t1 - t0
    return {"dispatch": t_dispatch / n * 1e6, "results": t_results / n * 1e6}


def micro(n: int = 100_000) -> str:
    lines = [f"core micro-benchmark: {n:,} no-op tasks, 8 agents x 64 slots, microseconds per task",
             f"  {'strategy':<14} {'batched: submit':>15} {'dispatch':>9} {'results':>8}   "
             f"{'trickle: dispatch':>17} {'results':>8}"]
    for strategy in ("hybrid", "least-loaded", "round-robin", "performance"):
        b = batched(strategy, n)
        t = trickle(strategy, n)
        lines.append(f"  {strategy:<14} {b['submit']:>15.2f} {b['dispatch']:>9.2f} {b['results']:>8.2f}   "
                     f"{t['dispatch']:>17.2f} {t['results']:>8.2f}")
    return "\n".join(lines)
