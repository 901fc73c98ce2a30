"""The coordinator's invalidation log and report tallies (no sockets, no clocks)."""

from __future__ import annotations

import pytest

from coordinator.core.invalidation import InvalidationLog, ReportTally, check_names
from coordinator.core.model import CoreError, StatusCode


def test_append_numbers_entries_and_dedups_names() -> None:
    log = InvalidationLog(epoch="E")
    assert (log.head, log.oldest, len(log)) == (0, 1, 0)
    first = log.append(["a", "b", "a"], now=1.0)
    second = log.append(["c"], now=2.0)
    assert (first.seq, first.dependencies, first.at) == (1, ("a", "b"), 1.0)
    assert second.seq == 2 and log.head == 2 and log.appended == 2
    with pytest.raises(ValueError):
        log.append([], now=3.0)


def test_catch_up_replays_what_a_sidecar_missed() -> None:
    log = InvalidationLog(epoch="E")
    for i in range(5):
        log.append([f"d{i}"], now=float(i))
    up = log.catch_up("E", 2)
    assert not up.clear and (up.epoch, up.head) == ("E", 5)
    assert [e.seq for e in up.replay] == [3, 4, 5]
    assert log.catch_up("E", 5).replay == () and not log.catch_up("E", 5).clear


def test_catch_up_clears_when_it_cannot_replay() -> None:
    log = InvalidationLog(epoch="E", max_entries=3)
    for i in range(6):
        log.append([f"d{i}"], now=0.0)
    assert log.oldest == 4
    assert log.catch_up("E", 3).replay and not log.catch_up("E", 3).clear  # 4..6 still held
    assert log.catch_up("E", 2).clear  # 3 was dropped from the bounded log
    assert log.catch_up("", 0).clear  # never synced (a new cache)
    assert log.catch_up("OLD", 6).clear  # another epoch: a restarted coordinator
    assert log.catch_up("E", 7).clear  # ahead of the log: trust nothing
    assert log.catch_up("E", 2).head == 6


def test_the_log_is_bounded_by_names_too() -> None:
    log = InvalidationLog(epoch="E", max_names=5)
    log.append(["a", "b", "c"], now=0)
    log.append(["d", "e", "f"], now=0)
    assert len(log) == 1 and log.oldest == 2
    big = log.append([str(i) for i in range(10)], now=0)
    assert len(log) == 1 and log.oldest == big.seq  # the newest always stays


def test_a_fresh_log_has_its_own_epoch() -> None:
    assert InvalidationLog().epoch != InvalidationLog().epoch
    assert InvalidationLog().catch_up("", 0).clear


def test_report_tally() -> None:
    tally = ReportTally()
    t = tally.open(1, ["a", "b", "c"])
    assert not t.complete and t.total == 3
    assert tally.report("a", 1, 4) is None
    assert tally.report("a", 1, 4) is None  # counted once
    assert tally.report("x", 99, 1) is None  # unknown seq
    assert tally.agent_gone("c") == []
    done = tally.report("b", 1, 2)
    assert done is t and t.complete and t.dropped == 6 and t.answered == {"a", "b"}
    assert tally.close(1) is t and len(tally) == 0


def test_an_agent_leaving_completes_a_tally() -> None:
    tally = ReportTally()
    t = tally.open(1, ["a", "b"])
    tally.report("a", 1, 1)
    assert tally.agent_gone("b") == [t]
    assert t.complete and t.total == 2 and len(t.answered) == 1
    assert tally.open(2, []).complete  # nobody to wait for


def test_check_names() -> None:
    assert check_names(["a", "b", "a"]) == ("a", "b")
    for bad, field in (([], "dependencies:"), (["ok", ""], "dependencies[1]"), (["x" * 513], "dependencies[0]"),
                       (["a\nb"], "dependencies[0]"), ([str(i) for i in range(1001)], "limit")):
        with pytest.raises(CoreError) as err:
            check_names(bad)
        assert err.value.code == StatusCode.INVALID_ARGUMENT and field in err.value.message
