"""Intake's composition root: the only place where Kafka, the clock and the HTTP app are wired together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, TICKETS_EVENTS, TICKETS_INBOUND
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.consumer import EventConsumer
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import make_consumer, make_producer, start_when_reachable

from . import api
from .desk import Desk
from .domain import LifecycleRules
from .inbound import InboundRequests, decode_request
from .ledger import TicketLedger
from .log import KafkaTicketLog, follow
from .settings import IntakeSettings


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: IntakeSettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    event_log = KafkaTicketLog()
    desk = Desk(TicketLedger(event_log))
    rules = LifecycleRules(reopen_window=timedelta(days=settings.reopen_window_days))
    assignments_read = asyncio.Event()
    inbound = EventConsumer(
        settings,
        service="intake",
        group_id=settings.inbound_group,
        decoders={TICKETS_INBOUND: decode_request},
        handle=InboundRequests(desk, clock, rules).handle,
    )

    async def read_back(topic: str, apply: Callable, caught_up: asyncio.Event, name: str) -> None:
        consumer = await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id=f"intake-{name}"), f"{name} reader"
        )
        try:
            await follow(consumer, topic, apply, caught_up)
        finally:
            await consumer.stop()

    async def connect() -> None:
        event_log.producer = await start_when_reachable(lambda: make_producer(settings, "intake"), "producer")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(connect(), name="connect"),
            asyncio.create_task(read_back(TICKETS_EVENTS, desk.ledger.apply, desk.ledger.caught_up, "ledger")),
            asyncio.create_task(read_back(ASSIGNMENT_EVENTS, desk.note_assignment, assignments_read, "assignments")),
        ]
        async with inbound.running():
            yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if event_log.producer is not None:
            await event_log.producer.stop()  # flushes what is in flight

    def readiness() -> dict[str, bool]:
        return {
            "kafka": event_log.producer is not None,
            "ticket_log_read": desk.ledger.caught_up.is_set(),
            "assignments_read": assignments_read.is_set(),
            "inbound": inbound.ready,
        }

    app = create_service_app(service="intake", keys=keys, readiness=readiness, lifespan=lifespan)
    api.install(app, desk, clock, rules)
    return app
