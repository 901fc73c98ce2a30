"""swarmmesh client SDK and CLI.

Submit tasks to a swarmmesh coordinator and follow them::

    from swarmmesh import Client

    with Client("127.0.0.1:7070") as mesh:
        task_id = mesh.submit("text.wordcount", {"text": "to be or not to be"})
        print(mesh.wait(task_id).output_json())

The generated wire code for other tooling lives in :mod:`swarmmesh.v1`.
"""

# isort: off
from swarmmesh import grpc_engine

with grpc_engine.chosen():
    import grpc  # noqa: F401  (gRPC reads its I/O engine once, when it is first imported)
# isort: on

from swarmmesh import errors
from swarmmesh._version import __version__
from swarmmesh.client import AsyncClient
from swarmmesh.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SwarmMeshError,
    Unavailable,
    WaitTimeout,
)
from swarmmesh.sync_client import Client
from swarmmesh.types import (
    AgentInfo,
    AgentProfile,
    AgentState,
    CacheStats,
    ClusterStats,
    Finding,
    Forecast,
    HistoryPoint,
    KindLatency,
    KindProfile,
    PhaseStats,
    Profile,
    Severity,
    SubmittedTask,
    TaskInfo,
    TaskOutcome,
    TaskPage,
    TaskSpec,
    TaskState,
)

__all__ = [
    "AgentInfo",
    "AgentProfile",
    "AgentState",
    "AsyncClient",
    "CacheStats",
    "Client",
    "ClusterStats",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Finding",
    "Forecast",
    "HistoryPoint",
    "InvalidArgument",
    "KindLatency",
    "KindProfile",
    "NotFound",
    "PermissionDenied",
    "PhaseStats",
    "Profile",
    "ResourceExhausted",
    "Severity",
    "SubmittedTask",
    "SwarmMeshError",
    "TaskInfo",
    "TaskOutcome",
    "TaskPage",
    "TaskSpec",
    "TaskState",
    "Unavailable",
    "WaitTimeout",
    "__version__",
    "errors",
]
