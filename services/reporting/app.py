"""Composition root of the reporting service: the one place where Kafka, ClickHouse and HTTP are wired together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.consumer import Delivery, EventConsumer, Rejections
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import kafka_is_down
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.presence import Membership, Presence
from ticketstream_shared.runtime.retry import while_down
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails

from . import api
from .business_hours import ClientCalendars
from .inbox import decoders
from .projector import BATCHES_IN_HAND, YOUNG_OBJECTS_BEFORE_A_COLLECTION, Projector
from .queries import Services
from .settings import ReportingSettings
from .sla_config import sla_config_log
from .warehouse import Warehouse

#: A readiness probe waits no longer than this for ClickHouse, which may be busy with a large insert.
READINESS_TIMEOUT_SECONDS = 2.0


def build_app(settings: ReportingSettings, keys: ApiKeys) -> FastAPI:
    """The service as an ASGI app. Its lifespan opens ClickHouse (applying migrations), then follows sla.config and
    consumes, each batch only once sla.config is read to its end; on shutdown the consumer finishes the batch in
    hand, commits it and leaves its group, then ClickHouse closes."""
    warehouse = Warehouse(settings.clickhouse_dsn(), settings.clickhouse_migrations_dir)
    calendars = ClientCalendars()
    sla_config = sla_config_log(calendars)
    projector = Projector(warehouse, calendars)

    async def project(batch: list[Delivery]) -> Rejections:
        # So that worklogs are split by every calendar change made before them.
        await while_down("Kafka (sla.config)", kafka_is_down)(sla_config.read_to_end)
        return await projector.project(batch)

    #: The replicas watch each other's presence; one process alone (chDB) still removes its former self on a restart, so
    #: the group need not wait for the session of the process that died.
    presence = Presence()
    consumer = EventConsumer(
        settings,
        service="reporting",
        group_id=settings.consumer_group,
        decoders=decoders(),
        handle=project,
        max_batch=settings.batch_size,
        max_wait_s=settings.batch_max_wait_seconds,
        read_ahead=BATCHES_IN_HAND,
        membership=Membership.of(presence, settings),
    )

    async def follow_sla_config() -> None:
        # asked how far sla.config reaches before every batch
        await sla_config.follow_on_own_connections(settings, "reporting-sla-config")

    async def project_until(stopping: asyncio.Event) -> None:
        """Open ClickHouse (waiting for it while /readyz says so), then project until told to stop."""
        try:
            if not await warehouse.open_when_reachable(stopping):
                return
            tune_garbage_collection(young=YOUNG_OBJECTS_BEFORE_A_COLLECTION)
            following = asyncio.create_task(follow_sla_config(), name="reporting-follow-sla-config")
            stop_the_service_if_it_fails(following, stopping.is_set)  # batches wait for it: none would end
            try:
                async with consumer.running():
                    await stopping.wait()
            finally:
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await following
        finally:
            await warehouse.close()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        projecting = asyncio.create_task(project_until(stopping), name="reporting")
        stop_the_service_if_it_fails(projecting, stopping.is_set)  # ClickHouse refusing a migration, a bug
        try:
            yield
        finally:
            stopping.set()
            await projecting
            presence.close()  # only once out of the group: closed earlier, the others would remove this replica

    async def readiness() -> dict[str, bool]:
        try:
            clickhouse = await asyncio.wait_for(warehouse.ping(), READINESS_TIMEOUT_SECONDS)
        except TimeoutError:
            clickhouse = False
        return {"clickhouse": clickhouse, "kafka": consumer.ready}

    app = create_service_app(service="reporting", keys=keys, readiness=readiness, lifespan=lifespan, presence=presence)
    api.install(app, warehouse, lambda: Services.of(calendars.catalogue, datetime.now(UTC)))
    return app
