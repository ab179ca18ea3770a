"""What reporting reads, and how a batch of it goes to ClickHouse: the messages as read, in one RowBinary insert into
the `inbox` table, whose views do the projection (deploy/clickhouse/011_projection_in_clickhouse.sql).

Each message is validated against the contract first, so only events reach the views, and the views need know only
one shape of each: a message written exactly as the contract writes it today goes as read; any other that the
contract accepts (an older schema_version, a coerced value, an event type this version does not know) goes with the
event re-encoded beside it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby

from ticketstream_shared.contract import Envelope, UnknownEventType, decode_as_written, decode_event, encode
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Decoder, Delivery

#: The topics reporting reads.
TOPICS_READ = (TICKETS_EVENTS, SLA_EVENTS, ASSIGNMENT_EVENTS)

#: inbox's columns, in the order of each RowBinary row.
INBOX_COLUMNS = ("topic", "partition", "offset", "message", "event")


@dataclass(frozen=True, slots=True)
class Arrival:
    """A message of a topic reporting reads, validated: its event, and that event re-encoded (`current`) when the
    message does not hold it as the contract writes it today (b"" when it does)."""

    event: Envelope
    current: bytes

    @property
    def correlation_id(self) -> str:
        return self.event.correlation_id


def topic_decoder(topic: str) -> Decoder:
    """The decoder of one topic: an Arrival of the event, or of its envelope for an event type this contract does
    not know yet (ticket_events keeps it, so that a later version can report on it). Raises InvalidEvent (the
    message goes to the DLQ) otherwise."""

    def decode(raw: bytes) -> Arrival:
        if (event := decode_as_written(topic, raw)) is not None:
            return Arrival(event, b"")
        try:
            event = decode_event(topic, raw)
        except UnknownEventType:
            event = Envelope.model_validate_json(raw)
        return Arrival(event, encode(event))

    return decode


def decoders() -> dict[str, Decoder]:
    return {topic: topic_decoder(topic) for topic in TOPICS_READ}


def _length(size: int) -> bytes:
    """RowBinary's length prefix of a String: LEB128."""
    prefix = bytearray()
    while size >= 0x80:
        prefix.append(size & 0x7F | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix)


_PLACE = struct.Struct("<HQ")  # partition UInt16, offset UInt64
_NO_EVENT = _length(0)


def inbox_rows(deliveries: Iterable[Delivery]) -> bytes:
    """The RowBinary rows of `deliveries` for inbox (INBOX_COLUMNS); each delivery's event is an Arrival and its
    record carries the message as read (a delivery without one, as a test makes, goes as its event encoded)."""
    topics: dict[str, bytes] = {}
    rows = []
    for delivery in deliveries:
        topic = topics.get(delivery.topic)
        if topic is None:
            name = delivery.topic.encode()
            topic = topics[delivery.topic] = _length(len(name)) + name
        arrival: Arrival = delivery.event
        message = delivery.record.value if delivery.record is not None and delivery.record.value else b""
        current = arrival.current if message else b""
        message = message or encode(arrival.event)
        rows.append(
            topic
            + _PLACE.pack(delivery.partition, delivery.offset)
            + _length(len(message))
            + message
            + (_length(len(current)) + current if current else _NO_EVENT)
        )
    return b"".join(rows)


def deduplication_token(deliveries: Sequence[Delivery]) -> str:
    """What the batch is, for ClickHouse's insert deduplication: each partition's first and last offset in it, so
    an insert repeated because its outcome was unknown is recognised (topic:partition:first-last, comma-separated)."""
    places = sorted((delivery.topic, delivery.partition, delivery.offset) for delivery in deliveries)
    ranges = []
    for (topic, partition), offsets in groupby(places, key=lambda place: place[:2]):
        numbers = [offset for _, _, offset in offsets]
        ranges.append(f"{topic}:{partition}:{numbers[0]}-{numbers[-1]}")
    return ",".join(ranges)
