"""Specs and outcomes to bytes and back, for the journal's rows.

The wire messages (swarmmesh.v1 TaskSpec and TaskOutcome) are the format: they
are versioned, compact and already tested, and the spec conversion is the
service layer's own, so a spec comes back exactly as it was accepted. What the
wire lacks goes in a leading flags byte: TaskSpec.trace_unsampled, which
the coordinator derives from the submitting call's metadata.

These run in the journal's writer thread (encoding) and during recovery
(decoding), never on the event loop.
"""

from __future__ import annotations

from coordinator.core.model import Outcome, TaskSpec
from coordinator.service.convert import spec_to_proto, task_spec_from_proto
from swarmmesh.v1 import types_pb2

_UNSAMPLED = 1
_FLAGS = (b"\x00", b"\x01")


def spec_to_bytes(spec: TaskSpec) -> bytes:
    p = types_pb2.TaskSpec()
    spec_to_proto(spec, p)
    return _FLAGS[spec.trace_unsampled] + p.SerializeToString()


def spec_from_bytes(data: bytes) -> TaskSpec:
    p = types_pb2.TaskSpec.FromString(data[1:])
    # The flag is only ever set on a spec without a trace context, exactly the
    # case in which task_spec_from_proto marks a decided call's task unsampled.
    return task_spec_from_proto(p, trace_decided=bool(data[0] & _UNSAMPLED))


def outcome_to_bytes(o: Outcome) -> bytes:
    # Every field as it is: the wire conversion leaves some out when they
    # cannot matter to a client (error_type without error), a journal may not.
    return types_pb2.TaskOutcome(
        output=o.output, content_type=o.content_type, error=o.error, error_type=o.error_type,
        duration_us=o.duration_us, cache_hit=o.cache_hit, agent_us=o.agent_us, cache_us=o.cache_us,
    ).SerializeToString()


def outcome_or_none(o: Outcome | None) -> bytes | None:
    return None if o is None else outcome_to_bytes(o)


def outcome_from_bytes(data: bytes) -> Outcome:
    p = types_pb2.TaskOutcome.FromString(data)
    return Outcome(p.output, p.content_type, p.error, p.error_type, p.duration_us, p.cache_hit, p.agent_us,
                   p.cache_us)


def history_to_text(history: tuple[str, ...]) -> str:
    # Agent ids never contain a space (core/validation.py).
    return " ".join(history)


def history_from_text(text: str) -> tuple[str, ...]:
    return tuple(text.split(" ")) if text else ()
