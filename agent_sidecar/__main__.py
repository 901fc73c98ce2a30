"""Process entry point: `python -m agent_sidecar ...` or `swarmmesh sidecar ...`.

Signals: the first SIGTERM/SIGINT starts a graceful drain; a second one exits
at once. Exit codes: 0 clean drain, 1 drain finished but in-flight work was
abandoned or results could not be delivered, 2 bad configuration or handlers,
128+signal when forced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from agent_sidecar.config import SidecarConfig, build_parser, from_namespace
from agent_sidecar.connection.manager import SessionInfo
from agent_sidecar.handlers import HandlerLoadError
from agent_sidecar.sidecar import Sidecar
from swarmmesh import affinity, eventloop
from swarmmesh.heap import HeapPolicy

log = logging.getLogger("agent_sidecar")

EXIT_OK = 0
EXIT_UNCLEAN = 1
EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument(
        "--ready-file",
        metavar="PATH",
        help='write {"agent_id": ..., "pid": ...} as JSON here once first registered',
    )
    ns = parser.parse_args(argv)
    try:
        config = from_namespace(ns)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    # Like `python -m`, make handler modules in the working directory importable
    # when started through the `swarmmesh` console script.
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    logging.basicConfig(
        level=config.log_level_number,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config.cpus:
        affinity.pin_process(config.cpus)  # before the loop and gRPC's threads start: they inherit it
    code, busy_threads = eventloop.run(_serve(config, ns.ready_file))
    if busy_threads:
        # Handler threads are daemons: the process exits without them.
        log.warning("exiting with %d handler call(s) still running", busy_threads)
    return code


async def _serve(config: SidecarConfig, ready_file: str | None) -> tuple[int, int]:
    """Run one sidecar until a signal or the coordinator drains it; (exit code, busy threads)."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    seen = 0

    def on_signal(signum: int) -> None:
        nonlocal seen
        seen += 1
        name = signal.Signals(signum).name
        if seen == 1:
            log.info("received %s: draining; send it again to exit at once", name)
            stop_requested.set()
            return
        log.warning("received %s again: exiting now", name)
        _flush_logs()
        os._exit(128 + signum)

    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, int(sig))
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread or not a Unix loop: the caller owns signals.
            pass

    ready = _ReadyFile(Path(ready_file)) if ready_file else None
    sidecar = Sidecar(config, on_registered=ready.write if ready else None)
    heap = HeapPolicy()
    try:
        try:
            await sidecar.start()
        except (HandlerLoadError, ValueError) as exc:
            log.error("%s", exc)
            return EXIT_CONFIG, 0
        heap.start()
        waiters = {
            asyncio.create_task(stop_requested.wait()),
            asyncio.create_task(sidecar.wait_stopped()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        await sidecar.stop()
    finally:
        heap.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return (EXIT_OK if sidecar.drained_cleanly else EXIT_UNCLEAN), sidecar.runner.busy_threads


class _ReadyFile:
    """Writes the ready file once, atomically, so a reader never sees half of it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._written = False

    def write(self, info: SessionInfo) -> None:
        if self._written:
            return
        self._written = True
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps({"agent_id": info.agent_id, "pid": os.getpid(), "session": info.session}))
        os.replace(tmp, self._path)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
