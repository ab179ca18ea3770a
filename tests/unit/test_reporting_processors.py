"""The reporting processors: pure, idempotent, and every row traceable to its message (topic, partition, offset).

The builders of this module make one event of each kind every topic carries; the reporting integration tests use
them too (they would belong in tests/builders.py, which another session owns).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from reporting.business_hours import ClientCalendars
from reporting.processors import (
    TicketChangeRow,
    process,
    processors,
    ticket_change_rows,
    ticket_event_rows,
    worklog_rows,
)
from tests.builders import T0, a_ticket_created, a_worklog_recorded
from ticketstream_shared.contract import (
    CommentAdded,
    CsatRecorded,
    Envelope,
    TicketStatusChanged,
    TicketUpdated,
    WorklogCorrected,
    WorklogRecorded,
    WorklogVoided,
    encode,
)
from ticketstream_shared.contract.assignment import TicketAssigned, TicketEscalated, TicketUnassignable
from ticketstream_shared.contract.sla import (
    ClockPaused,
    ClockResumed,
    ClockStarted,
    SlaBreached,
    SlaEvent,
    SlaMet,
    SlaWarning,
)
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Delivery

TICKET = "T-1001"
#: No agreement read from sla.config: every client on office hours.
NO_AGREEMENTS = ClientCalendars()
PROCESSORS = processors(NO_AGREEMENTS)


def _ticket_envelope(ticket_id: str, client_id: str, version: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": at,
        "ticket_id": ticket_id,
        "client_id": client_id,
        "aggregate_version": version,
        "producer": "intake",
        "correlation_id": "test",
    }


def a_worklog_corrected(recorded: WorklogRecorded, version: int, **changes: Any) -> WorklogCorrected:
    """The full new values of `recorded`'s worklog: its old ones with `changes` applied."""
    data = {**recorded.data.model_dump(), "reason": "logged on the wrong day", **changes}
    envelope = _ticket_envelope(recorded.ticket_id, recorded.client_id, version, recorded.occurred_at)
    return WorklogCorrected.model_validate({**envelope, "data": data})


def a_worklog_voided(recorded: WorklogRecorded, version: int) -> WorklogVoided:
    envelope = _ticket_envelope(recorded.ticket_id, recorded.client_id, version, recorded.occurred_at)
    return WorklogVoided.model_validate(
        {**envelope, "data": {"worklog_id": recorded.data.worklog_id, "reason": "logged on the wrong ticket"}}
    )


def a_status_change(
    ticket_id: str, version: int, from_status: str, to_status: str, client_id: str = "acme", at: datetime = T0
) -> TicketStatusChanged:
    return TicketStatusChanged.model_validate(
        {
            **_ticket_envelope(ticket_id, client_id, version, at),
            "data": {"from_status": from_status, "to_status": to_status},
        }
    )


def a_comment(
    ticket_id: str, version: int, client_id: str = "acme", at: datetime = T0, role: str = "technician", **data: Any
) -> CommentAdded:
    return CommentAdded.model_validate(
        {
            **_ticket_envelope(ticket_id, client_id, version, at),
            "data": {
                "comment_id": uuid.uuid4(),
                "author_id": "tech-1",
                "author_role": role,
                "body": "Rebooted the printer.",
                "visibility": "public",
                **data,
            },
        }
    )


def a_csat(ticket_id: str, version: int, rating: int, client_id: str = "acme", at: datetime = T0) -> CsatRecorded:
    return CsatRecorded.model_validate(
        {**_ticket_envelope(ticket_id, client_id, version, at), "data": {"rating": rating}}
    )


def _other_envelope(ticket_id: str, client_id: str, at: datetime, producer: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4(),
        "occurred_at": at,
        "ticket_id": ticket_id,
        "client_id": client_id,
        "producer": producer,
        "correlation_id": "test",
    }


SLA_EVENT_TYPES: dict[str, type[SlaEvent]] = {
    "started": ClockStarted,
    "paused": ClockPaused,
    "resumed": ClockResumed,
    "warning": SlaWarning,
    "breached": SlaBreached,
    "met": SlaMet,
}


def an_sla_event(
    kind: str,
    ticket_id: str,
    metric: str = "first_response",
    client_id: str = "acme",
    at: datetime = T0,
    policy_version: int = 1,
) -> SlaEvent:
    """A clock event of the P2 policy: a 4-business-hour target, started at T0."""
    data: dict[str, Any] = {
        "metric": metric,
        "policy_id": "standard",
        "policy_version": policy_version,
        "calendar_id": "office",
        "calendar_version": 1,
        "target_business_seconds": 4 * 3600,
        "deadline": T0 + timedelta(hours=4),
        "elapsed_business_seconds": int((at - T0).total_seconds()),
        "remaining_business_seconds": 4 * 3600 - int((at - T0).total_seconds()),
    }
    if kind == "warning":
        data["threshold"] = 0.75
    return SLA_EVENT_TYPES[kind].model_validate({**_other_envelope(ticket_id, client_id, at, "sla"), "data": data})


