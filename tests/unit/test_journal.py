"""The SQLite journal on its own: group commit, tickets, the round trip, compaction, the lock."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from coordinator.core.mesh import CoreConfig, MeshCore
from coordinator.core.model import Outcome, Registration, ResultIn, TaskSpec, TaskState
from coordinator.journal import JournalError, JournalOptions, JournalState, Sync, open_journal, parse
from coordinator.journal.codec import outcome_from_bytes, outcome_to_bytes, spec_from_bytes, spec_to_bytes
from coordinator.journal.groupcommit import Accepted, Change
from coordinator.journal.sqlite import SqliteJournal


class HeldJournal(SqliteJournal):
    """Its commits wait for `release`, so a test can queue changes behind one in flight."""

    def __init__(self, path: str, options: JournalOptions | None = None) -> None:
        super().__init__(path, options)
        self.release = threading.Event()
        self.writing = threading.Event()
        self.batches: list[int] = []

    def _write(self, accepted: list[tuple[Change, Accepted]], updated: list[Change]) -> int:
        self.writing.set()
        self.release.wait(10)
        self.batches.append(len(accepted) + len(updated))
        return super()._write(accepted, updated)


def agent(agent_id: str = "a", capacity: int = 8) -> Registration:
    return Registration(agent_id, (), frozenset(), capacity, "1", capacity)


def done(task_id: str, attempt: int, out: bytes = b"out") -> ResultIn:
    return ResultIn(task_id, attempt, TaskState.SUCCEEDED, Outcome(output=out, duration_us=7))


async def test_changes_queued_behind_a_commit_go_in_one_coalesced_commit(tmp_path: Path) -> None:
    journal = HeldJournal(str(tmp_path / "j.sqlite"))
    core = MeshCore()
    async with journal:
        await journal.load()
        core.add_listener(journal.record)
        [first] = core.submit([TaskSpec(kind="k")], 1.0)
        first_ticket = journal.ticket
        await asyncio.to_thread(journal.writing.wait, 10)  # its commit is in flight
        a, _ = core.register(agent(), 1.0)
        more = core.submit([TaskSpec(kind="k") for _ in range(3)], 1.0)
        core.dispatch(1.0)  # every task changes again: assigned
        core.frame("a", a.session, 2.0, [done(s.task_id, 1) for s in more])
        waiter = asyncio.ensure_future(journal.wait_committed(journal.ticket))
        await asyncio.sleep(0.05)
        assert not waiter.done(), "a ticket resolved before its commit"
        journal.release.set()
        await asyncio.wait_for(waiter, 10)
        await journal.wait_committed(first_ticket)
        stats = journal.stats()
    # 1 accept, then 3 accepts + 4 assignments + 3 results: one row per task.
    assert journal.batches == [1, 4]
    assert stats.commits == 2 and stats.changes == 11 and stats.rows_written == 5
    assert journal.state is JournalState.STOPPED
    assert first.task_id


async def test_a_waiter_resolves_only_once_its_commit_returns(tmp_path: Path) -> None:
    journal = HeldJournal(str(tmp_path / "j.sqlite"))
    core = MeshCore()
    async with journal:
        core.add_listener(journal.record)
        core.submit([TaskSpec(kind="k")], 1.0)
        ticket = journal.ticket
        waiter = asyncio.ensure_future(journal.wait_committed(ticket))
        await asyncio.to_thread(journal.writing.wait, 10)
        await asyncio.sleep(0.05)
        assert not waiter.done() and journal.committed < ticket
        journal.release.set()
        await asyncio.wait_for(waiter, 10)
        assert journal.committed >= ticket
        await journal.wait_committed(ticket)  # already committed: returns at once


async def run_and_restart(path: Path, drive: object) -> tuple[MeshCore, MeshCore]:
    """Run a core with a journal through `drive(core)`, then rebuild a fresh one from the file."""
    core = MeshCore(CoreConfig(lease_timeout_s=5.0))
    async with SqliteJournal(str(path)) as journal:
        core.restore(await journal.load(), 0.0)
        core.add_listener(journal.record)
        drive(core)  # type: ignore[operator]
    again = MeshCore(CoreConfig(lease_timeout_s=5.0))
    async with SqliteJournal(str(path)) as journal:
        again.restore(await journal.load(), 10.0)
    return core, again


FIELDS = ("task_id", "seq", "spec", "state", "attempt", "agent_id", "last_agent", "history", "outcome",
          "created_at", "queued_at", "assigned_at", "finished_at", "deadline", "max_attempts", "run_start",
          "retry_at", "last_failure")


async def test_every_field_that_matters_comes_back(tmp_path: Path) -> None:
    ids: dict[str, str] = {}

    def drive(core: MeshCore) -> None:
        a, _ = core.register(agent("a", capacity=2), 1.0)
        specs = [
            TaskSpec(kind="k", payload=b"\x00p" * 100, content_type="t", required_labels=(("x", 0),),
                     preferred_labels=(("y", 2),), priority=7, tenant="t1", timeout_ms=90_000,
                     idempotency_key="key-1", cache_key="c", dependencies=("d1", "d2"),
                     trace_context=(("traceparent", "00-1-2-01"),), max_attempts=4),
            TaskSpec(kind="k", trace_unsampled=True),
            TaskSpec(kind="k", tenant="t2", priority=-3),
            TaskSpec(kind="other"),
        ]
        got = core.submit(specs, 1.5)
        ids.update(zip(("full", "unsampled", "low", "other"), (s.task_id for s in got), strict=True))
        core.dispatch(2.0)  # two of them go to "a"
        b, _ = core.register(agent("b", capacity=1), 2.5)
        core.disconnect("a", a.session, 3.0)  # both re-queued with a history
        core.dispatch(3.5)
        held = next(iter(b.in_flight))
        core.frame("b", b.session, 4.0, [ResultIn(held, b.in_flight[held], TaskState.FAILED,
                                                  Outcome(error_type="handler_error", error="boom"))])

    core, again = await run_and_restart(tmp_path / "j.sqlite", drive)
    for task_id in ids.values():
        before, after = core.get(task_id), again.get(task_id)
        for name in FIELDS:
            assert getattr(after, name) == getattr(before, name), (task_id, name)
    assert again.get(ids["unsampled"]).spec.trace_unsampled
    assert again.submit([TaskSpec(kind="k", tenant="t1", idempotency_key="key-1")], 11.0)[0].task_id == ids["full"]


async def test_new_ids_continue_past_every_id_the_journal_handed_out(tmp_path: Path) -> None:
    seen: list[str] = []
    _, again = await run_and_restart(
        tmp_path / "j.sqlite", lambda c: seen.extend(s.task_id for s in c.submit([TaskSpec(kind="k")] * 3, 1.0)))
    new = again.submit([TaskSpec(kind="k")], 11.0)[0].task_id
    assert new not in seen and new.rsplit("-", 1)[0] == seen[0].rsplit("-", 1)[0]
    assert again.get(new).seq == 4


def finish_many(core: MeshCore, n: int, now: float, batch: int = 500) -> None:
    a = core.registry.get("a") or core.register(agent("a", capacity=batch), now)[0]
    for _ in range(0, n, batch):
        core.submit([TaskSpec(kind="k", payload=b"p" * 200) for _ in range(batch)], now)
        recs = core.dispatch(now)["a"]
        core.frame("a", a.session, now, [done(r.task_id, r.attempt, b"o" * 200) for r in recs], credits=len(recs))


async def test_compaction_forgets_finished_tasks_past_retention(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    options = JournalOptions(retention_s=0.0, max_retained=100, compact_interval_s=3600)
    core = MeshCore(CoreConfig(retention_s=3600, max_retained=100_000))
    async with SqliteJournal(path, options) as journal:
        core.add_listener(journal.record)
        finish_many(core, 1000, 1.0)
        core.submit([TaskSpec(kind="k")], 1.0)  # pending: never compacted
        await journal.flush()
        assert await journal.compact() == 1000  # all finished before now
        assert await journal.compact() == 0
    async with SqliteJournal(path, JournalOptions(max_retained=3, compact_interval_s=3600)) as journal:
        core = MeshCore()
        now = time.time()  # compaction goes by the wall clock: these are within retention
        core.restore(await journal.load(), now)
        core.add_listener(journal.record)
        finish_many(core, 10, now, batch=5)
        await journal.flush()
        assert await journal.compact() == 7  # the oldest beyond max_retained
    async with SqliteJournal(path) as journal:
        saved = await journal.load()
    assert sorted(TaskState(t.state).name for t in saved.tasks) == ["PENDING"] + ["SUCCEEDED"] * 3


async def test_the_files_stay_bounded_under_a_steady_load(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    options = JournalOptions(retention_s=3600, max_retained=500, compact_interval_s=0.0)
    core = MeshCore(CoreConfig(max_retained=500))

    def size() -> int:
        return sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("j.sqlite"))

    async with SqliteJournal(str(path), options) as journal:
        core.add_listener(journal.record)
        sizes = []
        start = time.time()  # within retention: only max_retained bounds what is kept
        for round_ in range(12):
            finish_many(core, 2500, start + round_)
            core.tick(start + round_)
            await journal.flush()
            await journal.compact()
            sizes.append(size())
    # 30,000 tasks went through; the files hold about 500 of them.
    assert max(sizes[6:]) <= sizes[3] * 1.25, sizes


async def test_a_second_coordinator_cannot_open_a_journal_in_use(tmp_path: Path) -> None:
    path = str(tmp_path / "j.sqlite")
    async with SqliteJournal(path):
        second = SqliteJournal(path)
        with pytest.raises(JournalError, match="in use by another coordinator"):
            await second.start()
        assert second.state is JournalState.STOPPED
    async with SqliteJournal(path) as again:  # free once the first one stopped
        assert again.state is JournalState.RUNNING


async def test_a_failed_commit_fails_its_waiters_and_every_later_one(tmp_path: Path) -> None:
    class Broken(SqliteJournal):
        def _write(self, accepted: list[tuple[Change, Accepted]], updated: list[Change]) -> int:
            raise OSError("disk full")

    core = MeshCore()
    async with Broken(str(tmp_path / "j.sqlite")) as journal:
        core.add_listener(journal.record)
        core.submit([TaskSpec(kind="k")], 1.0)
        with pytest.raises(JournalError, match="disk full"):
            await journal.wait_committed(journal.ticket)
        with pytest.raises(JournalError):
            await journal.wait_committed(0)
        assert journal.stats().failed_commits == 1


async def test_stop_is_idempotent_and_nothing_is_recorded_after_it(tmp_path: Path) -> None:
    journal = SqliteJournal(str(tmp_path / "j.sqlite"), JournalOptions(sync=Sync.NORMAL))
    core = MeshCore()
    await journal.start()
    core.add_listener(journal.record)
    core.submit([TaskSpec(kind="k")], 1.0)
    await asyncio.gather(journal.stop(), journal.stop())
    await journal.stop()
    core.submit([TaskSpec(kind="k")], 1.0)
    assert journal.ticket == 1
    async with SqliteJournal(str(tmp_path / "j.sqlite")) as again:
        assert len((await again.load()).tasks) == 1
    with pytest.raises(RuntimeError):
        await journal.start()


def test_specs_and_outcomes_round_trip_through_the_codec() -> None:
    for spec in (TaskSpec(kind="k"), TaskSpec(kind="k", trace_unsampled=True, tenant="t", payload=b"\x00\x01"),
                 TaskSpec(kind="k", trace_context=(("a", "1"), ("traceparent", "x")), dependencies=("d",))):
        assert spec_from_bytes(spec_to_bytes(spec)) == spec
    for o in (Outcome(), Outcome(output=b"\x00", error_type="only_type", duration_us=3, cache_hit=True,
                                 agent_us=9, cache_us=2, content_type="c")):
        assert outcome_from_bytes(outcome_to_bytes(o)) == o


def test_a_journal_location_is_a_path_or_a_url() -> None:
    assert parse("/a/b.sqlite") == parse("sqlite:///a/b.sqlite")
    assert parse("rel/j.sqlite").target == "rel/j.sqlite"
    for bad, why in (("postgresql://h/db", "not available"), ("ftp://x", "unknown scheme"), ("", "empty"),
                     ("sqlite://", "names no file")):
        with pytest.raises(ValueError, match=why):
            parse(bad)
    with pytest.raises(JournalError):
        open_journal("postgresql://h/db")
    assert isinstance(open_journal("sqlite:///tmp/x.sqlite"), SqliteJournal)
