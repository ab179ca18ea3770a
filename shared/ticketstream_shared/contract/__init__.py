"""The ticketstream event contract: models, topic names and codec. Depends on pydantic only."""

from .codec import (
    InvalidEvent,
    UnknownEventType,
    decode_assignment_event,
    decode_event,
    decode_sla_event,
    decode_ticket_event,
    encode,
)
from .events import (
    Channel,
    CommentAdded,
    CsatRecorded,
    Envelope,
    Priority,
    Role,
    TicketCreated,
    TicketEvent,
    TicketStatus,
    TicketStatusChanged,
    TicketUpdated,
    WorklogCorrected,
    WorklogRecorded,
    WorklogVoided,
)
from .topics import TOPICS, dead_letter_topic

__all__ = [
    "TOPICS",
    "Channel",
    "CommentAdded",
    "CsatRecorded",
    "Envelope",
    "InvalidEvent",
    "Priority",
    "Role",
    "TicketCreated",
    "TicketEvent",
    "TicketStatus",
    "TicketStatusChanged",
    "TicketUpdated",
    "UnknownEventType",
    "WorklogCorrected",
    "WorklogRecorded",
    "WorklogVoided",
    "dead_letter_topic",
    "decode_assignment_event",
    "decode_event",
    "decode_sla_event",
    "decode_ticket_event",
    "encode",
]
