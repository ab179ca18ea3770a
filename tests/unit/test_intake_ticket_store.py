"""Intake's tickets in a real local store (RocksDB in a temporary directory): events kept as read, summaries and the
list endpoint's indexes kept up to date, changelog records that rebuild all of it, and offsets written with the
state they describe."""

import pytest

from intake.domain import ChangeStatus, UpdateTicket, decide, fold
from intake.ticket_store import Filters, TicketStore
from tests.unit.test_intake_domain import context, create, worklog
from ticketstream_shared.contract import Priority, TicketStatus, encode
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.store import Changes, LocalStore


@pytest.fixture
def tickets():
    store = LocalStore(None)
    yield TicketStore(store)
    store.close()


def events_of(*commands):
    ticket, events = None, []
    for command in commands:
        decided = decide(ticket, command, context())
        ticket = fold(ticket, decided)
        events += decided
    return events


def keep(tickets, events, **offsets):
    changes = Changes()
    applied = [tickets.apply(changes, event, encode(event)) for event in events]
    for partition, offset in offsets.items():
        changes.applied(TICKETS_EVENTS, int(partition.removeprefix("p")), offset)
    tickets.store.write(changes)
    return applied


def test_a_ticket_is_folded_from_its_stored_events_and_each_event_is_kept_once(tickets):
    events = events_of(create(), worklog(minutes=20), worklog(minutes=15))
    assert keep(tickets, events) == [True, True, True]
    assert keep(tickets, events) == [False, False, False], "read again: already held"
    ticket = tickets.load("t-1")
    assert (ticket.version, ticket.worklog_minutes, len(ticket.history)) == (3, 35, 3)
    assert ticket == fold(None, events)
    assert tickets.load("t-2") is None and tickets.version("t-2") == 0


def test_offsets_are_written_with_the_state_they_describe(tickets):
    events = events_of(create(), worklog())
    changes = Changes()
    tickets.apply(changes, events[0], encode(events[0]))
    changes.applied(TICKETS_EVENTS, 3, 41)
    assert tickets.store.applied(TICKETS_EVENTS) == {} and tickets.load("t-1") is None, "nothing before the write"
    tickets.store.write(changes)
    assert tickets.store.applied(TICKETS_EVENTS) == {3: 41} and tickets.version("t-1") == 1


def listing(tickets, filters=None, after=None, limit=50):
    return tickets.find(filters or Filters(), after, limit)


def test_listing_filters_by_every_field_oldest_first_with_a_cursor(tickets):
    for number, (client, priority) in enumerate([("acme", "P1"), ("globex", "P2"), ("acme", "P3"), ("acme", "P1")]):
        keep(tickets, events_of(create(ticket_id=f"t-{number}", client_id=client, priority=Priority(priority))))
    assert listing(tickets) == ["t-0", "t-1", "t-2", "t-3"]
    assert listing(tickets, Filters(client_id="acme")) == ["t-0", "t-2", "t-3"]
    assert listing(tickets, Filters(client_id="acme", priority=Priority.P1)) == ["t-0", "t-3"]
    assert listing(tickets, Filters(requester_id="bob")) == []
    first = tickets.load("t-0")
    assert listing(tickets, Filters(client_id="acme"), after=(first.created_at, first.ticket_id)) == ["t-2", "t-3"]
    assert listing(tickets, limit=2) == ["t-0", "t-1"]


def test_a_status_or_priority_change_moves_the_ticket_between_index_entries(tickets):
    keep(tickets, events_of(create(ticket_id="t-1"), create(ticket_id="t-2")))
    t1 = events_of(
        create(ticket_id="t-1"),
        ChangeStatus(ticket_id="t-1", status=TicketStatus.IN_PROGRESS),
        UpdateTicket(ticket_id="t-1", priority=Priority.P4),
    )
    keep(tickets, t1)
    keep(tickets, events_of(create(ticket_id="t-2")))
    assert listing(tickets, Filters(status=TicketStatus.NEW)) == ["t-2"]
    assert listing(tickets, Filters(client_id="acme", status=TicketStatus.IN_PROGRESS)) == ["t-1"]
    assert listing(tickets, Filters(priority=Priority.P4)) == ["t-1"]
    assert listing(tickets, Filters(priority=Priority.P2)) == ["t-2"]


def test_an_assignment_indexes_the_ticket_under_its_technician_whichever_comes_first(tickets):
    keep(tickets, events_of(create(ticket_id="t-1")))
    changes = Changes()
    tickets.assign(changes, "t-1", "tech-1")
    tickets.assign(changes, "t-2", "tech-2")  # read from assignment.events before the ticket's creation
    tickets.store.write(changes)
    keep(tickets, events_of(create(ticket_id="t-2")))
    assert listing(tickets, Filters(assignee_id="tech-1")) == ["t-1"]
    assert listing(tickets, Filters(assignee_id="tech-2")) == ["t-2"]
    changes = Changes()
    tickets.assign(changes, "t-1", "tech-2")
    tickets.store.write(changes)
    assert listing(tickets, Filters(assignee_id="tech-1")) == []
    assert listing(tickets, Filters(assignee_id="tech-2")) == ["t-1", "t-2"]
    assert tickets.assignee("t-1") == "tech-2"


def test_changelog_records_rebuild_tickets_and_indexes_in_another_store(tickets):
    keep(tickets, events_of(create(ticket_id="t-1"), ChangeStatus(ticket_id="t-1", status=TicketStatus.IN_PROGRESS)))
    keep(tickets, events_of(create(ticket_id="t-2", client_id="globex"), worklog(ticket_id="t-2")))
    elsewhere = TicketStore(LocalStore(None))
    try:
        changes = Changes()
        for ticket_id in tickets.ticket_ids():
            elsewhere.restore(changes, 0, ticket_id.encode(), tickets.record(ticket_id.encode()))
        stale = events_of(create(ticket_id="t-1"))  # an older record of t-1, as compaction may still hold one
        elsewhere.restore(changes, 0, b"t-1", b'{"version":1}\n' + encode(stale[0]))
        elsewhere.store.write(changes)
        for ticket_id in ("t-1", "t-2"):
            assert elsewhere.load(ticket_id) == tickets.load(ticket_id)
        assert listing(elsewhere, Filters(status=TicketStatus.IN_PROGRESS)) == ["t-1"]
        assert listing(elsewhere, Filters(client_id="globex")) == ["t-2"]
    finally:
        elsewhere.store.close()


def test_a_store_is_restored_only_once_marked_so_and_a_temporary_one_is_removed_on_close(tmp_path):
    store = LocalStore(tmp_path / "intake")
    assert not store.is_restored
    changes = Changes()
    changes.restored()
    store.write(changes)
    store.close()
    reopened = LocalStore(tmp_path / "intake")
    assert reopened.is_restored
    reopened.close()
    temporary = LocalStore(None)
    temporary.close()
    assert not temporary.path.exists()
