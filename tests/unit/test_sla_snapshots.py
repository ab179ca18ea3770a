"""sla.clocks snapshots: a ticket's clocks written and read back are the same clocks, and a worker restored from them
decides exactly what the worker that wrote them would have decided."""

from __future__ import annotations

import pytest

from sla import snapshots
from sla.agreements import Agreements
from sla.snapshots import UnreadableSnapshot
from sla.timekeeper import Timekeeper
from tests.builders import T0
from tests.unit.test_sla_clocks import HOUR, MINUTE, Story, agreements_with, config, policy
from ticketstream_shared.contract.sla import CalendarChanged


def office_hours() -> Agreements:
    week = {day: [{"start": "09:00", "end": "17:00"}] for day in ("monday", "tuesday", "wednesday", "thursday")}
    berlin = config(
        CalendarChanged, calendar_id="berlin", data={"timezone": "Europe/Berlin", "week": week, "holidays": []}
    )
    return agreements_with(berlin, policy("office", 60, 8 * 60, calendar_id="berlin"))


def test_every_state_of_a_ticket_reads_back_equal() -> None:
    story = Story(office_hours())
    states = [story.state]
    story.status(T0 + 10 * MINUTE, "new", "waiting_on_customer")
    states.append(story.state)
    story.status(T0 + 3 * HOUR, "waiting_on_customer", "open")
    story.priority(T0 + 3 * HOUR, "P2", "P1")
    states.append(story.state)
    story.tick(T0 + 30 * HOUR)  # warnings and breaches raised: `raised` and the alarms still to come
    story.comment(T0 + 31 * HOUR)
    story.status(T0 + 32 * HOUR, "open", "resolved")
    states.append(story.state)
    for state in states:
        assert snapshots.decode(snapshots.encode(state), story.keeper.agreements) == state


def test_a_restored_worker_decides_what_the_original_would_have() -> None:
    story = Story(office_hours())
    story.status(T0 + 10 * MINUTE, "new", "in_progress")
    restored = Timekeeper(office_hours())
    restored.restore(snapshots.decode(snapshots.encode(story.state), restored.agreements), 0)
    assert restored.take_changed() == []  # restoring is not a change: the snapshot is already written

    later = T0 + 40 * HOUR
    assert [e.event_id for e in restored.tick(later)] == [e.event_id for e in story.tick(later)] != []
    assert restored.ticket(story.ticket_id) == story.state


def test_only_tickets_that_changed_are_due_a_snapshot() -> None:
    story = Story()
    assert [state.ticket_id for _, state in story.keeper.take_changed()] == [story.ticket_id]
    story.keeper.catch_up(T0 + MINUTE, {0})  # time passed, no alarm due: nothing to write
    assert story.keeper.take_changed() == []
    story.status(T0 + 2 * MINUTE, "new", "waiting_on_customer")
    assert [state.ticket_id for _, state in story.keeper.take_changed()] == [story.ticket_id]


def test_a_catch_up_advances_only_the_partitions_just_rebuilt_and_the_next_tick_the_others() -> None:
    """After a take-over only the restored tickets missed time; the tickets held all along are the tick's."""
    held, taken_over = Story(), Story()
    keeper = Timekeeper(held.keeper.agreements)
    keeper.restore(held.state, 0)
    keeper.restore(taken_over.state, 1)
    breach = T0 + 2 * HOUR  # both tickets' first-response warnings and breach are past due

    caught_up = keeper.catch_up(breach, {1})
    assert {event.ticket_id for event in caught_up} == {taken_over.ticket_id}
    assert [e.event_id for e in caught_up] == [e.event_id for e in taken_over.keeper.catch_up(breach, {0})]
    ticked = keeper.tick(breach)
    assert {event.ticket_id for event in ticked} == {held.ticket_id}
    assert [e.event_id for e in ticked] == [e.event_id for e in held.keeper.tick(breach)]


def test_a_snapshot_naming_a_calendar_version_unknown_here_is_refused() -> None:
    story = Story(office_hours())
    raw = snapshots.encode(story.state)
    with pytest.raises(UnreadableSnapshot, match="berlin"):
        snapshots.decode(raw, Agreements.with_defaults())
    with pytest.raises(UnreadableSnapshot):
        snapshots.decode(b"{not json", story.keeper.agreements)
    with pytest.raises(UnreadableSnapshot, match="P9"):  # a priority this version does not know
        snapshots.decode(raw.replace(b'"P2"', b'"P9"'), story.keeper.agreements)


def test_tickets_alike_restored_share_their_terms() -> None:
    first, second = Story(office_hours()), Story(office_hours())
    seen: snapshots.TermsSeen = {}
    restored = [snapshots.decode(snapshots.encode(s.state), first.keeper.agreements, seen) for s in (first, second)]
    assert restored[0].clocks[0].terms is restored[1].clocks[0].terms
    assert restored[0].clocks[0].terms is not restored[0].clocks[1].terms  # first response and resolution differ
