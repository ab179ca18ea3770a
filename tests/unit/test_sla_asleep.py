"""Tickets held asleep: a worker taking a partition over reads only each live ticket's next alarm, and decodes its
clocks when an alarm, an event or a configuration change first needs them. Asleep or awake, a ticket's sla events
are the same, at the same moments, with the same ids."""

from __future__ import annotations

from sla.agreements import Agreements
from sla.clocks import TicketClocks
from sla.snapshots import UnreadableSnapshot
from sla.timekeeper import SWEEP_PART, Timekeeper
from tests.builders import T0
from tests.unit.test_sla_clocks import HOUR, MINUTE, Story, config, policy
from ticketstream_shared.contract.sla import CalendarChanged, SlaEvent

NIGHTS = {"timezone": "UTC", "week": {"monday": [{"start": "20:00", "end": "08:00"}]}}


class Store:
    """Clocks as a store holds them; counts what was read."""

    def __init__(self, *states: TicketClocks) -> None:
        self.states = {state.ticket_id: state for state in states}
        self.woken: list[str] = []

    def load(self, ticket_id: str) -> TicketClocks | None:
        self.woken.append(ticket_id)
        return self.states.get(ticket_id)


def asleep(story: Story, partition: int = 2) -> tuple[Timekeeper, Store]:
    """A second timekeeper holding the story's ticket asleep, as one taking its partition over does."""
    store = Store(story.state)
    keeper = Timekeeper(story.keeper.agreements, wake=store.load)
    keeper.rest(story.ticket_id, partition, story.state.next_due)
    return keeper, store


def ids(events: list[SlaEvent]) -> list[tuple[str, object]]:
    return [(event.event_type, event.event_id) for event in events]


def test_an_asleep_ticket_is_woken_by_its_alarm_and_raises_what_it_would_have_awake() -> None:
    story = Story()
    keeper, store = asleep(story)
    assert keeper.holds(story.ticket_id) and keeper.ticket(story.ticket_id) is None and len(keeper) == 1
    assert keeper.next_due() == T0 + 45 * MINUTE
    assert keeper.tick(T0 + 44 * MINUTE) == [] and store.woken == []
    woken = keeper.tick(T0 + 45 * MINUTE)
    assert ids(woken) == ids(story.tick(T0 + 45 * MINUTE)) and len(woken) == 1
    assert store.woken == [story.ticket_id] and keeper.asleep == 0
    assert ids(keeper.tick(T0 + 9 * HOUR)) == ids(story.tick(T0 + 9 * HOUR))  # awake from now on
    assert store.woken == [story.ticket_id] and len(keeper) == 1


def test_an_event_wakes_its_ticket_and_raises_the_alarms_due_before_it() -> None:
    story = Story()
    keeper, store = asleep(story, partition=5)
    told_awake = story.status(T0 + 50 * MINUTE, "new", "in_progress")
    decided = keeper.handle(story.told[-1], 5)
    assert store.woken == [story.ticket_id]
    assert [event.event_type for event in decided][0] == "sla.warning"  # due at 45 minutes, before the event
    assert ids(decided) == ids(told_awake)
    assert keeper.take_changed() == [(5, story.state)]


def test_a_configuration_change_read_live_wakes_every_asleep_ticket_and_re_times_it() -> None:
    story, other = Story(), Story()
    store = Store(story.state, other.state)
    keeper = Timekeeper(Agreements.with_defaults(), wake=store.load)
    for each in (story, other):
        keeper.rest(each.ticket_id, 0, each.state.next_due)
    change = config(CalendarChanged, at=T0 + 10 * MINUTE, calendar_id="default", data=NIGHTS)
    keeper.record_change(change)
    retimed = keeper.tick(T0 + 10 * MINUTE)
    assert sorted(store.woken) == sorted([story.ticket_id, other.ticket_id]) and keeper.asleep == 0
    story.keeper.record_change(change)
    assert ids([e for e in retimed if e.ticket_id == story.ticket_id]) == ids(story.tick(T0 + 10 * MINUTE))
    assert {e.event_type for e in retimed} == {"sla.retargeted"}


