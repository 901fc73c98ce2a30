"""A cached result as the store keeps it: `Entry` and the byte frame it is written in.

Values are stored as bytes with a small header (stored-at, expires-at,
content type), never pickled: a tampered cache directory can at worst serve
wrong bytes, not run code. `decode` answers None for anything that is not
such a frame, and the store counts and drops it.

Apart from the store (store.py) because this is the format, not the
storage: the cache thread, the cache and the runner's cache path pass entries
around without touching diskcache.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# stored_at, expires_at (0 = never), length of the content type.
_HEADER = struct.Struct("<ddH")


@dataclass(frozen=True, slots=True)
class Entry:
    output: bytes
    content_type: str
    # Wall-clock seconds (the store's clock).
    stored_at: float
    # 0 = never expires.
    expires_at: float


def encode(output: bytes, content_type: str, stored_at: float, expires_at: float) -> bytes:
    ct = content_type.encode("utf-8")
    return _HEADER.pack(stored_at, expires_at, len(ct)) + ct + output


def decode(raw: object) -> Entry | None:
    """The stored frame, or None if it is not one (corrupt or foreign)."""
    if not isinstance(raw, bytes) or len(raw) < _HEADER.size:
        return None
    stored_at, expires_at, ct_len = _HEADER.unpack_from(raw)
    start = _HEADER.size + ct_len
    if start > len(raw):
        return None
    try:
        content_type = raw[_HEADER.size : start].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Entry(raw[start:], content_type, stored_at, expires_at)
