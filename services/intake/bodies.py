"""What callers send: the bodies of intake's HTTP requests, which are also the `data` of tickets.inbound requests."""

from pydantic import BaseModel, ConfigDict, Field

from ticketstream_shared.contract import Channel, Priority, TicketStatus
from ticketstream_shared.contract.events import Identifier, UtcDatetime


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateTicketBody(Body):
    client_id: Identifier
    requester_id: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    category: Identifier
    priority: Priority
    channel: Channel = Channel.API


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
