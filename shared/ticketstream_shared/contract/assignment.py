"""Events of assignment.events, written by the assignment service only; key = ticket_id.

Every decision carries its reason in plain words ("least loaded among 3 on-shift tier-1 technicians with skill
network"), so a requester, a manager or another system can see why a ticket went where it went.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from .events import Envelope, Frozen, Identifier, RecordedActor, UtcDatetime
from .personal import Personal

#: A technician's name: personal, so sealed under their data key where a master key is set.
TechnicianName = Annotated[str, Personal(1, 200)]


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


class AssignmentEnvelopeV1(Envelope):
    """An assignment's envelope before actors were recorded."""

    aggregate_version: None = None


class AssignmentEvent(AssignmentEnvelopeV1):
    """A decision of assignment: its own (system:assignment), or a person's by hand (their key)."""

    actor: RecordedActor = None


class TicketAssigned(AssignmentEvent):
    event_type: Literal["assignment.assigned"] = "assignment.assigned"
    schema_version: Literal[2] = 2
    data: AssignedData


class TicketEscalated(AssignmentEvent):
    event_type: Literal["assignment.escalated"] = "assignment.escalated"
    schema_version: Literal[2] = 2
    data: EscalatedData


class TicketUnassignable(AssignmentEvent):
    event_type: Literal["assignment.unassignable"] = "assignment.unassignable"
    schema_version: Literal[2] = 2
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


class RosterChange(TeamLogEvent):
    """A change of the roster or of routing, made by a person through assignment's HTTP edge."""

    actor: RecordedActor = None


class TechnicianProfileData(Frozen):
    technician_id: Identifier
    name: TechnicianName
    team: Identifier
    tier: int = Field(ge=1, le=3)
    skills: tuple[Identifier, ...] = ()
    capacity: int = Field(ge=0, le=1000, description="Most open tickets the technician holds at once.")


class TechnicianProfiled(RosterChange):
    """A technician joined the roster or their profile changed (PUT /v1/technicians/{id}); key = team."""

    event_type: Literal["assignment.technician_profiled"] = "assignment.technician_profiled"
    schema_version: Literal[3] = 3
    data: TechnicianProfileData


class TechnicianTransferredData(Frozen):
    technician_id: Identifier
    from_team: Identifier
    to_team: Identifier


class TechnicianTransferred(RosterChange):
    """A technician left `from_team` for `to_team`; key = from_team, whose tickets of theirs go back to it."""

    event_type: Literal["assignment.technician_transferred"] = "assignment.technician_transferred"
    schema_version: Literal[2] = 2
    data: TechnicianTransferredData


class ShiftChangedData(Frozen):
    technician_id: Identifier
    team: Identifier
    on_shift: bool


class ShiftChanged(RosterChange):
    """A technician came on or went off shift; key = team."""

    event_type: Literal["assignment.shift_changed"] = "assignment.shift_changed"
    schema_version: Literal[2] = 2
    data: ShiftChangedData


class CategoryRoutedData(Frozen):
    category: Identifier
    team: Identifier
    skill: Identifier = Field(description="The skill a ticket of this category needs (strategy skills).")


class CategoryRouted(RosterChange):
    """Tickets of `category` go to `team` from now on; key = "category:<category>"."""

    event_type: Literal["assignment.category_routed"] = "assignment.category_routed"
    schema_version: Literal[2] = 2
    data: CategoryRoutedData


class TeamStrategyChosenData(Frozen):
    team: Identifier
    strategy: Strategy


class TeamStrategyChosen(RosterChange):
    """The team distributes its tickets by `strategy` from now on (never manual); key = team."""

    event_type: Literal["assignment.team_strategy_chosen"] = "assignment.team_strategy_chosen"
    schema_version: Literal[2] = 2
    data: TeamStrategyChosenData


ROSTER_EVENT_TYPES: tuple[type[RosterChange], ...] = (
    TechnicianProfiled,
    TechnicianTransferred,
    ShiftChanged,
    CategoryRouted,
    TeamStrategyChosen,
)
RosterEventUnion = TechnicianProfiled | TechnicianTransferred | ShiftChanged | CategoryRouted | TeamStrategyChosen
