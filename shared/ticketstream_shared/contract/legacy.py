"""Event shapes of earlier schema versions, frozen as they were published. Nothing produces them any more; they
keep their JSON Schemas published for whoever still holds such events, and the codec upcasts them on read."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from .assignment import (
    ASSIGNMENT_EVENT_TYPES,
    ROSTER_EVENT_TYPES,
    AssignmentEnvelopeV1,
    RosterChange,
    TeamLogEvent,
    TechnicianProfiled,
)
from .events import (
    TICKET_EVENT_TYPES,
    Channel,
    Frozen,
    Identifier,
    Priority,
    Role,
    ServiceId,
    TicketEnvelopeV1,
    TicketEvent,
    TicketStatus,
    UtcDatetime,
    Visibility,
)
from .knowledge import KNOWLEDGE_EVENT_TYPES
from .notify import (
    DELIVERY_RECORD_TYPES,
    NOTIFY_CONFIG_EVENT_TYPES,
    DeliveryRecord,
    DeliveryRecordV1,
    DeliveryScheduled,
    MailMessage,
    NotifyConfigEvent,
    NotifyConfigEventV1,
    PersonChanged,
    PersonData,
    WebhookPost,
)
from .personal import has_personal_fields
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


# --- ticket events' data before personal fields could be sealed (schema_version 2; comment_added 3) -------------


class TicketCreatedData(Frozen):
    requester_id: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    category: Identifier
    priority: Priority
    channel: Channel = Channel.API
    status: Literal[TicketStatus.NEW] = TicketStatus.NEW
    service_id: ServiceId | None = Field(
        default=None,
        description="The service of the catalogue the requester chose; none: the service its category belongs to.",
    )


class WorklogRecordedData(Frozen):
    worklog_id: uuid.UUID
    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: str = Field(default="", max_length=2_000)
    performed_at: UtcDatetime


class WorklogCorrectedData(Frozen):
    """The worklog's complete values after the correction (not a diff), so readers replace, never patch."""

    worklog_id: uuid.UUID
    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: str = Field(default="", max_length=2_000)
    performed_at: UtcDatetime
    reason: str = Field(min_length=1, max_length=2_000)


class TicketFields(Frozen):
    """The fields of a ticket that can be changed after creation."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    category: Identifier | None = None
    priority: Priority | None = None


class TicketUpdatedData(Frozen):
    changes: TicketFields
    previous: TicketFields


class CommentAddedData(Frozen):
    """schema_version 2: `visibility` replaced v1's boolean `public` (the codec upcasts v1 payloads)."""

    comment_id: uuid.UUID
    author_id: Identifier
    author_role: Role
    body: str = Field(min_length=1, max_length=20_000)
    visibility: Visibility

    @property
    def public(self) -> bool:
        return self.visibility is Visibility.PUBLIC


class CsatRecordedData(Frozen):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2_000)


class TechnicianProfileData(Frozen):
    technician_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    team: Identifier
    tier: int = Field(ge=1, le=3)
    skills: tuple[Identifier, ...] = ()
    capacity: int = Field(ge=0, le=1000, description="Most open tickets the technician holds at once.")


_PLAIN_DATA: dict[str, type[BaseModel]] = {
    "ticket.created": TicketCreatedData,
    "ticket.worklog_recorded": WorklogRecordedData,
    "ticket.worklog_corrected": WorklogCorrectedData,
    "ticket.updated": TicketUpdatedData,
    "ticket.comment_added": CommentAddedData,
    "ticket.csat_recorded": CsatRecordedData,
}


def _before_sealing(model: type[BaseModel], base: type[BaseModel], **plain: Any) -> type[BaseModel]:
    """An event type as it was before its personal fields could be sealed: the schema_version before the current
    one, on `base`, with the fields in `plain` as they were, all in plain text (upcast by
    codec.personal_fields_sealable)."""
    event_type, version = model.model_fields["event_type"].default, model.model_fields["schema_version"].default - 1
    fields: dict[str, Any] = {
        name: (field.annotation, field) for name, field in model.model_fields.items() if name not in base.model_fields
    }
    return create_model(
        model.__name__,
        __base__=base,
        __doc__=model.__doc__,
        **{
            **fields,
            "event_type": (Literal[event_type], event_type),
            "schema_version": (Literal[version], version),
            **{name: (annotation, ...) for name, annotation in plain.items()},
        },
    )


def _data_model(event_type: type[BaseModel]) -> type[BaseModel]:
    data = event_type.model_fields["data"].annotation
    assert isinstance(data, type) and issubclass(data, BaseModel), f"{event_type.__name__}'s data is not a model"
    return data


#: The event types whose personal fields may be sealed (their current version - 1 is the same, in plain text).
SEALABLE_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    *(model for model in TICKET_EVENT_TYPES if has_personal_fields(_data_model(model))),
    PersonChanged,
    DeliveryScheduled,
    TechnicianProfiled,
)
_PLAIN_TICKET_EVENT_TYPES = tuple(
    _before_sealing(model, TicketEvent, data=_PLAIN_DATA[model.model_fields["event_type"].default])
    if model in SEALABLE_EVENT_TYPES
    else model
    for model in TICKET_EVENT_TYPES
)
_PLAIN_NOTIFY_CONFIG_EVENT_TYPES = tuple(
    _before_sealing(model, NotifyConfigEvent, data=PersonData) if model is PersonChanged else model
    for model in NOTIFY_CONFIG_EVENT_TYPES
)
_PLAIN_DELIVERY_RECORD_TYPES = tuple(
    _before_sealing(model, DeliveryRecord, content=WebhookPost | MailMessage) if model is DeliveryScheduled else model
    for model in DELIVERY_RECORD_TYPES
)
_PLAIN_ROSTER_EVENT_TYPES = tuple(
    _before_sealing(model, RosterChange, data=TechnicianProfileData) if model is TechnicianProfiled else model
    for model in ROSTER_EVENT_TYPES
)
_BEFORE_SEALING = tuple(
    model
    for model in (
        *_PLAIN_TICKET_EVENT_TYPES,
        *_PLAIN_NOTIFY_CONFIG_EVENT_TYPES,
        *_PLAIN_DELIVERY_RECORD_TYPES,
        *_PLAIN_ROSTER_EVENT_TYPES,
    )
    if model not in (*TICKET_EVENT_TYPES, *NOTIFY_CONFIG_EVENT_TYPES, *DELIVERY_RECORD_TYPES, *ROSTER_EVENT_TYPES)
)


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
    (_PLAIN_TICKET_EVENT_TYPES, TicketEnvelopeV1),
    (SLA_EVENT_TYPES, SlaEnvelopeV1),
    (ASSIGNMENT_EVENT_TYPES, AssignmentEnvelopeV1),
    (_PLAIN_ROSTER_EVENT_TYPES, TeamLogEvent),
    (SLA_CONFIG_EVENT_TYPES, SlaConfigEventV1),
    (KNOWLEDGE_EVENT_TYPES, Frozen),
    (_PLAIN_NOTIFY_CONFIG_EVENT_TYPES, NotifyConfigEventV1),
    (_PLAIN_DELIVERY_RECORD_TYPES, DeliveryRecordV1),
)

LEGACY_EVENT_TYPES: tuple[type[BaseModel], ...] = (
    CommentAddedV1,
    *_BEFORE_SEALING,
    *(_before_actors(model, envelope) for models, envelope in ACTED_EVENT_TYPES for model in models),
)
