"""The swarmmesh sidecar: runs task handlers beside an agent and keeps it on the mesh."""

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
