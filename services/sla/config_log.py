"""sla.config as the log of every calendar, policy and client agreement change: appended by the HTTP edge with
Kafka's acknowledgement, and read back from the beginning by every sla worker (no group: all of them need all of it).

A change is answered only after this worker has read it back, so a GET right after a PUT sees it, and the version
it reports is its position in the log, the same for every reader.

A message that is not a configuration change (written by some other producer) is skipped by every reader and
parked in sla.config.dlq with the reason. Every worker reads the whole log, so each first reads the DLQ to learn
which offsets are parked already and parks only the others: one dead letter per poison message (two workers
reading a new one at the very same moment may both park it; `dlq.offset` tells such twins apart).

A change whose event id was read already (the same PUT taken by two replicas at once, or retried after a timeout:
its id derives from what it changes, see api.py) is skipped by every reader: it is no new version.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ticketstream_shared.contract import InvalidEvent, dead_letter_topic
from ticketstream_shared.contract.codec import decode_sla_config_change
from ticketstream_shared.contract.sla import (
    CalendarChanged,
    ClientAgreementChanged,
    PolicyChanged,
    SlaConfigEvent,
)
from ticketstream_shared.contract.topics import SLA_CONFIG
from ticketstream_shared.runtime.kafka import correlation_headers, dead_letter, header, records_to_end, wait_for_topics

from .timekeeper import Timekeeper

log = logging.getLogger(__name__)

PARTITION = TopicPartition(SLA_CONFIG, 0)
DEAD_LETTERS = TopicPartition(dead_letter_topic(SLA_CONFIG), 0)


def config_key(change: SlaConfigEvent) -> bytes:
    """'<event type>/<id>', so a change's history can be told from the key alone."""
    if isinstance(change, CalendarChanged):
        subject = change.calendar_id
    elif isinstance(change, PolicyChanged):
        subject = change.policy_id
    else:
        assert isinstance(change, ClientAgreementChanged)
        subject = change.client_id
    return f"{change.event_type}/{subject}".encode()


class ConfigLog:
    def __init__(self, timekeeper: Timekeeper) -> None:
        self._timekeeper = timekeeper
        self.producer: AIOKafkaProducer | None = None
        #: Set once the log has been read to the end it had at start-up: clocks may be built after that.
        self.caught_up = asyncio.Event()
        self._read_up_to = 0
        self._progress = asyncio.Condition()
        #: Offsets of sla.config already parked in its DLQ (by any worker, before or since this one started).
        self._parked: set[int] = set()
        #: Offsets of changes skipped as read already, for `append` to tell its caller (a few: twins are rare).
        self._repeated: set[int] = set()

    async def append(self, change: SlaConfigEvent) -> bool:
        """Return once Kafka has the change and this worker has read it back: True if it became a version, False
        if the log had it already (the same event id, appended first by another replica or an earlier try)."""
        assert self.producer is not None, "appended before the broker answered"
        sent = await self.producer.send_and_wait(
            SLA_CONFIG, change.model_dump_json().encode(), key=config_key(change), headers=correlation_headers()
        )
        async with self._progress:
            await self._progress.wait_for(lambda: self._read_up_to > sent.offset)
        if sent.offset in self._repeated:
            self._repeated.discard(sent.offset)
            return False
        return True

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read sla.config from the beginning, then keep following it. Changes read before `caught_up` are
        history (clocks meet them in event time); after, each is also swept over the running clocks."""
        await wait_for_topics(consumer, [SLA_CONFIG, DEAD_LETTERS.topic])
        self._parked = await self._parked_offsets(consumer)
        consumer.assign([PARTITION])
        await consumer.seek_to_beginning(PARTITION)
        end = (await consumer.end_offsets([PARTITION]))[PARTITION]
        if end == 0:
            self.caught_up.set()
        while True:
            batches = await consumer.getmany(PARTITION, timeout_ms=500, max_records=1000)
            for record in batches.get(PARTITION, []):
                await self._apply(record, sweep=self.caught_up.is_set())
                self._read_up_to = record.offset + 1
                if self._read_up_to >= end:
                    self.caught_up.set()
            if batches:
                async with self._progress:
                    self._progress.notify_all()

    async def _parked_offsets(self, consumer: AIOKafkaConsumer) -> set[int]:
        parked = set()
        async for record in records_to_end(consumer, {DEAD_LETTERS: None}):
            if header(record, "dlq.topic") == SLA_CONFIG and (offset := header(record, "dlq.offset")):
                parked.add(int(offset))
        return parked

    async def _apply(self, record: ConsumerRecord[bytes, bytes], sweep: bool) -> None:
        try:
            change = decode_sla_config_change(record.value or b"")
        except InvalidEvent as error:
            if record.offset not in self._parked:
                assert self.producer is not None, "the producer starts before the log is followed"
                await dead_letter(self.producer, record, error.reason, "sla")
                self._parked.add(record.offset)
            return
        if self._timekeeper.agreements.knows(change):
            self._repeated.add(record.offset)  # a twin: neither a version nor worth a sweep of the clocks
            return
        if sweep:
            self._timekeeper.record_change(change)
        else:
            self._timekeeper.agreements.apply(change)
