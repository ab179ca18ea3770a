"""A configuration log on Kafka (sla.config, notify.config): one partition of every change, appended by the
HTTP edge with Kafka's acknowledgement and read back from the beginning by every replica (no group: all of them
need all of it).

A change is answered only after this replica has read it back, so a GET right after a PUT sees it, and its
version is its position in the log, the same for every reader.

A message that is not a change of this log (written by some other producer) is skipped by every reader and
parked in the log's DLQ with the reason. Every replica reads the whole log, so each first reads the DLQ to learn
which offsets are parked already and parks only the others: one dead letter per poison message (two replicas
reading a new one at the very same moment may both park it; `dlq.offset` tells such twins apart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from ticketstream_shared.contract import InvalidEvent, dead_letter_topic

from .kafka import (
    correlation_headers,
    dead_letter,
    header,
    make_consumer,
    records_to_end,
    start_when_reachable,
    stop_within,
    wait_for_topics,
)
from .settings import ServiceSettings

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)

#: Takes a change read from the log (`live`: read after the log's end at start-up) and says whether it is a new
#: version (False: a twin of one read already, e.g. the same PUT taken by two replicas, or retried).
Apply = Callable[[C, bool], bool]


class ConfigLog(Generic[C]):
    def __init__(
        self,
        topic: str,
        decode: Callable[[bytes], C],
        apply: Apply[C],
        service: str,
        owner: bool = True,
        tombstone: Callable[[bytes], C] | None = None,
        opened: Callable[[C], Awaitable[C]] | None = None,
    ) -> None:
        """`owner`: this service writes the log and parks what does not belong in it; a follower (intake reading
        sla.config) only skips such messages, leaving them to the owner. `tombstone`: the change a record without
        a value stands for, from its key, in a compacted log whose records are removed so (privacy.keys). `opened`:
        a change with its personal fields opened, for `apply` to hold in memory (notify.config's people)."""
        self._owner = owner
        self._tombstone = tombstone
        self._opened = opened
        self._partition = TopicPartition(topic, 0)
        self._dead_letters = TopicPartition(dead_letter_topic(topic), 0)
        self._decode = decode
        self._apply = apply
        self._service = service
        self.producer: AIOKafkaProducer | None = None
        #: Set once the log has been read to the end it had at start-up.
        self.caught_up = asyncio.Event()
        self._read_up_to = 0
        self._progress = asyncio.Condition()
        #: Offsets of the log already parked in its DLQ (by any replica, before or since this one started).
        self._parked: set[int] = set()
        #: Offsets of changes skipped as read already, for `append` to tell its caller (a few: twins are rare).
        self._repeated: set[int] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._ends: AIOKafkaConsumer | None = None
        #: Set once the log is being read: `read_to_end` waits for it.
        self._following = asyncio.Event()

    async def append(self, change: C | None, key: bytes) -> bool:
        """Return once Kafka has the change (None: a tombstone of `key`) and this replica has read it back: True
        if it became a version, False if the log had it already (the same event id, appended first by another
        replica or an earlier try)."""
        assert self.producer is not None, "appended before the broker answered"
        value = None if change is None else change.model_dump_json().encode()
        sent = await self.producer.send_and_wait(self._partition.topic, value, key=key, headers=correlation_headers())
        async with self._progress:
            await self._progress.wait_for(lambda: self._read_up_to > sent.offset)
        if sent.offset in self._repeated:
            self._repeated.discard(sent.offset)
            return False
        return True

    async def follow(self, consumer: AIOKafkaConsumer, ends: AIOKafkaConsumer | None = None) -> None:
        """Read the log from the beginning, then keep following it. `ends`, a started consumer of its own, is where
        `read_to_end` asks how far the log reaches: the reading consumer's connection holds a fetch that the broker
        keeps open until a change arrives (up to fetch_max_wait_ms, 500 ms) and answers a connection's requests in
        order, so asking there waits for it. Give one where `read_to_end` is on a request's or a batch's path."""
        self._consumer, self._ends = consumer, ends
        await wait_for_topics(consumer, [self._partition.topic, self._dead_letters.topic])
        if self._owner:
            self._parked = await self._parked_offsets(consumer)
        consumer.assign([self._partition])
        await consumer.seek_to_beginning(self._partition)
        self._following.set()
        end = (await consumer.end_offsets([self._partition]))[self._partition]
        if end == 0:
            self.caught_up.set()
        while True:
            batches = await consumer.getmany(self._partition, timeout_ms=500, max_records=1000)
            for record in batches.get(self._partition, []):
                await self._read(record, live=self.caught_up.is_set())
                self._read_up_to = record.offset + 1
                if self._read_up_to >= end:
                    self.caught_up.set()
            if batches:
                async with self._progress:
                    self._progress.notify_all()

    async def _parked_offsets(self, consumer: AIOKafkaConsumer) -> set[int]:
        parked = set()
        async for record in records_to_end(consumer, {self._dead_letters: None}):
            if header(record, "dlq.topic") == self._partition.topic and (offset := header(record, "dlq.offset")):
                parked.add(int(offset))
        return parked

    async def follow_on_own_connections(self, settings: ServiceSettings, client_id: str) -> None:
        """`follow` with a consumer of its own and another where `read_to_end` asks how far the log reaches (named
        `client_id` and `<client_id>-ends`), both stopped when following ends."""

        def consumer(name: str) -> Callable[[], AIOKafkaConsumer]:
            return lambda: make_consumer(settings, group_id=None, client_id=name)

        reader = await start_when_reachable(consumer(client_id), f"{client_id} reader")
        ends = await start_when_reachable(consumer(f"{client_id}-ends"), f"{client_id} end reader")
        try:
            await self.follow(reader, ends)
        finally:
            for each in (reader, ends):
                await stop_within(each)

    async def read_to_end(self, timeout_s: float | None = None) -> bool:
        """Return once this replica has read the log up to where it ends now: True; False if `timeout_s` passed
        first (a slow broker, or the log not followed yet)."""

        async def reached() -> None:
            await self._following.wait()
            asking = self._ends or self._consumer
            assert asking is not None
            end = (await asking.end_offsets([self._partition]))[self._partition]
            async with self._progress:
                await self._progress.wait_for(lambda: self._read_up_to >= end)

        try:
            await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def _read(self, record: ConsumerRecord[bytes, bytes], live: bool) -> None:
        try:
            if record.value is None and self._tombstone is not None and record.key is not None:
                change = self._tombstone(record.key)
            else:
                change = self._decode(record.value or b"")
        except InvalidEvent as error:
            if not self._owner:
                log.warning("skipped a message its owner parks", extra={"topic": record.topic, "offset": record.offset,
                                                                      "reason": error.reason})  # fmt: skip
            elif record.offset not in self._parked:
                assert self.producer is not None, "the producer starts before the log is followed"
                await dead_letter(self.producer, record, error.reason, self._service)
                self._parked.add(record.offset)
            return
        if self._opened is not None:
            change = await self._opened(change)
        if not self._apply(change, live):
            self._repeated.add(record.offset)
