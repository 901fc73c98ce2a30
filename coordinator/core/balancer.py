"""Choosing an agent for a task among the eligible ones that have credits.

One small interface; strategies plug in behind it. The coordinator core only
ever calls `pick`, with candidates that are READY, serve the task's routing
class and hold at least one credit.
"""

from __future__ import annotations

from typing import Protocol

from coordinator.core.model import AgentRecord, TaskRecord


class Strategy(Protocol):
    name: str

    def pick(self, task: TaskRecord, candidates: list[AgentRecord]) -> AgentRecord: ...


class LeastLoaded:
    """Fewest outstanding assignments relative to capacity, counted by the
    coordinator itself (not from heartbeats, which lag). Ties rotate so equal
    agents share work evenly instead of the first one taking every tie."""

    name = "least-loaded"

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, task: TaskRecord, candidates: list[AgentRecord]) -> AgentRecord:
        n = len(candidates)
        if n == 1:
            return candidates[0]
        self._turn += 1
        start = self._turn % n
        best = candidates[start]
        best_load = len(best.in_flight) / best.capacity
        for i in range(1, n):
            agent = candidates[(start + i) % n]
            load = len(agent.in_flight) / agent.capacity
            if load < best_load:
                best, best_load = agent, load
        return best
