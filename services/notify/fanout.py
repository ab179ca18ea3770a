"""From ticket, SLA and assignment events to deliveries: the consumer-group side of notify.

A member of the group `notify` (co-partitioned: partition n of tickets.events, sla.events and assignment.events
go to one member) keeps a Brief of each open ticket of its partitions, backed by the compacted notify.tickets:
taking partitions, it restores their briefs from there, never from the ticket history. For each event it
schedules one delivery per matching webhook and per person to mail on notify.deliveries, writes the briefs that
changed, and the batch is committed once Kafka has all of it. A mail is sealed before it is scheduled (its words
and its recipient's address are personal). A redelivered event schedules the same delivery ids
again, which the book recognises.

The group starts at the end of the topics the first time: notify tells of what happens from then on, not of the
years of history before it was deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from ticketstream_shared.contract.notify import DeliveryScheduled, MailMessage, SealedMail
from ticketstream_shared.contract.personal import is_sealed, personal_texts
from ticketstream_shared.contract.topics import NOTIFY_TICKETS, TICKET_PARTITIONS
from ticketstream_shared.runtime.consumer import Delivery, Rejections
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData
from ticketstream_shared.runtime.kafka import partition_of, records_to_end
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .book import Book
from .deliveries import DeliveryLog
from .directory import Directory
from .notices import Brief, MailSettings, mail_deliveries, next_brief, webhook_deliveries

log = logging.getLogger(__name__)

SCHEDULED = Counter("ticketstream_notify_scheduled_total", "Deliveries scheduled", ["channel"])

#: Mails are about what happens now: an event this old (history imported through tickets.inbound) mails no one.
MAIL_MAX_AGE = timedelta(hours=24)


class Fanout:
    def __init__(
        self,
        directory: Directory,
        book: Book,
        deliveries: DeliveryLog,
        mail: MailSettings,
        max_waiting: int,
        clock: Callable[[], datetime],
        changelog_reader: Callable[[], AIOKafkaConsumer],
        personal: PersonalData = PLAIN,
    ) -> None:
        """`personal`: opens people's words for the mails; briefs and webhooks carry them as the events do."""
        self._personal = personal
        self._directory = directory
        self._book = book
        self._deliveries = deliveries
        self._mail = mail
        self._max_waiting = max_waiting
        self._clock = clock
        self._changelog_reader = changelog_reader
        self.briefs: dict[str, Brief] = {}
        self.producer: AIOKafkaProducer | None = None

    async def restore(self, assigned: set[TopicPartition]) -> None:
        """The briefs of the ticket partitions just assigned, from notify.tickets."""
        partitions = {tp.partition for tp in assigned}
        for ticket_id in [t for t in self.briefs if partition_of(t, TICKET_PARTITIONS) in partitions]:
            del self.briefs[ticket_id]
        reader = self._changelog_reader()
        await reader.start()
        try:
            since = {TopicPartition(NOTIFY_TICKETS, partition): None for partition in partitions}
            async for record in records_to_end(reader, since):
                ticket_id = (record.key or b"").decode()
                if record.value is None:
                    self.briefs.pop(ticket_id, None)
                else:
                    self.briefs[ticket_id] = Brief.model_validate_json(record.value)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.stop(), 3.0)

    async def _sealed(self, mail: DeliveryScheduled, quoted: list[str]) -> DeliveryScheduled:
        """A mail as notify.deliveries keeps it: sealed under the keys of its recipient and of the people whose words
        it quotes (`quoted`, sealed as the event and the brief have them)."""
        assert isinstance(mail.content, MailMessage)
        sealed = await self._personal.seal_quoting(mail.content.model_dump_json(), mail.target, quoted)
        if not is_sealed(sealed):  # no master key
            return mail
        return mail.model_copy(update={"content": SealedMail(sealed=sealed)})

    async def handle(self, batch: list[Delivery]) -> Rejections | None:
        assert self.producer is not None, "handled before the broker answered"
        now = self._clock()
        outbox = self._deliveries.outbox()
        rejections: Rejections = []
        changed: dict[str, Brief | None] = {}
        for delivery in batch:
            event = delivery.event
            before = self.briefs.get(event.ticket_id)
            after = next_brief(before, event)
            scheduled = webhook_deliveries(event, self._directory, now)
            if now - event.occurred_at <= MAIL_MAX_AGE:
                about = after if after is not None else before  # the ticket as the event leaves it, if still open
                quoted = [*personal_texts(event), *(personal_texts(about) if about is not None else ())]
                opened = await self._personal.opened(event)
                about = await self._personal.opened(about) if about is not None else None
                words = [*personal_texts(opened), *(personal_texts(about) if about is not None else ())]
                if any(is_sealed(text) for text in words):  # no master key here, or another deployment's
                    unopened = {"event_id": str(event.event_id)}
                    log.error("an event's words do not open here; no mail for it", extra=unopened)
                else:
                    for mail in mail_deliveries(opened, about, self._directory, self._mail, now):
                        scheduled.append(await self._sealed(mail, quoted))
            for record in scheduled:
                waiting = self._book.waiting(record.channel, record.target)
                if waiting >= self._max_waiting:
                    why = f"{record.channel.value} {record.target} has {waiting} deliveries waiting already"
                    rejections.append((delivery, why))
                    continue
                self._deliveries.put(outbox, record)
                SCHEDULED.labels(record.channel.value).inc()
            if after != before:
                changed[event.ticket_id] = after
                if after is None:
                    self.briefs.pop(event.ticket_id, None)
                else:
                    self.briefs[event.ticket_id] = after
        for ticket_id, brief in changed.items():
            value = brief.model_dump_json().encode() if brief is not None else None
            outbox.put(NOTIFY_TICKETS, value, ticket_id.encode())
        await asyncio.gather(*await outbox.send())
        THROUGHPUT.processed(len(batch))
        return rejections
