"""What other systems send to ticketstream: the bodies of intake's HTTP requests, which are also the `data` of
requests on tickets.inbound (`InboundRequest`)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .events import Channel, Identifier, Priority, ServiceId, TicketStatus, UtcDatetime


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _NewTicket(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    category: Identifier
    priority: Priority
    channel: Channel = Channel.API
    service_id: ServiceId | None = Field(
        default=None, description="A service of the catalogue (GET /v1/catalog/services); none: its category's."
    )


class CreateTicketBody(_NewTicket):
    """A new ticket on tickets.inbound."""

    client_id: Identifier
    requester_id: Identifier


class NewTicketBody(_NewTicket):
    """`POST /v1/tickets`: as on tickets.inbound, but the client and the requester may be left to the key that
    sends it, when it names them (a requester's key names both; a key scoped to a client, its client)."""

    client_id: Identifier | None = Field(default=None, description="Required unless the key is scoped to a client.")
    requester_id: Identifier | None = Field(default=None, description="Required unless the key is a requester's.")


class SelfSolvedBody(Body):
    article_id: Identifier = Field(description="The published knowledge article that solved the problem.")


class UpdateTicketBody(Body):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    category: Identifier | None = None
    priority: Priority | None = None


class StatusBody(Body):
    status: TicketStatus
    reason: str = Field(default="", max_length=2_000)


class CommentBody(Body):
    author_id: Identifier
    body: str = Field(min_length=1, max_length=20_000)
    public: bool


class WorklogBody(Body):
    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: str = Field(default="", max_length=2_000)
    performed_at: UtcDatetime | None = None


class CorrectionBody(Body):
    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: str = Field(default="", max_length=2_000)
    performed_at: UtcDatetime
    reason: str = Field(min_length=1, max_length=2_000)


class VoidBody(Body):
    reason: str = Field(min_length=1, max_length=2_000)


class CsatBody(Body):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2_000)


#: Each request type of tickets.inbound and the body its `data` carries.
BODY_OF: dict[str, type[Body]] = {
    "create_ticket": CreateTicketBody,
    "add_comment": CommentBody,
    "change_status": StatusBody,
    "update_ticket": UpdateTicketBody,
    "add_worklog": WorklogBody,
}


class InboundRequest(BaseModel):
    """A request on tickets.inbound. request_id makes it idempotent: resending it changes nothing. A ticket
    created this way gets an id derived from its request_id, and its ticket.created event carries the
    request_id, so the sender can tell its ticket. occurred_at in the past imports history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["create_ticket", "add_comment", "change_status", "update_ticket", "add_worklog"]
    request_id: str = Field(min_length=1, max_length=200)
    ticket_id: Identifier | None = Field(default=None, description="Required for every type but create_ticket.")
    occurred_at: UtcDatetime | None = Field(default=None, description="At most 5 minutes ahead of our clock.")
    data: dict[str, Any] = Field(description="The body of the matching HTTP request (BODY_OF[type]).")


#: uuid5 namespace of ticket ids derived from a request key (HTTP Idempotency-Key or tickets.inbound request_id).
TICKET_IDS = uuid.UUID("4d0a3f52-7a0c-4b57-9b1e-1f3c0f6d2a01")
#: The scope of ticket ids created through tickets.inbound.
INBOUND_SCOPE = "inbound"


def ticket_id_for(scope: str, request_key: str) -> str:
    """The id of the ticket one keyed creation request makes: the same on every retry."""
    return str(uuid.uuid5(TICKET_IDS, f"{scope}\x00{request_key}"))


def inbound_ticket_id(request_id: str) -> str:
    """The id of the ticket a create_ticket request on tickets.inbound makes. Key every request about that ticket
    (the create_ticket included) with this id, so they stay in one partition and in order."""
    return ticket_id_for(INBOUND_SCOPE, request_id)
