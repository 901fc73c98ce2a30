"""What the coordinator's frames do on this sidecar.

A CoordinatorFrame carries invalidations for the cache, assignments and cancels
for the runner, and acks of the results we sent. `FrameHandler` hands each to
where it belongs, in an order that matters (see the comments in `handle`), and
counts the acks by code. A `drain` request is left to the connection, which owns
the callbacks to the rest of the sidecar.

Its own module so the meaning of each frame field can be read apart from the
stream plumbing in manager.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent_sidecar import wire
from agent_sidecar.cache.result_cache import ResultCache
from agent_sidecar.connection.counters import ConnectionCounters, RateLimitedWarning
from agent_sidecar.connection.outbox import Outbox
from agent_sidecar.runner.runner import Runner
from swarmmesh.v1 import mesh_pb2

log = logging.getLogger(__name__)

# Rejections a result handed over after a reconnect may get for a reason of the
# coordinator's own (FAILED_PRECONDITION is always expected, see _handle_acks).
_EXPECTED_AFTER_HANDOVER = frozenset({wire.ACK_NOT_FOUND, wire.ACK_PERMISSION_DENIED})


class FrameHandler:
    """Applies one CoordinatorFrame at a time to the runner, the cache and the counters."""

    def __init__(
        self,
        runner: Runner,
        outbox: Outbox,
        counters: ConnectionCounters,
        cache: ResultCache | None,
        warn: RateLimitedWarning,
    ) -> None:
        self._runner = runner
        self._outbox = outbox
        self._counters = counters
        self._cache = cache
        self._warn = warn

    def handle(self, frame: mesh_pb2.CoordinatorFrame) -> None:
        """Everything in `frame` but `drain`."""
        if frame.invalidations:
            # Before the assignments: they must not be served what was just invalidated.
            self._apply_invalidations(frame.invalidations)
        for a in frame.assignments:
            # Recorded before submit: the runner may answer synchronously.
            self._outbox.expect_result((a.task_id, a.attempt))
            self._runner.submit(a)
        self._counters.assignments += len(frame.assignments)
        if frame.recorded:
            self._counters.acks_ok += frame.recorded
        if frame.acks:
            self._handle_acks(frame.acks)
        if frame.recorded or frame.acks:
            self._outbox.held.answered(frame.recorded + len(frame.acks))
        for ref in frame.cancels:
            self._counters.cancels += 1
            if self._runner.cancel(ref.task_id, ref.attempt):
                self._outbox.forget_result((ref.task_id, ref.attempt))

    def _apply_invalidations(self, items: Sequence[mesh_pb2.Invalidation]) -> None:
        self._counters.invalidations += len(items)
        if self._cache is None:
            for item in items:
                self._outbox.push_invalidation_report(item.seq, 0)
            return
        self._cache.apply(wire.invalidations_from_proto(items), self._outbox.push_invalidation_report)

    def _handle_acks(self, acks: Sequence[mesh_pb2.ResultAck]) -> None:
        c = self._counters
        for ack in acks:
            code = ack.code
            if code == wire.ACK_OK:
                c.acks_ok += 1
                continue
            if code == wire.ACK_FAILED_PRECONDITION:
                # Normal after a reassignment: another attempt owns the task now.
                c.acks_stale += 1
                self._outbox.held.rejected_after_handover((ack.task_id, ack.attempt))
                log.debug("stale result %s#%d: %s", ack.task_id, ack.attempt, ack.message)
                continue
            if code == wire.ACK_NOT_FOUND:
                c.acks_not_found += 1
            elif code == wire.ACK_PERMISSION_DENIED:
                c.acks_denied += 1
            else:
                c.acks_other += 1
            if code in _EXPECTED_AFTER_HANDOVER and self._outbox.held.rejected_after_handover(
                (ack.task_id, ack.attempt)
            ):
                # A coordinator that restarted without its journal, or that gave
                # the task to another agent meanwhile: the result is moot.
                log.debug("handed-over result %s#%d rejected (code %d): %s",
                          ack.task_id, ack.attempt, code, ack.message)
                continue
            log.log(
                self._warn.level(f"ack{code}"),
                "coordinator rejected result %s#%d (code %d): %s",
                ack.task_id,
                ack.attempt,
                code,
                ack.message,
            )
