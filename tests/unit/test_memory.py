"""Garbage collection as the services tune it (runtime/memory.py): what lives at start-up leaves the collector's
walks, and collections are rare, the youngest generation's by a service's own measure if it has one, or by time."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from ticketstream_shared.runtime.memory import GC_THRESHOLDS, collect_young_for_ever, tune_garbage_collection


@pytest.fixture
def collector_as_it_was() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: tracked by the collector


@pytest.mark.usefixtures("collector_as_it_was")
def test_what_lives_at_start_up_is_frozen_out_of_collections_and_collections_are_rare() -> None:
    gc.unfreeze()
    state = [Node() for _ in range(1_000)]

    tune_garbage_collection()

    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() >= len(state)


@pytest.mark.usefixtures("collector_as_it_was")
def test_a_service_may_let_more_objects_live_before_the_youngest_generation_is_collected() -> None:
    tune_garbage_collection(young=1_000_000)

    assert gc.get_threshold() == (1_000_000, *GC_THRESHOLDS[1:])


def test_a_cycle_made_young_is_freed_by_the_collection_on_time_alone() -> None:
    """Automatic collections off, a cycle is freed by this thread's timed collections. A service another test left
    running in a thread of this process collects on its own (gc.disable stops none of that): a cycle it frees first
    proves nothing here, so another is made."""
    here = threading.get_ident()
    freed_in: list[int] = []

    async def scenario() -> None:
        collecting = asyncio.create_task(collect_young_for_ever(0.01))
        try:
            async with asyncio.timeout(10):
                while here not in freed_in:
                    freed_in.clear()
                    node = Node()
                    weakref.finalize(node, lambda: freed_in.append(threading.get_ident()))
                    del node
                    while not freed_in:
                        await asyncio.sleep(0.005)
        finally:
            collecting.cancel()

    gc.disable()  # automatic collections off: only explicit ones can free the cycle
    try:
        asyncio.run(scenario())
    finally:
        gc.enable()
