"""The topics as intake's memory: appending to tickets.events with Kafka's acknowledgement, and reading topics
back into state (tickets.events into the ledger, assignment.events into the desk)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from ticketstream_shared.contract import Envelope, InvalidEvent, TicketEvent, UnknownEventType, decode_event, encode
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import correlation_headers, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection

log = logging.getLogger(__name__)

EVENTS_APPENDED = Counter("ticketstream_intake_events_appended_total", "Events appended to tickets.events")
EVENTS_READ = Counter("ticketstream_intake_events_read_total", "Events folded into intake's state", ["topic"])
EVENTS_UNREADABLE = Counter(
    "ticketstream_intake_events_unreadable_total",
    "Messages intake skipped while reading a topic back (the consumer groups dead-letter them)",
    ["topic"],
)


class KafkaTicketLog:
    """Appends to tickets.events, keyed by ticket so each ticket's events keep their order in one partition.

    The producer is attached once the broker answers; the ledger appends only after it has read the log, which
    needs the broker too, so an append never finds it missing."""

    def __init__(self) -> None:
        self.producer: AIOKafkaProducer | None = None

    async def append(self, events: list[TicketEvent]) -> None:
        assert self.producer is not None, "appended before the broker answered"
        headers = correlation_headers()
        pending = [
            await self.producer.send(TICKETS_EVENTS, encode(event), key=event.ticket_id.encode(), headers=headers)
            for event in events
        ]
        await asyncio.gather(*pending)
        EVENTS_APPENDED.inc(len(events))


class LogPositions:
    """How far a topic has been read, per partition: the offset of the next message to read."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._moved = asyncio.Event()

    def advance(self, partition: int, next_offset: int) -> None:
        self._next[partition] = next_offset
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def reached(self, partition: int, offset: int) -> None:
        """Return once everything before `offset` in `partition` has been read."""
        while self._next.get(partition, 0) < offset:
            await self._moved.wait()


async def follow(
    consumer: AIOKafkaConsumer,
    topic: str,
    apply: Callable[[Envelope], None],
    caught_up: asyncio.Event,
    positions: LogPositions | None = None,
) -> None:
    """Read `topic` from the beginning through `apply`, set `caught_up` once the end it had when we started is
    reached, and keep following what its writers append (recording how far in `positions`)."""
    await wait_for_topics(consumer, [topic])
    consumer.subscribe([topic])  # without a group: every partition, from the beginning
    end_at_start: dict[TopicPartition, int] | None = None
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
        folded = 0
        for partition, records in batches.items():
            for record in records:
                folded += _apply(topic, record.value, apply)
            if positions is not None and records:
                positions.advance(partition.partition, records[-1].offset + 1)
        EVENTS_READ.labels(topic).inc(folded)  # per batch: 2 µs an event when per event
        if caught_up.is_set() or not consumer.assignment():
            continue
        if end_at_start is None:
            end_at_start = await consumer.end_offsets(list(consumer.assignment()))
        if all([await consumer.position(tp) >= end for tp, end in end_at_start.items()]):
            log.info("read to its end", extra={"topic": topic})
            tune_garbage_collection()  # the state just read back leaves the collector's walks
            caught_up.set()


def _apply(topic: str, raw: bytes | None, apply: Callable[[Envelope], None]) -> bool:
    """Whether the message was an event, and so folded."""
    try:
        event = decode_event(topic, raw or b"")
    except UnknownEventType:
        return False
    except InvalidEvent as error:
        EVENTS_UNREADABLE.labels(topic).inc()
        log.warning("skipped an unreadable event", extra={"topic": topic, "reason": error.reason})
        return False
    apply(event)
    return True
