"""tickets.events as the ledger's log: appending with Kafka's acknowledgement, and reading it back into state."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from ticketstream_shared.contract import (
    InvalidEvent,
    TicketEvent,
    UnknownEventType,
    decode_ticket_event,
    encode,
)
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import correlation_headers, wait_for_topics

from .ledger import TicketLedger

log = logging.getLogger(__name__)

EVENTS_APPENDED = Counter("ticketstream_intake_events_appended_total", "Events appended to tickets.events")
EVENTS_READ = Counter("ticketstream_intake_events_read_total", "Events of tickets.events folded into the ledger")
EVENTS_UNREADABLE = Counter(
    "ticketstream_intake_events_unreadable_total",
    "Messages of tickets.events the ledger skipped (the consumer groups dead-letter them)",
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
            await self.producer.send(
                TICKETS_EVENTS, encode(event), key=event.ticket_id.encode(), headers=headers
            )
            for event in events
        ]
        await asyncio.gather(*pending)
        EVENTS_APPENDED.inc(len(events))


async def follow_ticket_log(consumer: AIOKafkaConsumer, ledger: TicketLedger) -> None:
    """Read tickets.events from the beginning into the ledger, mark it caught up once the end seen at start-up
    is reached (the service is ready then), and keep following what other writers append."""
    await wait_for_topics(consumer, [TICKETS_EVENTS])
    consumer.subscribe([TICKETS_EVENTS])  # without a group: every partition, from the beginning
    end_at_start: dict[TopicPartition, int] | None = None
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
        for records in batches.values():
            for record in records:
                _fold(ledger, record.value)
        if ledger.caught_up.is_set() or not consumer.assignment():
            continue
        if end_at_start is None:
            end_at_start = await consumer.end_offsets(list(consumer.assignment()))
        if all([await consumer.position(tp) >= end for tp, end in end_at_start.items()]):
            log.info("ticket log read to its end", extra={"tickets": len(ledger)})
            ledger.caught_up.set()


def _fold(ledger: TicketLedger, raw: bytes | None) -> None:
    try:
        event = decode_ticket_event(raw or b"")
    except UnknownEventType:
        return
    except InvalidEvent as error:
        EVENTS_UNREADABLE.inc()
        log.warning("skipped an unreadable event", extra={"reason": error.reason})
        return
    ledger.apply(event)
    EVENTS_READ.inc()
