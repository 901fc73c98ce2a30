"""The swarmmesh sidecar: runs task handlers beside an agent and keeps it on the mesh.

Packages:

runner: assignments run in bounded slots, with credits, deadlines, cancels and the cache path
cache: the local result cache (diskcache), kept in sync with the coordinator's invalidation log
connection: the one stream to the coordinator: register, coalesced writes, reconnects

Modules:

__main__: the process entry point (`python -m agent_sidecar`, `swarmmesh sidecar`), signals, exit codes
sidecar: `Sidecar`, the component that wires the rest together, and its start/drain/stop lifecycle
config: `SidecarConfig`, the process's one configuration, and its flags and environment variables
options: the default agent id and the text forms both config modules are built from
handlers: what a handler sees (`TaskContext`), what it may return, and how it is found
wire: the one place where sidecar values and swarmmesh.v1 messages meet
metrics: per-kind latency, process memory and allocation sites, reported in heartbeats
tracing: the spans of each attempt, under the coordinator's attempt span
threads: worker threads for sync handlers and the cache, completions handed to the loop in batches

Imports between the packages go one way: connection uses runner and cache, runner uses
cache, cache uses neither; tools/import_graph.py fails on any circle.
"""

# isort: off
import swarmmesh  # noqa: F401  (first: it chooses gRPC's I/O engine before grpc is imported)
# isort: on

from agent_sidecar.config import SidecarConfig
from agent_sidecar.handlers import HandlerLoadError, HandlerRegistry, Result, TaskContext
from agent_sidecar.sidecar import Sidecar, SidecarState

__all__ = [
    "HandlerLoadError",
    "HandlerRegistry",
    "Result",
    "Sidecar",
    "SidecarConfig",
    "SidecarState",
    "TaskContext",
]
