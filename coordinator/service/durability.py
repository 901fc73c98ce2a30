"""Replies that wait for the journal: a client is told OK only for what is on disk.

The service layer needs two things of a journal (coordinator/journal): a
ticket naming every change recorded so far, and a wait for the commit that
holds it. The shell passes the journal in; None (a coordinator run with
--unsafe-no-journal) makes every wait free. The journal's own types are not
imported here: it builds on the service layer's wire conversion, so the
dependency runs one way.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Commits(Protocol):
    @property
    def ticket(self) -> int: ...

    async def wait_committed(self, ticket: int) -> None: ...


class NotDurable(Exception):
    """What was accepted could not be committed: the caller is answered
    UNAVAILABLE and retries (a retried submission with the same idempotency
    key finds the task it was accepted as)."""


async def committed(commits: Commits | None, ticket: int | None = None) -> None:
    """Return once every change recorded so far (or up to `ticket`) is committed."""
    if commits is None:
        return
    try:
        await commits.wait_committed(commits.ticket if ticket is None else ticket)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        raise NotDurable(f"not acknowledged: {e}; retry") from e
