"""The sla service's composition root: its consumer group on tickets.events and its HTTP edge."""

from __future__ import annotations

from fastapi import FastAPI

from ticketstream_shared.contract import decode_ticket_event
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.consumer import Delivery, EventConsumer
from ticketstream_shared.runtime.http import consumer_service_app

from .settings import SlaSettings


async def keep_place(batch: list[Delivery]) -> None:
    """Until the SLA clocks (the SLA issue) land, the service only holds its place in the log:
    events are read, counted and committed, so the group, its lag and the dead-letter path are real from the start."""


def build_app(settings: SlaSettings, keys: ApiKeys) -> FastAPI:
    consumer = EventConsumer(
        settings,
        service="sla",
        group_id=settings.consumer_group,
        decoders={TICKETS_EVENTS: decode_ticket_event},
        handle=keep_place,
    )
    return consumer_service_app(service="sla", keys=keys, consumer=consumer)
