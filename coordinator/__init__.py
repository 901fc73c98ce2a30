"""The swarmmesh coordinator: registry, queue, leases and dispatch behind gRPC."""

from coordinator.config import CoordinatorConfig
from coordinator.server import Coordinator

__all__ = ["Coordinator", "CoordinatorConfig"]