def test_a_configuration_change_sweeps_in_parts_asleep_and_awake_alike_skipping_tickets_forgotten_meanwhile() -> None:
    """The sweep comes in parts of SWEEP_PART tickets (the worker lets the event loop run between them); a ticket
    whose partition is forgotten between parts is skipped; every other gets what one sweep would give it."""
    awake = [Story() for _ in range(SWEEP_PART)]
    sleeping = [Story() for _ in range(SWEEP_PART)]
    store = Store(*(each.state for each in sleeping))
    keeper = Timekeeper(Agreements.with_defaults(), wake=store.load)
    for each in awake:
        keeper.restore(each.state, 1)
    for each in sleeping:
        keeper.rest(each.ticket_id, 0, each.state.next_due)
    change = config(CalendarChanged, at=T0 + 10 * MINUTE, calendar_id="default", data=NIGHTS)
    keeper.record_change(change)
    parts = keeper.sweeping(T0 + 10 * MINUTE)
    first = next(parts)
    keeper.forget_partitions({1})  # given up between two parts
    swept = first + [event for part in parts for event in part]
    assert len(first) == 2 * SWEEP_PART  # both clocks of the first SWEEP_PART tickets
    assert len(store.woken) == SWEEP_PART and keeper.asleep == 0 and len(keeper) == SWEEP_PART
    for each in sleeping:
        each.keeper.record_change(change)
        expected = ids(each.tick(T0 + 10 * MINUTE))
        assert ids([e for e in swept if e.ticket_id == each.ticket_id]) == expected and len(expected) == 2
    assert not {e.ticket_id for e in swept} & {each.ticket_id for each in awake}
    assert keeper.tick(T0 + 10 * MINUTE) == []  # the change is spent


def test_a_ticket_whose_clocks_cannot_be_read_names_its_partition_and_raises_nothing() -> None:
    story, fine = Story(), Story()

    def load(ticket_id: str) -> TicketClocks | None:
        if ticket_id == story.ticket_id:
            raise UnreadableSnapshot("calendar default v7 is not in sla.config")
        return fine.state

    keeper = Timekeeper(story.keeper.agreements, wake=load)
    keeper.rest(story.ticket_id, 4, story.state.next_due)
    keeper.rest(fine.ticket_id, 1, fine.state.next_due)
    raised = keeper.tick(T0 + 45 * MINUTE)
    assert [event.ticket_id for event in raised] == [fine.ticket_id]
    assert keeper.unreadable == {4} and not keeper.holds(story.ticket_id)
    keeper.forget_partitions({4})
    assert keeper.unreadable == set()


def test_a_store_that_lost_a_ticket_of_its_index_is_unreadable_too() -> None:
    story = Story()
    keeper = Timekeeper(story.keeper.agreements, wake=Store().load)
    keeper.rest(story.ticket_id, 6, story.state.next_due)
    assert keeper.tick(T0 + 45 * MINUTE) == [] and keeper.unreadable == {6} and len(keeper) == 0
    assert keeper.take_unreadable() == {6} and keeper.unreadable == set()  # taken once, by the worker


def test_partitions_given_up_forget_their_asleep_tickets() -> None:
    story = Story()
    keeper, store = asleep(story, partition=7)
    keeper.forget_partitions({7})
    assert not keeper.holds(story.ticket_id) and len(keeper) == 0 and keeper.next_due() is None
    assert keeper.tick(T0 + 9 * HOUR) == [] and store.woken == []


def test_a_ticket_put_asleep_with_nowhere_to_wake_it_from_is_a_defect() -> None:
    story = Story()
    keeper = Timekeeper(story.keeper.agreements)
    keeper.rest(story.ticket_id, 0, T0)
    try:
        keeper.tick(T0)
    except LookupError as error:
        assert story.ticket_id in str(error)
    else:
        raise AssertionError("woken from nowhere")


def test_a_configuration_change_saves_every_ticket_it_reached_even_those_it_left_alone() -> None:
    """Their snapshots then say they were advanced past the change: a later take-over holds them asleep."""
    story = Story()
    story.keeper.take_changed()
    untouched = policy("elsewhere", 30, 120, at=T0 + 10 * MINUTE, match={"categories": ["printers"]})
    story.keeper.record_change(untouched)
    assert story.keeper.tick(T0 + 10 * MINUTE) == []  # the ticket's terms are the same
    assert story.keeper.take_changed() == [(0, story.state)] and story.state.as_of == T0 + 10 * MINUTE
