"""The coordinator's functional core: registry, queue, leases, routing.

Plain synchronous Python with no sockets and no clock of its own, so it can be
unit-tested and driven by a simulated clock.
"""

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import CoreError, StatusCode, TaskState

__all__ = ["CoreConfig", "CoreError", "MeshCore", "StatusCode", "TaskState"]
