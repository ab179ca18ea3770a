"""The sla service's composition root: the one place where Kafka, the wall clock and the HTTP app are wired.

Start-up order matters: sla.config is read to its end first (clocks are timed by it), then the worker joins the
"sla" group on tickets.events and rebuilds the clocks of its partitions; /readyz says when both are done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.directory import ReplicaDirectory
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import make_consumer, make_producer, start_when_reachable
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails

from . import api
from .agreements import Agreements
from .config_log import sla_config_log
from .history import TicketHistory
from .settings import SlaSettings
from .timekeeper import Timekeeper
from .worker import ClockWorker


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: SlaSettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    timekeeper = Timekeeper(Agreements.with_defaults())
    directory = ReplicaDirectory(settings.own_url)  # who holds which partition, for GET /v1/sla/tickets/{id}
    config_log = sla_config_log(timekeeper)
    workers: list[ClockWorker] = []
    stopping = asyncio.Event()

    async def run() -> None:
        tune_garbage_collection()  # rare collections from the start: the rebuild fills the heap with clocks
        producer = await start_when_reachable(lambda: make_producer(settings, "sla"), "producer")
        config_log.producer = producer
        config_reader = await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="sla-config"), "config reader"
        )
        following = asyncio.create_task(config_log.follow(config_reader), name="follow-sla-config")
        stop_the_service_if_it_fails(following, stopping.is_set)  # clocks are timed by it
        consumer = await start_when_reachable(
            lambda: make_consumer(
                settings,
                group_id=settings.consumer_group,
                client_id="sla",
                # One assignor only: aiokafka 0.14 sends one JoinGroup per assignor, each with a longer list of
                # protocols, and the broker takes each later one as changed metadata and rebalances again: two
                # members doing so kept a group rebalancing for minutes (aio-libs/aiokafka#1168).
                partition_assignment_strategy=(directory,),
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
            )
            workers.append(worker)
            await worker.run()
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            for client in (consumer, config_reader, producer):  # the consumer leaves its group at once
                await client.stop()

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

    app = create_service_app(service="sla", keys=keys, readiness=readiness, lifespan=lifespan)
    what_if_reader = TicketHistory(lambda: make_consumer(settings, group_id=None, client_id="sla-what-if"))
    api.install(app, timekeeper, config_log, clock, what_if_reader, directory)
    return app
