"""The coordinator's durable journal: every task state change, committed in
groups, so that a restarted coordinator recovers what it acknowledged.

    base: the interface every backend implements, its options, states and errors
    groupcommit: the loop-side recorder and the writer thread that commits in groups
    sqlite: the embedded backend (one SQLite file, WAL, a file lock, compaction)
    codec: specs, outcomes and attempt histories to bytes and back
    location: parses a --journal value and opens the backend it names
    config: the coordinator's journal section (location, sync, or none at all)

docs/journal.md describes the design and what each sync mode can lose.
"""

from coordinator.journal.base import Journal, JournalError, JournalOptions, JournalState, JournalStats, Sync
from coordinator.journal.location import open_journal, parse

__all__ = ["Journal", "JournalError", "JournalOptions", "JournalState", "JournalStats", "Sync", "open_journal",
           "parse"]
