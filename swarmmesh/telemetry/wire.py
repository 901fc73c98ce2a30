"""OTLP trace export requests, encoded straight to protobuf wire bytes.

Building OTLP messages through the protobuf API costs about 1.4 µs per
attribute (each KeyValue is a message object); at six spans a task and 20,000
tasks a second that alone would be a third of a core. The wire format of the
few messages involved is small and fixed (opentelemetry/proto/trace/v1/
trace.proto), so spans are written as bytes, and the attributes that repeat
(kinds, agents, tenants, flags) are encoded once and reused.
tests/unit/test_telemetry.py checks the bytes against the official messages.
"""

from __future__ import annotations

import struct
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2

_Q = struct.Struct("<Q").pack
_D = struct.Struct("<d").pack
# Field keys: (number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_SPAN_TRACE_ID = b"\x0a\x10"  # field 1, 16 bytes
_SPAN_ID = b"\x12\x08"  # field 2, 8 bytes
_SPAN_PARENT = b"\x22\x08"  # field 4, 8 bytes
_SPAN_NAME = b"\x2a"  # field 5
_SPAN_KIND = b"\x30"  # field 6
_SPAN_START = b"\x39"  # field 7, fixed64
_SPAN_END = b"\x41"  # field 8, fixed64
_SPAN_ATTR = b"\x4a"  # field 9
_SPAN_STATUS = b"\x7a"  # field 15
_STATUS_ERROR = b"\x18\x02"  # Status.code (field 3) = STATUS_CODE_ERROR
_CACHE_LIMIT = 65_536


def varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]


def _field(key: bytes, payload: bytes) -> bytes:
    return key + varint(len(payload)) + payload


def _any_value(v: Any) -> bytes:
    # bool before int: bool is an int subclass.
    if isinstance(v, str):
        return _field(b"\x0a", v.encode())
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, int):
        return b"\x18" + varint(v & 0xFFFFFFFFFFFFFFFF)  # int64: negatives as two's complement
    if isinstance(v, float):
        return b"\x21" + _D(v)
    return _field(b"\x0a", str(v).encode())


def _key_value(key: str, value: Any) -> bytes:
    """A KeyValue message's body."""
    return _field(b"\x0a", key.encode()) + _field(b"\x12", _any_value(value))


def attribute(key: str, value: Any) -> bytes:
    """One Span.attributes entry, field key included."""
    return _field(_SPAN_ATTR, _key_value(key, value))


class SpanEncoder:
    """Encodes batches of recorded spans into ExportTraceServiceRequest bytes."""

    def __init__(self, resource: tuple[tuple[str, Any], ...], scope_name: str, scope_version: str) -> None:
        scope = common_pb2.InstrumentationScope(name=scope_name, version=scope_version).SerializeToString()
        # Resource: attributes (1). ResourceSpans: resource (1), then
        # scope_spans (2) = ScopeSpans{scope (1), spans (2)...}.
        attrs = b"".join(_field(b"\x0a", _key_value(k, v)) for k, v in resource)
        self._resource_field = _field(b"\x0a", attrs)
        self._scope_field = _field(b"\x0a", scope)
        self._attrs: dict[tuple[str, Any, type], bytes] = {}

    def _attribute(self, key: str, value: Any) -> bytes:
        k = (key, value, type(value))
        b = self._attrs.get(k)
        if b is None:
            b = attribute(key, value)
            if len(self._attrs) >= _CACHE_LIMIT:
                self._attrs.clear()  # unique values (task ids) would otherwise pile up
            self._attrs[k] = b
        return b

    def encode(self, spans: list[tuple[Any, ...]]) -> bytes:
        parts = [self._scope_field]
        attr = self._attribute
        for name, tid, sid, pid, kind, start, end, attrs, error in spans:
            start_ns = int(start * 1e9)
            end_ns = max(int(end * 1e9), start_ns)
            body = [
                _SPAN_TRACE_ID, tid.to_bytes(16, "big"),
                _SPAN_ID, sid.to_bytes(8, "big"),
            ]
            if pid:
                body += (_SPAN_PARENT, pid.to_bytes(8, "big"))
            n = name.encode()
            body += (_SPAN_NAME, varint(len(n)), n, _SPAN_KIND, _SMALL[kind], _SPAN_START, _Q(start_ns),
                     _SPAN_END, _Q(end_ns))
            for key, value in attrs:
                body.append(attr(key, value))
            if error:
                body.append(_field(_SPAN_STATUS, _field(b"\x12", error.encode()) + _STATUS_ERROR))
            span = b"".join(body)
            parts += (b"\x12", varint(len(span)), span)
        scope_spans = b"".join(parts)
        resource_spans = self._resource_field + _field(b"\x12", scope_spans)
        return _field(b"\x0a", resource_spans)
