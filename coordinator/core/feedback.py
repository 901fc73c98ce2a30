"""What the coordinator learns from results and heartbeats, and how it acts
on agent health: latency estimates per agent and task kind, slow start for
agents that join a running fleet, and ejection of agents whose results fail.

Every decision here sets `AgentRecord.allowed`, the concurrency the balancer
lets an agent have; strategies read latency through `Feedback.estimate`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from coordinator.core.model import AgentRecord, AgentState, AgentStats, Heartbeat, KindStat, TaskRecord


@dataclass(frozen=True, slots=True)
class HealthConfig:
    # Seconds over which an agent joining a fleet that has been running ramps
    # from slow_start_floor of its capacity up to all of it. 0 = off.
    slow_start_s: float = 10.0
    # Fraction of capacity allowed at the start of the ramp (at least 1 slot).
    slow_start_floor: float = 0.1
    # How far one slower sample pulls the estimate up, and one faster sample
    # pulls it down (0..1). Rising twice as fast as it falls makes the estimate
    # peak-sensitive (it settles above the median, and a slowdown shows sooner
    # than a recovery); small gains keep equal agents' estimates within ~1.5x
    # of each other under noisy service times, which is what lets
    # balancer.wait_or_run tell a slow agent from an unlucky one.
    latency_rise: float = 0.1
    latency_fall: float = 0.05
    # Seconds a task spends outside its handler, between assignment and result
    # (frames, batching), roughly. Routing adds it to learned handler times, so
    # agents whose handlers differ by microseconds look alike and load decides.
    dispatch_overhead_s: float = 0.002
    # An estimate not refreshed by samples for this long drifts back toward the
    # kind's fleet median (time constant, seconds), so an agent that was slow
    # and then avoided is probed again.
    latency_forget_s: float = 10.0
    # Eject after this many failures in a row, or a failure rate at or above
    # eject_failure_rate over at least eject_min_results results, provided the
    # fleet as a whole is healthy (failures everywhere mean bad tasks, not a bad agent).
    eject_consecutive: int = 5
    eject_failure_rate: float = 0.5
    eject_min_results: int = 10
    fleet_failure_ceiling: float = 0.25
    # Ejection lasts eject_base_s times the number of recent ejections, capped.
    eject_base_s: float = 5.0
    eject_max_s: float = 60.0
    # Never eject more than this fraction of the live fleet (at least one agent).
    max_ejected_fraction: float = 0.5
    outlier_ejection: bool = True


_FAILURE_GAIN = 0.1  # failure_rate is an EWMA over roughly the last 10 results
# Stalled: holding work, yet silent for this many times the estimate, and at
# least _STALL_MIN_S (shorter silences are scheduling and batching jitter).
_STALL_FACTOR = 4.0
_STALL_MIN_S = 1.0
_MAX_REMEMBERED = 10_000


class Feedback:
    def __init__(self, fleet: Callable[[], Iterable[AgentRecord]], config: HealthConfig | None = None) -> None:
        self.config = config or HealthConfig()
        self._fleet = fleet
        # Read per result: plain attributes are cheaper than the frozen config's.
        self._rise = self.config.latency_rise
        self._fall = self.config.latency_fall
        self._overhead = self.config.dispatch_overhead_s
        # Survives sessions so that a reconnecting agent keeps its history; bounded.
        self._stats: OrderedDict[str, AgentStats] = OrderedDict()
        # Median estimate per kind over agents with samples; refreshed by tick.
        self.baseline: dict[str, float] = {}
        # kind -> agent id -> the estimate routing uses (the KindStat's, or
        # higher while the agent looks stalled). Kept up to date here so the
        # dispatcher reads one dict per pass instead of walking agents' stats.
        self.by_kind: dict[str, dict[str, float]] = {}
        # Bumped whenever some agent's allowed concurrency changes.
        self.generation = 0
        # No agent of the fleet can have been connected for slow_start_s before
        # this time. Agents leaving only make that later and agents joining are
        # younger, so a cold start of n agents checks the fleet once, not n times.
        self._young_until = -math.inf
        # The agents tick has something to do for: an ejection to end, a ramp
        # to advance, estimates to refresh. An idle fleet of thousands costs
        # the tick nothing; agents join here as soon as that changes.
        self._watched: dict[str, AgentRecord] = {}

    # -- membership ------------------------------------------------------------

    def on_register(self, agent: AgentRecord, now: float) -> None:
        """Attach the agent's history and start slow start if it joins a fleet
        that has been serving for a while (a cold start of the whole mesh needs no ramp)."""
        stats = self._stats.pop(agent.agent_id, None) or AgentStats()
        self._stats[agent.agent_id] = stats
        while len(self._stats) > _MAX_REMEMBERED:
            gone, old = self._stats.popitem(last=False)
            for kind in old.kinds:
                self.by_kind.get(kind, {}).pop(gone, None)
        agent.stats = stats
        cfg = self.config
        if cfg.slow_start_s > 0 and self._fleet_is_mature(agent, now):
            stats.ramp_from, stats.ramp_until = now, now + cfg.slow_start_s
        else:
            stats.ramp_from = stats.ramp_until = 0.0
        self._set_allowed(agent, now)
        self._watched.pop(agent.agent_id, None)  # an earlier session's record
        if _needs_upkeep(agent):
            self._watch(agent)

    def _watch(self, agent: AgentRecord) -> None:
        self._watched[agent.agent_id] = agent

    def _fleet_is_mature(self, joining: AgentRecord, now: float) -> bool:
        """Whether another ready agent has been connected for slow_start_s."""
        if now < self._young_until:
            return False
        span = self.config.slow_start_s
        oldest = min(now, joining.connected_at)
        for a in self._fleet():
            if a is joining or a.state == AgentState.DRAINING:
                continue  # a draining agent never serves again
            if now - a.connected_at >= span and a.state == AgentState.READY:
                return True
            oldest = min(oldest, a.connected_at)
        self._young_until = oldest + span
        return False

    def _set_allowed(self, agent: AgentRecord, now: float) -> None:
        s = agent.stats
        cap = agent.capacity
        if now < s.ejected_until:
            allowed = 0
        elif now < s.ramp_until:
            cfg = self.config
            frac = max(cfg.slow_start_floor, (now - s.ramp_from) / (s.ramp_until - s.ramp_from))
            allowed = max(1, min(cap, int(cap * frac)))
        else:
            allowed = cap
        if allowed != agent.allowed:
            agent.allowed = allowed
            self.generation += 1

    # -- learning ---------------------------------------------------------------

    def on_result(self, agent: AgentRecord, kind: str, failed: bool, latency_s: float, now: float) -> None:
        """One result the agent reported for a task it held, and how long the
        agent took to run it: its handler time as the sidecar measured it. Time
        in frames and queues is load, which the load term and credits already
        count; routing adds dispatch_overhead_s. latency_s < 0: not a sample
        (a cache hit)."""
        s = agent.stats
        if latency_s >= 0:
            st = s.kinds.get(kind)
            if st is None or st.from_heartbeat:
                s.kinds[kind] = st = KindStat(latency_s, 1, now)
            else:
                est = st.estimate
                st.estimate = est + (latency_s - est) * (self._rise if latency_s > est else self._fall)
                st.samples += 1
                st.updated_at = now
            by_agent = self.by_kind.get(kind)
            if by_agent is None:
                by_agent = self.by_kind[kind] = {}
            by_agent[agent.agent_id] = st.estimate + self._overhead
            self._watch(agent)  # it has estimates now
        s.results += 1
        s.last_result_at = now
        if failed:
            s.consecutive_failures += 1
            s.failure_rate += (1.0 - s.failure_rate) * _FAILURE_GAIN
            if self.config.outlier_ejection and self._should_eject(s):
                self._eject(agent, now)
        elif s.failure_rate:
            s.consecutive_failures = 0
            # Below a hundredth it is noise: settle at 0 and skip this from then on.
            s.failure_rate = 0.0 if s.failure_rate < 0.01 else s.failure_rate * (1.0 - _FAILURE_GAIN)

    def on_heartbeat(self, agent: AgentRecord, hb: Heartbeat, now: float) -> None:
        """Seed kinds the coordinator has not measured yet. Measured estimates
        win: they count the coordinator's own view, heartbeats lag behind it."""
        kinds = agent.stats.kinds
        for lat in hb.latencies:
            if lat.ewma_ms > 0 and lat.kind not in kinds:
                kinds[lat.kind] = KindStat(lat.ewma_ms / 1000.0, 0, now, from_heartbeat=True)
                self._watch(agent)
                self.by_kind.setdefault(lat.kind, {})[agent.agent_id] = (lat.ewma_ms / 1000.0
                                                                         + self.config.dispatch_overhead_s)

    def estimate(self, agent: AgentRecord, kind: str) -> float | None:
        st = agent.stats.kinds.get(kind)
        return None if st is None else st.estimate

    # -- health -----------------------------------------------------------------

    def _should_eject(self, s: AgentStats) -> bool:
        cfg = self.config
        return (s.consecutive_failures >= cfg.eject_consecutive
                or (s.results >= cfg.eject_min_results and s.failure_rate >= cfg.eject_failure_rate))

    def _eject(self, agent: AgentRecord, now: float) -> None:
        cfg = self.config
        if agent.allowed == 0:
            return
        live = [a for a in self._fleet() if a.state == AgentState.READY]
        ejected = sum(1 for a in live if now < a.stats.ejected_until)
        if ejected + 1 > max(1, int(len(live) * cfg.max_ejected_fraction)) or len(live) < 2:
            return
        # Only an outlier: when the other agents fail as often, the tasks are bad.
        others = [a.stats.failure_rate for a in live if a is not agent and a.stats.results]
        if not others or _median(others) >= cfg.fleet_failure_ceiling:
            return
        s = agent.stats
        # Repeat offenders stay out longer; a long clean spell forgives them.
        if now - s.last_ejected_at > 2 * cfg.eject_max_s:
            s.ejections = 0
        s.ejections += 1
        s.last_ejected_at = now
        s.ejected_until = now + min(cfg.eject_max_s, cfg.eject_base_s * s.ejections)
        agent.allowed = 0
        self.generation += 1
        self._watch(agent)

    def tick(self, now: float, dt: float, tasks: Mapping[str, TaskRecord]) -> None:
        """Periodic upkeep: end ejections (back through slow start, i.e. probed
        with a little work first), advance ramps, refresh kind baselines, let
        unused estimates drift back toward them, and mark stalled agents."""
        cfg = self.config
        by_kind: dict[str, list[float]] = {}
        with_kinds: list[AgentRecord] = []
        for a in list(self._watched.values()):
            s = a.stats
            if a.state == AgentState.GONE:
                del self._watched[a.agent_id]
                continue
            if s.ejected_until and now >= s.ejected_until:
                s.ejected_until = 0.0
                s.consecutive_failures = 0
                s.failure_rate = cfg.eject_failure_rate / 2
                if cfg.slow_start_s > 0:
                    s.ramp_from, s.ramp_until = now, now + cfg.slow_start_s
            if a.allowed != a.capacity or s.ramp_until:
                self._set_allowed(a, now)
                if now >= s.ramp_until:
                    s.ramp_until = 0.0
            if s.kinds:
                with_kinds.append(a)
                for kind, st in s.kinds.items():
                    if st.samples:
                        by_kind.setdefault(kind, []).append(st.estimate)
            elif not _needs_upkeep(a):
                del self._watched[a.agent_id]  # nothing left to do for it
        self.baseline = {k: _median(v) for k, v in by_kind.items()}
        keep = math.exp(-dt / cfg.latency_forget_s) if dt > 0 else 1.0
        stale = now - cfg.latency_forget_s / 4
        for a in with_kinds:
            s = a.stats
            # Stalled: work in flight, yet no result for several times the
            # estimate. Route as if its estimate were that silence, so nothing
            # waits for it; its next result resets the estimate.
            silence = now - max(s.last_result_at, _busy_since(a, tasks)) if a.in_flight else 0.0
            for kind, st in s.kinds.items():
                base = self.baseline.get(kind)
                if base is not None and st.updated_at < stale and st.estimate > base:
                    st.estimate = base + (st.estimate - base) * keep
                est = st.estimate + cfg.dispatch_overhead_s
                if silence > _STALL_FACTOR * est and silence > _STALL_MIN_S:
                    est = silence
                by_agent = self.by_kind.get(kind)
                if by_agent is None:
                    by_agent = self.by_kind[kind] = {}
                by_agent[a.agent_id] = est


def _busy_since(agent: AgentRecord, tasks: Mapping[str, TaskRecord]) -> float:
    """When the agent's oldest task in flight was assigned (in_flight keeps assignment order)."""
    for task_id in agent.in_flight:
        rec = tasks.get(task_id)
        return rec.assigned_at or 0.0 if rec is not None else 0.0
    return 0.0


def _median(values: list[float]) -> float:
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def _needs_upkeep(agent: AgentRecord) -> bool:
    """Whether Feedback.tick has anything to do for `agent`: estimates to
    refresh, an ejection to end, a ramp to advance."""
    s = agent.stats
    return bool(s.kinds or s.ejected_until or s.ramp_until or agent.allowed != agent.capacity)