def an_assignment(ticket_id: str, technician_id: str, client_id: str = "acme", at: datetime = T0) -> TicketAssigned:
    data = {
        "technician_id": technician_id,
        "team": "front-line",
        "tier": 1,
        "strategy": "least_loaded",
        "reason": "least loaded among 3 on-shift tier-1 technicians",
    }
    return TicketAssigned.model_validate({**_other_envelope(ticket_id, client_id, at, "assignment"), "data": data})


def an_escalation(ticket_id: str, client_id: str = "acme", at: datetime = T0) -> TicketEscalated:
    data = {"from_tier": 1, "to_tier": 2, "team": "tier-2", "reason": "first response at risk"}
    return TicketEscalated.model_validate({**_other_envelope(ticket_id, client_id, at, "assignment"), "data": data})


def an_unassignable(ticket_id: str, client_id: str = "acme", at: datetime = T0) -> TicketUnassignable:
    data = {"team": "front-line", "reason": "nobody with skill network is on shift"}
    return TicketUnassignable.model_validate({**_other_envelope(ticket_id, client_id, at, "assignment"), "data": data})


def a_priority_change(version: int) -> TicketUpdated:
    return TicketUpdated.model_validate(
        {
            **_ticket_envelope(TICKET, "acme", version, T0),
            "data": {"changes": {"priority": "P1"}, "previous": {"priority": "P2"}},
        }
    )


def an_unknown_event() -> Envelope:
    """What the projector keeps of an event type this contract does not know yet: its envelope."""
    return Envelope.model_validate(
        {**_ticket_envelope(TICKET, "acme", 9, T0), "event_type": "ticket.merged", "schema_version": 1}
    )


def topic_of(event: Envelope) -> str:
    if isinstance(event, SlaEvent):
        return SLA_EVENTS
    if isinstance(event, TicketAssigned | TicketEscalated | TicketUnassignable):
        return ASSIGNMENT_EVENTS
    return TICKETS_EVENTS


def read(event: Envelope, partition: int = 4, offset: int = 1234) -> Delivery:
    return Delivery(event, topic_of(event), partition, offset)


RECORDED = a_worklog_recorded(TICKET, 5, minutes=90)
EVENTS: list[Envelope] = [
    a_ticket_created(TICKET),
    a_priority_change(2),
    a_status_change(TICKET, 3, "new", "in_progress"),
    a_comment(TICKET, 4),
    RECORDED,
    a_worklog_corrected(RECORDED, 6, minutes=60),
    a_worklog_voided(RECORDED, 7),
    a_csat(TICKET, 8, 5),
    an_unknown_event(),
    *(an_sla_event(kind, TICKET) for kind in SLA_EVENT_TYPES),
    an_assignment(TICKET, "tech-1"),
    an_escalation(TICKET),
    an_unassignable(TICKET),
]


@pytest.mark.parametrize("table", PROCESSORS)
@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event_type)
def test_processing_twice_changes_nothing(table: str, event: Envelope) -> None:
    processor = PROCESSORS[table]

    assert processor(read(event)) == processor(read(event))


@pytest.mark.parametrize("table", PROCESSORS)
@pytest.mark.parametrize("event", EVENTS, ids=lambda event: event.event_type)
def test_rows_keep_partition_and_offset(table: str, event: Envelope) -> None:
    for row in PROCESSORS[table](read(event)):
        assert (row.partition, row.offset) == (4, 1234)


def test_every_event_of_every_topic_is_kept_raw() -> None:
    for event in EVENTS:
        (row,) = ticket_event_rows(read(event, 0, 7))
        assert (row.event_id, row.event_type, row.topic) == (event.event_id, event.event_type, topic_of(event))
        assert Envelope.model_validate_json(row.payload) == Envelope.model_validate(event.model_dump())


def test_the_raw_payload_is_the_message_as_read_when_the_delivery_carries_it() -> None:
    event = a_ticket_created(TICKET)
    message = encode(event).replace(b"{", b'{"added_in_a_later_version": 1, ', 1)
    record = ConsumerRecord(TICKETS_EVENTS, 4, 7, 0, 0, TICKET.encode(), message, None, len(message), 0, [])

    (row,) = ticket_event_rows(Delivery(event, TICKETS_EVENTS, 4, 7, record))

    assert row.payload == message.decode()


def test_a_created_ticket_sets_every_field() -> None:
    created = a_ticket_created(TICKET)

    (change,) = ticket_change_rows(read(created, 0, 0))

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
    (updated,) = ticket_change_rows(read(a_priority_change(2)))
    (moved,) = ticket_change_rows(read(a_status_change(TICKET, 3, "new", "resolved")))
    (commented,) = ticket_change_rows(read(a_comment(TICKET, 4)))

    assert (updated.priority, updated.title, updated.category, updated.status) == ("P1", None, None, None)
    assert (moved.status, moved.priority, moved.created_at) == ("resolved", None, None)
    assert [commented.aggregate_version, commented.status, commented.title] == [4, None, None]


