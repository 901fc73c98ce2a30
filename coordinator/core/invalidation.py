"""The mesh-wide invalidation log and the tally of agents' reports.

Plain synchronous objects, no sockets, no clocks (time is passed in).

The log numbers invalidations 1, 2, ... within an *epoch*, a random id made
when the log starts. Agents remember (epoch, last seq applied) with their
cache and send it when they register; `catch_up` decides what they get:

* same epoch, and every entry after their seq is still in the log: a replay
  of those entries;
* anything else (another epoch, an empty epoch, entries already dropped from
  the bounded log, a seq ahead of the log): a full clear of their cache.

The coordinator keeps no journal yet, so a restarted coordinator starts a
new epoch with an empty log and every agent that reconnects clears its
cache: invalidations sent while an agent was away may be lost with the old
log, and serving a result they dropped would be wrong; losing warm caches
after a coordinator restart is the price. When the log is journaled, keeping
its epoch across restarts turns those clears into replays.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from coordinator.core.model import CoreError, StatusCode

MAX_NAMES = 1000
# Same limit as a task's dependency names and cache key (validation.Limits.max_key_chars).
MAX_NAME_CHARS = 512


def check_names(names: Iterable[str]) -> tuple[str, ...]:
    """The names of an Invalidate request, de-duplicated; CoreError naming the bad one."""
    deps = tuple(dict.fromkeys(names))
    if not deps:
        raise CoreError(StatusCode.INVALID_ARGUMENT, "dependencies: is empty: name at least one")
    if len(deps) > MAX_NAMES:
        raise CoreError(StatusCode.INVALID_ARGUMENT,
                        f"dependencies: {len(deps)} names, the limit per call is {MAX_NAMES}")
    for i, name in enumerate(deps):
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise CoreError(StatusCode.INVALID_ARGUMENT,
                            f"dependencies[{i}]: must be 1..{MAX_NAME_CHARS} printable characters")
    return deps


@dataclass(frozen=True, slots=True)
class Invalidation:
    seq: int
    dependencies: tuple[str, ...]
    # When it was accepted (seconds, the caller's clock).
    at: float


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What an agent registering with (cache_epoch, cache_seq) must do."""

    epoch: str
    # Seq of the newest entry; the agent's sync point once it has caught up.
    head: int
    clear: bool
    replay: tuple[Invalidation, ...] = ()


class InvalidationLog:
    """Bounded, numbered log of invalidations: at most `max_entries` entries and
    `max_names` dependency names in total; the oldest go first."""

    def __init__(self, *, epoch: str | None = None, max_entries: int = 10_000, max_names: int = 1_000_000) -> None:
        if max_entries < 1 or max_names < 1:
            raise ValueError("max_entries and max_names must be at least 1")
        self.epoch = epoch or uuid.uuid4().hex[:16]
        self._max_entries = max_entries
        self._max_names = max_names
        self._entries: deque[Invalidation] = deque()
        self._names = 0
        self._head = 0
        self.appended = 0

    @property
    def head(self) -> int:
        """Seq of the newest entry (0 before the first)."""
        return self._head

    @property
    def oldest(self) -> int:
        """Seq of the oldest entry still held (head + 1 when empty)."""
        return self._entries[0].seq if self._entries else self._head + 1

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, dependencies: Iterable[str], now: float) -> Invalidation:
        deps = tuple(dict.fromkeys(dependencies))
        if not deps:
            raise ValueError("an invalidation needs at least one dependency")
        self._head += 1
        entry = Invalidation(self._head, deps, now)
        self._entries.append(entry)
        self._names += len(deps)
        self.appended += 1
        # The newest entry always stays, even if it alone is over max_names.
        while len(self._entries) > 1 and (
            len(self._entries) > self._max_entries or self._names > self._max_names
        ):
            self._names -= len(self._entries.popleft().dependencies)
        return entry

    def since(self, seq: int) -> list[Invalidation] | None:
        """Entries after `seq`, or None when the log no longer reaches back that far."""
        if seq > self._head:
            return None
        if seq + 1 < self.oldest:
            return None
        skip = seq + 1 - self.oldest
        return [e for i, e in enumerate(self._entries) if i >= skip]

    def catch_up(self, cache_epoch: str, cache_seq: int) -> CatchUp:
        if cache_epoch != self.epoch:
            return CatchUp(self.epoch, self._head, clear=True)
        missed = self.since(cache_seq)
        if missed is None:
            return CatchUp(self.epoch, self._head, clear=True)
        return CatchUp(self.epoch, self._head, clear=False, replay=tuple(missed))


@dataclass(slots=True)
class Tally:
    """Reports for one invalidation from the agents connected when it was sent."""

    seq: int
    expected: set[str]
    total: int
    answered: set[str] = field(default_factory=set)
    dropped: int = 0

    @property
    def complete(self) -> bool:
        return self.expected <= self.answered


class ReportTally:
    """Open tallies by seq; the shell waits on one until complete or a timeout."""

    def __init__(self) -> None:
        self._open: dict[int, Tally] = {}
        # Entries dropped over all the reports counted, since the tally began.
        self.dropped_total = 0

    def open(self, seq: int, agents: Iterable[str]) -> Tally:
        expected = set(agents)
        tally = Tally(seq, expected, len(expected))
        self._open[seq] = tally
        return tally

    def report(self, agent_id: str, seq: int, dropped: int) -> Tally | None:
        """Count one agent's report; the tally if that completed it."""
        tally = self._open.get(seq)
        if tally is None or agent_id in tally.answered:
            return None
        was_complete = tally.complete
        tally.answered.add(agent_id)
        tally.dropped += dropped
        self.dropped_total += dropped
        return tally if tally.complete and not was_complete else None

    def agent_gone(self, agent_id: str) -> list[Tally]:
        """An agent left: stop waiting for it. Returns the tallies that completed."""
        done: list[Tally] = []
        for tally in self._open.values():
            if agent_id in tally.expected and agent_id not in tally.answered:
                tally.expected.discard(agent_id)
                if tally.complete:
                    done.append(tally)
        return done

    def close(self, seq: int) -> Tally | None:
        return self._open.pop(seq, None)

    def __len__(self) -> int:
        return len(self._open)
