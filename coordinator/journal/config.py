"""The coordinator's journal section: where the journal is and how hard it syncs."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.core.mesh import CoreConfig
from coordinator.journal.base import JournalOptions, Sync
from coordinator.journal.location import parse

# journal.location: a file per fixed address (see CoordinatorConfig.resolved_journal_location).
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class JournalConfig:
    # A path, sqlite:///path, or "auto" = $XDG_STATE_HOME/swarmmesh/journal-<host>-<port>.sqlite
    # (~/.local/state by default); "auto" needs a fixed port, the file is named after it.
    location: str = AUTO
    # full: a commit is on the disk before its reply; normal: it survives the process
    # dying, not a power loss (docs/journal.md).
    sync: Sync = Sync.FULL
    # No journal at all: every task, acknowledged or not, is lost when the coordinator stops.
    unsafe_no_journal: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.sync, Sync):
            raise ValueError(f"sync: {self.sync!r} is not one of {', '.join(s.value for s in Sync)}")
        if self.location != AUTO:
            try:
                parse(self.location)
            except ValueError as e:
                raise ValueError(f"location: {str(e).removeprefix('journal: ')}") from None

    def options(self, core: CoreConfig) -> JournalOptions:
        """The journal's options: compaction follows the core's retention."""
        return JournalOptions(sync=self.sync, retention_s=core.retention_s, max_retained=core.max_retained)


def parse_sync(text: str) -> Sync:
    try:
        return Sync(text.strip().lower())
    except ValueError:
        raise ValueError(f"{text!r} is not one of {', '.join(s.value for s in Sync)}") from None
