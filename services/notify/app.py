"""The notify service's composition root: the only place where Kafka, SMTP, HTTP and the clock are wired.

Kafka clients, one producer:
  - the config reader follows notify.config (webhooks, people) into the directory, on every replica;
  - the deliveries follower reads all of notify.deliveries into the book, on every replica;
  - the senders' group member holds a share of notify.deliveries: the targets this replica sends to;
  - the fan-out, a member of `CONSUMER_GROUP` on tickets.events, sla.events and assignment.events (the shared
    EventConsumer), schedules deliveries once the directory and the book are read.
With MAIL_GATEWAY_PORT, the replica also takes mail to ticket over SMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiosmtpd.smtp import SMTP
from fastapi import FastAPI

from ticketstream_shared.contract import decode_assignment_event, decode_sla_event, decode_ticket_event
from ticketstream_shared.contract.codec import decode_notify_config_change
from ticketstream_shared.contract.notify import DeliveryChannel
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, NOTIFY_CONFIG, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.consumer import Delivery, EventConsumer, Rejections
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData, data_keys_for
from ticketstream_shared.runtime.directory import RangeDirectory
from ticketstream_shared.runtime.http import create_service_app
from ticketstream_shared.runtime.kafka import make_consumer, make_producer, start_when_reachable, stop_within
from ticketstream_shared.runtime.logging import correlation_id
from ticketstream_shared.runtime.presence import Membership, Presence
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails
from ticketstream_shared.sealing import SecretBox

from . import api
from .addresses import AllowedHosts
from .book import Book
from .deliveries import DeliveryLog
from .desk import NotifyDesk
from .directory import Directory
from .fanout import Fanout
from .gateway import MAX_MAIL_BYTES, MailGateway
from .notices import MailSettings
from .senders import MailSender, WebhookSender
from .settings import NotifySettings

#: Scheduling a delivery and recording its attempts are many small sends: a few ms of linger batches them.
PRODUCER_LINGER_MS = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: NotifySettings, keys: ApiKeys, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    directory, book = Directory(), Book()
    box = SecretBox.from_file(settings.notify_secrets_key_file)
    data_keys = data_keys_for(settings, "notify", clock, on_shredded=directory.forget, owner=False)
    personal: PersonalData = data_keys or PLAIN
    allowed = AllowedHosts.parse(settings.notify_allowed_hosts)
    config = ConfigLog(
        NOTIFY_CONFIG,
        decode_notify_config_change,
        directory.apply,
        "notify",
        opened=data_keys.opened_eventually if data_keys is not None else None,
    )
    webhooks = WebhookSender(settings, directory, box, allowed)
    senders = {DeliveryChannel.WEBHOOK: webhooks, DeliveryChannel.MAIL: MailSender(settings, personal)}
    deliveries = DeliveryLog(book, settings, senders, clock)  # type: ignore[arg-type]
    fanout = Fanout(
        directory,
        book,
        deliveries,
        MailSettings(settings.mail_domain, settings.portal_url),
        settings.webhook_max_waiting,
        clock,
        changelog_reader=lambda: make_consumer(settings, group_id=None, client_id="notify-tickets"),
        personal=personal,
    )

    async def fan_out(batch: list[Delivery]) -> Rejections | None:
        # Whom to tell is known once the directory is read; what was scheduled already, once the deliveries are.
        await config.caught_up.wait()
        await deliveries.caught_up.wait()
        if data_keys is not None:
            await data_keys.caught_up.wait()  # people's words open for the mails
        return await fanout.handle(batch)

    #: In both groups (the fan-out's, the senders'), the replicas watch each other's presence through one port.
    presence = Presence()
    senders_group = Membership.of(presence, settings)
    consumer = EventConsumer(
        settings,
        service="notify",
        group_id=settings.consumer_group,
        decoders={
            TICKETS_EVENTS: decode_ticket_event,
            SLA_EVENTS: decode_sla_event,
            ASSIGNMENT_EVENTS: decode_assignment_event,
        },
        handle=fan_out,
        co_partitioned=True,
        start_at_end=True,
        on_assigned=fanout.restore,
        membership=Membership.of(presence, settings, RangeDirectory),
    )
    gateway = MailGateway(settings, directory)

    async def follow_logs() -> None:
        producer = await start_when_reachable(
            lambda: make_producer(settings, "notify", linger_ms=PRODUCER_LINGER_MS), "producer"
        )
        config.producer = deliveries.producer = fanout.producer = gateway.producer = producer
        if data_keys is not None:
            data_keys.log.producer = producer  # keys for people notify hears of first

        async def reader(name: str) -> AIOKafkaConsumer:
            return await start_when_reachable(lambda: make_consumer(settings, group_id=None, client_id=name), name)

        async def follow_config(consumer: AIOKafkaConsumer) -> None:
            if data_keys is not None:
                await data_keys.caught_up.wait()  # people's names and addresses open as they are read
            await config.follow(consumer)

        readers = [await reader("notify-config"), await reader("notify-deliveries")]
        senders = f"{settings.consumer_group}-senders"
        owner = await start_when_reachable(
            lambda: make_consumer(
                settings, group_id=senders, client_id="notify-senders", **senders_group.consumer_options()
            ),
            "senders' group",
        )
        logs = [follow_config(readers[0]), deliveries.follow(readers[1]), deliveries.own(owner)]
        if (watch := await senders_group.before_joining(senders, "notify-senders-peer-watch")) is not None:
            logs.append(watch.run())
        if data_keys is not None:
            # a person's key issued a moment ago is asked for on the fan-out's path: where privacy.keys ends is
            # asked on a connection with no fetch in flight (ConfigLog.follow)
            logs.append(data_keys.follow_on_own_connections(settings, "notify-data-keys"))
        following = asyncio.gather(*logs)
        try:
            await following
        finally:
            following.cancel()
            with contextlib.suppress(BaseException):
                await following
            for client in (owner, *readers):
                await stop_within(client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        logs = asyncio.create_task(follow_logs(), name="notify-logs")
        stop_the_service_if_it_fails(logs, stopping.is_set)
        smtp = None
        if settings.mail_gateway_port:
            smtp = await asyncio.get_running_loop().create_server(
                lambda: SMTP(
                    gateway, hostname=settings.mail_domain, data_size_limit=MAX_MAIL_BYTES, ident="ticketstream"
                ),
                settings.mail_gateway_host,
                settings.mail_gateway_port,
            )
        try:
            async with consumer.running():
                yield
        finally:
            stopping.set()
            if smtp is not None:
                smtp.close()
            await deliveries.stop()
            logs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await logs
            presence.close()  # only once out of both groups: closed earlier, the others would remove this replica
            await webhooks.close()
            if config.producer is not None:
                await config.producer.stop()  # flushes what is in flight

    def readiness() -> dict[str, bool]:
        return {
            "kafka": consumer.ready,
            "config_read": config.caught_up.is_set(),
            "deliveries_read": deliveries.caught_up.is_set(),
            "data_keys_read": data_keys is None or data_keys.caught_up.is_set(),
        }

    app = create_service_app(service="notify", keys=keys, readiness=readiness, lifespan=lifespan, presence=presence)
    desk = NotifyDesk(directory, config, book, deliveries, box, allowed, clock, correlation_id.get, personal)
    api.install(app, desk)
    app.state.deliveries = deliveries  # which partitions this replica sends for, for operators and tests
    return app
