"""notify.deliveries on Kafka: scheduling deliveries, following every partition into the book, and sending the
deliveries of the partitions this replica owns.

Every replica reads every partition (no group) into its Book, so any replica answers for any webhook, and one
that takes a partition over has its deliveries in memory already. Which replica *sends* is settled by a second
consumer, in the group `<CONSUMER_GROUP>-senders`, that fetches nothing: it only holds partitions (the team log of
assignment works the same way). Taking a partition over, the new owner first reads it to the end it had at that
moment (the previous owner's last attempts included), then sends what still waits.

Each target (a webhook, a person's mailbox) has its own lanes, so a slow or dead endpoint delays nobody else;
a ticket's deliveries keep to one lane, one after another, so each endpoint gets them in order. A failed attempt
is tried again after an exponential wait with jitter, for the retry budget; then the delivery goes to
notify.deliveries.dlq and the endpoint shows as failing until a delivery succeeds again. Every attempt is a record
of the log: at least once, and a take-over resumes where the log says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import types
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Histogram
from tenacity import RetryCallState, wait_exponential_jitter

from ticketstream_shared.contract import InvalidEvent, encode
from ticketstream_shared.contract.codec import decode_delivery_record
from ticketstream_shared.contract.notify import (
    DeliveryAttempted,
    DeliveryChannel,
    DeliveryRecord,
    DeliveryScheduled,
    Outcome,
    delivery_key,
)
from ticketstream_shared.contract.topics import NOTIFY_DELIVERIES
from ticketstream_shared.runtime.consumer import EVENTS_DEAD_LETTERED
from ticketstream_shared.runtime.kafka import correlation_headers, dead_letter, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.outbox import Outbox
from ticketstream_shared.runtime.ownership import ActingPartitions, Parking, PartitionOwnership
from ticketstream_shared.runtime.supervision import stop_the_service_if_it_fails

from .book import Book, Delivery, Status
from .notices import ACTOR
from .senders import Result
from .settings import NotifySettings

log = logging.getLogger(__name__)

ATTEMPTS = Counter("ticketstream_notify_attempts_total", "Delivery attempts", ["channel", "outcome"])
TO_DELIVERED = Histogram(
    "ticketstream_notify_scheduled_to_delivered_seconds",
    "From a delivery's scheduling to its successful attempt",
    ["channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600),
)
UNREADABLE = Counter("ticketstream_notify_delivery_records_unreadable_total", "Unreadable notify.deliveries records")


class Sender(Protocol):
    async def send(self, delivery: DeliveryScheduled) -> Result: ...


@dataclass
class _Lane:
    queue: deque[Delivery] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class DeliveryLog:
    def __init__(
        self,
        book: Book,
        settings: NotifySettings,
        senders: dict[DeliveryChannel, Sender],
        clock: Callable[[], datetime],
        instance: str = "notify",
    ) -> None:
        self.book = book
        self._settings = settings
        self._senders = senders
        self._clock = clock
        self._instance = instance
        self.producer: AIOKafkaProducer | None = None
        #: Set once every partition has been read to the end it had at start-up.
        self.caught_up = asyncio.Event()
        #: How far the deliveries are read, which partitions the group gave us, and which we send for.
        self.partitions = ActingPartitions()
        self._lanes: dict[tuple[DeliveryChannel, str, int], _Lane] = {}
        self._wait = wait_exponential_jitter(
            multiplier=settings.webhook_first_retry_s,
            max=settings.webhook_longest_retry_s,
            jitter=settings.webhook_first_retry_s,
        )
        self._budget = timedelta(seconds=settings.webhook_retry_budget_s)
        self._stopping = False
        self._owner: AIOKafkaConsumer | None = None
        self._parking = Parking(NOTIFY_DELIVERIES, "notify", lambda: self.producer)

    # writing

    async def append(self, record: DeliveryRecord) -> asyncio.Future[object]:
        """Queue `record` under its target's key; the future resolves once Kafka has it (acks=all)."""
        assert self.producer is not None, "appended before the broker answered"
        # one at a time (a lane's attempt): `send` lingers, and the attempts of several lanes share a request
        key = delivery_key(record.channel, record.target)
        return await self.producer.send(NOTIFY_DELIVERIES, encode(record), key=key, headers=correlation_headers())

    def outbox(self) -> Outbox:
        """Where a turn's records wait to be sent together (`Outbox.send`): the fan-out of a batch of events."""
        assert self.producer is not None, "appended before the broker answered"
        return Outbox(self.producer)

    @staticmethod
    def put(outbox: Outbox, record: DeliveryRecord) -> None:
        """`record`, under its target's key, into `outbox`."""
        key = delivery_key(record.channel, record.target)
        outbox.put(NOTIFY_DELIVERIES, encode(record), key, correlation_headers())

    # following

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read every partition from the beginning (what retention kept) into the book, for as long as the service
        runs; send for the owned ones, and park their unreadable records (written by no notify) in the DLQ."""
        await wait_for_topics(consumer, [NOTIFY_DELIVERIES])
        consumer.subscribe([NOTIFY_DELIVERIES])  # no group: every partition
        end_at_start: dict[int, int] | None = None
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=5_000)
            for records in fetched.values():
                for record in records:
                    await self._fold(record)
            if self._owner is not None:
                await self._parking.commit(self._owner)
            if end_at_start is None and consumer.assignment():
                assigned = list(consumer.assignment())
                end_at_start = {tp.partition: end for tp, end in (await consumer.end_offsets(assigned)).items()}
                for tp in assigned:
                    self.partitions.positions.setdefault(tp.partition, await consumer.position(tp))
            for partition in self.partitions.now_acted_on():
                for delivery in self.book.waiting_in({partition}):
                    self._dispatch(delivery)
                log.info("sending for a deliveries partition", extra={"partition": partition})
            if self.partitions.read_to(end_at_start) and not self.caught_up.is_set():
                log.info("deliveries read to their end", extra={"targets": len(self.book.targets)})
                tune_garbage_collection()  # the book just read: out of the collector's walks from now on
                self.caught_up.set()

    async def _fold(self, message: ConsumerRecord[bytes, bytes]) -> None:
        self.partitions.read(message)
        try:
            record = decode_delivery_record(message.value or b"")
        except InvalidEvent as error:
            UNREADABLE.inc()
            await self._parking.unreadable(message, error.reason)
            return
        due = self.book.fold(record, message.partition, message.offset, message.value or b"")
        if due is not None and self.partitions.acts_on(message.partition):
            self._dispatch(due)

    # sending

    def _dispatch(self, delivery: Delivery) -> None:
        scheduled = delivery.scheduled
        lanes = self._settings.webhook_lanes if scheduled.channel is DeliveryChannel.WEBHOOK else 1
        number = zlib.crc32(scheduled.ticket_id.encode()) % lanes
        lane = self._lanes.setdefault((scheduled.channel, scheduled.target, number), _Lane())
        lane.queue.append(delivery)
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._work(lane), name=f"deliver-{scheduled.target}-{number}")
            stop_the_service_if_it_fails(lane.task, lambda: self._stopping)

    async def _work(self, lane: _Lane) -> None:
        while lane.queue:
            delivery = lane.queue[0]
            if delivery.status is not Status.WAITING or not self.partitions.acts_on(delivery.partition):
                lane.queue.popleft()
                continue
            due = delivery.next_attempt_at
            if due is not None and (pause := (due - self._clock()).total_seconds()) > 0:
                await asyncio.sleep(pause)
                continue  # still ours, still waiting? looked at again
            if await self._attempt(delivery):
                lane.queue.popleft()

    async def _attempt(self, delivery: Delivery) -> bool:
        """One attempt, recorded in the log and the book; True once the delivery is finished with."""
        scheduled = delivery.scheduled
        result = await self._senders[scheduled.channel].send(scheduled)
        now = self._clock()
        number = (delivery.attempts[-1].attempt if delivery.attempts else 0) + 1
        next_at: datetime | None = None
        if result.delivered:
            outcome = Outcome.DELIVERED
        else:
            since = delivery.since or scheduled.occurred_at
            attempt = cast(RetryCallState, types.SimpleNamespace(attempt_number=number))  # all the wait reads
            next_at = now + timedelta(seconds=self._wait(attempt))
            outcome = Outcome.GAVE_UP if result.final or next_at - since > self._budget else Outcome.WILL_RETRY
            if outcome is Outcome.GAVE_UP:
                next_at = None
        record = DeliveryAttempted(
            delivery_id=scheduled.delivery_id,
            occurred_at=now,
            channel=scheduled.channel,
            target=scheduled.target,
            attempt=number,
            outcome=outcome,
            status_code=result.status_code,
            error=result.error[:500] if result.error else None,
            latency_ms=result.latency_ms,
            next_attempt_at=next_at,
            actor=ACTOR,
        )
        written = await self.append(record)
        if scheduled.channel is DeliveryChannel.MAIL:
            # The send log: the next mail goes out only once Kafka has this one's outcome, so a kill -9 sends again
            # (under the same Message-ID) at most the one mail per mailbox that was in flight.
            await written
        else:
            # Not waited for: the lane's next POST goes out meanwhile (at least once; Kafka keeps a partition's
            # records in order, and one it cannot take after the producer's retries stops the service).
            written.add_done_callback(self._recorded)
        self.book.fold(record, delivery.partition, -1, b"")
        ATTEMPTS.labels(scheduled.channel.value, outcome.value).inc()
        if outcome is Outcome.DELIVERED:
            TO_DELIVERED.labels(scheduled.channel.value).observe((now - scheduled.occurred_at).total_seconds())
        elif outcome is Outcome.GAVE_UP:
            assert self.producer is not None
            reason = f"gave up after {number} attempt(s): {result.error}"
            await dead_letter(self.producer, _as_record(delivery), reason, "notify")
            EVENTS_DEAD_LETTERED.labels(NOTIFY_DELIVERIES).inc()
        return outcome is not Outcome.WILL_RETRY

    def _recorded(self, written: asyncio.Future[object]) -> None:
        if not written.cancelled() and written.exception() is not None and not self._stopping:
            log.critical("an attempt could not be recorded; stopping the service", exc_info=written.exception())
            os.kill(os.getpid(), signal.SIGTERM)

    # owning

    async def own(self, consumer: AIOKafkaConsumer) -> None:
        """Hold a share of the partitions in the senders' group; fetch nothing (the follower reads)."""
        self._owner = consumer
        await PartitionOwnership(consumer, NOTIFY_DELIVERIES, self._taken, self._given_up).hold()

    async def _taken(self, assigned: set[TopicPartition]) -> None:
        assert self._owner is not None
        await self.partitions.take(self._owner, assigned)
        await self._parking.taken(self._owner, assigned)

    async def _given_up(self, revoked: set[TopicPartition]) -> None:
        self._parking.given_up(revoked)
        partitions = self.partitions.give_up(revoked)
        stopping = []
        for lane in self._lanes.values():
            if lane.queue and lane.queue[0].partition in partitions:
                if lane.task is not None:
                    lane.task.cancel()  # an attempt in flight is made again by the next owner: at least once
                    stopping.append(lane.task)
                lane.queue.clear()
        for task in stopping:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.producer is not None:
            await self.producer.flush()

    async def stop(self) -> None:
        self._stopping = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _as_record(delivery: Delivery) -> ConsumerRecord[bytes, bytes]:
    scheduled = delivery.scheduled
    key = delivery_key(scheduled.channel, scheduled.target)
    return ConsumerRecord(
        NOTIFY_DELIVERIES,
        delivery.partition,
        delivery.offset,
        0,
        0,
        key,
        delivery.raw,
        None,
        len(key),
        len(delivery.raw),
        [],
    )
