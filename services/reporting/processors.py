"""Pure processors, one per reporting table: an event and where it was read (topic, partition, offset) -> rows.

No I/O and no clock: the same event always gives the same rows, so a redelivered event writes rows equal to those
already stored, which the tables collapse by key (see deploy/clickhouse). Rows keep partition and offset so that
every row can be traced back to its message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import NamedTuple, TypedDict

from ticketstream_shared.contract import (
    CommentAdded,
    CsatRecorded,
    TicketCreated,
    TicketEvent,
    TicketStatusChanged,
    TicketUpdated,
    WorklogCorrected,
    WorklogRecorded,
    WorklogVoided,
)
from ticketstream_shared.contract.assignment import TicketAssigned, TicketEscalated, TicketUnassignable
from ticketstream_shared.contract.sla import ClockData, PauseData, SlaEvent, WarningData
from ticketstream_shared.runtime.consumer import Delivery

from .business_hours import ClientCalendars


class TicketEventRow(NamedTuple):
    """ticket_events: every event of every topic as read."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: datetime
    ticket_id: str
    client_id: str
    aggregate_version: int | None
    producer: str
    correlation_id: str
    payload: str
    topic: str
    partition: int
    offset: int


class TicketChangeRow(NamedTuple):
    """ticket_changes: the fields one event sets on its ticket; None where it leaves them as they are."""

    event_id: uuid.UUID
    ticket_id: str
    client_id: str
    aggregate_version: int
    occurred_at: datetime
    partition: int
    offset: int
    requester_id: str | None = None
    title: str | None = None
    category: str | None = None
    priority: str | None = None
    channel: str | None = None
    status: str | None = None
    created_at: datetime | None = None


class _FieldsSet(TypedDict, total=False):
    """The fields of TicketChangeRow an event sets."""

    requester_id: str
    title: str | None
    category: str | None
    priority: str | None
    channel: str
    status: str
    created_at: datetime


class WorklogRow(NamedTuple):
    """worklogs: a worklog's values as of one version of its ticket; a void keeps only the key."""

    worklog_id: uuid.UUID
    ticket_id: str
    client_id: str
    technician_id: str
    minutes: int
    business_minutes: int
    billable: bool
    performed_at: datetime
    voided: bool
    event_id: uuid.UUID
    aggregate_version: int
    partition: int
    offset: int


class StatusChangeRow(NamedTuple):
    """ticket_status_changes: the status history."""

    ticket_id: str
    client_id: str
    aggregate_version: int
    occurred_at: datetime
    from_status: str
    to_status: str
    reason: str
    event_id: uuid.UUID
    partition: int
    offset: int


class CommentRow(NamedTuple):
    """ticket_comments: who answered, when, and whether the requester saw it."""

    ticket_id: str
    client_id: str
    aggregate_version: int
    occurred_at: datetime
    comment_id: uuid.UUID
    author_id: str
    author_role: str
    public: bool
    event_id: uuid.UUID
    partition: int
    offset: int


class SlaClockRow(NamedTuple):
    """sla_clock_events: one event of one SLA clock."""

    ticket_id: str
    client_id: str
    metric: str
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    policy_id: str
    policy_version: int
    calendar_id: str
    calendar_version: int
    target_business_seconds: int
    deadline: datetime
    elapsed_business_seconds: int
    remaining_business_seconds: int
    threshold: float | None
    reason: str
    partition: int
    offset: int


class AssignmentRow(NamedTuple):
    """assignment_events: one routing decision."""

    ticket_id: str
    client_id: str
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    technician_id: str | None
    previous_technician_id: str | None
    team: str | None
    tier: int | None
    from_tier: int | None
    strategy: str | None
    reason: str
    partition: int
    offset: int


class CsatRow(NamedTuple):
    """csat_ratings: a requester's rating of a ticket."""

    ticket_id: str
    client_id: str
    rating: int
    comment: str
    occurred_at: datetime
    aggregate_version: int
    event_id: uuid.UUID
    partition: int
    offset: int


