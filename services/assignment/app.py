"""The assignment service's composition root: the only place where Kafka, the clock and HTTP are wired together.

Four Kafka clients, one producer:
  - the router, a member of `CONSUMER_GROUP` on tickets.events and sla.events (the shared EventConsumer: DLQ,
    commit after the team-log records are acknowledged), re-keys ticket work by team onto assignment.by_team;
  - the team-log follower reads all of assignment.by_team into the desk (every process knows every team);
  - the ownership member of `<CONSUMER_GROUP>-teams` holds a share of assignment.by_team's partitions: the teams
    this process decides for;
  - a reader of sla.config: the services of the catalogue, whose owner teams take the tickets no rule routes;
  - with a privacy master key, a reader of privacy.keys: technicians' names are sealed on the team log.
In both groups the replicas watch each other's presence (runtime/presence.py): a replica whose process is gone is
removed at once, and its tickets and teams go to the others without waiting for its session.
Tickets done with wait on disk (`STATE_DIR`, a temporary directory without it) instead of in memory, with
checkpoints of the desk that a restart resumes from (archive.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from ticketstream_shared.catalogue import ServiceCatalogue
from ticketstream_shared.contract import decoder_reading
from ticketstream_shared.contract.codec import decode_sla_config_change
from ticketstream_shared.contract.topics import SLA_CONFIG, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.consumer import EventConsumer
from ticketstream_shared.runtime.data_keys import PLAIN, data_keys_for
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import make_consumer, make_producer, start_when_reachable, stop_within
from ticketstream_shared.runtime.logging import correlation_id
from ticketstream_shared.runtime.memory import collect_young_for_ever
from ticketstream_shared.runtime.presence import Membership, Presence
from ticketstream_shared.runtime.store import LocalStore
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails

from . import api
from .archive import LAYOUT, DeskArchive
from .desk import Desk
from .dispatcher import Dispatcher
from .router import TicketRouter
from .routing import ESCALATING_SLA_EVENTS, ROUTED_TICKET_EVENTS
from .settings import AssignmentSettings
from .teamlog import TeamLog

#: Every ticket costs three sends (routed, decided, recorded): waiting a few ms fills produce requests of many
#: records instead of one each, which saves the worker's and the broker's CPU per ticket for little latency.
PRODUCER_LINGER_MS = 5
CHECKPOINT_ON_STOP_S = 5.0

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: AssignmentSettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    store = LocalStore(settings.state_dir, layout=LAYOUT)
    archive = DeskArchive(store)
    team_log = TeamLog(Desk(shelf=archive), clock, archive)
    data_keys = data_keys_for(settings, "assignment", clock, owner=False)
    catalogue = ServiceCatalogue()
    #: sla writes sla.config; assignment follows it for the services' owner teams, and parks nothing of it.
    catalogue_log = ConfigLog(SLA_CONFIG, decode_sla_config_change, catalogue.apply, "assignment", owner=False)
    #: In both groups (the router's, the teams'), the replicas watch each other's presence through one port.
    presence = Presence()
    teams = Membership.of(presence, settings)
    router = EventConsumer(
        settings,
        service="assignment",
        group_id=settings.consumer_group,
        decoders={
            TICKETS_EVENTS: decoder_reading(TICKETS_EVENTS, ROUTED_TICKET_EVENTS),
            SLA_EVENTS: decoder_reading(SLA_EVENTS, ESCALATING_SLA_EVENTS),
        },
        handle=TicketRouter(team_log, catalogue, catalogue_log, clock).handle,
        membership=Membership.of(presence, settings),
    )

    async def follow_catalogue() -> None:
        # the router asks how far sla.config reaches when a new ticket names a service just published
        await catalogue_log.follow_on_own_connections(settings, "assignment-catalogue")

    async def follow_and_own() -> None:
        team_log.producer = await start_when_reachable(
            lambda: make_producer(settings, "assignment", linger_ms=PRODUCER_LINGER_MS), "producer"
        )
        follower = await start_when_reachable(
            lambda: make_consumer(settings, group_id=None, client_id="assignment-team-log"), "team-log follower"
        )
        teams_group = f"{settings.consumer_group}-teams"
        owner = await start_when_reachable(
            lambda: make_consumer(
                settings, group_id=teams_group, client_id="assignment-teams", **teams.consumer_options()
            ),
            "team owner",
        )
        watch = await teams.before_joining(teams_group, "assignment-teams-peer-watch")
        consumers, logs = [owner, follower], [team_log.follow(follower), team_log.own(owner)]
        if watch is not None:
            logs.append(watch.run())
        if data_keys is not None:
            data_keys.log.producer = team_log.producer  # a key for a technician named here first
            consumers.append(
                await start_when_reachable(
                    lambda: make_consumer(settings, group_id=None, client_id="assignment-data-keys"), "key reader"
                )
            )
            logs.append(data_keys.follow(consumers[-1]))
        try:
            await asyncio.gather(*logs)
        finally:
            for consumer in consumers:
                await stop_within(consumer)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        team_task = asyncio.create_task(follow_and_own(), name="assignment-team-log")
        catalogue_task = asyncio.create_task(follow_catalogue(), name="assignment-catalogue")
        collecting = asyncio.create_task(collect_young_for_ever(), name="assignment-collector")
        for task in (team_task, catalogue_task, collecting):
            stop_the_service_if_it_fails(task, stopping.is_set)
        try:
            async with router.running():
                yield
        finally:
            stopping.set()
            try:  # a restart resumes from here, not from the last periodic checkpoint
                await asyncio.wait_for(team_log.checkpoint(), CHECKPOINT_ON_STOP_S)
            except Exception:
                log.warning("no checkpoint of the desk on stopping", exc_info=True)
            for task in (team_task, catalogue_task, collecting):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            presence.close()  # only once out of both groups: closed earlier, the others would remove this replica
            if team_log.producer is not None:
                await team_log.producer.stop()  # flushes what is in flight
            store.close()

    def readiness() -> dict[str, bool]:
        return {
            "kafka": router.ready,
            "team_log_read": team_log.caught_up.is_set(),
            "catalogue_read": catalogue_log.caught_up.is_set(),
            "data_keys_read": data_keys is None or data_keys.caught_up.is_set(),
        }

    app = create_service_app(service="assignment", keys=keys, readiness=readiness, lifespan=lifespan, presence=presence)
    app.state.team_log = team_log  # which teams this process decides for, for operators and tests
    api.install(app, Dispatcher(team_log, clock, correlation_id.get, data_keys or PLAIN))
    return app
