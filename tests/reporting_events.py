"""Events of every kind the topics reporting reads carry, and how the reporting consumer hands them over; for the
reporting tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord

from reporting.business_hours import ClientCalendars
from reporting.inbox import decoders
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
    ticket_id: str,
    version: int,
    from_status: str,
    to_status: str,
    client_id: str = "acme",
    at: datetime = T0,
    **data: Any,
) -> TicketStatusChanged:
    return TicketStatusChanged.model_validate(
        {
            **_ticket_envelope(ticket_id, client_id, version, at),
            "data": {"from_status": from_status, "to_status": to_status, **data},
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


def record_of(event: Envelope, partition: int = 4, offset: int = 1234, message: bytes | None = None) -> ConsumerRecord:
    """The record a consumer reads for `event` (or for `message`, written for it), at (partition, offset)."""
    value = encode(event) if message is None else message
    key = event.ticket_id.encode()
    return ConsumerRecord(topic_of(event), partition, offset, 0, 0, key, value, None, len(value), len(key), [])


def read(event: Envelope, partition: int = 4, offset: int = 1234, message: bytes | None = None) -> Delivery:
    """`event` as the reporting consumer hands it over: validated by reporting's decoder, with its record."""
    record = record_of(event, partition, offset, message)
    arrival = decoders()[record.topic](record.value)
    return Delivery(arrival, record.topic, partition, offset, record)


def every_kind_of_event(ticket_id: str) -> list[Envelope]:
    """One event of every kind the topics reporting reads carry, about one ticket, each with ids of its own."""
    recorded = a_worklog_recorded(ticket_id, 5, minutes=90)
    about_the_ticket = {"ticket_id": ticket_id}
    return [
        a_ticket_created(ticket_id),
        a_priority_change(2).model_copy(update=about_the_ticket),
        a_status_change(ticket_id, 3, "new", "in_progress"),
        a_comment(ticket_id, 4),
        recorded,
        a_worklog_corrected(recorded, 6, minutes=60),
        a_worklog_voided(recorded, 7),
        a_csat(ticket_id, 8, 5),
        an_unknown_event().model_copy(update=about_the_ticket),
        *(an_sla_event(kind, ticket_id) for kind in SLA_EVENT_TYPES),
        an_assignment(ticket_id, "tech-1"),
        an_escalation(ticket_id),
        an_unassignable(ticket_id),
    ]


EVENTS = every_kind_of_event(TICKET)
RECORDED = next(event for event in EVENTS if isinstance(event, WorklogRecorded))