Row = (
    TicketEventRow | TicketChangeRow | WorklogRow | StatusChangeRow | CommentRow | SlaClockRow | AssignmentRow | CsatRow
)
Processor = Callable[[Delivery], Sequence[Row]]


def ticket_event_rows(delivery: Delivery) -> list[TicketEventRow]:
    """Any event with a valid envelope, on any topic, known event type or not. The payload is the message as read
    when the delivery carries it (re-encoding every event cost a third of processing), else the event re-encoded
    (then only its envelope for an unknown event type)."""
    event = delivery.event
    record = delivery.record
    return [
        TicketEventRow(
            event_id=event.event_id,
            event_type=event.event_type,
            schema_version=event.schema_version,
            occurred_at=event.occurred_at,
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            aggregate_version=event.aggregate_version,
            producer=event.producer,
            correlation_id=event.correlation_id,
            payload=record.value.decode() if record is not None and record.value else event.model_dump_json(),
            topic=delivery.topic,
            partition=delivery.partition,
            offset=delivery.offset,
        )
    ]


def _fields_set(event: TicketEvent) -> _FieldsSet:
    match event:
        case TicketCreated(data=created):
            return {
                "requester_id": created.requester_id,
                "title": created.title,
                "category": created.category,
                "priority": created.priority.value,
                "channel": created.channel.value,
                "status": created.status.value,
                "created_at": event.occurred_at,
            }
        case TicketUpdated():
            changes = event.data.changes
            return {
                "title": changes.title,
                "category": changes.category,
                "priority": changes.priority.value if changes.priority else None,
            }
        case TicketStatusChanged(data=status_change):
            return {"status": status_change.to_status.value}
    return {}


def ticket_change_rows(delivery: Delivery) -> list[TicketChangeRow]:
    """Every ticket event moves its ticket to a new version (and its last activity); some also change fields."""
    event = delivery.event
    if not isinstance(event, TicketEvent):
        return []
    return [
        TicketChangeRow(
            event_id=event.event_id,
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            aggregate_version=event.aggregate_version,
            occurred_at=event.occurred_at,
            partition=delivery.partition,
            offset=delivery.offset,
            **_fields_set(event),
        )
    ]


def worklog_rows(delivery: Delivery, calendars: ClientCalendars) -> list[WorklogRow]:
    """A recorded or corrected worklog with its full values, a voided one with its key only: the row of the highest
    aggregate_version is the one that counts, so the outcome does not depend on the order events arrive in. Its
    business minutes are those inside its client's calendar (see business_hours.py)."""
    event = delivery.event
    if isinstance(event, WorklogRecorded | WorklogCorrected):
        worklog = event.data
        return [
            WorklogRow(
                worklog_id=worklog.worklog_id,
                ticket_id=event.ticket_id,
                client_id=event.client_id,
                technician_id=worklog.technician_id,
                minutes=worklog.minutes,
                business_minutes=calendars.minutes_inside(event.client_id, worklog.performed_at, worklog.minutes),
                billable=worklog.billable,
                performed_at=worklog.performed_at,
                voided=False,
                event_id=event.event_id,
                aggregate_version=event.aggregate_version,
                partition=delivery.partition,
                offset=delivery.offset,
            )
        ]
    if isinstance(event, WorklogVoided):
        return [
            WorklogRow(
                worklog_id=event.data.worklog_id,
                ticket_id=event.ticket_id,
                client_id=event.client_id,
                technician_id="",
                minutes=0,
                business_minutes=0,
                billable=False,
                performed_at=event.occurred_at,
                voided=True,
                event_id=event.event_id,
                aggregate_version=event.aggregate_version,
                partition=delivery.partition,
                offset=delivery.offset,
            )
        ]
    return []


