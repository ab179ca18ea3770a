"""Builders of events and commands for tests: defaults that make sense, overridden by what a test cares about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ticketstream_shared.contract import TicketCreated, WorklogRecorded
from ticketstream_shared.contract.sla import SLA_EVENT_TYPES, SlaEvent, SlaMetric

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


def a_clock_event(
    event_type: str, ticket_id: str, metric: SlaMetric, deadline: datetime, remaining_s: int = 3600, **data: Any
) -> SlaEvent:
    """An event of one of a ticket's SLA clocks (`event_type`: sla.clock_started, sla.paused, sla.met...), as sla
    writes it."""
    kind = next(kind for kind in SLA_EVENT_TYPES if kind.model_fields["event_type"].default == event_type)
    target = 4 * 3600
    clock = {
        "metric": metric, "policy_id": "standard", "policy_version": 1, "calendar_id": "office-hours",
        "calendar_version": 1, "target_business_seconds": target, "deadline": deadline,
        "elapsed_business_seconds": max(target - remaining_s, 0), "remaining_business_seconds": remaining_s,
    }  # fmt: skip
    own = {
        "sla.warning": {"threshold": 0.75},
        "sla.clock_stopped": {"reason": "its policy was deactivated"},
        "sla.retargeted": {
            "previous_policy_id": "standard", "previous_policy_version": 1, "previous_calendar_id": "office-hours",
            "previous_calendar_version": 1, "previous_target_business_seconds": target, "previous_deadline": deadline,
            "reason": "the priority changed",
        },
    }.get(event_type, {})  # fmt: skip
    return kind(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        ticket_id=ticket_id,
        client_id="acme",
        producer="sla",
        correlation_id="test",
        data={**clock, **own, **data},
    )
