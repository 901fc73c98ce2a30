"""The swarmmesh coordinator: registry, queue, leases and dispatch behind gRPC.

Packages:

core: the functional core: plain synchronous objects, no sockets, time passed in
service: the shell's gRPC adapters over the core, and where its decisions take effect
profile: the profiler: where time goes per kind and agent, findings, history, forecasts
metrics: `/metrics` for Prometheus and the OTLP metrics push, rendered from one snapshot
journal: the durable journal of task state changes, committed in groups, read back on restart

Modules:

__main__: `python -m coordinator` / `swarmmesh coordinator`: run until signalled
server: `Coordinator`, the process's shell: its parts put together, and their lifecycle
config: `CoordinatorConfig`, the process's one configuration, nested by concern, from flags and environment
flags: the coordinator's flags and environment variables, parsed onto `CoordinatorConfig`'s fields
tracing: the coordinator's spans of each task, derived from its state changes
"""

# isort: off
import swarmmesh  # noqa: F401  (first: it chooses gRPC's I/O engine before grpc is imported)
# isort: on

from coordinator.config import CoordinatorConfig
from coordinator.server import Coordinator

__all__ = ["Coordinator", "CoordinatorConfig"]