def status_change_rows(delivery: Delivery) -> list[StatusChangeRow]:
    event = delivery.event
    if not isinstance(event, TicketStatusChanged):
        return []
    return [
        StatusChangeRow(
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            aggregate_version=event.aggregate_version,
            occurred_at=event.occurred_at,
            from_status=event.data.from_status.value,
            to_status=event.data.to_status.value,
            reason=event.data.reason,
            event_id=event.event_id,
            partition=delivery.partition,
            offset=delivery.offset,
        )
    ]


def comment_rows(delivery: Delivery) -> list[CommentRow]:
    event = delivery.event
    if not isinstance(event, CommentAdded):
        return []
    comment = event.data
    return [
        CommentRow(
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            aggregate_version=event.aggregate_version,
            occurred_at=event.occurred_at,
            comment_id=comment.comment_id,
            author_id=comment.author_id,
            author_role=comment.author_role.value,
            public=comment.public,
            event_id=event.event_id,
            partition=delivery.partition,
            offset=delivery.offset,
        )
    ]


def sla_clock_rows(delivery: Delivery) -> list[SlaClockRow]:
    event = delivery.event
    if not isinstance(event, SlaEvent):
        return []
    clock: ClockData = event.data  # type: ignore[attr-defined]  # every SlaEvent of the contract has ClockData
    return [
        SlaClockRow(
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            metric=clock.metric.value,
            event_id=event.event_id,
            event_type=event.event_type,
            occurred_at=event.occurred_at,
            policy_id=clock.policy_id,
            policy_version=clock.policy_version,
            calendar_id=clock.calendar_id,
            calendar_version=clock.calendar_version,
            target_business_seconds=clock.target_business_seconds,
            deadline=clock.deadline,
            elapsed_business_seconds=clock.elapsed_business_seconds,
            remaining_business_seconds=clock.remaining_business_seconds,
            threshold=clock.threshold if isinstance(clock, WarningData) else None,
            reason=clock.reason if isinstance(clock, PauseData) else "",
            partition=delivery.partition,
            offset=delivery.offset,
        )
    ]


def assignment_rows(delivery: Delivery) -> list[AssignmentRow]:
    event = delivery.event
    match event:
        case TicketAssigned(data=assigned):
            who = (assigned.technician_id, assigned.previous_technician_id, assigned.team, assigned.tier, None)
            how = (assigned.strategy.value, assigned.reason)
        case TicketEscalated(data=escalated):
            who = (None, None, escalated.team, escalated.to_tier, escalated.from_tier)
            how = (None, escalated.reason)
        case TicketUnassignable(data=unassignable):
            who = (None, None, unassignable.team, None, None)
            how = (None, unassignable.reason)
        case _:
            return []
    where = (event.ticket_id, event.client_id, event.event_id, event.event_type, event.occurred_at)
    return [AssignmentRow(*where, *who, *how, delivery.partition, delivery.offset)]


def csat_rows(delivery: Delivery) -> list[CsatRow]:
    event = delivery.event
    if not isinstance(event, CsatRecorded):
        return []
    return [
        CsatRow(
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            rating=event.data.rating,
            comment=event.data.comment,
            occurred_at=event.occurred_at,
            aggregate_version=event.aggregate_version,
            event_id=event.event_id,
            partition=delivery.partition,
            offset=delivery.offset,
        )
    ]


def processors(calendars: ClientCalendars) -> dict[str, Processor]:
    """Table -> its processor, worklogs split by `calendars`. Tables are written in this order."""
    return {
        "ticket_events": ticket_event_rows,
        "ticket_changes": ticket_change_rows,
        "worklogs": partial(worklog_rows, calendars=calendars),
        "ticket_status_changes": status_change_rows,
        "ticket_comments": comment_rows,
        "sla_clock_events": sla_clock_rows,
        "assignment_events": assignment_rows,
        "csat_ratings": csat_rows,
    }


def process(delivery: Delivery, calendars: ClientCalendars) -> dict[str, Sequence[Row]]:
    """The rows of every table for one event; tables it does not concern are left out."""
    return {table: rows for table, processor in processors(calendars).items() if (rows := processor(delivery))}
