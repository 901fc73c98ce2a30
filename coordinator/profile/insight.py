"""One report's reading of the mesh: profiles per kind and agent, and the findings behind them.

Findings are judged on the whole mesh (a slow agent needs its peers, a
saturated kind all its agents) and then filtered to the kind or agent the
request asked for; profiles are computed on the filtered attempts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from coordinator.core.mesh import MeshCore
from coordinator.core.model import AgentRecord
from coordinator.core.registry import RouteKey
from coordinator.profile import agent_health, diagnosis, diagnosis_cache
from coordinator.profile.agent_health import ExecTime, Slowdown
from coordinator.profile.busy import BusyView
from coordinator.profile.cache_log import CacheTotals
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.diagnosis import KindFacts, Unroutable
from coordinator.profile.fleet import AgentTrack, Fleet
from coordinator.profile.leaks import LeakVerdict, assess, growing_sites
from coordinator.profile.report import AgentProfile, Finding, Forecast, KindProfile, PhaseStats
from coordinator.profile.samples import Recorder
from coordinator.profile.window import Agg, aggregate

# A finding with what it is about: (finding, kind, agent id); "" where it is not about one.
Tagged = tuple[Finding, str, str]
# Shares of agents' busy time below this are not worth naming as competing work.
MIN_COMPETING_SHARE = 0.05


class Insight:
    def __init__(self, core: MeshCore, cfg: ProfilerConfig, fleet: Fleet, rec: Recorder, now: float,
                 start: float, span: float, unroutable: dict[RouteKey, float],
                 cache: CacheTotals | None = None) -> None:
        self._core = core
        self._cfg = cfg
        self._fleet = fleet
        self._rec = rec
        self._now = now
        self._start = start
        self._span = span
        self._unroutable = unroutable
        self._cache = cache or CacheTotals()
        self.view = aggregate(rec.window(start, now))
        self._live = {a.agent_id: a for a in core.registry.live()}
        self.busy = BusyView(core, fleet, self._live, start, now, self.view.all.groups)
        self._classes = core.queued_by_class()
        self._queued: Counter[str] = Counter()
        for (kind, _), n in self._classes.items():
            self._queued[kind] += n
        self._phases: dict[str, tuple[PhaseStats, ...]] = {}
        self._leaks: dict[str, LeakVerdict] = {}
        self._slow: dict[str, list[Slowdown]] = {}

    # -- the pieces --------------------------------------------------------------------

    def eligible(self, kind: str) -> list[AgentRecord]:
        """Ready agents able to run the kind, over the required labels its tasks carry."""
        keys = {(kind, labels) for labels in self._rec.routes.get(kind, {})}
        keys.update(k for k in self._classes if k[0] == kind)
        if not keys:
            keys.add((kind, ()))
        found: dict[str, AgentRecord] = {}
        for key in keys:
            for a in self._core.registry.eligible(key):
                found[a.agent_id] = a
        return list(found.values())

    def _kind_phases(self, kind: str) -> tuple[PhaseStats, ...]:
        phases = self._phases.get(kind)
        if phases is None:
            agg = self.view.kinds.get(kind)
            phases = self._phases[kind] = agg.phases() if agg is not None else ()
        return phases

    def leak(self, track: AgentTrack) -> LeakVerdict:
        verdict = self._leaks.get(track.agent_id)
        if verdict is None:
            cfg = self._cfg
            verdict = self._leaks[track.agent_id] = assess(
                list(track.memory), cfg.leak_window_s, cfg.leak_min_samples, cfg.leak_min_growth_bytes_per_s,
                cfg.leak_min_r2)
        return verdict

    def slowdowns(self, kind: str) -> list[Slowdown]:
        found = self._slow.get(kind)
        if found is None:
            stats = {agent: agg.exec_stats() for (k, agent), agg in self.view.pairs.items() if k == kind and agent}
            # Agents able to run the kind that the balancer sent none of it still count (by their estimate).
            stats.update((a.agent_id, (0.0, 0, 0.0, 0.0)) for a in self.eligible(kind) if a.agent_id not in stats)
            times = []
            for agent, (p50, n, fastest, spread) in stats.items():
                live = self._live.get(agent)
                est = live.stats.kinds.get(kind) if live is not None else None
                if est is not None and est.from_heartbeat:
                    est = None
                times.append(ExecTime(
                    agent, p50, n, live.version if live is not None else "", self.busy.utilization((agent,)),
                    fastest, spread, live.capacity if live is not None else 0,
                    est.estimate if est is not None else 0.0, est.samples if est is not None else 0))
            found = self._slow[kind] = agent_health.slowdowns(kind, times, self._cfg)
        return found

    def facts(self, kind: str) -> KindFacts:
        agg = self.view.kinds.get(kind) or Agg()
        means = {p.phase: p.mean_ms / 1e3 for p in self._kind_phases(kind)}
        elig = self.eligible(kind)
        ids = {a.agent_id for a in elig}
        capacity = sum(a.capacity for a in elig)
        utilization = self.busy.utilization(ids)
        waiting = self.busy.while_waiting(ids, agg.groups)
        evictions = invalidated = cache_errors = 0
        for a in elig:
            track = self._fleet.tracks.get(a.agent_id)
            if track is not None:
                ev, inv, err = track.cache_since(self._start)
                evictions, invalidated, cache_errors = evictions + ev, invalidated + inv, cache_errors + err
        cache = self._cache
        by_kind: dict[str, float] = {}
        worst: tuple[str, int, int] = ("", 0, 0)
        for (k, agent), pair in self.view.pairs.items():
            if agent in ids:
                by_kind[k] = by_kind.get(k, 0.0) + pair.busy_s()
            if k == kind and agent and pair.failed > worst[1]:
                worst = (agent, pair.failed, pair.n)
        total_busy = sum(by_kind.values())
        competing = tuple((k, b / total_busy) for k, b in sorted(by_kind.items(), key=lambda kv: -kv[1])
                          if k != kind and total_busy > 0 and b / total_busy >= MIN_COMPETING_SHARE)
        routes = self._rec.routes.get(kind, {})
        required = max(routes, key=lambda labels: routes[labels]) if routes else ()
        assigned = [s[6] for _, samples in agg.groups for s in samples]
        return KindFacts(
            kind=kind, attempts=agg.n, failed=agg.failed, throughput_per_s=agg.n / self._span,
            arrivals_per_s=self.view.arrivals.get(kind, 0) / self._span,
            queue_s=means.get("queue", 0.0), transport_s=means.get("transport", 0.0),
            cache_s=means.get("cache", 0.0), execution_s=means.get("execution", 0.0),
            total_s=means.get("total", 0.0), queued=self._queued.get(kind, 0), agents=len(elig),
            capacity=capacity, in_flight=sum(len(a.in_flight) for a in elig),
            allowed=sum(a.allowed for a in elig), credits=sum(a.credits for a in elig),
            ejected=sum(1 for a in elig if a.stats.ejected_until > self._now),
            utilization=utilization, waiting_utilization=waiting if waiting >= 0 else utilization,
            strategy=self._core.router.for_kind(kind).name, required=required, competing=competing,
            lookups=agg.lookups, hits=agg.hits, repeats=agg.repeats, repeat_hits=agg.repeat_hits,
            scattered=agg.scattered, unpopular=agg.unpopular, evictions=evictions,
            invalidations=cache.invalidations, invalidated=max(invalidated, cache.dropped), warmups=cache.warmups,
            cache_errors=cache_errors,
            agents_joined=sum(1 for a in elig if a.connected_at >= self._start),
            errors=tuple(agg.errors.most_common()), worst_agent=worst[0], worst_agent_failed=worst[1],
            worst_agent_attempts=worst[2], first_assigned=min(assigned, default=0.0),
            last_assigned=max(assigned, default=0.0))

    # -- findings ------------------------------------------------------------------------

    def findings(self) -> list[Tagged]:
        cfg = self._cfg
        out: list[Tagged] = []
        facts = []
        for kind in sorted(self.view.kinds):
            if not kind:
                continue
            k = self.facts(kind)
            facts.append(k)
            for judge in (diagnosis.queue_wait, diagnosis.errors, diagnosis.transport,
                          diagnosis_cache.cold_cache):
                f = judge(k, cfg)
                if f is not None:
                    out.append((f, kind, ""))
            strategy = k.strategy
            for s in self.slowdowns(kind):
                f = agent_health.slow_agent(s, strategy, cfg)
                if f is not None:
                    out.append((f, kind, s.agent_id))
        dispatch = diagnosis.dispatch_bound(facts, cfg)
        if dispatch is not None:
            out.append((dispatch, "", ""))
        for key, since in self._unroutable.items():
            queued = self._classes.get(key, 0)
            if queued and self._now - since >= cfg.unroutable_after_s:
                u = Unroutable(key[0], key[1], queued, self._now - since,
                               self._core.registry.why_unroutable(key))
                out.append((diagnosis.unroutable(u), key[0], ""))
        for agent_id, track in self._fleet.tracks.items():
            if track.gone_at is not None:
                continue
            allocs = track.allocations
            sites = growing_sites(allocs[0][1] if len(allocs) > 1 else (), allocs[-1][1]) if allocs else []
            f = agent_health.memory_leak(agent_id, self.leak(track), track.rss, sites, cfg)
            if f is not None:
                out.append((f, "", agent_id))
        return out

    @staticmethod
    def keep(tagged: Sequence[Tagged], kind: str, agent_id: str) -> list[Finding]:
        """The findings about the kind and/or agent asked for (all when neither)."""
        out = []
        for f, k, a in tagged:
            if kind and agent_id:
                ok = (k == kind and a in ("", agent_id)) or (a == agent_id and not k)
            elif kind:
                ok = k == kind
            elif agent_id:
                ok = a == agent_id
            else:
                ok = True
            if ok:
                out.append(f)
        return out

    def with_queue_growth(self, findings: tuple[Finding, ...], f: Forecast) -> tuple[Finding, ...]:
        growth = diagnosis.queue_growth(f, self._core.queue_depth, self._cfg)
        return findings if growth is None else diagnosis.ordered([*findings, growth])

    # -- profiles --------------------------------------------------------------------------

    def build(self, kind: str, agent_id: str
              ) -> tuple[tuple[KindProfile, ...], tuple[AgentProfile, ...], tuple[Finding, ...]]:
        findings = diagnosis.ordered(self.keep(self.findings(), kind, agent_id))
        view = self.view
        if kind or agent_id:
            view = view.subset(lambda k, a: (not kind or k == kind) and (not agent_id or a == agent_id))
        if kind:
            kinds = [kind] if self._known_kind(kind) else []
        elif agent_id:
            kinds = sorted(view.kinds)
        else:
            kinds = sorted(set(view.kinds) | set(self._queued))
        if agent_id:
            agents = [agent_id] if self._known_agent(agent_id) else []
        elif kind:
            agents = sorted({a for a in view.agents if a} | {a.agent_id for a in self.eligible(kind)})
        else:
            agents = sorted({a for a in view.agents if a} | set(self._live))
        return (tuple(self._kind_profile(k, view.kinds.get(k) or Agg(), filtered=view is not self.view)
                      for k in kinds if k),
                tuple(self._agent_profile(a, view.agents.get(a) or Agg()) for a in agents),
                findings)

    def _known_kind(self, kind: str) -> bool:
        """Seen in the window, queued, or runnable by a connected agent (then an empty entry
        still tells its agents and capacity)."""
        return kind in self.view.kinds or kind in self._queued or bool(self.eligible(kind))

    def _known_agent(self, agent_id: str) -> bool:
        """Connected, or seen in the window."""
        if agent_id in self._live or agent_id in self.view.agents:
            return True
        track = self._fleet.tracks.get(agent_id)
        return track is not None and track.gone_at is not None and track.gone_at >= self._start

    def _kind_profile(self, kind: str, agg: Agg, filtered: bool) -> KindProfile:
        elig = self.eligible(kind)
        phases = agg.phases() if filtered else self._kind_phases(kind)
        return KindProfile(
            kind=kind, succeeded=agg.n - agg.failed, failed=agg.failed, throughput_per_s=agg.n / self._span,
            phases=phases, cache_lookups=agg.lookups, cache_hit_rate=agg.hit_rate,
            queued=self._queued.get(kind, 0), agents=len(elig), capacity=sum(a.capacity for a in elig),
            in_flight=sum(len(a.in_flight) for a in elig))

    def _agent_profile(self, agent_id: str, agg: Agg) -> AgentProfile:
        live = self._live.get(agent_id)
        track = self._fleet.tracks.get(agent_id)
        rss = live.heartbeat.memory_rss_bytes if live is not None else (track.rss if track is not None else 0)
        # The worst kind; 0.0 when no kind has enough samples here and on a peer to compare.
        slowdown = max((s.ratio for kind in {k for k, a in self.view.pairs if a == agent_id}
                        for s in self.slowdowns(kind) if s.agent_id == agent_id), default=0.0)
        if agg.lookups:
            hit_rate = agg.hit_rate
        elif live is not None:
            c = live.heartbeat.cache
            hit_rate = c.hits / (c.hits + c.misses) if c.hits + c.misses else 0.0
        else:
            hit_rate = 0.0
        capacity = live.capacity if live is not None else (track.capacity if track is not None else 0)
        return AgentProfile(
            agent_id=agent_id, succeeded=agg.n - agg.failed, failed=agg.failed, phases=agg.phases(),
            utilization=self.busy.utilization((agent_id,)),
            capacity=capacity, memory_rss_bytes=rss,
            memory_growth_bytes_per_s=self.leak(track).growth_bytes_per_s if track is not None else 0.0,
            slowdown=slowdown, cache_hit_rate=hit_rate)
