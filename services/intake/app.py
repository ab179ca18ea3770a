"""Intake's composition root: the only place where Kafka, the clock and the HTTP app are wired together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import make_consumer, make_producer, start_when_reachable

from . import api
from .ledger import TicketLedger
from .log import KafkaTicketLog, follow_ticket_log
from .settings import IntakeSettings


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: IntakeSettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    event_log = KafkaTicketLog()
    ledger = TicketLedger(event_log)

    async def connect_and_follow() -> None:
        event_log.producer = await start_when_reachable(lambda: make_producer(settings, "intake"), "producer")
        consumer = await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="intake-ledger"), "ledger consumer"
        )
        try:
            await follow_ticket_log(consumer, ledger)
        finally:
            await consumer.stop()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        follower = asyncio.create_task(connect_and_follow(), name="follow-ticket-log")
        yield
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        if event_log.producer is not None:
            await event_log.producer.stop()  # flushes what is in flight

    def readiness() -> dict[str, bool]:
        return {"kafka": event_log.producer is not None, "ticket_log_read": ledger.caught_up.is_set()}

    app = create_service_app(service="intake", keys=keys, readiness=readiness, lifespan=lifespan)
    api.install(app, ledger, clock)
    return app
