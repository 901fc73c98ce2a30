"""`python -m coordinator` / `swarmmesh coordinator`: run the coordinator until signalled."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from coordinator import flags
from coordinator.config import CoordinatorConfig
from coordinator.server import Coordinator
from swarmmesh import affinity, eventloop
from swarmmesh.heap import HeapPolicy


async def _serve(cfg: CoordinatorConfig) -> None:
    coord = Coordinator(cfg)
    await coord.start()
    heap = HeapPolicy()
    heap.start()
    loop = asyncio.get_running_loop()
    stopping: asyncio.Task[None] | None = None

    def on_signal(signum: int) -> None:
        nonlocal stopping
        if stopping is None:
            logging.getLogger("coordinator").info("signal %d: shutting down", signum)
            stopping = asyncio.create_task(coord.stop())
        else:  # a second signal: stop now
            for t in asyncio.all_tasks(loop):
                t.cancel()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await coord.wait_stopped()
        if stopping is not None:
            await stopping
    finally:
        heap.stop()


def main(argv: Sequence[str] | None = None) -> int:
    cfg = flags.from_args(argv)
    logging.basicConfig(level=cfg.server.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cpus := cfg.server.cpus:
        affinity.pin_process(cpus)  # before the loop and gRPC's threads start: they inherit it
    try:
        eventloop.run(_serve(cfg))
    except OSError as e:
        print(f"swarmmesh coordinator: {e}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
