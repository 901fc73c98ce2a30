"""The journal section of the coordinator's config, its flags and where "auto" puts the file."""

from __future__ import annotations

import pytest

from coordinator import flags
from coordinator.config import CoordinatorConfig, ServerConfig
from coordinator.core.mesh import CoreConfig
from coordinator.journal import Sync
from coordinator.journal.config import JournalConfig


def test_auto_is_a_file_of_the_coordinators_address_under_the_state_directory() -> None:
    cfg = CoordinatorConfig(server=ServerConfig(listen="0.0.0.0:7070"))
    assert cfg.resolved_journal_location({"XDG_STATE_HOME": "/state"}) == \
        "/state/swarmmesh/journal-0.0.0.0-7070.sqlite"
    assert cfg.resolved_journal_location({}).endswith("/.local/state/swarmmesh/journal-0.0.0.0-7070.sqlite")
    given = CoordinatorConfig(journal=JournalConfig(location="sqlite:///j/x.sqlite"))
    assert given.resolved_journal_location() == "sqlite:///j/x.sqlite"
    off = CoordinatorConfig(journal=JournalConfig(unsafe_no_journal=True))
    assert off.resolved_journal_location() == ""


def test_port_0_with_auto_is_refused_with_what_to_give_instead() -> None:
    with pytest.raises(ValueError, match=r"--journal PATH .* or --unsafe-no-journal"):
        CoordinatorConfig(server=ServerConfig(listen="127.0.0.1:0"))
    CoordinatorConfig(server=ServerConfig(listen="127.0.0.1:0"), journal=JournalConfig(location="/tmp/j.sqlite"))
    CoordinatorConfig(server=ServerConfig(listen="127.0.0.1:0"), journal=JournalConfig(unsafe_no_journal=True))


def test_flags_and_variables_set_the_section() -> None:
    cfg = flags.from_args(["--journal", "/j.sqlite", "--journal-sync", "NORMAL"], {})
    assert cfg.journal == JournalConfig(location="/j.sqlite", sync=Sync.NORMAL)
    assert flags.from_args(["--unsafe-no-journal"], {}).journal.unsafe_no_journal
    assert flags.from_args([], {"SWARMMESH_UNSAFE_NO_JOURNAL": "1"}).journal.unsafe_no_journal
    assert not flags.from_args([], {"SWARMMESH_UNSAFE_NO_JOURNAL": "0"}).journal.unsafe_no_journal
    assert flags.from_args([], {"SWARMMESH_JOURNAL": "sqlite:///e.sqlite"}).journal.location == "sqlite:///e.sqlite"


@pytest.mark.parametrize(("argv", "env", "says"), [
    (["--journal-sync", "sometimes"], {}, "'sometimes' is not one of full, normal"),
    (["--journal", "postgresql://db/mesh"], {}, "journal: 'postgresql://db/mesh': the PostgreSQL backend"),
    (["--journal", "ftp://x"], {}, "unknown scheme"),
    ([], {"SWARMMESH_UNSAFE_NO_JOURNAL": "maybe"}, "SWARMMESH_UNSAFE_NO_JOURNAL: 'maybe' is not"),
])
def test_bad_journal_settings_exit_naming_the_setting(argv: list[str], env: dict[str, str], says: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        flags.from_args(argv, env)
    assert says in capsys.readouterr().err


def test_compaction_follows_the_cores_retention() -> None:
    options = JournalConfig(sync=Sync.NORMAL).options(CoreConfig(retention_s=60.0, max_retained=7))
    assert (options.sync, options.retention_s, options.max_retained) == (Sync.NORMAL, 60.0, 7)
