"""Event shapes of earlier schema versions, frozen as they were published. Nothing produces them any more; they
keep their JSON Schemas published for whoever still holds such events, and the codec upcasts them on read."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from .events import Frozen, Identifier, Role, TicketEvent


class CommentAddedDataV1(Frozen):
    comment_id: uuid.UUID
    author_id: Identifier
    author_role: Role
    body: str = Field(min_length=1, max_length=20_000)
    public: bool


class CommentAddedV1(TicketEvent):
    """ticket.comment_added as of schema_version 1 (upcast by codec.comment_added_v1_to_v2)."""

    event_type: Literal["ticket.comment_added"] = "ticket.comment_added"
    schema_version: Literal[1] = 1
    data: CommentAddedDataV1


LEGACY_EVENT_TYPES: tuple[type[TicketEvent], ...] = (CommentAddedV1,)
