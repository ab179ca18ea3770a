"""Intake's composition root: the only place where Kafka, the clock and the HTTP app are wired together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract.codec import decode_article_change, decode_sla_config_change
from ticketstream_shared.contract.topics import (
    ASSIGNMENT_EVENTS,
    INTAKE_COMMANDS,
    INTAKE_TICKETS,
    KNOWLEDGE_ARTICLES,
    SLA_CONFIG,
    SLA_EVENTS,
    TICKETS_EVENTS,
    TICKETS_INBOUND,
)
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.changelog import ChangelogWriter, restore
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.consumer import EventConsumer
from ticketstream_shared.runtime.data_keys import PLAIN, data_keys_for
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import (
    make_consumer,
    make_producer,
    start_when_reachable,
    stop_within,
    wait_for_topics,
)
from ticketstream_shared.runtime.memory import collect_young_for_ever
from ticketstream_shared.runtime.presence import Membership, Presence
from ticketstream_shared.runtime.store import LocalStore, store_belongs_to
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails

from . import api, knowledge_api, portal, privacy_api
from .desk import Desk
from .domain import LifecycleRules
from .idempotency import RequestKeys
from .inbound import InboundRequests, decode_request
from .knowledge import Library
from .knowledge_api import Knowledge
from .ledger import TicketLedger
from .log import KafkaTicketLog, LogPositions, follow
from .owners import CommandBus, Ownership, tickets_log_end
from .privacy_api import Privacy
from .settings import IntakeSettings
from .ticket_store import CHANGELOG, LAYOUT, TicketStore


def utc_now() -> datetime:
    return datetime.now(UTC)


class EndLookups:
    """A consumer that fetches nothing and only asks where partitions end, kept apart from the fetching loops: where
    tickets.events ends for a takeover (Ownership), and where a followed log ends for its `read_to_end`
    (ConfigLog.follow), so that a new ticket naming a service, or a person's key, issued a moment ago by another
    replica, waits for no fetch in flight."""

    def __init__(self) -> None:
        self._consumer: AIOKafkaConsumer | None = None
        self._connected = asyncio.Event()

    async def serve(self, consumer: AIOKafkaConsumer) -> None:
        """Answer with `consumer` until cancelled."""
        self._consumer = consumer
        self._connected.set()
        await asyncio.Event().wait()

    async def consumer(self) -> AIOKafkaConsumer:
        await self._connected.wait()
        assert self._consumer is not None
        return self._consumer

    async def tickets_log_end(self, partitions: list[int]) -> dict[int, int]:
        """Waits for the consumer to connect: a takeover may come first (it was refused, and the replica then owned
        nothing until the next rebalance), and a request's wait is bounded by its caller."""
        return await tickets_log_end(await self.consumer(), partitions)


