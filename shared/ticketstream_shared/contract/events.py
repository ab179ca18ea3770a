"""The ticket events: the public, versioned contract other systems produce against and consume.

Every event is a frozen pydantic model: the envelope of product.md plus a typed `data`. Event types are named in
the past tense; a new shape of an existing type comes with a new `schema_version` and an upcaster (see codec.py),
never an edit in place.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from .personal import Personal

#: The moments a help desk records, with room on both sides for the deadline and business-hours arithmetic done on
#: them: a moment outside falls before year 1 or after 9999 somewhere downstream (a 500, or a consumer stopped).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _in_utc(moment: datetime) -> datetime:
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("cannot be represented in UTC") from None
    if not EARLIEST <= moment < LATEST:
        raise ValueError(f"must lie from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)")
    return moment


#: A moment with a time zone, normalised to UTC (RFC 3339 on the wire). Every model of the contract and of the
#: services' APIs uses it, so no moment that breaks UTC arithmetic gets past validation.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]

#: What an id may be made of: letters and digits first, then also . _ : @ -.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)]


def listed_once(value: list[str]) -> list[str]:
    """A list in which each item appears once; the repeated ones are named."""
    repeated = sorted({item for item in value if value.count(item) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return value


#: A service's id: an Identifier short enough that `service:<id>` is one too (the policy id of its clocks).
ServiceId = Annotated[str, Field(min_length=1, max_length=120, pattern=IDENTIFIER_PATTERN)]


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Channel(StrEnum):
    PORTAL = "portal"
    EMAIL = "email"
    PHONE = "phone"
    CHAT = "chat"
    MONITORING = "monitoring"
    API = "api"


class Role(StrEnum):
    """Who acts: the roles of API keys, also recorded on comments."""

    ADMIN = "admin"
    MANAGER = "manager"
    TECHNICIAN = "technician"
    REQUESTER = "requester"
    INTEGRATION = "integration"


class Frozen(BaseModel):
    # Tolerant reader: fields added later within a schema_version must not break older consumers.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Envelope(Frozen):
    """What every event on every topic carries (product.md, "Events")."""

    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: UtcDatetime
    ticket_id: Identifier
    client_id: Identifier
    aggregate_version: int | None = Field(
        default=None, ge=1, description="tickets.events only: 1, 2, 3... per ticket, no gaps."
    )
    producer: str = Field(min_length=1, description="The service that wrote the event, e.g. 'intake'.")
    correlation_id: str = Field(min_length=1, description="Carried from the request that caused the event.")
    request_id: str | None = Field(
        default=None,
        description="The Idempotency-Key or tickets.inbound request_id of the command that produced the event.",
    )


class KeyedRequest(Frozen):
    """What a request made under an Idempotency-Key (or tickets.inbound request_id) asked for, recorded on the
    events it caused: a retry asks for the same, and the same key asking for anything else is refused (409)."""

    caller: str = Field(min_length=1, description="Whose key it is: the API key's name, or 'inbound'.")
    operation: str = Field(min_length=1, description="e.g. change_status, add_comment, correct_worklog.")
    target: str = Field(min_length=1, description="What it acted on: the ticket, or ticket/worklogs/{id}.")
    fields: dict[str, str] = Field(
        description="A digest of each field of the request's body, so a retry with other values is told apart "
        "(and which field differs named) without the values themselves."
    )


class Actor(Frozen):
    """Who made a change: the API key (by its name, never the key itself), its role, and the person it belongs to.
    Recorded from the key, never from what the caller writes in the body."""

    key_name: str = Field(
        min_length=1,
        max_length=200,
        description="The API key's name; 'inbound' for a request on tickets.inbound; 'system:<service>' for a "
        "service's own decision (a clock's breach, an automatic assignment).",
    )
    role: Role | Literal["system"]
    subject: Identifier | None = Field(
        default=None, description="The person the key belongs to, if it names one (a requester's key always does)."
    )
    on_behalf_of: Identifier | None = Field(
        default=None,
        description="The person the change was made for, when that is not the key's own: a manager logging a "
        "technician's time, a mail gateway writing a requester's reply.",
    )

    @classmethod
    def system(cls, service: str) -> Actor:
        """A service deciding on its own."""
        return cls(key_name=f"system:{service}", role="system")

    def in_words(self) -> str:
        """ "maria (manager, key ops-lead), on behalf of ann" """
        if self.subject:
            who = f"{self.subject} ({self.role}, key {self.key_name})"
        else:
            who = f"key {self.key_name} ({self.role})"
        return f"{who}, on behalf of {self.on_behalf_of}" if self.on_behalf_of else who

    def acting_for(self, person: str) -> Actor:
        """This actor making a change in `person`'s name: on behalf of them, unless they are the key's own person."""
        return self if person == self.subject else self.model_copy(update={"on_behalf_of": person})


class TicketEnvelopeV1(Envelope):
    """A ticket event's envelope before actors were recorded (schema versions up to the ones of legacy.py)."""

    aggregate_version: int = Field(ge=1)
    request: KeyedRequest | None = Field(default=None, description="Set when the command came with a key.")


