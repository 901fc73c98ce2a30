"""How the client rides out a coordinator outage: which failures it retries, how
long it waits between attempts, when it gives up, and the keys that make a
resent submission safe.

A submission whose answer was lost may or may not have been accepted. Every
spec therefore leaves the client with an idempotency key (the caller's, or one
made here before the first send), so that sending it again returns the task
the first send created instead of a second one. Waits need no such care: a
watch opened again on a new stream reports each task's terminal state once.

The client retries only UNAVAILABLE (the coordinator is away or restarting,
or the stream broke) and only once the coordinator has answered this client
at least once: a wrong address still fails at once. Attempts are spaced by
exponential backoff with jitter, or by the coordinator's own hint when it
gives one, within a window of ``reconnect_timeout`` seconds that starts again
whenever the coordinator answers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarmmesh.errors import Cancelled, SwarmMeshError, Unavailable
from swarmmesh.v1 import types_pb2

__all__ = ["DEFAULT_RECONNECT_TIMEOUT_S", "Backoff", "KeyMaker", "Retrying", "retryable"]

#: Seconds the client keeps trying to get back to a coordinator that stopped answering.
DEFAULT_RECONNECT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Backoff:
    """The pauses between attempts, in seconds."""

    #: how long to keep trying without an answer from the coordinator (0 = do not retry).
    window_s: float = DEFAULT_RECONNECT_TIMEOUT_S
    #: the first pause's upper bound; it doubles per failure up to `max_s`.
    initial_s: float = 0.1
    max_s: float = 2.0
    #: a coordinator's hint is stretched by up to this share, so that the
    #: clients it sent away do not all come back in the same millisecond.
    hint_spread: float = 0.2

    def __post_init__(self) -> None:
        if self.window_s < 0:
            raise ValueError(f"reconnect_timeout must be >= 0 seconds, got {self.window_s}")

    def pause(self, failures: int, hint_ms: int, rng: Callable[[], float]) -> float:
        """The pause before the next attempt after `failures` failed ones in a row."""
        if hint_ms > 0:
            return hint_ms / 1000 * (1 + self.hint_spread * rng())
        cap = min(self.max_s, self.initial_s * 2.0 ** min(failures, 32))
        # Equal jitter: never an immediate retry, and a herd of clients spread over half the cap.
        return cap / 2 * (1 + rng())


def retryable(exc: SwarmMeshError) -> bool:
    # CANCELLED reaches a caller who did not cancel only when the server ended the call
    # (a coordinator stopping cancels what is left at the end of its grace): a lost
    # connection, as UNAVAILABLE is. The client's own cancels never surface as errors.
    return isinstance(exc, Unavailable | Cancelled)


class Retrying:
    """One operation's attempts: call :meth:`answered` (or :meth:`heard_from`) when the
    coordinator answers, and :meth:`pause` after each retryable failure; it raises that
    failure once the window is spent."""

    def __init__(self, backoff: Backoff, *, clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self._backoff = backoff
        self._clock = clock
        self._rng = rng
        self._failures = 0
        self._since = clock()
        self._stream: object = None

    def answered(self) -> None:
        """The coordinator is there: the next outage gets a whole window and short first pauses."""
        self._failures = 0
        self._since = self._clock()

    def heard_from(self, stream: object) -> None:
        """`stream` had answered: the first time for each stream, that counts as an answer.
        Its later refusals (UNAVAILABLE acks from a coordinator going down) do not renew it."""
        if stream is not self._stream:
            self._stream = stream
            self.answered()

    async def pause(self, exc: SwarmMeshError) -> None:
        delay = self._backoff.pause(self._failures, exc.retry_after_ms, self._rng)
        waited = self._clock() - self._since
        if waited + delay > self._backoff.window_s:
            if self._backoff.window_s > 0:
                exc.add_note(f"gave up after {waited:.1f} s without an answer from the coordinator "
                             f"(reconnect_timeout={self._backoff.window_s:g} s)")
            raise exc
        self._failures += 1
        await asyncio.sleep(delay)


class KeyMaker:
    """Idempotency keys for specs whose caller gave none: unique per spec, made before the
    first send so that every resend carries the same one.

    A random prefix per client and a counter, rather than a random key per spec: as
    unique, and cheaper on the submit path, where it is paid for every task.
    """

    def __init__(self) -> None:
        self._prefix = "swarmmesh-" + os.urandom(12).hex() + "-"
        self._counter = itertools.count(1)

    def fill(self, msgs: Sequence[types_pb2.TaskSpec]) -> list[bool]:
        """Give every keyless spec a key; which ones got one (for those, a deduplicated answer
        is this client's own resend, not someone else's task)."""
        made: list[bool] = []
        for msg in msgs:
            if msg.idempotency_key:
                made.append(False)
            else:
                msg.idempotency_key = f"{self._prefix}{next(self._counter):x}"
                made.append(True)
        return made