def build_app(settings: IntakeSettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    positions = LogPositions()
    event_log = KafkaTicketLog(positions)
    store = LocalStore(settings.state_dir, LAYOUT)
    data_keys = data_keys_for(settings, "intake", clock, on_shredded=lambda _: ledger.forget_opened())
    tickets = TicketStore(store, data_keys or PLAIN)
    request_keys = RequestKeys(timedelta(hours=settings.idempotency_key_ttl_hours), clock, store)
    ledger: TicketLedger = TicketLedger(event_log, request_keys, tickets, settings.ticket_cache, data_keys or PLAIN)
    ends = EndLookups()

    async def a_reader() -> AIOKafkaConsumer:
        return await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="intake-changelog"), "changelog reader"
        )

    changelog = ChangelogWriter(CHANGELOG, store, tickets.records_of, lambda: event_log.producer, a_reader)
    ownership = Ownership(positions, ends.tickets_log_end, changelog)
    bus = CommandBus(ledger, ownership, personal=data_keys or PLAIN)
    catalogue = ServiceCatalogue()
    #: sla writes sla.config; intake follows it for the catalogue's services, and parks nothing of it.
    catalogue_log = ConfigLog(SLA_CONFIG, decode_sla_config_change, catalogue.apply, "intake", owner=False)
    desk = Desk(ledger, bus, catalogue, catalogue_log)
    privacy = Privacy(data_keys, desk, clock)
    library = Library()
    knowledge_log = ConfigLog(KNOWLEDGE_ARTICLES, decode_article_change, library.apply, "intake")
    rules = LifecycleRules(reopen_window=timedelta(days=settings.reopen_window_days))
    assignments_read = asyncio.Event()
    #: Not a condition of readiness: until sla.events is read, a request's page says nothing of its promised times.
    clocks_read = asyncio.Event()
    connected = asyncio.Event()
    #: Set once the local store is known to hold this log's state (restored, if it was new).
    store_opened = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    stopping = asyncio.Event()
    presence = Presence()
    #: In both groups (the owners', the inbound requests'), the replicas watch each other's presence through one port.
    owners = Membership.of(presence, settings)
    inbound = EventConsumer(
        settings,
        service="intake",
        group_id=settings.inbound_group,
        decoders={TICKETS_INBOUND: decode_request},
        handle=InboundRequests(desk, clock, rules).handle,
        membership=Membership.of(presence, settings),
    )

    async def consuming(
        name: str, work: Callable[[AIOKafkaConsumer], Coroutine[Any, Any, None]], **options: Any
    ) -> None:
        consumer = await start_when_reachable(
            lambda: make_consumer(settings, client_id=f"intake-{name}", **options), f"{name} consumer"
        )
        try:
            await work(consumer)
        finally:
            await stop_within(consumer)  # bounded: a stop in the middle of joining the owners group waits for its join

    async def connect() -> None:
        producer = await start_when_reachable(lambda: make_producer(settings, "intake"), "producer")
        bus.partitions = len(await producer.partitions_for(TICKETS_EVENTS))
        event_log.producer = bus.producer = knowledge_log.producer = producer
        privacy.producer = producer
        if data_keys is not None:
            data_keys.log.producer = producer
        connected.set()

    async def follow_catalogue(consumer: AIOKafkaConsumer) -> None:
        await catalogue_log.follow(consumer, await ends.consumer())

    async def read_ticket_log(consumer: AIOKafkaConsumer) -> None:
        await wait_for_topics(consumer, [INTAKE_TICKETS, TICKETS_EVENTS])
        if not await store_belongs_to(consumer, TICKETS_EVENTS, store):
            store.clear()
        if not store.is_restored:  # a new machine (or an interrupted restore): the changelog, not the history
            await restore(consumer, CHANGELOG, store, tickets.restore)
        store_opened.set()
        await follow(consumer, TICKETS_EVENTS, store, ledger.apply, ledger.caught_up, positions, changelog.changed)

    async def follow_knowledge(consumer: AIOKafkaConsumer) -> None:
        await connected.wait()  # intake owns the log: a message to park needs the producer
        await knowledge_log.follow(consumer)

    async def follow_data_keys(consumer: AIOKafkaConsumer) -> None:
        assert data_keys is not None
        await connected.wait()  # a key is issued, and a poison record parked, with the producer
        await data_keys.follow(consumer, await ends.consumer())

    async def read_assignments(consumer: AIOKafkaConsumer) -> None:
        await store_opened.wait()
        await follow(consumer, ASSIGNMENT_EVENTS, store, desk.note_assignment, assignments_read)

    async def read_clocks(consumer: AIOKafkaConsumer) -> None:
        await store_opened.wait()
        await follow(consumer, SLA_EVENTS, store, desk.note_clock, clocks_read)

    async def own(consumer: AIOKafkaConsumer) -> None:
        await wait_for_topics(consumer, [INTAKE_COMMANDS, TICKETS_EVENTS])
        watch = await owners.before_joining(settings.owners_group, "intake-peer-watch")
        if watch is not None:  # an owner killed: its tickets' commands wait for no session
            tasks.append(watching := asyncio.create_task(watch.run()))
            stop_the_service_if_it_fails(watching, stopping.is_set)
        consumer.subscribe([INTAKE_COMMANDS], listener=ownership)
        await bus.serve(consumer)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks[:] = [
            asyncio.create_task(connect()),
            asyncio.create_task(consuming("ledger", read_ticket_log, group_id=None)),
            asyncio.create_task(consuming("assignments", read_assignments, group_id=None)),
            asyncio.create_task(consuming("clocks", read_clocks, group_id=None)),
            asyncio.create_task(consuming("catalogue", follow_catalogue, group_id=None)),
            asyncio.create_task(consuming("knowledge", follow_knowledge, group_id=None)),
            asyncio.create_task(changelog.run()),
            asyncio.create_task(collect_young_for_ever()),
            asyncio.create_task(consuming("replies", bus.listen, group_id=None, auto_offset_reset="latest")),
            asyncio.create_task(consuming("offsets", ends.serve, group_id=None)),
            asyncio.create_task(
                consuming(
                    "owner",
                    own,
                    group_id=settings.owners_group,
                    **owners.consumer_options(),
                )
            ),
        ]
        if data_keys is not None:
            tasks.append(asyncio.create_task(consuming("data-keys", follow_data_keys, group_id=None)))
        for task in tasks:
            stop_the_service_if_it_fails(task, stopping.is_set)
        async with inbound.running():
            yield
        stopping.set()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        presence.close()  # only once out of both groups: closed earlier, the others would remove this replica
        if event_log.producer is not None:
            await event_log.producer.stop()  # flushes what is in flight
        store.close()

    def readiness() -> dict[str, bool]:
        return {
            "kafka": event_log.producer is not None,
            "ticket_log_read": ledger.caught_up.is_set(),
            "assignments_read": assignments_read.is_set(),
            "catalogue_read": catalogue_log.caught_up.is_set(),
            "knowledge_read": knowledge_log.caught_up.is_set(),
            "owns_partitions": ownership.joined,
            "peers_reachable": bus.listening,
            "inbound": inbound.ready,
            "data_keys_read": data_keys is None or data_keys.caught_up.is_set(),
        }

    app = create_service_app(service="intake", keys=keys, readiness=readiness, lifespan=lifespan, presence=presence)
    app.state.replica_id = bus.replica_id  # the key of the replies meant for this replica, for operators and tests
    api.install(app, desk, clock, rules, library)
    app.state.knowledge = Knowledge(library, knowledge_log, clock)
    app.include_router(knowledge_api.router)
    app.state.privacy = privacy
    app.include_router(privacy_api.router)
    portal.install(app, settings.portal_category)
    return app