def test_a_worklog_becomes_one_row_keyed_by_its_worklog_id() -> None:
    worklog = a_worklog_recorded(TICKET, 5, minutes=90, billable=False)

    (row,) = worklog_rows(read(worklog, 2, 40), NO_AGREEMENTS)

    assert (row.worklog_id, row.event_id, row.aggregate_version) == (worklog.data.worklog_id, worklog.event_id, 5)
    assert (row.client_id, row.ticket_id, row.technician_id) == ("acme", TICKET, "tech-1")
    assert (row.minutes, row.billable, row.performed_at, row.voided) == (90, False, T0, False)


def test_a_correction_and_a_void_rewrite_the_same_worklog_at_a_newer_version() -> None:
    recorded = a_worklog_recorded(TICKET, 5, minutes=90)
    later = T0 + timedelta(hours=7)  # Monday 16:00: one hour inside business hours, then after hours

    (original,) = worklog_rows(read(recorded), NO_AGREEMENTS)
    (corrected,) = worklog_rows(read(a_worklog_corrected(recorded, 6, minutes=120, performed_at=later)), NO_AGREEMENTS)
    (voided,) = worklog_rows(read(a_worklog_voided(recorded, 7)), NO_AGREEMENTS)

    assert original.worklog_id == corrected.worklog_id == voided.worklog_id
    assert [original.aggregate_version, corrected.aggregate_version, voided.aggregate_version] == [5, 6, 7]
    assert (corrected.minutes, corrected.business_minutes, corrected.performed_at) == (120, 60, later)
    assert (voided.voided, voided.minutes, original.voided, corrected.voided) == (True, 0, False, False)


def test_minutes_inside_business_hours_use_office_hours_for_a_client_without_agreement() -> None:
    friday_evening = datetime(2026, 3, 6, 16, 30, tzinfo=T0.tzinfo)

    def inside(start: datetime, minutes: int) -> int:
        return NO_AGREEMENTS.minutes_inside("acme", start, minutes)

    assert inside(T0, 90) == 90  # Monday 09:00-10:30
    assert inside(T0 - timedelta(hours=1), 90) == 30  # 08:00-09:30
    assert inside(friday_evening, 24 * 60) == 30  # into Saturday
    assert inside(datetime(2026, 3, 2, 16, 0, tzinfo=T0.tzinfo), 18 * 60) == 120  # to Tuesday 10:00
    assert inside(datetime(2026, 3, 7, 10, 0, tzinfo=T0.tzinfo), 60) == 0  # Saturday


@settings(max_examples=300)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(min_value=1, max_value=24 * 60),
)
def test_minutes_inside_business_hours_are_those_counted_one_by_one(start: datetime, minutes: int) -> None:
    start = start.replace(second=0, microsecond=0)
    moments = (start + timedelta(minutes=minute) for minute in range(minutes))

    expected = sum(1 for moment in moments if moment.isoweekday() <= 5 and 9 <= moment.hour < 17)

    assert NO_AGREEMENTS.minutes_inside("acme", start, minutes) == expected


def test_each_table_takes_only_the_events_it_concerns() -> None:
    assert set(process(read(a_ticket_created(TICKET)), NO_AGREEMENTS)) == {"ticket_events", "ticket_changes"}
    assert set(process(read(RECORDED), NO_AGREEMENTS)) == {"ticket_events", "ticket_changes", "worklogs"}
    assert set(process(read(a_status_change(TICKET, 3, "new", "open")), NO_AGREEMENTS)) == {
        "ticket_events",
        "ticket_changes",
        "ticket_status_changes",
    }
    assert set(process(read(a_csat(TICKET, 8, 4)), NO_AGREEMENTS)) == {
        "ticket_events",
        "ticket_changes",
        "csat_ratings",
    }
    assert set(process(read(an_sla_event("breached", TICKET)), NO_AGREEMENTS)) == {"ticket_events", "sla_clock_events"}
    assert set(process(read(an_escalation(TICKET)), NO_AGREEMENTS)) == {"ticket_events", "assignment_events"}
    assert set(process(read(an_unknown_event()), NO_AGREEMENTS)) == {"ticket_events"}


def test_sla_and_assignment_rows_carry_what_explains_them() -> None:
    (warning,) = process(read(an_sla_event("warning", TICKET, metric="resolution")), NO_AGREEMENTS)["sla_clock_events"]
    (escalated,) = process(read(an_escalation(TICKET)), NO_AGREEMENTS)["assignment_events"]
    (assigned,) = process(read(an_assignment(TICKET, "tech-7")), NO_AGREEMENTS)["assignment_events"]

    assert (warning.metric, warning.threshold, warning.policy_id, warning.deadline) == (
        "resolution",
        0.75,
        "standard",
        T0 + timedelta(hours=4),
    )
    assert (escalated.from_tier, escalated.tier, escalated.technician_id) == (1, 2, None)
    assert (assigned.technician_id, assigned.strategy, assigned.tier) == ("tech-7", "least_loaded", 1)
