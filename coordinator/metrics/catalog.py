"""What the coordinator's metrics are: names, help, types, units and how each
reads a snapshot. The Prometheus collector and the OTLP instruments both
render this one list, so the two exports never disagree.

Names follow the Prometheus conventions (base unit in the name, counters
exposed with `_total`); the OTLP instruments carry the same name without
`_total` and the unit as UCUM, which is what an OpenTelemetry Collector's
Prometheus exporter turns back into the very same names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from coordinator.metrics.latency import PHASES
from coordinator.metrics.snapshot import AgentSample, MeshSnapshot

Sample = tuple[tuple[str, ...], float]  # label values, value


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str  # without the `_total` a counter gets on the Prometheus side
    help: str
    type: Literal["counter", "gauge"]
    unit: str  # UCUM, for OTLP
    labels: tuple[str, ...]
    read: Callable[[MeshSnapshot], Iterable[Sample]]


def _one(value: Callable[[MeshSnapshot], float]) -> Callable[[MeshSnapshot], Iterable[Sample]]:
    return lambda s: [((), value(s))]


def _pairs(pairs: Callable[[MeshSnapshot], tuple[tuple[str, int], ...]]) -> Callable[[MeshSnapshot], Iterable[Sample]]:
    return lambda s: [((k,), v) for k, v in pairs(s)]


def _counter(field: str) -> Callable[[MeshSnapshot], Iterable[Sample]]:
    return lambda s: [((), dict(s.counters)[field])]


def _agent(value: Callable[[AgentSample], float]) -> Callable[[MeshSnapshot], Iterable[Sample]]:
    return lambda s: [((a.agent_id,), value(a)) for a in s.agents]


def _hit_ratio(s: MeshSnapshot) -> Iterable[Sample]:
    ratio = s.cache_hit_ratio
    return [] if ratio is None else [((), ratio)]


_TASK_COUNTERS = (
    ("submitted", "Tasks accepted (not counting deduplicated submissions)."),
    ("succeeded", "Tasks that finished successfully."),
    ("failed", "Tasks that failed (handler error, deadline, or lost on every attempt)."),
    ("cancelled", "Tasks cancelled by a client."),
    ("deduplicated", "Submissions answered with an existing task (same idempotency key)."),
    ("reassigned", "Assignments beyond a task's first attempt (its agent went away)."),
    ("evicted", "Finished tasks dropped after their retention time or over the retention limit."),
    ("retried", "Failed attempts sent back to wait for another (their kind's retry policy retries the error)."),
    ("dead_lettered", "Tasks that spent their attempts on errors that retry, lost leases included (DEAD_LETTER)."),
    ("requeued", "Dead letters a client sent back to the queue."),
)

MESH: tuple[MetricDef, ...] = (
    MetricDef("swarmmesh_queue_depth", "Tasks waiting in the queue.", "gauge", "{task}", (),
              _one(lambda s: s.queue_depth)),
    MetricDef("swarmmesh_queue_depth_by_kind", "Tasks waiting in the queue, by kind (at most 200 kinds; the "
              "rest as kind=\"other\").", "gauge", "{task}", ("kind",), _pairs(lambda s: s.queued_by_kind)),
    MetricDef("swarmmesh_tasks", "Tasks the coordinator holds, by state (finished ones until evicted).",
              "gauge", "{task}", ("state",), _pairs(lambda s: s.tasks_by_state)),
    MetricDef("swarmmesh_tasks_in_flight", "Tasks assigned to agents and not yet finished.", "gauge", "{task}",
              (), _one(lambda s: s.in_flight)),
    *(MetricDef(f"swarmmesh_tasks_{name}", text, "counter", "{task}", (), _counter(name))
      for name, text in _TASK_COUNTERS),
    MetricDef("swarmmesh_results_stale", "Results rejected because another attempt holds the task.",
              "counter", "{result}", (), _counter("stale_results")),
    MetricDef("swarmmesh_agents", "Connected agents, by state (ready or draining).", "gauge", "{agent}",
              ("state",), _pairs(lambda s: s.agents_by_state)),
    MetricDef("swarmmesh_capacity_slots", "Task slots of all connected agents.", "gauge", "{slot}", (),
              _one(lambda s: s.capacity_slots)),
    MetricDef("swarmmesh_cache_hit_ratio", "Share of the agents' cache lookups that hit, as their last "
              "heartbeats report (absent before any lookup).", "gauge", "1", (), _hit_ratio),
)

AGENT: tuple[MetricDef, ...] = (
    MetricDef("swarmmesh_agent_in_flight", "Tasks the agent holds.", "gauge", "{task}", ("agent_id",),
              _agent(lambda a: a.in_flight)),
    MetricDef("swarmmesh_agent_load_ratio", "Tasks the agent holds over its capacity.", "gauge", "1",
              ("agent_id",), _agent(lambda a: a.load)),
    MetricDef("swarmmesh_agent_capacity_slots", "Task slots the agent registered with.", "gauge", "{slot}",
              ("agent_id",), _agent(lambda a: a.capacity)),
    MetricDef("swarmmesh_agent_allowed_slots", "Task slots the balancer lets the agent use now (fewer in "
              "slow start, 0 while ejected).", "gauge", "{slot}", ("agent_id",), _agent(lambda a: a.allowed)),
    MetricDef("swarmmesh_agent_tasks_completed", "Tasks the agent finished successfully.", "counter", "{task}",
              ("agent_id",), _agent(lambda a: a.completed)),
    MetricDef("swarmmesh_agent_tasks_failed", "Tasks the agent reported as failed.", "counter", "{task}",
              ("agent_id",), _agent(lambda a: a.failed)),
    MetricDef("swarmmesh_agent_memory_rss_bytes", "Resident memory of the agent's sidecar process.", "gauge",
              "By", ("agent_id",), _agent(lambda a: a.memory_rss_bytes)),
    MetricDef("swarmmesh_agent_cache_hits", "Result cache lookups that hit.", "counter", "{lookup}",
              ("agent_id",), _agent(lambda a: a.cache.hits)),
    MetricDef("swarmmesh_agent_cache_misses", "Result cache lookups that missed.", "counter", "{lookup}",
              ("agent_id",), _agent(lambda a: a.cache.misses)),
    MetricDef("swarmmesh_agent_cache_evictions", "Result cache entries evicted over the size limit.",
              "counter", "{entry}", ("agent_id",), _agent(lambda a: a.cache.evictions)),
    MetricDef("swarmmesh_agent_cache_size_bytes", "Size of the agent's result cache.", "gauge", "By",
              ("agent_id",), _agent(lambda a: a.cache.bytes)),
    MetricDef("swarmmesh_agent_cache_entries", "Results in the agent's cache.", "gauge", "{entry}",
              ("agent_id",), _agent(lambda a: a.cache.entries)),
    MetricDef("swarmmesh_agent_ejected", "1 while the agent is ejected as an outlier (its results kept "
              "failing), else 0.", "gauge", "1", ("agent_id",), _agent(lambda a: float(a.ejected))),
    MetricDef("swarmmesh_agent_draining", "1 while the agent is draining (finishing its work, taking no "
              "more), else 0.", "gauge", "1", ("agent_id",), _agent(lambda a: float(a.state == "draining"))),
)

CATALOG: tuple[MetricDef, ...] = MESH + AGENT


@dataclass(frozen=True, slots=True)
class HistogramDef:
    name: str
    phase: str
    help: str


_PHASE_HELP = {
    "queue_wait": "Seconds a task waited in the queue before the assignment that finished it.",
    "round_trip": "Seconds from a task's last assignment to its result, at the coordinator.",
    "handler": "Seconds the handler ran, as the sidecar measured it (cache hits and cut-off runs excluded).",
    "submit_to_finish": "Seconds from acceptance to a final state, for every finished task.",
}

HISTOGRAMS: tuple[HistogramDef, ...] = tuple(
    HistogramDef(f"swarmmesh_task_{phase}_seconds", phase, _PHASE_HELP[phase] + " By task kind (at most 200 "
                 "kinds; the rest as kind=\"other\").")
    for phase in PHASES
)
