"""The results this sidecar holds for the coordinator until it has answered them.

A result written on a stream is not yet safe: the coordinator may die before it
records it. So every written result stays here until the coordinator answers it
(`CoordinatorFrame.recorded` counts the recorded ones, `acks` name the
rejected ones, and the coordinator answers results in the order it read them,
so the oldest `recorded + len(acks)` are answered). When the stream ends, its
unanswered results and those still queued are kept, and so is every result
finished while no stream is up, up to `limit`. The next Register lists them
in `held` beside the attempts still running, and they go out first on the new
stream.

After a coordinator restart, a result for a lease it recovered is recorded, not
run again. With the coordinator alive through a plain stream drop, it has
re-queued those tasks already and answers them FAILED_PRECONDITION: that and
NOT_FOUND or PERMISSION_DENIED for a result handed over are expected, so they
are only counted. A result whose streams keep ending before it is answered
(one the coordinator refuses by ending the stream, say) is dropped after
`MAX_CARRIES` streams rather than resent for ever.

Its own module so the outage's rules (what is kept, what is dropped, what is
said in the log) can be read apart from the frame plumbing in outbox.py.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from agent_sidecar.connection.counters import ConnectionCounters, RateLimitedWarning
from agent_sidecar.runner.slot import TaskKey
from swarmmesh.v1 import mesh_pb2

log = logging.getLogger(__name__)

# Streams a result may be carried into before it is given up on.
MAX_CARRIES = 3


class HeldResults:
    """Results written but unanswered, the outage buffer's limit, and what was handed over."""

    def __init__(self, counters: ConnectionCounters, limit: int, warn: RateLimitedWarning) -> None:
        self.counters = counters
        self.limit = limit
        self._warn = warn
        # Written on the current stream, oldest first, not yet answered.
        self._unanswered: deque[mesh_pb2.TaskResult] = deque()
        # Streams each kept result was carried into.
        self._carries: dict[TaskKey, int] = {}
        # Handed over to the current stream (kept results, attempts still running), not answered yet.
        self._handed_over: set[TaskKey] = set()
        # Results to go out first on the next stream (counts handovers as they are written).
        self._handover_left = 0
        # Dropped because the buffer was full, during the outage under way.
        self._dropped_full = 0

    @property
    def unanswered(self) -> int:
        return len(self._unanswered)

    # --- on the stream ------------------------------------------------------------

    def written(self, results: list[mesh_pb2.TaskResult]) -> None:
        """These results are in a frame now: hold them until they are answered."""
        self._unanswered.extend(results)
        if self._handover_left:
            n = min(self._handover_left, len(results))
            self._handover_left -= n
            self.counters.results_handed_over += n

    def answered(self, n: int) -> None:
        """The coordinator answered the oldest `n` results written on this stream."""
        pending = self._unanswered
        n = min(n, len(pending))
        if not (self._carries or self._handed_over):
            for _ in range(n):
                pending.popleft()
            return
        for _ in range(n):
            key = _key(pending.popleft())
            self._carries.pop(key, None)
            self._handed_over.discard(key)

    def rejected_after_handover(self, key: TaskKey) -> bool:
        """A rejection of `key`: True if it was handed over, so the rejection is expected."""
        if key not in self._handed_over:
            return False
        self._handed_over.discard(key)
        self.counters.handed_over_rejected += 1
        return True

    def forget(self, key: TaskKey) -> None:
        """The attempt was withdrawn: nothing about it is answered any more."""
        self._handed_over.discard(key)

    # --- between streams ----------------------------------------------------------

    def carry_over(self, queued: list[mesh_pb2.TaskResult]) -> list[mesh_pb2.TaskResult]:
        """The stream ended: what the next stream is to send first, oldest first."""
        results = [*self._unanswered, *queued]
        self._unanswered.clear()
        self._handover_left = 0
        kept: list[mesh_pb2.TaskResult] = []
        given_up = 0
        for r in results:
            key = _key(r)
            carries = self._carries.pop(key, 0) + 1
            if carries > MAX_CARRIES:
                given_up += 1
            elif self.keep(len(kept)):
                self._carries[key] = carries
                kept.append(r)
        if given_up:
            self.counters.results_dropped += given_up
            log.log(
                self._warn.level("carries"),
                "dropped %d result(s): the stream ended %d times before the coordinator answered them",
                given_up,
                MAX_CARRIES + 1,
            )
        return kept

    def keep(self, queued: int) -> bool:
        """Room for one more result beside the `queued` ones kept already? Counts it either way."""
        if queued >= self.limit:
            self.counters.results_dropped += 1
            self.counters.results_dropped_full += 1
            self._dropped_full += 1
            if self._dropped_full == 1:
                log.warning(
                    "%d results are kept for the coordinator, the most it may hold: results finished from "
                    "now on are dropped until it is back, and their tasks run again once their leases expire",
                    self.limit,
                )
            return False
        self.counters.results_kept += 1
        return True

    def hand_over(
        self, queued: list[mesh_pb2.TaskResult], running: Iterable[TaskKey], capacity: int
    ) -> list[TaskKey]:
        """For a new Register: the attempts to list in `held`, at most `capacity` of them.

        Finished results come first: they are the work a restarted coordinator
        would otherwise run again. Every queued result is sent, listed or not.
        """
        keys = [_key(r) for r in queued]
        keys.extend(running)
        self._handed_over = set(keys)
        self._handover_left = len(queued)
        if len(keys) > capacity:
            log.debug("register lists %d of the %d attempts held (capacity %d)", capacity, len(keys), capacity)
            keys = keys[:capacity]
        return keys

    def registered(self) -> None:
        """A new stream is up: the outage is over, and what it cost is said once."""
        if self._dropped_full:
            log.warning(
                "%d finished result(s) were dropped while the coordinator was unreachable, beyond the %d kept",
                self._dropped_full,
                self.limit,
            )
            self._dropped_full = 0


def _key(result: mesh_pb2.TaskResult) -> TaskKey:
    return result.task_id, result.attempt
