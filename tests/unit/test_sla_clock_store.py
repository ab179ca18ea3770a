"""sla's local store: a ticket's clocks saved are read back equal; the hot index holds exactly the tickets whose
clocks still run or wait, whether saved by the worker or restored from a changelog record; settled tickets are
loaded back when an event reopens them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sla import snapshots
from sla.clock_store import ClockStore, is_settled
from tests.builders import T0
from tests.unit.test_sla_clocks import MINUTE, Story
from ticketstream_shared.runtime.store import Changes, LocalStore


@pytest.fixture
def clocks(tmp_path) -> Iterator[ClockStore]:
    store = LocalStore(tmp_path / "sla")
    yield ClockStore(store, Story().keeper.agreements)
    store.close()


def saved(clocks: ClockStore, partition: int, *stories: Story) -> None:
    changes = Changes()
    for story in stories:
        assert clocks.save(changes, partition, story.state) == story.ticket_id.encode()
    clocks.store.write(changes)


def test_saved_clocks_read_back_equal_and_only_live_ones_are_hot(clocks: ClockStore) -> None:
    running, resolved, elsewhere = Story(), Story(), Story()
    resolved.status(T0 + MINUTE, "new", "resolved")
    assert is_settled(resolved.state) and not is_settled(running.state)
    saved(clocks, 3, running, resolved)
    saved(clocks, 4, elsewhere)

    assert clocks.load(resolved.ticket_id) == resolved.state
    assert clocks.load("never-seen") is None
    assert [state.ticket_id for state in clocks.hot(3)] == [running.ticket_id]
    assert [state.ticket_id for state in clocks.hot(4)] == [elsewhere.ticket_id]


def test_a_ticket_settled_leaves_the_hot_set_and_reopened_comes_back(clocks: ClockStore) -> None:
    story = Story()
    saved(clocks, 0, story)
    story.status(T0 + MINUTE, "new", "resolved")
    saved(clocks, 0, story)
    assert list(clocks.hot(0)) == []

    reopened = Story()
    reopened.keeper.restore(clocks.load(story.ticket_id), 0)  # as the worker does for an event of a settled ticket
    reopened.ticket_id, reopened.version = story.ticket_id, story.version
    reopened.status(T0 + 2 * MINUTE, "resolved", "open")
    assert not is_settled(reopened.state)
    saved(clocks, 0, reopened)
    assert [state.ticket_id for state in clocks.hot(0)] == [story.ticket_id]


def test_changelog_records_restore_the_same_clocks_and_hot_set(clocks: ClockStore, tmp_path) -> None:
    running, resolved = Story(), Story()
    resolved.status(T0 + MINUTE, "new", "resolved")
    saved(clocks, 2, running, resolved)

    standby_store = LocalStore(tmp_path / "standby")
    try:
        standby = ClockStore(standby_store, running.keeper.agreements)
        changes = Changes()
        for story in (running, resolved):
            [(key, record)] = clocks.records_of(story.ticket_id.encode())
            standby.restore(changes, 2, key, record)
        standby_store.write(changes)
        assert standby.load(resolved.ticket_id) == resolved.state
        assert [state.ticket_id for state in standby.hot(2)] == [running.ticket_id]
        key = running.ticket_id.encode()
        assert standby.records_of(key) == [(key, snapshots.encode(running.state))]
        assert standby.records_of(b"no-such-ticket") == []
    finally:
        standby_store.close()
