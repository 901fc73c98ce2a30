"""The swarmmesh coordinator: registry, queue, leases and dispatch behind gRPC."""

# isort: off
import swarmmesh  # noqa: F401  (first: it chooses gRPC's I/O engine before grpc is imported)
# isort: on

from coordinator.config import CoordinatorConfig
from coordinator.server import Coordinator

__all__ = ["Coordinator", "CoordinatorConfig"]