#: The envelope's actor, on every event and configuration change any service writes.
RecordedActor = Annotated[
    Actor | None,
    Field(
        description="Who made the change. None only on an event written before actors were recorded (upcast from "
        "an earlier schema_version)."
    ),
]


class TicketEvent(TicketEnvelopeV1):
    """An event of the ticket aggregate, written by intake only, to tickets.events."""

    actor: RecordedActor = None


# --- data of the ticket events ----------------------------------------------------------------------------------


#: Personal text (personal.py): plain within its limits, or sealed under its person's data key.
Title = Annotated[str, Personal(1, 200)]
Description = Annotated[str, Personal(0, 20_000)]
CommentBody = Annotated[str, Personal(1, 20_000)]
Note = Annotated[str, Personal(0, 2_000)]


class TicketCreatedData(Frozen):
    """schema_version 3: title and description are personal (the requester's)."""

    requester_id: Identifier
    title: Title
    description: Description = ""
    category: Identifier
    priority: Priority
    channel: Channel = Channel.API
    status: Literal[TicketStatus.NEW] = TicketStatus.NEW
    service_id: ServiceId | None = Field(
        default=None,
        description="The service of the catalogue the requester chose; none: the service its category belongs to.",
    )


class WorklogRecordedData(Frozen):
    """schema_version 3: the note is personal (the technician's)."""

    worklog_id: uuid.UUID
    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: Note = ""
    performed_at: UtcDatetime


class WorklogCorrectedData(Frozen):
    """The worklog's complete values after the correction (not a diff), so readers replace, never patch.
    schema_version 3: the note is personal (the technician's)."""

    worklog_id: uuid.UUID
    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: Note = ""
    performed_at: UtcDatetime
    reason: str = Field(min_length=1, max_length=2_000)


class WorklogVoidedData(Frozen):
    worklog_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=2_000)


class TicketFields(Frozen):
    """The fields of a ticket that can be changed after creation."""

    title: Title | None = None
    category: Identifier | None = None
    priority: Priority | None = None


class TicketUpdatedData(Frozen):
    """schema_version 3: titles are personal (the requester's)."""

    changes: TicketFields
    previous: TicketFields


class StatusChangedData(Frozen):
    from_status: TicketStatus
    to_status: TicketStatus
    reason: str = Field(default="", max_length=2_000)
    article_id: Identifier | None = Field(
        default=None, description="The knowledge article the requester solved it with themselves (self-service)."
    )


class Visibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


class CommentAddedData(Frozen):
    """schema_version 2: `visibility` replaced v1's boolean `public` (the codec upcasts v1 payloads). schema_version
    4: the body is personal (its author's)."""

    comment_id: uuid.UUID
    author_id: Identifier
    author_role: Role
    body: CommentBody
    visibility: Visibility

    @property
    def public(self) -> bool:
        """Whether the requester sees it."""
        return self.visibility is Visibility.PUBLIC


class CsatRecordedData(Frozen):
    """schema_version 3: the comment is personal (the requester's)."""

    rating: int = Field(ge=1, le=5)
    comment: Note = ""


class TicketCreated(TicketEvent):
    event_type: Literal["ticket.created"] = "ticket.created"
    schema_version: Literal[3] = 3
    data: TicketCreatedData


class WorklogRecorded(TicketEvent):
    event_type: Literal["ticket.worklog_recorded"] = "ticket.worklog_recorded"
    schema_version: Literal[3] = 3
    data: WorklogRecordedData


class WorklogCorrected(TicketEvent):
    event_type: Literal["ticket.worklog_corrected"] = "ticket.worklog_corrected"
    schema_version: Literal[3] = 3
    data: WorklogCorrectedData


class WorklogVoided(TicketEvent):
    event_type: Literal["ticket.worklog_voided"] = "ticket.worklog_voided"
    schema_version: Literal[2] = 2
    data: WorklogVoidedData


class TicketUpdated(TicketEvent):
    event_type: Literal["ticket.updated"] = "ticket.updated"
    schema_version: Literal[3] = 3
    data: TicketUpdatedData


class TicketStatusChanged(TicketEvent):
    event_type: Literal["ticket.status_changed"] = "ticket.status_changed"
    schema_version: Literal[2] = 2
    data: StatusChangedData


class CommentAdded(TicketEvent):
    event_type: Literal["ticket.comment_added"] = "ticket.comment_added"
    schema_version: Literal[4] = 4
    data: CommentAddedData


class CsatRecorded(TicketEvent):
    event_type: Literal["ticket.csat_recorded"] = "ticket.csat_recorded"
    schema_version: Literal[3] = 3
    data: CsatRecordedData


#: Every event type of tickets.events this version of the contract knows, told apart by `event_type`.
TicketEventUnion = Annotated[
    TicketCreated
    | TicketUpdated
    | TicketStatusChanged
    | CommentAdded
    | WorklogRecorded
    | WorklogCorrected
    | WorklogVoided
    | CsatRecorded,
    Field(discriminator="event_type"),
]

TICKET_EVENT_TYPES: tuple[type[TicketEvent], ...] = (
    TicketCreated,
    TicketUpdated,
    TicketStatusChanged,
    CommentAdded,
    WorklogRecorded,
    WorklogCorrected,
    WorklogVoided,
    CsatRecorded,
)
