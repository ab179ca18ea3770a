"""Event shapes of earlier schema versions, frozen as they were published. Nothing produces them any more; they
keep their JSON Schemas published for whoever still holds such events, and the codec upcasts them on read."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from .assignment import ASSIGNMENT_EVENT_TYPES, ROSTER_EVENT_TYPES, AssignmentEnvelopeV1, TeamLogEvent
from .events import TICKET_EVENT_TYPES, Frozen, Identifier, Role, TicketEnvelopeV1
from .knowledge import KNOWLEDGE_EVENT_TYPES
from .notify import DELIVERY_RECORD_TYPES, NOTIFY_CONFIG_EVENT_TYPES, DeliveryRecordV1, NotifyConfigEventV1
from .sla import SLA_CONFIG_EVENT_TYPES, SLA_EVENT_TYPES, SlaConfigEventV1, SlaEnvelopeV1


class CommentAddedDataV1(Frozen):
    comment_id: uuid.UUID
    author_id: Identifier
    author_role: Role
    body: str = Field(min_length=1, max_length=20_000)
    public: bool


class CommentAddedV1(TicketEnvelopeV1):
    """ticket.comment_added as of schema_version 1 (upcast by codec.comment_added_v1_to_v2)."""

    event_type: Literal["ticket.comment_added"] = "ticket.comment_added"
    schema_version: Literal[1] = 1
    data: CommentAddedDataV1


def _before_actors(model: type[BaseModel], envelope: type[BaseModel]) -> type[BaseModel]:
    """An event type as it was before its actor was recorded: the schema_version before the current one, its own
    fields but `actor`, on `envelope` (its base from before; upcast by codec.actor_not_recorded). Named and described
    as it was, so that its published JSON Schema stays as it was."""
    event_type, version = model.model_fields["event_type"].default, model.model_fields["schema_version"].default - 1
    fields: dict[str, Any] = {
        "event_type": (Literal[event_type], event_type),
        "schema_version": (Literal[version], version),
    }
    for name, field in model.model_fields.items():
        if name not in envelope.model_fields and name not in fields and name != "actor":
            fields[name] = (field.annotation, field)
    return create_model(model.__name__, __base__=envelope, __doc__=model.__doc__, **fields)


#: The event types that record their actor, and their envelope from before.
ACTED_EVENT_TYPES: tuple[tuple[tuple[type[BaseModel], ...], type[BaseModel]], ...] = (
    (TICKET_EVENT_TYPES, TicketEnvelopeV1),
    (SLA_EVENT_TYPES, SlaEnvelopeV1),
    (ASSIGNMENT_EVENT_TYPES, AssignmentEnvelopeV1),
    (ROSTER_EVENT_TYPES, TeamLogEvent),
    (SLA_CONFIG_EVENT_TYPES, SlaConfigEventV1),
    (KNOWLEDGE_EVENT_TYPES, Frozen),
    (NOTIFY_CONFIG_EVENT_TYPES, NotifyConfigEventV1),
    (DELIVERY_RECORD_TYPES, DeliveryRecordV1),
)

LEGACY_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    CommentAddedV1,
    *(_before_actors(model, envelope) for models, envelope in ACTED_EVENT_TYPES for model in models),
)
