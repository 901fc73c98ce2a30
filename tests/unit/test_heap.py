"""HeapPolicy: what it freezes, when it collects fully, and that it lets go."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import Iterator

import pytest

from swarmmesh.heap import HeapPolicy
from tests.support import eventually


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def _frozen(obj: object) -> bool:
    # gc.get_objects() lists the three generations, not the frozen heap.
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


async def test_objects_made_after_start_are_frozen_soon_and_still_freed_by_reference_count() -> None:
    with HeapPolicy(freeze_every_s=0.02) as policy:
        assert policy.limit > sys.getallocatedblocks() // 2
        node = Node()
        ref = weakref.ref(node)
        await eventually(lambda: _frozen(ref()), interval=0.02)
        del node
        assert ref() is None


async def test_a_cycle_left_in_the_frozen_heap_is_collected_once_the_heap_grows() -> None:
    with HeapPolicy(freeze_every_s=0.02, measure_every_s=0.02, growth=0.5, floor=1_000) as policy:
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        await eventually(lambda: _frozen(ref()), interval=0.02)
        del a, b
        await asyncio.sleep(0.1)
        assert ref() is not None  # frozen: no young collection can reach it
        ballast = [[i] for i in range(sys.getallocatedblocks() // 2 + 2_000)]
        await eventually(lambda: ref() is None, interval=0.02)
        assert policy.full_collections >= 1
        assert policy.full_collection_s > 0
        assert policy.limit > sys.getallocatedblocks()  # measured again after the collection
        del ballast


async def test_a_heap_that_keeps_its_size_is_not_collected_fully() -> None:
    with HeapPolicy(freeze_every_s=0.01, measure_every_s=0.01) as policy:
        for _ in range(20):
            churn = [[i] for i in range(5_000)]
            del churn
            await asyncio.sleep(0.01)
        assert policy.full_collections == 0


async def test_stop_ends_the_freezing_and_is_idempotent() -> None:
    policy = HeapPolicy(freeze_every_s=0.01)
    policy.start()
    policy.start()
    policy.stop()
    policy.stop()
    node = Node()
    await asyncio.sleep(0.1)
    assert not _frozen(node)


async def test_python_schedule_freezes_only_the_start_up_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMMESH_HEAP", "python")
    before = Node()
    with HeapPolicy(freeze_every_s=0.01):
        assert _frozen(before)
        after = Node()
        await asyncio.sleep(0.1)
        assert not _frozen(after)
