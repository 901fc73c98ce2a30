"""The shell around the invalidation log, report tallies and warm-up planning.

Every decision is the core's (coordinator/core/invalidation.py and
popularity.py); this module sends frames, waits for reports and submits
warm-up tasks.

Invalidate: the invalidation is appended to the log and queued on every
connected agent's stream in one step, so each agent either gets it live or,
registering later, in its catch-up; never both, never neither.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coordinator.core.invalidation import CatchUp, Invalidation, InvalidationLog, ReportTally, check_names
from coordinator.core.mesh import MeshCore
from coordinator.core.model import AgentRecord, CoreError, TaskSpec
from coordinator.core.popularity import Popularity, plan_after_invalidation, plan_for_agent
from coordinator.profile.cache_log import CacheTotals
from coordinator.service.effects import AgentSessions
from swarmmesh.v1 import mesh_pb2

log = logging.getLogger(__name__)

MAX_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class CacheSyncConfig:
    # Invalidations kept for agents that reconnect; one that missed older ones clears its cache.
    invalidation_log_size: int = 10_000
    # Seconds an Invalidate call waits for connected agents' reports when it does not say.
    invalidate_wait_s: float = 2.0
    # Warm-up tasks submitted at most per trigger (hot key invalidated, agent joined); 0 = off.
    warmup_max_tasks: int = 32
    # Cache keys whose popularity is tracked, and the half-life of their counts in seconds.
    popularity_keys: int = 10_000
    popularity_half_life_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("invalidation_log_size", "popularity_keys"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        for name in ("invalidate_wait_s", "warmup_max_tasks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        if not self.popularity_half_life_s > 0:
            raise ValueError("popularity_half_life_s: must be positive")


@dataclass(frozen=True, slots=True)
class InvalidateResult:
    seq: int
    dropped: int
    agents_answered: int
    agents_total: int
    warmups_submitted: int


def invalidations_to_proto(items: Sequence[Invalidation]) -> list[mesh_pb2.Invalidation]:
    return [mesh_pb2.Invalidation(seq=i.seq, dependencies=i.dependencies) for i in items]


class CacheSync:
    def __init__(self, core: MeshCore, agents: AgentSessions, config: CacheSyncConfig | None = None) -> None:
        cfg = self.config = config or CacheSyncConfig()
        self._core = core
        self._agents = agents
        self.log = InvalidationLog(max_entries=cfg.invalidation_log_size)
        self.tally = ReportTally()
        self.popularity = Popularity(max_keys=cfg.popularity_keys, half_life_s=cfg.popularity_half_life_s)
        self.warmups_total = 0
        self._done: dict[int, asyncio.Event] = {}

    # --- client requests ----------------------------------------------------------------

    async def invalidate(self, names: Sequence[str], wait_s: float | None = None) -> InvalidateResult:
        """`wait_s`: how long to wait for the agents' reports; None = the configured default."""
        deps = check_names(names)
        if wait_s is None:
            wait_s = self.config.invalidate_wait_s
        now = time.time()
        entry = self.log.append(deps, now)
        sessions = self._agents.open()
        tally = self.tally.open(entry.seq, (s.agent_id for s in sessions))
        frame_item = invalidations_to_proto([entry])
        for sess in sessions:
            sess.send_invalidations(frame_item)
        log.info("invalidation #%d of %d name(s) sent to %d agent(s)", entry.seq, len(deps), len(sessions))
        warm = self._submit_warmups(plan_after_invalidation(self.popularity, deps, now, self._warmup_room()))
        if not tally.complete and wait_s > 0:
            done = self._done[entry.seq] = asyncio.Event()
            try:
                await asyncio.wait_for(done.wait(), min(wait_s, MAX_WAIT_S))
            except TimeoutError:
                pass
            finally:
                self._done.pop(entry.seq, None)
        self.tally.close(entry.seq)
        return InvalidateResult(entry.seq, tally.dropped, len(tally.answered), tally.total, warm)

    # --- agents ---------------------------------------------------------------------------

    def catch_up(self, cache_epoch: str, cache_seq: int) -> CatchUp:
        return self.log.catch_up(cache_epoch, cache_seq)

    def on_reports(self, agent_id: str, reports: Sequence[mesh_pb2.InvalidationReport]) -> None:
        for r in reports:
            done = self.tally.report(agent_id, r.seq, r.dropped)
            if done is not None:
                self._wake(done.seq)

    def agent_gone(self, agent_id: str) -> None:
        for done in self.tally.agent_gone(agent_id):
            self._wake(done.seq)

    def agent_joined_cold(self, agent: AgentRecord) -> int:
        """Warm an agent that joined with an empty cache with the hot keys it owns."""
        owner = self._owner_fn()
        if owner is None:
            return 0
        specs = plan_for_agent(self.popularity, owner, agent.agent_id, time.time(), self._warmup_room())
        return self._submit_warmups(specs)

    def totals(self) -> CacheTotals:
        """Running totals for the profiler's record of cache events."""
        return CacheTotals(self.log.appended, self.tally.dropped_total, self.warmups_total)

    def observe(self, specs: Sequence[TaskSpec], now: float) -> None:
        self.popularity.observe(specs, now)

    def _wake(self, seq: int) -> None:
        event = self._done.get(seq)
        if event is not None:
            event.set()

    # --- warm-up ----------------------------------------------------------------------------

    def _warmup_room(self) -> int:
        """How many warm-ups fit now: none while anything is queued, else spare credits, capped."""
        limit = self.config.warmup_max_tasks
        core = self._core
        if limit <= 0 or core.queue_depth:
            return 0
        spare = sum(a.credits for a in core.registry.live())
        return min(limit, spare)

    def _owner_fn(self) -> Callable[[str], str | None] | None:
        """The balancer's key -> agent id routing, if the strategy has one (cache affinity)."""
        owner = getattr(self._core.strategy, "owner", None)
        if owner is None:
            return None
        registry = self._core.registry

        def owner_of(key: str) -> str | None:
            agent = owner(key, registry.live())
            return None if agent is None else str(agent.agent_id)

        return owner_of

    def _submit_warmups(self, specs: list[TaskSpec]) -> int:
        if not specs:
            return 0
        try:
            self._core.submit(specs, time.time())
        except CoreError as e:
            log.info("warm-up of %d cache key(s) not submitted: %s", len(specs), e.message)
            return 0
        self.warmups_total += len(specs)
        self._agents.schedule_dispatch()
        log.info("submitted %d warm-up task(s) for popular cache keys", len(specs))
        return len(specs)
