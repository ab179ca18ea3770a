"""The reporting processors: pure, idempotent, and every row traceable to its message (partition, offset)."""

from __future__ import annotations

import uuid

import pytest

from reporting.processors import (
    PROCESSORS,
    TicketChangeRow,
    process,
    ticket_change_rows,
    ticket_event_rows,
    worklog_rows,
)
from tests.builders import T0, a_ticket_created, a_worklog_recorded
from ticketstream_shared.contract import (
    CommentAdded,
    Envelope,
    TicketStatusChanged,
    TicketUpdated,
)

TICKET = "T-1001"


def _envelope(event_type: str, version: int) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "occurred_at": T0,
        "ticket_id": TICKET,
        "client_id": "acme",
        "aggregate_version": version,
        "producer": "intake",
        "correlation_id": "test",
    }


def a_status_change(version: int, to_status: str) -> TicketStatusChanged:
    return TicketStatusChanged.model_validate(
        {**_envelope("ticket.status_changed", version), "data": {"from_status": "new", "to_status": to_status}}
    )


def a_priority_change(version: int) -> TicketUpdated:
    return TicketUpdated.model_validate(
        {
            **_envelope("ticket.updated", version),
            "data": {"changes": {"priority": "P1"}, "previous": {"priority": "P2"}},
        }
    )


def a_comment(version: int) -> CommentAdded:
    return CommentAdded.model_validate(
        {
            **_envelope("ticket.comment_added", version),
            "data": {
                "comment_id": uuid.uuid4(),
                "author_id": "tech-1",
                "author_role": "technician",
                "body": "Rebooted the printer.",
                "public": True,
            },
        }
    )


def an_unknown_event() -> Envelope:
    """What the projector keeps of an event type this contract does not know yet: its envelope."""
    return Envelope.model_validate({**_envelope("ticket.merged", 9), "schema_version": 1})


EVENTS: list[Envelope] = [
    a_ticket_created(TICKET),
    a_priority_change(2),
    a_status_change(3, "in_progress"),
    a_comment(4),
    a_worklog_recorded(TICKET, 5, minutes=90),
    an_unknown_event(),
]


@pytest.mark.parametrize("table", PROCESSORS)
@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event_type)
def test_processing_twice_changes_nothing(table: str, event: Envelope) -> None:
    processor = PROCESSORS[table]

    assert processor(event, 4, 1234) == processor(event, 4, 1234)


@pytest.mark.parametrize("table", PROCESSORS)
@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event_type)
def test_rows_keep_partition_and_offset(table: str, event: Envelope) -> None:
    for row in PROCESSORS[table](event, 4, 1234):
        assert (row.partition, row.offset) == (4, 1234)


def test_every_event_with_an_envelope_is_kept_raw() -> None:
    for event in EVENTS:
        (row,) = ticket_event_rows(event, 0, 7)
        assert (row.event_id, row.event_type, row.topic) == (event.event_id, event.event_type, "tickets.events")
        assert Envelope.model_validate_json(row.payload) == Envelope.model_validate(event.model_dump())


def test_a_created_ticket_sets_every_field() -> None:
    created = a_ticket_created(TICKET)

    (change,) = ticket_change_rows(created, 0, 0)

    assert change == TicketChangeRow(
        event_id=created.event_id,
        ticket_id=TICKET,
        client_id="acme",
        aggregate_version=1,
        occurred_at=T0,
        requester_id="alice",
        title="Printer on fire",
        category="hardware",
        priority="P2",
        channel="api",
        status="new",
        created_at=T0,
        partition=0,
        offset=0,
    )


def test_later_events_set_only_what_they_change() -> None:
    (updated,) = ticket_change_rows(a_priority_change(2), 0, 1)
    (moved,) = ticket_change_rows(a_status_change(3, "resolved"), 0, 2)
    (commented,) = ticket_change_rows(a_comment(4), 0, 3)

    assert (updated.priority, updated.title, updated.category, updated.status) == ("P1", None, None, None)
    assert (moved.status, moved.priority, moved.created_at) == ("resolved", None, None)
    assert [commented.aggregate_version, commented.status, commented.title] == [4, None, None]


def test_a_worklog_becomes_one_row_keyed_by_its_worklog_id() -> None:
    worklog = a_worklog_recorded(TICKET, 5, minutes=90, billable=False)

    (row,) = worklog_rows(worklog, 2, 40)

    assert (row.worklog_id, row.event_id, row.aggregate_version) == (worklog.data.worklog_id, worklog.event_id, 5)
    assert (row.client_id, row.ticket_id, row.technician_id) == ("acme", TICKET, "tech-1")
    assert (row.minutes, row.billable, row.performed_at) == (90, False, T0)


def test_process_gives_each_table_only_the_events_it_concerns() -> None:
    assert set(process(a_ticket_created(TICKET), 0, 0)) == {"ticket_events", "ticket_changes"}
    assert set(process(a_worklog_recorded(TICKET, 2), 0, 1)) == {"ticket_events", "ticket_changes", "worklogs"}
    assert set(process(an_unknown_event(), 0, 2)) == {"ticket_events"}
