"""Pure processors, one per reporting table: a ticket event and where it was read (partition, offset) -> rows.

No I/O and no clock: the same event always gives the same rows, so a redelivered event writes rows equal to those
already stored, which the tables collapse by key (see deploy/clickhouse). Rows keep partition and offset so that
every row can be traced back to its message.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple, TypedDict

from ticketstream_shared.contract import (
    Envelope,
    TicketCreated,
    TicketEvent,
    TicketStatusChanged,
    TicketUpdated,
    WorklogRecorded,
)
from ticketstream_shared.contract.topics import TICKETS_EVENTS


class TicketEventRow(NamedTuple):
    """ticket_events: every event as read."""

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
    """worklogs: time a technician spent on a ticket."""

    worklog_id: uuid.UUID
    ticket_id: str
    client_id: str
    technician_id: str
    minutes: int
    billable: bool
    performed_at: datetime
    event_id: uuid.UUID
    aggregate_version: int
    partition: int
    offset: int


Row = TicketEventRow | TicketChangeRow | WorklogRow


def ticket_event_rows(event: Envelope, partition: int, offset: int) -> list[TicketEventRow]:
    """Any event with a valid envelope, known event type or not (then only its envelope is kept)."""
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
            payload=event.model_dump_json(),
            topic=TICKETS_EVENTS,
            partition=partition,
            offset=offset,
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


def ticket_change_rows(event: Envelope, partition: int, offset: int) -> list[TicketChangeRow]:
    """Every ticket event moves its ticket to a new version (and its last activity); some also change fields."""
    if not isinstance(event, TicketEvent):
        return []
    return [
        TicketChangeRow(
            event_id=event.event_id,
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            aggregate_version=event.aggregate_version,
            occurred_at=event.occurred_at,
            partition=partition,
            offset=offset,
            **_fields_set(event),
        )
    ]


def worklog_rows(event: Envelope, partition: int, offset: int) -> list[WorklogRow]:
    if not isinstance(event, WorklogRecorded):
        return []
    worklog = event.data
    return [
        WorklogRow(
            worklog_id=worklog.worklog_id,
            ticket_id=event.ticket_id,
            client_id=event.client_id,
            technician_id=worklog.technician_id,
            minutes=worklog.minutes,
            billable=worklog.billable,
            performed_at=worklog.performed_at,
            event_id=event.event_id,
            aggregate_version=event.aggregate_version,
            partition=partition,
            offset=offset,
        )
    ]


#: Table -> its processor. Tables are written in this order.
PROCESSORS: dict[str, Callable[[Envelope, int, int], Sequence[Row]]] = {
    "ticket_events": ticket_event_rows,
    "ticket_changes": ticket_change_rows,
    "worklogs": worklog_rows,
}


def process(event: Envelope, partition: int, offset: int) -> dict[str, Sequence[Row]]:
    """The rows of every table for one event; tables it does not concern are left out."""
    return {table: rows for table, processor in PROCESSORS.items() if (rows := processor(event, partition, offset))}
