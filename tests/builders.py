"""Builders of events and commands for tests: defaults that make sense, overridden by what a test cares about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ticketstream_shared.contract import TicketCreated, WorklogRecorded

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


def a_ticket_created(ticket_id: str | None = None, client_id: str = "acme", **data: Any) -> TicketCreated:
    return TicketCreated(
        event_id=uuid.uuid4(),
        occurred_at=data.pop("occurred_at", T0),
        ticket_id=ticket_id or str(uuid.uuid4()),
        client_id=client_id,
        aggregate_version=1,
        producer="intake",
        correlation_id="test",
        data={
            "requester_id": "alice",
            "title": "Printer on fire",
            "category": "hardware",
            "priority": "P2",
            **data,
        },
    )


def a_worklog_recorded(
    ticket_id: str, version: int, minutes: int = 30, client_id: str = "acme", **data: Any
) -> WorklogRecorded:
    return WorklogRecorded(
        event_id=uuid.uuid4(),
        occurred_at=data.pop("occurred_at", T0),
        ticket_id=ticket_id,
        client_id=client_id,
        aggregate_version=version,
        producer="intake",
        correlation_id="test",
        data={
            "worklog_id": uuid.uuid4(),
            "technician_id": "tech-1",
            "minutes": minutes,
            "billable": True,
            "performed_at": T0,
            **data,
        },
    )
