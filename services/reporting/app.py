"""Composition root of the reporting service: the one place where Kafka, ClickHouse and HTTP are wired together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.consumer import EventConsumer
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.memory import tune_garbage_collection

from .api import reports_router
from .dashboard import dashboard_router
from .projector import Projector, decoders
from .settings import ReportingSettings
from .warehouse import Warehouse

#: A readiness probe waits no longer than this for ClickHouse, which may be busy with a large insert.
READINESS_TIMEOUT_SECONDS = 2.0


def build_app(settings: ReportingSettings, keys: ApiKeys) -> FastAPI:
    """The service as an ASGI app. Its lifespan opens ClickHouse (applying migrations), then consumes; on
    shutdown the consumer finishes the batch in hand, commits it and leaves its group, then ClickHouse closes."""
    warehouse = Warehouse(settings.clickhouse_dsn(), settings.clickhouse_migrations_dir)
    consumer = EventConsumer(
        settings,
        service="reporting",
        group_id=settings.consumer_group,
        decoders=decoders(),
        handle=Projector(warehouse).project,
        max_batch=settings.batch_size,
        max_wait_s=settings.batch_max_wait_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await warehouse.open()
        tune_garbage_collection()
        try:
            async with consumer.running():
                yield
        finally:
            await warehouse.close()

    async def readiness() -> dict[str, bool]:
        try:
            clickhouse = await asyncio.wait_for(warehouse.ping(), READINESS_TIMEOUT_SECONDS)
        except TimeoutError:
            clickhouse = False
        return {"clickhouse": clickhouse, "kafka": consumer.ready}

    app = create_service_app(service="reporting", keys=keys, readiness=readiness, lifespan=lifespan)
    app.include_router(reports_router(warehouse, app.state.principal))
    app.include_router(dashboard_router(app.state.principal))
    return app
