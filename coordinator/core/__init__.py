"""The coordinator's functional core: registry, queue, leases, routing.

Plain synchronous Python with no sockets and no clock of its own, so it can be
unit-tested and driven by a simulated clock.

Modules:

mesh: `MeshCore`, the state machine: every task transition goes through its one `_transition`
model: the domain types: task specs and records, agents, leases, outcomes, status codes
validation: checks on what callers send, each failure naming the offending field
registry: the connected agents, what they can do, and which can serve a routing class
queue: the pending tasks, per tenant and routing class, a heap by queue key
fairness: which queued task goes next: weighted fair share across tenants, priorities with aging
dispatch: one dispatch pass: queued tasks matched to agents' free slots
results: agents' results checked against the leases they answer, and acked
retry: per-kind retry policies, backoff, and when a task becomes a dead letter
recovery: what a journal gives back to a restarted core, and the leases it recovers
balancer: choosing an agent for a task: the one small interface every strategy plugs into
strategies: the single-criterion strategies: round-robin, least-loaded, performance, expertise
affinity: cache affinity: a key's owner by rendezvous hashing, with bounded load
hybrid: the default strategy: one cost per candidate weighing speed, load, preferences and cache
routing: which strategy routes which task kind
feedback: what results and heartbeats teach: latency estimates, slow start, outlier ejection
invalidation: the mesh-wide invalidation log (epochs, catch-up) and the tally of agents' reports
popularity: decayed popularity of cache keys, and the warm-ups to submit ahead of demand
views: read-only views for people and the API: listings, why a task waits or went where it went
"""

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import CoreError, StatusCode, TaskState

__all__ = ["CoreConfig", "CoreError", "MeshCore", "StatusCode", "TaskState"]
