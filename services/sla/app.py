"""The sla service's composition root: the one place where Kafka, the wall clock and the HTTP app are wired.

Start-up order matters: the local store is opened (and emptied if it holds another log's state), the standby begins
following sla.clocks into it, sla.config is read to its end (clocks are timed by it), then the worker joins the
"sla" group on tickets.events and takes its partitions over from the store; /readyz says when all are done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from ticketstream_shared.contract.topics import SLA_CLOCKS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.changelog import ChangelogWriter, Standby
from ticketstream_shared.runtime.directory import ReplicaDirectory
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import (
    make_consumer,
    make_producer,
    start_when_reachable,
    stop_within,
    wait_for_topics,
)
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.presence import Membership, Presence
from ticketstream_shared.runtime.store import Changes, LocalStore, store_belongs_to
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails

from . import api, catalog_api
from .agreements import Agreements
from .clock_store import CHANGELOG, ClockStore
from .config_log import sla_config_log
from .configuration import Configuration
from .desk import ClockDesk
from .history import TicketHistory
from .settings import SlaSettings
from .timekeeper import Timekeeper
from .worker import ClockWorker


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: SlaSettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    store = LocalStore(settings.state_dir)
    clocks = ClockStore(store, Agreements.with_defaults())
    timekeeper = Timekeeper(clocks.agreements, wake=clocks.load)
    presence = Presence()
    directory = ReplicaDirectory(settings.own_url)  # who holds which partition, for GET /v1/sla/tickets/{id}
    membership = Membership(presence, directory, settings)
    config_log = sla_config_log(timekeeper)
    workers: list[ClockWorker] = []
    stopping = asyncio.Event()

    async def a_reader() -> AIOKafkaConsumer:
        return await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="sla-changelog"), "changelog reader"
        )

    changelog = ChangelogWriter(CHANGELOG, store, clocks.records_of, lambda: config_log.producer, a_reader)

    async def open_store(reader: AIOKafkaConsumer) -> None:
        await wait_for_topics(reader, [TICKETS_EVENTS, SLA_EVENTS, SLA_CLOCKS])
        for topic in (TICKETS_EVENTS, SLA_EVENTS, SLA_CLOCKS):
            if not await store_belongs_to(reader, topic, store):
                store.clear()
                break
        if not store.is_restored:
            # The standby fills the store partition by partition, each whole once read to the end a take-over
            # waits for: the store is consistent from the start, never half a restore.
            opened = Changes()
            opened.restored()
            store.write(opened)

    def supervised(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        stop_the_service_if_it_fails(task, stopping.is_set)
        return task

    async def run() -> None:
        tune_garbage_collection()  # rare collections from the start: the rebuild fills the heap with clocks
        producer = await start_when_reachable(lambda: make_producer(settings, "sla"), "producer")
        standby_reader = await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="sla-standby"), "standby reader"
        )
        await open_store(standby_reader)
        standby = Standby(CHANGELOG, store, clocks.restore, standby_reader)
        config_log.producer = producer
        config_reader = await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="sla-config"), "config reader"
        )
        # clocks are timed by the configuration; the store is written only by these and the worker
        background = [
            supervised(config_log.follow(config_reader), "follow-sla-config"),
            supervised(standby.run(), "sla-standby"),
            supervised(changelog.run(), "sla-changelog"),
        ]
        watch = await membership.before_joining(settings.consumer_group, "sla-peer-watch")
        if watch is not None:
            background.append(supervised(watch.run(), "sla-peer-watch"))
        consumer = await start_when_reachable(
            lambda: make_consumer(
                settings,
                group_id=settings.consumer_group,
                client_id="sla",
                **membership.consumer_options(),
            ),
            "consumer",
        )
        try:
            await config_log.caught_up.wait()
            worker = ClockWorker(
                timekeeper,
                consumer,
                producer,
                history_reader=lambda: make_consumer(settings, group_id=None, client_id="sla-history"),
                now=clock,
                clocks=clocks,
                changelog=changelog,
                standby=standby,
            )
            workers.append(worker)
            await worker.run()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            for client in (consumer, config_reader, standby_reader, producer):  # the consumer leaves its group at once
                await stop_within(client)
            presence.close()  # only once out of the group: closed earlier, the others would remove it themselves
            store.close()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        running = asyncio.create_task(run(), name="sla")
        stop_the_service_if_it_fails(running, stopping.is_set)
        yield
        stopping.set()
        if workers:
            workers[0].stop()
        try:
            await asyncio.wait_for(asyncio.shield(running), settings.shutdown_timeout_seconds)
        except TimeoutError:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    def readiness() -> dict[str, bool]:
        return {
            "kafka": config_log.producer is not None,
            "config_read": config_log.caught_up.is_set(),
            "clocks_rebuilt": bool(workers) and workers[0].ready,
        }

    app = create_service_app(service="sla", keys=keys, readiness=readiness, lifespan=lifespan, presence=presence)
    what_if_reader = TicketHistory(lambda: make_consumer(settings, group_id=None, client_id="sla-what-if"))
    configuration = Configuration(timekeeper.agreements, config_log, clock)
    api.install(app, ClockDesk(configuration, timekeeper, clocks, config_log, what_if_reader, directory, clock))
    app.include_router(catalog_api.router)
    return app
