"""The one codec of the event stream: JSON bytes <-> event models, with upcasting of older schema versions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json

from .assignment import ASSIGNMENT_EVENT_TYPES, AssignmentEvent, AssignmentEventUnion
from .events import TICKET_EVENT_TYPES, Envelope, TicketEvent, TicketEventUnion
from .knowledge import ArticleChanged
from .legacy import ACTED_EVENT_TYPES, SEALABLE_EVENT_TYPES
from .notify import DeliveryRecord, DeliveryRecordUnion, NotifyConfigEvent, NotifyConfigEventUnion
from .sla import SLA_EVENT_TYPES, SlaConfigEvent, SlaConfigEventUnion, SlaEvent, SlaEventUnion
from .topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS, WRITER_OF

#: Larger messages are refused rather than parsed: nothing legitimate in this contract comes near it.
MAX_EVENT_BYTES = 256 * 1024

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def comment_added_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 said `public: true|false`; v2 says `visibility: "public"|"internal"`."""
    data = dict(payload.get("data") or {})
    if "public" in data:
        data["visibility"] = "public" if data.pop("public") else "internal"
    return {**payload, "schema_version": 2, "data": data}


def actor_not_recorded(payload: dict[str, Any]) -> dict[str, Any]:
    """An event written before actors were recorded: the next version, its actor unknown (None)."""
    return {**payload, "schema_version": payload["schema_version"] + 1, "actor": None}


def personal_fields_sealable(payload: dict[str, Any]) -> dict[str, Any]:
    """An event written before personal fields could be sealed: its plain text is valid in the next version."""
    return {**payload, "schema_version": payload["schema_version"] + 1}


#: (event_type, schema_version) -> a function that turns that payload into the next schema_version.
#: Chained until the current version is reached; old shapes are never edited in place. Every type that records its
#: actor upcasts from the shape legacy.py publishes for the version before.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("ticket.comment_added", 1): comment_added_v1_to_v2,
    **{
        (model.model_fields["event_type"].default, model.model_fields["schema_version"].default - 1): actor_not_recorded
        for models, _ in ACTED_EVENT_TYPES
        for model in models
    },
    **{
        (model.model_fields["event_type"].default, model.model_fields["schema_version"].default - 1): (
            personal_fields_sealable
        )
        for model in SEALABLE_EVENT_TYPES
    },
}


class InvalidEvent(ValueError):
    """A message that is not an event of this contract; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(InvalidEvent):
    """A well-formed envelope whose event_type this version of the contract does not know (yet)."""


def encode(event: BaseModel) -> bytes:
    """The event's (or any contract model's) JSON, as `model_dump_json` writes it, without its round trip through str
    (a few us an event)."""
    return event.__pydantic_serializer__.to_json(event)


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each offending field, for dead-letter reasons and logs."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_message(raw: bytes) -> dict[str, Any]:
    """A message's JSON object; InvalidEvent saying why (oversized, not JSON, not an object) otherwise."""
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


#: Every event type of the contract, by the topic it travels on (its one writer's topic).
EVENT_TYPES_BY_TOPIC: dict[str, tuple[type[Envelope], ...]] = {
    TICKETS_EVENTS: TICKET_EVENT_TYPES,
    SLA_EVENTS: SLA_EVENT_TYPES,
    ASSIGNMENT_EVENTS: ASSIGNMENT_EVENT_TYPES,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    TICKETS_EVENTS: TypeAdapter(TicketEventUnion),
    SLA_EVENTS: TypeAdapter(SlaEventUnion),
    ASSIGNMENT_EVENTS: TypeAdapter(AssignmentEventUnion),
}
_SLA_CONFIG_CHANGES: TypeAdapter[SlaConfigEvent] = TypeAdapter(SlaConfigEventUnion)
_NOTIFY_CONFIG_CHANGES: TypeAdapter[NotifyConfigEvent] = TypeAdapter(NotifyConfigEventUnion)
_DELIVERY_RECORDS: TypeAdapter[DeliveryRecord] = TypeAdapter(DeliveryRecordUnion)
#: The schema_version each event type is written in today, by topic.
_CURRENT_VERSIONS = {
    topic: {model.model_fields["event_type"].default: model.model_fields["schema_version"].default for model in models}
    for topic, models in EVENT_TYPES_BY_TOPIC.items()
}
_KNOWN_TYPES = {topic: set(versions) for topic, versions in _CURRENT_VERSIONS.items()}


def decode_event(topic: str, raw: bytes) -> Envelope:
    """Decode one message of an event topic; raises InvalidEvent (or UnknownEventType) with the reason."""
    if len(raw) <= MAX_EVENT_BYTES:
        try:  # the common case, in one pass of pydantic's JSON parser (2-3x faster than parse, then validate)
            return _ADAPTERS[topic].validate_json(raw)
        except ValidationError:
            pass  # an older schema_version, an unknown type, or garbage: the careful path says which
    payload = upcast(parse_message(raw))
    if payload.get("event_type") not in _KNOWN_TYPES[topic]:
        try:
            Envelope.model_validate({key: value for key, value in payload.items() if key != "data"})
        except ValidationError as error:
            raise InvalidEvent(describe_validation_error(error)) from None
        raise UnknownEventType(f"unknown event_type {payload.get('event_type')!r} on {topic}")
    try:
        return _ADAPTERS[topic].validate_python(payload)
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None


