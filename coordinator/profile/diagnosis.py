"""Findings about task kinds: pure functions from a kind's figures to what to do.

Categories and their `figures` (all per the report's window):

saturated_kind
    queue_share (mean queue wait / mean total, 0..1), queue_wait_s (mean),
    utilization (busy slots / capacity of the kind's eligible agents while
    its tasks waited, 0..1: averaged over the waiting time),
    window_utilization (the same over the whole window), agents, capacity,
    throughput_per_s, arrivals_per_s, queued (now), agents_to_add (estimate
    for 75% utilization at the current demand).
queue_stall
    (tasks wait while the agents that could run them are idle) queue_share,
    queue_wait_s, utilization (while they waited), window_utilization,
    agents, capacity, allowed (concurrency the balancer allows them now),
    credits (granted by their sidecars), ejected.
unroutable
    queued, unroutable_s (how long no ready agent could serve the class).
errors
    failure_rate, failed, attempts, and per error type `type:<name>` counts
    (`type:expired_in_queue`: the deadline passed before any agent took it).
transport
    transport_share, transport_s (mean), total_s (mean).
cold_cache
    repeat_hit_rate (hits among lookups of recently computed keys), repeats,
    lookups, hit_rate, scattered (repeat misses on another agent than the one
    that computed the key), unpopular (repeat misses of keys too rarely
    requested for warm-up), evictions, invalidations (accepted by the
    coordinator), invalidated (cache entries they dropped, as agents
    reported), warmups (tasks submitted), cache_errors, agents_joined; or,
    when lookups themselves are slow: cache_share, cache_s.
queue_growth
    slope_per_hour, seconds_to_threshold, threshold, queued.
dispatch_bound
    (one for the mesh: tasks wait while their agents are neither idle nor
    saturated, and each slot spends most of its round trip outside the
    handler) kinds (how many), queue_share, busy_while_waiting (weighted by
    waiting time), round_trip_ms (assignment to result at the coordinator),
    handler_ms, throughput_per_s (assignments per second from the first to
    the last of the window), and per kind `kind:<name>` its queue share.

Agent findings (slow_agent, memory_leak) are in agent_health.py; cold_cache is
in diagnosis_cache.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from coordinator.profile import fmt
from coordinator.profile.config import ProfilerConfig
from coordinator.profile.report import Finding, Forecast, Severity

# Utilization the agents_to_add estimate aims for.
TARGET_UTILIZATION = 0.75
# A slot whose handler takes less than this share of its round trip is held by turnaround, not work.
DISPATCH_HANDLER_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class KindFacts:
    kind: str
    attempts: int
    failed: int
    throughput_per_s: float
    arrivals_per_s: float
    # Mean seconds per phase.
    queue_s: float
    transport_s: float
    cache_s: float
    execution_s: float
    total_s: float
    # Right now, over the ready agents able to run the kind.
    queued: int
    agents: int
    capacity: int
    in_flight: int
    allowed: int
    credits: int
    ejected: int
    # Busy slots / capacity of those agents over the window.
    utilization: float
    # The same, averaged over the time the window's tasks of this kind waited in the queue.
    waiting_utilization: float
    strategy: str
    # The required labels most of its tasks carry.
    required: tuple[tuple[str, int], ...] = ()
    # Other kinds' shares of those agents' busy time, largest first.
    competing: tuple[tuple[str, float], ...] = ()
    lookups: int = 0
    hits: int = 0
    repeats: int = 0
    repeat_hits: int = 0
    scattered: int = 0
    unpopular: int = 0
    evictions: int = 0
    # Invalidations the coordinator accepted, and the cache entries agents dropped.
    invalidations: int = 0
    invalidated: int = 0
    warmups: int = 0
    cache_errors: int = 0
    agents_joined: int = 0
    # Error type -> count, most frequent first; and the agent with the most failures.
    errors: tuple[tuple[str, int], ...] = ()
    worst_agent: str = ""
    worst_agent_failed: int = 0
    worst_agent_attempts: int = 0
    # When the first and the last of the window's sampled attempts were assigned (0 without samples).
    first_assigned: float = 0.0
    last_assigned: float = 0.0


@dataclass(frozen=True, slots=True)
class Unroutable:
    kind: str
    required: tuple[tuple[str, int], ...]
    queued: int
    for_s: float
    reason: str


def _agents(n: int) -> str:
    """'the 1 agent able to run them is' / 'the 3 agents able to run them are'."""
    return "the 1 agent able to run them is" if n == 1 else f"the {n} agents able to run them are"


def _sidecar(kind: str, required: tuple[tuple[str, int], ...]) -> str:
    return " ".join(filter(None, ("swarmmesh sidecar --kinds", kind, fmt.labels(required))))


def queue_wait(k: KindFacts, cfg: ProfilerConfig) -> Finding | None:
    """saturated_kind when the agents are busy, queue_stall when they are idle."""
    if k.attempts < cfg.min_samples or k.total_s <= 0 or k.agents == 0:
        return None
    share = k.queue_s / k.total_s
    if share < cfg.queue_share or k.queue_s < cfg.queue_min_wait_s:
        return None
    # Judged by how busy the agents were while the tasks waited, not over the whole
    # window: a burst that filled every slot is saturation after it ended too.
    if k.waiting_utilization >= cfg.saturation_utilization:
        return _saturated(k, share)
    if k.waiting_utilization < cfg.idle_utilization:
        return _stalled(k, share)
    return None


def _saturated(k: KindFacts, share: float) -> Finding:
    demand = max(k.arrivals_per_s, k.throughput_per_s)
    per_agent = k.throughput_per_s / k.agents / max(k.utilization, 0.01)
    need = math.ceil(demand / (per_agent * TARGET_UTILIZATION)) if per_agent > 0 else k.agents + 1
    add = max(1, need - k.agents)
    growing = k.queued > 0 and k.arrivals_per_s > 1.1 * k.throughput_per_s
    severity = Severity.CRITICAL if growing or share >= 0.9 else Severity.WARNING
    summary = (f"{k.kind} tasks wait {fmt.pct(share)} of their time in queue (mean {fmt.secs(k.queue_s)}): "
               f"{_agents(k.agents)} saturated ({fmt.pct(k.waiting_utilization)} busy while they waited)")
    if growing:
        summary += (f"; {fmt.count(k.arrivals_per_s)} tasks/s arrive against {fmt.count(k.throughput_per_s)}/s "
                    f"served, {fmt.count(k.queued)} queued")
    recs = [f"add about {add} agent(s) that run {k.kind}: {_sidecar(k.kind, k.required)} "
            f"({fmt.count(demand)} tasks/s at about {fmt.count(per_agent)}/s per agent)"]
    slots = k.capacity // k.agents if k.agents else 0
    recs.append(f"or raise --capacity on those agents (now {slots} slots each) if their CPU and memory have room")
    if k.competing:
        others = ", ".join(f"{kind} {fmt.pct(s)}" for kind, s in k.competing[:3])
        recs.append(f"they also run other kinds ({others} of their busy time): lower the priority of that work, "
                    f"or give {k.kind} agents of its own (--kinds {k.kind})")
    recs.append("if the load comes in bursts, set deadlines (timeout_ms) so stale work is dropped, not served late")
    return Finding(severity, "saturated_kind", k.kind, summary, tuple(recs), (
        ("queue_share", share), ("queue_wait_s", k.queue_s), ("utilization", k.waiting_utilization),
        ("window_utilization", k.utilization), ("agents", k.agents), ("capacity", k.capacity),
        ("throughput_per_s", k.throughput_per_s), ("arrivals_per_s", k.arrivals_per_s), ("queued", k.queued),
        ("agents_to_add", add)))


def _stalled(k: KindFacts, share: float) -> Finding:
    free = max(0, k.capacity - k.in_flight)
    figures = (("queue_share", share), ("queue_wait_s", k.queue_s), ("utilization", k.waiting_utilization),
               ("window_utilization", k.utilization), ("agents", k.agents), ("capacity", k.capacity),
               ("allowed", k.allowed), ("credits", k.credits), ("ejected", k.ejected))
    head = (f"{k.kind} tasks wait {fmt.pct(share)} of their time in queue (mean {fmt.secs(k.queue_s)}) "
            f"while {_agents(k.agents)} only {fmt.pct(k.waiting_utilization)} busy")
    if k.ejected:
        why = (f"the balancer holds them back: {k.ejected} of them ejected for failing results, "
               f"{k.allowed} of {k.capacity} slots allowed")
        recs: tuple[str, ...] = (
            "see why their results fail: swarmmesh tasks --state FAILED",
            "fix or drain the ejected agents (swarmmesh drain AGENT); ejection lifts by itself after "
            "--eject-base-s, longer each time")
        return Finding(Severity.WARNING, "queue_stall", k.kind, f"{head}: {why}", recs, figures)
    if k.allowed < 0.5 * k.capacity:
        why = f"they are in slow start ({k.allowed} of {k.capacity} slots allowed so far)"
        recs = ("agents that join a running fleet ramp up over --slow-start-s; this clears by itself",
                "if agents join often under load, or are trusted from the start, lower --slow-start-s")
        return Finding(Severity.INFO, "queue_stall", k.kind, f"{head}: {why}", recs, figures)
    if free and k.credits < 0.5 * free:
        why = f"their sidecars grant few credits ({k.credits} for {free} free slots)"
        recs = ("a sidecar returns a credit per finished task: look for sidecars that are stuck or overloaded "
                "(their logs, swarmmesh agents)",
                "restart the sidecars that hold credits back")
        return Finding(Severity.WARNING, "queue_stall", k.kind, f"{head}: {why}", recs, figures)
    why = "the tasks were queued before agents became ready, or part of the window nobody could run them"
    recs = ("if agents joined late, this clears by itself; otherwise check the coordinator's logs for "
            "slow dispatch passes",)
    return Finding(Severity.INFO, "queue_stall", k.kind, f"{head}: {why}", recs, figures)


def _dispatch_bound(k: KindFacts, cfg: ProfilerConfig) -> bool:
    """Queued like saturated_kind, agents between idle and saturated, slots mostly outside the handler."""
    if k.attempts < cfg.min_samples or k.total_s <= 0 or k.agents == 0:
        return False
    if k.queue_s / k.total_s < cfg.queue_share or k.queue_s < cfg.queue_min_wait_s:
        return False
    if not cfg.idle_utilization <= k.waiting_utilization < cfg.saturation_utilization:
        return False
    round_trip = k.total_s - k.queue_s
    return round_trip > 0 and k.execution_s < DISPATCH_HANDLER_SHARE * round_trip


def dispatch_bound(kinds: Sequence[KindFacts], cfg: ProfilerConfig) -> Finding | None:
    """One finding for the kinds whose tasks wait on the mesh's turnaround rather than on their agents."""
    hit = [k for k in kinds if _dispatch_bound(k, cfg)]
    if not hit:
        return None
    n = sum(k.attempts for k in hit)
    waited = sum(k.attempts * k.queue_s for k in hit)
    share = waited / sum(k.attempts * k.total_s for k in hit)
    busy = sum(k.attempts * k.queue_s * k.waiting_utilization for k in hit) / waited
    round_trip = sum(k.attempts * (k.total_s - k.queue_s) for k in hit) / n
    handler = sum(k.attempts * k.execution_s for k in hit) / n
    span = max(k.last_assigned for k in hit) - min(k.first_assigned for k in hit)
    rate = n / span if span > 0 else sum(k.throughput_per_s for k in hit)
    names = [k.kind for k in hit]
    what = f"{names[0]} tasks" if len(hit) == 1 else f"tasks of {len(hit)} kinds ({_some(names)})"
    summary = (f"{what} wait {fmt.pct(share)} of their time in queue while their agents are only "
               f"{fmt.pct(busy)} busy: work is handed out no faster than {fmt.count(rate)} tasks/s, and each "
               f"slot spends {fmt.pct(1 - handler / round_trip)} of its time between tasks (round trip "
               f"{fmt.secs(round_trip)} against {fmt.secs(handler)} in handlers)")
    slots = {k.capacity // k.agents for k in hit}
    now = f" (now {slots.pop()} slots each)" if len(slots) == 1 else ""
    recs = (f"raise --capacity on those agents{now}: more tasks in flight per agent hide the round trip "
            "between a result and the next assignment",
            "if latency matters, submit in a steady stream rather than one burst: a burst waits for the "
            "coordinator to hand it out, however many agents there are",
            "check the coordinator's CPU: when it is near a full core, the coordinator is the limit "
            "(give it a faster or less loaded machine)")
    figures: list[tuple[str, float]] = [
        ("kinds", len(hit)), ("queue_share", share), ("busy_while_waiting", busy),
        ("round_trip_ms", round_trip * 1e3), ("handler_ms", handler * 1e3), ("throughput_per_s", rate)]
    figures.extend((f"kind:{k.kind}", k.queue_s / k.total_s) for k in hit)
    return Finding(Severity.INFO, "dispatch_bound", "", summary, recs, tuple(figures))


def _some(names: Sequence[str]) -> str:
    """'a, b, c' or 'a, b, c and 5 more'."""
    shown = ", ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more"


def unroutable(u: Unroutable) -> Finding:
    summary = (f"{fmt.count(u.queued)} {u.kind} task(s) cannot run, for {fmt.secs(u.for_s)} now: {u.reason}")
    recs = (f"start an agent that can run them: {_sidecar(u.kind, u.required)}",
            "or check the labels the submitter requires (submit --label NAME=LEVEL)",
            f"cancel them if nobody will: swarmmesh tasks --state PENDING --kind {u.kind}")
    return Finding(Severity.CRITICAL, "unroutable", u.kind, summary, recs,
                   (("queued", u.queued), ("unroutable_s", u.for_s)))


_ERROR_ADVICE = {
    "handler_error": "the handler raised: read the errors (swarmmesh tasks --state FAILED --kind {kind}) "
                     "and fix the handler or the payloads; handler errors are not retried",
    "deadline_exceeded": "tasks ran past their deadline: raise timeout_ms, or make the handler faster",
    "expired_in_queue": "tasks expired before any agent took them: add capacity for {kind} (or lower the "
                        "priority of competing work), or give them longer deadlines",
    "no_handler": "agents take {kind} without a handler for it: check their --kinds and --handler",
    "lease_lost": "agents died holding these tasks: a task may crash its agent, or agents are killed (memory?)",
    "over_capacity": "sidecars were sent more work than their slots: check their --capacity",
}


def errors(k: KindFacts, cfg: ProfilerConfig) -> Finding | None:
    if k.attempts < cfg.min_samples or not k.failed:
        return None
    rate = k.failed / k.attempts
    if rate < cfg.error_rate:
        return None
    severity = Severity.CRITICAL if rate >= min(0.9, 2 * cfg.error_rate) else Severity.WARNING
    top, top_n = k.errors[0] if k.errors else ("error", k.failed)
    summary = f"{fmt.pct(rate)} of {k.kind} attempts failed ({k.failed} of {k.attempts}), mostly {top} ({top_n})"
    recs = [_ERROR_ADVICE.get(top, "look at the failed tasks: swarmmesh tasks --state FAILED --kind {kind}")
            .format(kind=k.kind)]
    if (k.worst_agent and k.worst_agent_failed >= 0.8 * k.failed and k.worst_agent_failed >= 5
            and k.worst_agent_attempts < 0.6 * k.attempts):
        summary += f"; {k.worst_agent_failed} of them on agent {k.worst_agent}"
        recs.insert(0, f"the failures come from agent {k.worst_agent}: drain it and look at it "
                       f"(swarmmesh drain {k.worst_agent})")
    figures = [("failure_rate", rate), ("failed", k.failed), ("attempts", k.attempts)]
    figures.extend((f"type:{name}", n) for name, n in k.errors)
    return Finding(severity, "errors", k.kind, summary, tuple(recs), tuple(figures))


def transport(k: KindFacts, cfg: ProfilerConfig) -> Finding | None:
    if k.attempts < cfg.min_samples or k.total_s <= 0:
        return None
    share = k.transport_s / k.total_s
    if share < cfg.transport_share or k.transport_s < cfg.transport_min_s:
        return None
    summary = (f"{k.kind} tasks spend {fmt.pct(share)} of their time between coordinator and agent "
               f"(mean {fmt.secs(k.transport_s)} a round trip beyond the agent's own time)")
    recs = ("check the network between coordinator and agents (latency, loss, bandwidth)",
            "check the coordinator's CPU: a busy event loop delays every frame",
            "keep payloads and results small: pass references to large data, not the data")
    return Finding(Severity.WARNING, "transport", k.kind, summary, recs,
                   (("transport_share", share), ("transport_s", k.transport_s), ("total_s", k.total_s)))


def queue_growth(f: Forecast, queued: int, cfg: ProfilerConfig) -> Finding | None:
    """The queue forecast as a finding, when the queue will be too deep soon at its trend."""
    if f.slope_per_hour <= 0 or queued <= 0 or f.seconds_to_threshold < 0:
        return None
    if f.seconds_to_threshold > cfg.queue_growth_horizon_s:
        return None
    severity = Severity.CRITICAL if f.seconds_to_threshold <= 3600 else Severity.WARNING
    recs = ("add agents for the kinds that queue (see the saturated kinds), or raise their --capacity",
            "or shed work: lower the priority of what can wait, set deadlines, limit tenants "
            "(--max-pending-per-tenant)")
    return Finding(severity, "queue_growth", "", f.summary, recs, (
        ("slope_per_hour", f.slope_per_hour), ("seconds_to_threshold", f.seconds_to_threshold),
        ("threshold", f.threshold), ("queued", queued)))


_ORDER = ("unroutable", "memory_leak", "saturated_kind", "queue_growth", "errors", "slow_agent", "dispatch_bound",
          "queue_stall", "cold_cache", "transport")


def ordered(findings: list[Finding]) -> tuple[Finding, ...]:
    """Most severe first; within a severity, the categories that block work first."""
    def key(f: Finding) -> tuple[int, int, str]:
        rank = _ORDER.index(f.category) if f.category in _ORDER else len(_ORDER)
        return -int(f.severity), rank, f.subject

    return tuple(sorted(findings, key=key))
