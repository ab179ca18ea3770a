"""Events of assignment.events, written by the assignment service only; key = ticket_id.

Every decision carries its reason in plain words ("least loaded among 3 on-shift tier-1 technicians with skill
network"), so a requester, a manager or another system can see why a ticket went where it went.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from .events import Envelope, Frozen, Identifier


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    SKILLS = "skills"
    MANUAL = "manual"


class AssignedData(Frozen):
    technician_id: Identifier
    team: Identifier
    tier: int = Field(ge=1)
    strategy: Strategy
    reason: str = Field(min_length=1)
    previous_technician_id: Identifier | None = None
    assigned_by: Identifier | None = Field(default=None, description="Who assigned by hand (strategy manual).")


class EscalatedData(Frozen):
    from_tier: int = Field(ge=1)
    to_tier: int = Field(ge=1)
    team: Identifier
    reason: str = Field(min_length=1)
    trigger_event_id: uuid.UUID | None = Field(default=None, description="The sla event that caused it, if any.")


class UnassignableData(Frozen):
    team: Identifier | None = None
    reason: str = Field(min_length=1)


class AssignmentEvent(Envelope):
    aggregate_version: None = None


class TicketAssigned(AssignmentEvent):
    event_type: Literal["assignment.assigned"] = "assignment.assigned"
    schema_version: Literal[1] = 1
    data: AssignedData


class TicketEscalated(AssignmentEvent):
    event_type: Literal["assignment.escalated"] = "assignment.escalated"
    schema_version: Literal[1] = 1
    data: EscalatedData


class TicketUnassignable(AssignmentEvent):
    event_type: Literal["assignment.unassignable"] = "assignment.unassignable"
    schema_version: Literal[1] = 1
    data: UnassignableData


ASSIGNMENT_EVENT_TYPES: tuple[type[AssignmentEvent], ...] = (TicketAssigned, TicketEscalated, TicketUnassignable)
AssignmentEventUnion = Annotated[
    TicketAssigned | TicketEscalated | TicketUnassignable, Field(discriminator="event_type")
]
