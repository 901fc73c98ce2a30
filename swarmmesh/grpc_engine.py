"""Which of gRPC's two I/O engines a swarmmesh process runs on.

grpcio accepts and opens connections through its EventEngine by default. A
socket read then completes on one of EventEngine's own threads, which hands it
to the completion queue, whose poller thread hands it to the asyncio loop. With
gRPC's older engine (iomgr, still shipped, and chosen through gRPC's own
experiment switches) the thread that polls
the completion queue reads the socket itself: one thread hop fewer for every
message. Measured on a 2-core machine with grpcio 1.85, a server that only
reads 5,000 streams at 1 Hz spends 42-49 µs of CPU per message on iomgr against
62-71 µs on EventEngine; in alternated runs the coordinator with 5,000
heartbeating agents went from 43-50% of a core to 26-28.5%, and W2's p50 from
2.0-2.3 to 1.7-1.9 ms.

``SWARMMESH_GRPC_ENGINE`` chooses: ``iomgr`` (the default) or ``eventengine``
(gRPC's own default). gRPC reads its choice once, when it is first imported, so
the choice is made by :func:`chosen` around that import (``swarmmesh``'s own
``__init__`` does it; every swarmmesh program imports ``swarmmesh`` first). If
``GRPC_EXPERIMENTS`` is already set, whoever set it decides and it is left as
it is. The environment is restored after the import, so child processes make
their own choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

ENV = "SWARMMESH_GRPC_ENGINE"
#: gRPC's switches back to iomgr: for connections a server accepts, and those a client opens.
IOMGR_EXPERIMENTS = "-event_engine_listener,-event_engine_client"
ENGINES = ("iomgr", "eventengine")

#: What this process runs on, for logs and benchmark records; set by :func:`chosen`.
engine = "eventengine"


@contextmanager
def chosen(environ: MutableMapping[str, str] = os.environ,
           modules: Mapping[str, object] = sys.modules) -> Iterator[None]:
    """Import grpc inside this block to run it on the chosen engine."""
    global engine
    preset = environ.get("GRPC_EXPERIMENTS")
    if "grpc" in modules:  # too late: gRPC has read its configuration already
        engine = describe(preset, "eventengine")
        yield
        return
    choice = wanted(environ)
    engine = describe(preset, choice)
    if preset is not None or choice != "iomgr":
        yield
        return
    environ["GRPC_EXPERIMENTS"] = IOMGR_EXPERIMENTS
    try:
        yield
    finally:
        del environ["GRPC_EXPERIMENTS"]


def wanted(environ: Mapping[str, str]) -> str:
    """The engine SWARMMESH_GRPC_ENGINE asks for; iomgr when unset or not a known name."""
    value = environ.get(ENV, "").strip().lower() or "iomgr"
    return value if value in ENGINES else "iomgr"


def describe(preset: str | None, choice: str) -> str:
    if preset is not None:
        return f"GRPC_EXPERIMENTS={preset}"
    return choice
