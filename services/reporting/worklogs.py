"""The worklogs of a batch as the ledger takes them (ledger.py): each worklog version with its minutes inside its
client's business hours, which only Python knows (the calendars of sla.config, business_hours.py).

Pure, no I/O and no clock: the same event always gives the same row, so a redelivered event is recognised by the
ledger. Rows keep partition and offset so that every ledger row can be traced back to its message.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple

from ticketstream_shared.contract import WorklogCorrected, WorklogRecorded, WorklogVoided
from ticketstream_shared.runtime.consumer import Delivery

from .business_hours import ClientCalendars
from .inbox import Arrival


class WorklogRow(NamedTuple):
    """A worklog's values as of one version of its ticket; a void keeps only the key."""

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


def worklog_rows(delivery: Delivery, calendars: ClientCalendars) -> list[WorklogRow]:
    """A recorded or corrected worklog with its full values, a voided one with its key only: the row of the highest
    aggregate_version is the one that counts, so the outcome does not depend on the order events arrive in. Its
    business minutes are those inside its client's calendar (see business_hours.py)."""
    arrival: Arrival = delivery.event
    event = arrival.event
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
