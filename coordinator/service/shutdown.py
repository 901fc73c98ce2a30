"""A coordinator shutting down: what it refuses, what it lets finish, and how it ends streams.

A graceful stop (SIGTERM) is a restart as far as clients and sidecars can
tell, and must cost them nothing but the wait. In order (Coordinator.stop):

1. New work is refused: a submission (SubmitTasks, or a SessionSubmit on a
   session already open) and a new stream (Session, WatchTasks, Connect)
   get UNAVAILABLE, "the coordinator is restarting", with a retry hint
   (``grpc-retry-pushback-ms``, or the SessionAck's ``retry_after_ms``).
   Health turns NOT_SERVING and nothing more is dispatched.
2. What is in flight finishes, within the grace: agents report the tasks
   they are running (recorded, and sent to the clients that watch them),
   unary calls get their answers, sessions write their acks.
3. The open streams are ended with UNAVAILABLE and the same message, so
   that sidecars and clients reconnect: the client resends unanswered
   submissions under their idempotency keys and watches its unfinished tasks
   again; a sidecar re-registers and hands over what it finished meanwhile.
   Agents' leases are not revoked: their tasks stay assigned in the journal,
   and the next run holds them for the agent's return instead of running
   them a second time.
4. The server stops, then the journal, which commits what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import NoReturn

import grpc

from coordinator.core.mesh import MeshCore
from swarmmesh.v1 import tasks_pb2

RESTARTING = "the coordinator is restarting: reconnect and retry"
# When a retry is worth trying: the next run is usually serving within a second or two of
# this one's exit, and the client's own backoff takes over from there.
RETRY_AFTER_MS = 1000
# How often the drain looks whether the agents' tasks are done (a core with no clock of
# its own has nothing to wait on; a few checks a second cost nothing during a stop).
DRAIN_POLL_S = 0.05


class Shutdown:
    """Whether the coordinator refuses new work, and the open client streams to end."""

    def __init__(self) -> None:
        self.closing = False
        self.ending = False
        # Each open stream's wake event: setting it makes the stream look at `ending`.
        self._streams: set[asyncio.Event] = set()
        self._none_open = asyncio.Event()
        self._none_open.set()

    # -- refusing -----------------------------------------------------------------

    @property
    def trailer(self) -> tuple[tuple[str, str], ...]:
        return (("grpc-retry-pushback-ms", str(RETRY_AFTER_MS)),)

    def refusal(self, item_id: int) -> tasks_pb2.SessionAck:
        """The ack of a SessionSubmit that came in after the stop began."""
        return tasks_pb2.SessionAck(id=item_id, code=grpc.StatusCode.UNAVAILABLE.value[0], message=RESTARTING,
                                    retry_after_ms=RETRY_AFTER_MS)

    async def refuse(self, context: grpc.aio.ServicerContext) -> NoReturn:
        """End the call with UNAVAILABLE and the retry hint."""
        await context.abort(grpc.StatusCode.UNAVAILABLE, RESTARTING, self.trailer)
        raise AssertionError("unreachable: abort raises")

    # -- streams ---------------------------------------------------------------------

    @contextlib.contextmanager
    def stream(self, wake: asyncio.Event) -> Iterator[None]:
        """While a client stream is open; `wake` is set when it is to end."""
        self._streams.add(wake)
        self._none_open.clear()
        try:
            yield
        finally:
            self._streams.discard(wake)
            if not self._streams:
                self._none_open.set()

    def begin(self) -> None:
        """Refuse new work from now on."""
        self.closing = True

    def end_streams(self) -> None:
        """Tell every open client stream to write what it has and end."""
        self.ending = True
        for wake in self._streams:
            wake.set()

    async def streams_ended(self, timeout: float) -> bool:  # noqa: ASYNC109 (what is left of the grace)
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await self._none_open.wait()
        except TimeoutError:
            return False
        return True


async def drained(core: MeshCore, timeout: float) -> bool:  # noqa: ASYNC109 (what is left of the grace)
    """Wait until no connected agent runs a task, or `timeout` seconds; whether they are done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while any(a.in_flight for a in core.registry.records()):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(DRAIN_POLL_S, max(0.0, deadline - loop.time())))
    return True
