"""Writing events as their services do: each to its topic (tickets.events, sla.events or assignment.events), keyed
by its ticket, in the order given, acknowledged by every in-sync replica."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from ticketstream_shared.contract import Envelope, encode
from ticketstream_shared.contract.assignment import AssignmentEvent
from ticketstream_shared.contract.sla import SlaEvent
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS


def topic_of(event: Envelope) -> str:
    if isinstance(event, SlaEvent):
        return SLA_EVENTS
    if isinstance(event, AssignmentEvent):
        return ASSIGNMENT_EVENTS
    return TICKETS_EVENTS


def publish(bootstrap: str, events: Sequence[Envelope]) -> None:
    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            for event in events:
                await producer.send(topic_of(event), encode(event), key=event.ticket_id.encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())
