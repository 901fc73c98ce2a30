"""Ticker: the coordinator's clock, the one task that drives the core's sweeps.

The core has no clock of its own; every `tick_interval_s` this tells it the
time, so that expired leases, deadlines and retention are swept, and turns
what the sweep decided into effects on the agents' streams.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from coordinator.core.mesh import MeshCore
from coordinator.profile.profiler import Profiler
from coordinator.service.effects import AgentSessions

log = logging.getLogger(__name__)


class Ticker:
    def __init__(self, core: MeshCore, agents: AgentSessions, profiler: Profiler, interval_s: float) -> None:
        self._core = core
        self._agents = agents
        self._profiler = profiler
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="coordinator-ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        lease_timeout_s = self._core.config.lease_timeout_s
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                for agent in self._core.tick(time.time()):
                    log.warning("agent %s lease expired: no frame for %.1f s; its tasks were re-queued",
                                agent.agent_id, lease_timeout_s)
                    self._agents.close(agent.agent_id, agent.session, grpc.StatusCode.UNAVAILABLE,
                                       f"lease expired: no frame for {lease_timeout_s} s")
                self._agents.flush_cancels()
                self._agents.schedule_dispatch()
                for _ in self._profiler.tick_steps(time.time()):
                    await asyncio.sleep(0)
            except Exception:  # the ticker must survive a bug in one sweep
                log.exception("tick failed")