def decode_as_written(topic: str, raw: bytes) -> Envelope | None:
    """The event, if `raw` is one of `topic` exactly as the contract writes it today: the current schema_version,
    every value of its JSON type (strict: no coercion of "15" to 15); None otherwise, and decode_event says why or
    upcasts it. A consumer that hands the bytes on (reporting to ClickHouse) hands on such messages unchanged."""
    if len(raw) > MAX_EVENT_BYTES:
        return None
    try:
        return _ADAPTERS[topic].validate_json(raw, strict=True)
    except ValidationError:
        return None


def read_logged(topic: str, raw: bytes) -> dict[str, Any]:
    """An event read back by the service whose log `topic` is, written by that service (`WRITER_OF`: it validated
    the event when it wrote it): its JSON object, brought to the current schema_version, without building its model
    (about 2 us against decode_event's 5-6). Its fields are not checked: a reader that finds one missing or not as it
    reads it takes `read_checked` instead. Anything else goes through decode_event: an event another writer put on
    the topic, or what is not a JSON object of a type and schema_version this version knows; refused as decode_event
    refuses it, or, where its lax reading accepts it after all, read as decode_event makes it."""
    try:
        payload = from_json(raw) if len(raw) <= MAX_EVENT_BYTES else None
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("producer") == WRITER_OF[topic]:
        payload = upcast(payload)
        if payload.get("schema_version") == _CURRENT_VERSIONS[topic].get(payload.get("event_type")):
            return payload
    return read_checked(topic, raw)


def read_checked(topic: str, raw: bytes) -> dict[str, Any]:
    """The event as decode_event reads it, as the JSON its model writes: validated, every field there (a default
    filled in where the message left a field out). InvalidEvent (or UnknownEventType) saying why otherwise."""
    read: dict[str, Any] = from_json(encode(decode_event(topic, raw)))
    return read


class NotReadHere(UnknownEventType):
    """An event of a type its reader has nothing to do with: passed over, its body not parsed (nor judged)."""


#: The start of a message as `encode` writes every event: the event id, then the event type. A string with no quote
#: or backslash in it ends at the next quote, so the type this finds is the object's own, whatever follows.
_AS_ENCODED = re.compile(rb'\{"event_id":"[^"\\]{1,64}","event_type":"([^"\\]{1,128})"')


def event_type_as_encoded(raw: bytes) -> bytes | None:
    """The event_type of a message laid out as `encode` lays out events, read from its first bytes; None for any
    other layout (a reader decodes those whole)."""
    found = _AS_ENCODED.match(raw)
    return None if found is None else found.group(1)


def decoder_reading(topic: str, models: Iterable[type[Envelope]]) -> Callable[[bytes], Envelope]:
    """decode_event for a reader of `topic` that has something to do only with events of `models`: any other type
    raises NotReadHere, told from the message's first bytes where `encode` wrote it, so its body is neither parsed
    nor judged (its own readers dead-letter what is wrong with it)."""
    read = {model.model_fields["event_type"].default for model in models}
    passed_over = _KNOWN_TYPES[topic] - read
    passed_over_as_encoded = {kind.encode() for kind in passed_over}

    def decode(raw: bytes) -> Envelope:
        kind = event_type_as_encoded(raw)
        if kind in passed_over_as_encoded:
            raise NotReadHere(f"{kind.decode()} is not read here")  # type: ignore[union-attr]
        event = decode_event(topic, raw)
        if kind is None and event.event_type in passed_over:
            raise NotReadHere(f"{event.event_type} is not read here")
        return event

    return decode


def decode_ticket_event(raw: bytes) -> TicketEvent:
    return decode_event(TICKETS_EVENTS, raw)  # type: ignore[return-value]


def decode_sla_event(raw: bytes) -> SlaEvent:
    return decode_event(SLA_EVENTS, raw)  # type: ignore[return-value]


def decode_assignment_event(raw: bytes) -> AssignmentEvent:
    return decode_event(ASSIGNMENT_EVENTS, raw)  # type: ignore[return-value]


def decode_sla_config_change(raw: bytes) -> SlaConfigEvent:
    """One message of sla.config (read by sla, whose log it is, and by reporting, which splits hours by the same
    calendars); InvalidEvent with the reason (oversized, not JSON, wrong shape, unknown event type or
    schema_version) otherwise."""
    try:
        return _SLA_CONFIG_CHANGES.validate_python(upcast(parse_message(raw)))
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None


def decode_article_change(raw: bytes) -> ArticleChanged:
    """One message of knowledge.articles; InvalidEvent with the reason otherwise."""
    try:
        return ArticleChanged.model_validate(upcast(parse_message(raw)))
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None


def decode_notify_config_change(raw: bytes) -> NotifyConfigEvent:
    """One message of notify.config; InvalidEvent with the reason otherwise."""
    try:
        return _NOTIFY_CONFIG_CHANGES.validate_python(upcast(parse_message(raw)))
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None


def decode_delivery_record(raw: bytes) -> DeliveryRecord:
    """One message of notify.deliveries; InvalidEvent with the reason otherwise."""
    try:
        return _DELIVERY_RECORDS.validate_python(upcast(parse_message(raw)))
    except ValidationError as error:
        raise InvalidEvent(describe_validation_error(error)) from None
