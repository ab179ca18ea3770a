"""sla's local store: a ticket's clocks saved are read back equal; the hot index holds exactly the tickets whose
clocks still run or wait, whether saved by the worker or restored from a changelog record; settled tickets are
loaded back when an event reopens them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sla import snapshots
from sla.clock_store import ClockStore, HotTicket, is_settled
from tests.builders import T0
from tests.unit.test_sla_clocks import HOUR, MINUTE, Story
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
    assert list(clocks.hot(3)) == [HotTicket(running.ticket_id, running.state.next_due, running.state.as_of)]
    assert [entry.ticket_id for entry in clocks.hot(4)] == [elsewhere.ticket_id]


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
    assert [entry.ticket_id for entry in clocks.hot(0)] == [story.ticket_id]


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
        assert list(standby.hot(2)) == list(clocks.hot(2))  # the index, read from the record alone
        assert list(standby.hot(2)) == [HotTicket(running.ticket_id, T0 + 45 * MINUTE, T0)]
        key = running.ticket_id.encode()
        assert standby.records_of(key) == [(key, snapshots.encode(running.state))]
        assert standby.records_of(b"no-such-ticket") == []
    finally:
        standby_store.close()


def test_a_ticket_whose_every_alarm_is_raised_is_hot_without_a_next_alarm(clocks: ClockStore) -> None:
    """Breached, still running: nothing more to ring, but a configuration change or an event may re-time it."""
    story = Story()
    story.tick(T0 + 9 * HOUR)
    assert story.state.next_due is None and not is_settled(story.state)
    saved(clocks, 1, story)
    assert list(clocks.hot(1)) == [HotTicket(story.ticket_id, None, story.state.as_of)]


def test_an_index_written_before_it_held_the_next_alarm_says_so(clocks: ClockStore) -> None:
    """A store of an earlier version: the worker then loads the ticket's clocks at once."""
    story = Story()
    saved(clocks, 1, story)
    changes = Changes()
    changes.put(b"h|00001|" + story.ticket_id.encode(), b"")
    clocks.store.write(changes)
    assert list(clocks.hot(1)) == [HotTicket(story.ticket_id, None, None)]
