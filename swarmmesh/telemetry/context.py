"""W3C trace context (https://www.w3.org/TR/trace-context/): parse, format, new ids."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TRACEPARENT = "traceparent"
# gRPC metadata on SubmitTasks from a caller that traces: its tasks without a
# trace context belong to traces it decided not to sample. Saves a traceparent
# per task (and its parsing) for the unsampled majority at low ratios, while
# keeping the coordinator from starting traces that would lack their beginning.
TRACE_DECIDED_HEADER = "swarmmesh-trace-decided"
TRACESTATE = "tracestate"
SAMPLED = 0x01
_HEX = frozenset("0123456789abcdef")

# Ids need uniqueness, not secrecy; random.getrandbits is ~20x cheaper than
# os.urandom and is what the OpenTelemetry SDK's default id generator uses.
_bits = random.SystemRandom().getrandbits(64)
_rng = random.Random(_bits)


def new_trace_id() -> int:
    while True:
        tid = _rng.getrandbits(128)
        if tid:
            return tid


def new_span_id() -> int:
    while True:
        sid = _rng.getrandbits(64)
        if sid:
            return sid


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: int
    span_id: int
    sampled: bool
    tracestate: str = ""


def unsampled(traceparent: str) -> bool:
    """A cheap test for the common case at low sampling ratios: a version-00
    header whose flags say "not sampled" (the last hex digit is even). Saves
    the full parse for the tasks nobody traces."""
    return len(traceparent) == 55 and traceparent[54] in "02468ace"


def parse_traceparent(value: str, tracestate: str = "") -> TraceParent | None:
    """The parent a `traceparent` header names, or None if it is malformed.

    Version 00 must be exactly 55 characters; later versions may append
    fields, which are ignored (as the spec asks).
    """
    if len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version = value[:2]
    if version == "ff" or (version == "00" and len(value) != 55) or (len(value) > 55 and value[55] != "-"):
        return None
    tid_hex, sid_hex, flags_hex = value[3:35], value[36:52], value[53:55]
    if not _HEX.issuperset(version + tid_hex + sid_hex + flags_hex):
        return None
    tid = int(tid_hex, 16)
    sid = int(sid_hex, 16)
    if not tid or not sid:
        return None
    return TraceParent(tid, sid, bool(int(flags_hex, 16) & SAMPLED), tracestate)


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


_UNSAMPLED = TraceParent(1, 1, False)


def parent_from_pairs(pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> TraceParent | None:
    """The parent named by a task's trace context (a map or its pairs).

    An unsampled parent comes back as a shared placeholder with sampled=False:
    its ids are never needed, since nothing is recorded for it.
    """
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    tp = ts = ""
    for key, value in items:
        if key == TRACEPARENT:
            if unsampled(value):
                return _UNSAMPLED
            tp = value
        elif key == TRACESTATE:
            ts = value
    return parse_traceparent(tp, ts) if tp else None


def child_context(trace_id: int, span_id: int, sampled: bool, tracestate: str = "") -> dict[str, str]:
    """The trace context to hand to the next hop, naming `span_id` as its parent."""
    out = {TRACEPARENT: format_traceparent(trace_id, span_id, sampled)}
    if tracestate:
        out[TRACESTATE] = tracestate
    return out
