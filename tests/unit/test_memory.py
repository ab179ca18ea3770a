"""Garbage collection as the services tune it (runtime/memory.py): what lives at start-up leaves the collector's
walks, and collections are rare, the youngest generation's by a service's own measure if it has one."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ticketstream_shared.runtime.memory import GC_THRESHOLDS, tune_garbage_collection


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
