"""The one codec of the event stream: JSON bytes <-> event models, with upcasting of older schema versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .events import Envelope, TicketEvent, TicketEventUnion

#: Larger messages are refused rather than parsed: nothing legitimate in this contract comes near it.
MAX_EVENT_BYTES = 256 * 1024

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: (event_type, schema_version) -> a function that turns that payload into the next schema_version.
#: Chained until the current version is reached; old shapes are never edited in place.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class InvalidEvent(ValueError):
    """A message that is not an event of this contract; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(InvalidEvent):
    """A well-formed envelope whose event_type this version of the contract does not know (yet)."""


def encode(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each offending field, for dead-letter reasons and logs."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _parse(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"oversized: {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidEvent(f"not a JSON object but {type(payload).__name__}")
    return payload


def upcast(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring an older payload up to the current schema_version of its event type."""
    while (step := UPCASTERS.get((payload.get("event_type"), payload.get("schema_version")))) is not None:  # type: ignore[arg-type]
        payload = step(payload)
    return payload


_TICKET_EVENT = TypeAdapter(TicketEventUnion)
_TICKET_EVENT_TYPES = {
    member.model_fields["event_type"].default for member in TicketEvent.__subclasses__()
}


def decode_ticket_event(raw: bytes) -> TicketEvent:
    """Decode one message of tickets.events; raises InvalidEvent (or UnknownEventType) with the reason."""
    payload = upcast(_parse(raw))
    event_type = payload.get("event_type")
    if event_type not in _TICKET_EVENT_TYPES:
        try:
            Envelope.model_validate({key: value for key, value in payload.items() if key != "data"})
        except ValidationError as error:
            raise InvalidEvent(describe_validation_error(error)) from None
        raise UnknownEventType(f"unknown event_type {event_type!r}")
    try:
        return _TICKET_EVENT.validate_python(payload)  # type: ignore[return-value]
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None
