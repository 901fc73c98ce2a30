"""Where a journal lives, and the backend that keeps it: the one place a
`--journal` value is parsed.

    /var/lib/swarmmesh/journal.sqlite      a path: SQLite
    sqlite:///var/lib/swarmmesh/j.sqlite   the same, as a URL (sqlite://relative/path too)
    postgresql://host/db                    reserved for the PostgreSQL backend
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coordinator.journal.base import Journal, JournalError, JournalOptions

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
SCHEMES = ("sqlite",)


@dataclass(frozen=True, slots=True)
class Location:
    scheme: str
    # A file path for sqlite; the whole URL for a server backend.
    target: str


def parse(value: str) -> Location:
    """ValueError naming the problem for a value no backend takes."""
    if not value:
        raise ValueError("journal: is empty")
    m = _SCHEME.match(value)
    if m is None:
        return Location("sqlite", value)
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "sqlite":
        if not rest:
            raise ValueError(f"journal: {value!r} names no file")
        return Location("sqlite", rest)
    if scheme in ("postgresql", "postgres"):
        raise ValueError(f"journal: {value!r}: the PostgreSQL backend is not available yet; use a path")
    raise ValueError(f"journal: {value!r}: unknown scheme {scheme!r} (give a path or sqlite:///path)")


def open_journal(value: str, options: JournalOptions | None = None) -> Journal:
    """The journal a `--journal` value names (not started yet)."""
    try:
        where = parse(value)
    except ValueError as e:
        raise JournalError(str(e)) from None
    from coordinator.journal.sqlite import SqliteJournal

    return SqliteJournal(where.target, options)
