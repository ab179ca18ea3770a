"""The ticket work on the team log (assignment.by_team): internal records of this service, not public contract.

The router re-keys tickets.events and sla.events by team into these; the team's owner records its decisions
(`OutcomeRecorded`) on the same log, so another process can follow the team without deciding for it. The
roster events, which other systems may read, are in the shared contract (TeamLogEvent and its subclasses).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, get_args

from pydantic import Field, TypeAdapter, ValidationError

from ticketstream_shared.contract import Actor, InvalidEvent, Priority, TicketStatus, UnknownEventType
from ticketstream_shared.contract.assignment import (
    ROSTER_EVENT_TYPES,
    CategoryRouted,
    RosterEventUnion,
    Strategy,
    TeamLogEvent,
    TechnicianTransferred,
)
from ticketstream_shared.contract.codec import (
    MAX_EVENT_BYTES,
    describe_validation_error,
    encode,
    parse_message,
    upcast,
)
from ticketstream_shared.contract.events import Frozen, Identifier

PRODUCER = "assignment"
#: The actor of assignment's own decisions.
ACTOR = Actor.system(PRODUCER)


class TicketSnapshot(Frozen):
    ticket_id: Identifier
    client_id: Identifier
    priority: Priority
    status: TicketStatus
    category: Identifier
    skill: Identifier
    tier: int = Field(default=1, ge=1)
    version: int = Field(ge=1)
    #: The service the ticket names, if it names one (ticket.created); else its category's counts.
    service_id: Identifier | None = None
    #: Why the team has it when no routing rule of its category said so, in words for the assignment's reason.
    routed_as: str = ""


class RoutedData(Frozen):
    team: Identifier
    ticket: TicketSnapshot


class TicketRouted(TeamLogEvent):
    """A ticket now belongs to `team` (created, or its category moved it)."""

    event_type: Literal["assignment.ticket_routed"] = "assignment.ticket_routed"
    schema_version: Literal[1] = 1
    data: RoutedData


class ParkedData(Frozen):
    category: Identifier = Field(description="The category it waits under (the record's key).")
    ticket: TicketSnapshot


class TicketParked(TeamLogEvent):
    """No team takes the ticket's category yet: it waits under that category (key "category:<category>", with the
    category's rules) until a rule routes it. Sent again with the newer snapshot when the ticket changes while it
    waits; a snapshot of another category says it left for that one."""

    event_type: Literal["assignment.ticket_parked"] = "assignment.ticket_parked"
    schema_version: Literal[1] = 1
    data: ParkedData


class TicketRef(Frozen):
    team: Identifier
    ticket_id: Identifier


class TicketWithdrawn(TeamLogEvent):
    event_type: Literal["assignment.ticket_withdrawn"] = "assignment.ticket_withdrawn"
    schema_version: Literal[1] = 1
    data: TicketRef


class StatusMovedData(TicketRef):
    status: TicketStatus
    version: int = Field(ge=1)


class TicketStatusMoved(TeamLogEvent):
    event_type: Literal["assignment.ticket_status_moved"] = "assignment.ticket_status_moved"
    schema_version: Literal[1] = 1
    data: StatusMovedData


class ReprioritisedData(TicketRef):
    priority: Priority
    version: int = Field(ge=1)


class TicketReprioritised(TeamLogEvent):
    event_type: Literal["assignment.ticket_reprioritised"] = "assignment.ticket_reprioritised"
    schema_version: Literal[1] = 1
    data: ReprioritisedData


class EscalationDueData(TicketRef):
    reason: str = Field(min_length=1)
    trigger_event_id: uuid.UUID


class EscalationDue(TeamLogEvent):
    event_type: Literal["assignment.escalation_due"] = "assignment.escalation_due"
    schema_version: Literal[1] = 1
    data: EscalationDueData


class ManualAssignmentData(TicketRef):
    technician_id: Identifier
    assigned_by: Identifier
    #: The key that asked, recorded as the actor of the assignment (records before it have none).
    actor: Actor | None = None


class ManualAssignmentRequested(TeamLogEvent):
    event_type: Literal["assignment.manual_requested"] = "assignment.manual_requested"
    schema_version: Literal[1] = 1
    data: ManualAssignmentData


class OutcomeData(TicketRef):
    decided_by: str = Field(min_length=1, description="The process instance that decided (it skips its own).")
    assigned: bool
    technician_id: Identifier | None = Field(default=None, description="Who holds the ticket after the decision.")
    tier: int | None = None
    strategy: Strategy | None = None
    reason: str
    previous_technician_id: Identifier | None = None


class OutcomeRecorded(TeamLogEvent):
    """The owner's decision for a waiting ticket: assigned to technician_id, or nobody eligible (then
    technician_id is whoever keeps it meanwhile)."""

    event_type: Literal["assignment.outcome_recorded"] = "assignment.outcome_recorded"
    schema_version: Literal[1] = 1
    data: OutcomeData


WorkRecord = (
    TicketRouted | TicketParked | TicketWithdrawn | TicketStatusMoved | TicketReprioritised | EscalationDue
    | ManualAssignmentRequested | OutcomeRecorded
)  # fmt: skip
TeamLogRecord = Annotated[RosterEventUnion | WorkRecord, Field(discriminator="event_type")]
_RECORDS: TypeAdapter[TeamLogRecord] = TypeAdapter(TeamLogRecord)
_RECORD_TYPES: dict[str, type[TeamLogEvent]] = {
    model.model_fields["event_type"].default: model for model in (*ROSTER_EVENT_TYPES, *get_args(WorkRecord))
}


def decode_team_record(raw: bytes) -> TeamLogEvent:
    """One record of the team log; raises InvalidEvent with the reason, or UnknownEventType for a well-formed
    record of a type a newer version of this service writes (skipped, as every consumer skips those)."""
    if len(raw) <= MAX_EVENT_BYTES:
        try:  # the common case, in one pass of pydantic's JSON parser
            return _RECORDS.validate_json(raw)
        except ValidationError:
            pass  # the careful path says why
    payload = upcast(parse_message(raw))  # a roster change from before actors were recorded, say
    model = _RECORD_TYPES.get(payload.get("event_type"))  # type: ignore[arg-type]
    try:
        if model is None:
            TeamLogEvent.model_validate({key: value for key, value in payload.items() if key != "data"})
            raise UnknownEventType(f"unknown event_type {payload.get('event_type')!r} on the team log")
        if payload.get("schema_version") != model.model_fields["schema_version"].default:
            raise InvalidEvent(f"unknown schema_version {payload.get('schema_version')!r} of {payload['event_type']}")
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None


class OwnRecords:
    """The team-log records this process wrote and has not read back yet, by their bytes. Every process reads the
    whole team log, its own records too, and one found here is the record it wrote: decoding it again cost 6% of a
    worker's CPU. A record's bytes say all it holds, so the same bytes are the same record. Bounded: one that never
    comes back (its send failed) is forgotten once `limit` newer ones wait."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._waiting: dict[bytes, TeamLogEvent] = {}

    def encode(self, record: TeamLogEvent) -> bytes:
        raw = encode(record)
        self._waiting[raw] = record
        if len(self._waiting) > self._limit:
            del self._waiting[next(iter(self._waiting))]
        return raw

    def decode(self, raw: bytes) -> TeamLogEvent:
        """The record of `raw`, as `decode_team_record` reads it."""
        record = self._waiting.pop(raw, None)
        return record if record is not None else decode_team_record(raw)

    def __len__(self) -> int:
        return len(self._waiting)


def team_key(record: TeamLogEvent) -> str:
    """The partitioning key: the team the record is about (a transfer: the team left), or the category of a rule
    or of a ticket waiting for one."""
    if isinstance(record, CategoryRouted | TicketParked):
        return f"category:{record.data.category}"
    if isinstance(record, TechnicianTransferred):
        return record.data.from_team
    return record.data.team  # type: ignore[attr-defined]  # every other record names its team
