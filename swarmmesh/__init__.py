"""swarmmesh client SDK and CLI.

Submit tasks to a swarmmesh coordinator and follow them::

    from swarmmesh import Client

    with Client("127.0.0.1:7070") as mesh:
        task_id = mesh.submit("text.wordcount", {"text": "to be or not to be"})
        print(mesh.wait(task_id).output_json())

The generated wire code for other tooling lives in :mod:`swarmmesh.v1`.

Packages:

telemetry: tracing for every swarmmesh process: W3C context, sampling, OTLP export
demo: ``swarmmesh demo``: a local mesh, example handlers and a mixed workload
v1: the generated wire code (``tools/genproto.py``), checked in

Modules, the client's first:

client: :class:`AsyncClient`, the API's calls on grpc.aio
sync_client: :class:`Client`, the same API, blocking, on a private loop in a background thread
testing: fakes (``FakeCoordinator``, ``FakeChannel``) for testing code that uses the client
types: the client API's domain types: frozen dataclasses, free of wire details
types_profile: the profile's types: where a mesh's time goes, and what to do
errors: the exceptions calls raise, one per gRPC status
_connection: the client's connection to one coordinator: channel, stubs, session, tracer
_session: the client's end of ``TaskService.Session``: submits and watches on one stream
_retry: riding out a coordinator outage: what is retried, the backoff, the keys that make resends safe
_client_args: what both clients share before a call: channel options and argument checks
_convert: the client's wire boundary: protobuf messages to and from the domain types
_tracing: the client's part of a task's trace, one ``swarmmesh.submit`` span per task
_version: the package version, importable without importing the client
cli: the ``swarmmesh`` command's entry point
_cli_args: the command line's argument types and its parser
_cli_commands: what each client subcommand does, and the exit codes it returns
_cli_delegate: the subcommands that are other programs: coordinator, sidecar, bench
_render: how the CLI shows domain objects: aligned tables for people, JSON for scripts
_render_profile: how ``swarmmesh profile`` shows a profile in a terminal
_table: plain-text tables and value formatting for terminal output

What every swarmmesh process shares:

eventloop: which asyncio event loop the processes run on (uvloop unless told otherwise)
grpc_engine: which of gRPC's two I/O engines the processes run on, chosen around gRPC's import
heap: ``HeapPolicy``, when the garbage collector walks a process's long-lived heap
affinity: keeping a process's threads on chosen CPUs
switch: on/off settings written as text (1/true/yes/on, 0/false/no/off), for every process's flags
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
