"""Events of assignment.events, written by the assignment service only; key = ticket_id.

Every decision carries its reason in plain words ("least loaded among 3 on-shift tier-1 technicians with skill
network"), so a requester, a manager or another system can see why a ticket went where it went.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from .events import Envelope, Frozen, Identifier, UtcDatetime


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


# --- the team log (assignment.by_team): roster facts, keyed by team --------------------------------------------------
#
# Roster changes are not about one ticket, so they carry their own envelope (no ticket_id, client_id or
# aggregate_version). They travel on assignment.by_team, keyed by the team they concern (a category rule: by
# "category:<name>"), so that for one team the roster and the ticket work routed to it form one ordered log.


class TeamLogEvent(Frozen):
    """The envelope of every record of assignment.by_team."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    producer: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)


class TechnicianProfileData(Frozen):
    technician_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    team: Identifier
    tier: int = Field(ge=1, le=3)
    skills: tuple[Identifier, ...] = ()
    capacity: int = Field(ge=0, le=1000, description="Most open tickets the technician holds at once.")


class TechnicianProfiled(TeamLogEvent):
    """A technician joined the roster or their profile changed (PUT /v1/technicians/{id}); key = team."""

    event_type: Literal["assignment.technician_profiled"] = "assignment.technician_profiled"
    schema_version: Literal[1] = 1
    data: TechnicianProfileData


class TechnicianTransferredData(Frozen):
    technician_id: Identifier
    from_team: Identifier
    to_team: Identifier


class TechnicianTransferred(TeamLogEvent):
    """A technician left `from_team` for `to_team`; key = from_team, whose tickets of theirs go back to it."""

    event_type: Literal["assignment.technician_transferred"] = "assignment.technician_transferred"
    schema_version: Literal[1] = 1
    data: TechnicianTransferredData


class ShiftChangedData(Frozen):
    technician_id: Identifier
    team: Identifier
    on_shift: bool


class ShiftChanged(TeamLogEvent):
    """A technician came on or went off shift; key = team."""

    event_type: Literal["assignment.shift_changed"] = "assignment.shift_changed"
    schema_version: Literal[1] = 1
    data: ShiftChangedData


class CategoryRoutedData(Frozen):
    category: Identifier
    team: Identifier
    skill: Identifier = Field(description="The skill a ticket of this category needs (strategy skills).")


class CategoryRouted(TeamLogEvent):
    """Tickets of `category` go to `team` from now on; key = "category:<category>"."""

    event_type: Literal["assignment.category_routed"] = "assignment.category_routed"
    schema_version: Literal[1] = 1
    data: CategoryRoutedData


class TeamStrategyChosenData(Frozen):
    team: Identifier
    strategy: Strategy


class TeamStrategyChosen(TeamLogEvent):
    """The team distributes its tickets by `strategy` from now on (never manual); key = team."""

    event_type: Literal["assignment.team_strategy_chosen"] = "assignment.team_strategy_chosen"
    schema_version: Literal[1] = 1
    data: TeamStrategyChosenData


ROSTER_EVENT_TYPES: tuple[type[TeamLogEvent], ...] = (
    TechnicianProfiled,
    TechnicianTransferred,
    ShiftChanged,
    CategoryRouted,
    TeamStrategyChosen,
)
RosterEventUnion = TechnicianProfiled | TechnicianTransferred | ShiftChanged | CategoryRouted | TeamStrategyChosen
