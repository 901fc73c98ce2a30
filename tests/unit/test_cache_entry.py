"""The stored frame of a cached result: round trip, and garbage read as no entry."""

from __future__ import annotations

from agent_sidecar.cache.entry import decode, encode


def test_frame_round_trip_and_garbage() -> None:
    raw = encode(b"\x00out", "application/json", 12.5, 0.0)
    entry = decode(raw)
    assert entry is not None and entry.output == b"\x00out" and entry.content_type == "application/json"
    assert (entry.stored_at, entry.expires_at) == (12.5, 0.0)
    assert decode(b"short") is None and decode("not bytes") is None
