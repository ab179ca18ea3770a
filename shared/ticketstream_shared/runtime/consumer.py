"""The consuming side every service shares: read in a group, decode, dead-letter the unreadable, hand batches to
the service, and commit only after the service has finished with them (at-least-once; handlers dedup on
event_id, so the effect is once)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Gauge

from ticketstream_shared.contract import InvalidEvent, NotReadHere, UnknownEventType

from .kafka import (
    commit_unless_rebalanced,
    dead_letter,
    make_consumer,
    make_producer,
    record_correlation,
    start_when_reachable,
    stop_within,
    wait_for_topics,
)
from .logging import correlated
from .presence import Membership
from .settings import ServiceSettings
from .supervision import stop_the_service_if_it_fails

log = logging.getLogger(__name__)

EVENTS_HANDLED = Counter("ticketstream_events_handled_total", "Events handed to the service", ["topic"])
EVENTS_DEAD_LETTERED = Counter("ticketstream_events_dead_lettered_total", "Messages sent to a DLQ", ["topic"])
CONSUMER_LAG = Gauge(
    "ticketstream_consumer_lag_messages",
    "Messages written to a partition this consumer owns but not yet handled",
    ["group", "topic", "partition"],
)
EVENTS_SKIPPED = Counter(
    "ticketstream_events_skipped_total", "Well-formed events of types this version does not know", ["topic"]
)
EVENTS_PASSED_OVER = Counter(
    "ticketstream_events_passed_over_total",
    "Events of types the service has nothing to do with, passed over without decoding",
    ["topic"],
)


@dataclass(frozen=True)
class Delivery:
    """A decoded message (an event, or a request on tickets.inbound) with the place in the log it was read from."""

    event: Any
    topic: str
    partition: int
    offset: int
    record: ConsumerRecord | None = None

    @property
    def correlation_id(self) -> str | None:
        """The flow the message belongs to: its header, else the id its event carries."""
        written_under = record_correlation(self.record) if self.record is not None else None
        return written_under or getattr(self.event, "correlation_id", None)


@dataclass
class _Handling:
    """A batch in the handler's hands, and how far each partition was read for it."""

    batch: list[Delivery]
    read: dict[TopicPartition, int]
    handled: asyncio.Task[Rejections | None] | None

    @property
    def done(self) -> bool:
        return self.handled is None or self.handled.done()


Decoder = Callable[[bytes], Any]
#: What a handler refuses although it could decode it (e.g. a command for an unknown ticket), with the reason.
Rejections = list[tuple[Delivery, str]]
#: Handles a batch; returns its rejections (or None), which go to the DLQ before the batch is committed.
BatchHandler = Callable[[list[Delivery]], Coroutine[Any, Any, Rejections | None]]


#: Called with the partitions just assigned, before any of their messages is fetched (e.g. to restore the state
#: kept for them).
OnAssigned = Callable[[set[TopicPartition]], Awaitable[None]]


class _Assignment(ConsumerRebalanceListener):
    def __init__(self, on_assigned: OnAssigned | None) -> None:
        self.assigned = False
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.assigned = False

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._on_assigned is not None:
            await self._on_assigned(set(assigned))
        self.assigned = True


class EventConsumer:
    """One consumer-group member. A batch ends at `max_batch` events or `max_wait_s` after its first event.

    With `read_ahead` n, up to n batches are in the handler's hands while the next is read and decoded: with 1 the
    handler works on one batch at a time, with 2 it is given the next batch before it is done with this one (a
    handler that keeps the order of its own effects where it must, as reporting's ledger does). Each batch is
    committed (its own offsets) once its handler is done with it and with every batch before it. For a handler that
    spends its time off the event loop (reporting's inserts run in ClickHouse, on a thread of its own).

    With `co_partitioned`, partition n of every topic goes to the same member (the range assignor; the topics have
    as many partitions each): state kept per ticket partition sees all of a ticket's events, whatever topic. With
    `start_at_end`, a group that has committed nothing yet starts at the end of each partition, not its beginning.
    With a `membership`, the group's members watch each other's presence (runtime/presence.py): a member whose
    process is gone is removed at once, not after its session (a co-partitioned group's directory is a
    RangeDirectory)."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        service: str,
        group_id: str,
        decoders: dict[str, Decoder],
        handle: BatchHandler,
        max_batch: int = 500,
        max_wait_s: float = 0.05,
        read_ahead: int = 0,
        co_partitioned: bool = False,
        start_at_end: bool = False,
        on_assigned: OnAssigned | None = None,
        membership: Membership | None = None,
    ) -> None:
        if (
            co_partitioned
            and membership is not None
            and not issubclass(membership.directory.plain, RangePartitionAssignor)
        ):
            raise ValueError("a co-partitioned group's directory assigns by range (RangeDirectory)")
        self._settings = settings
        self._membership = membership
        self._service = service
        self._group_id = group_id
        self._decoders = decoders
        self._handle = handle
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._read_ahead = read_ahead
        self._on_assigned = on_assigned
        self._assignment = _Assignment(self._assigned)
        self._co_partitioned = co_partitioned
        self._start_at_end = start_at_end
        self._stopping = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._dead_letters: AIOKafkaProducer | None = None

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        if self._start_at_end and self.consumer is not None:
            # Where a partition the group never read starts is settled now, and committed: once `ready`, whatever is
            # written is read, also by the member that holds the partition after the next rebalance. (By offset:
            # position() here would wait for the assignment this listener is part of.)
            fresh = [partition for partition in partitions if await self.consumer.committed(partition) is None]
            starts = await self.consumer.end_offsets(fresh) if fresh else {}
            for partition, end in starts.items():
                self.consumer.seek(partition, end)
            if starts:
                await commit_unless_rebalanced(self.consumer, starts)
        if self._on_assigned is not None:
            await self._on_assigned(partitions)

    @property
    def ready(self) -> bool:
        running = self._task is not None and not self._task.done()
        return running and self.consumer is not None and self._assignment.assigned

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and leave the group."""
        self._stopping.set()

    @asynccontextmanager
    async def running(self, drain_timeout_s: float = 15.0) -> AsyncIterator[None]:
        """Consume while the context is open (a service's lifespan); on exit, drain and leave the group."""
        task = self._task = asyncio.create_task(self.run(), name=f"{self._service}-consumer")
        stop_the_service_if_it_fails(task, self._stopping.is_set)  # a handler's defect: not a consumer gone quiet
        try:
            yield
        finally:
            self.stop()
            try:
                await asyncio.wait_for(asyncio.shield(task), drain_timeout_s)
            except TimeoutError:  # still waiting for a broker that never answered
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def run(self) -> None:
        dead_letters = await start_when_reachable(
            lambda: make_producer(self._settings, f"{self._service}-dlq"), "dead-letter producer"
        )
        options: dict[str, Any] = {"auto_offset_reset": "latest"} if self._start_at_end else {}
        if self._co_partitioned:
            options["partition_assignment_strategy"] = (RangePartitionAssignor,)
        if self._membership is not None:
            options.update(self._membership.consumer_options())
        consumer = await start_when_reachable(
            lambda: make_consumer(self._settings, group_id=self._group_id, client_id=self._service, **options),
            "consumer",
        )
        await self.consume(consumer, dead_letters)

    async def consume(self, consumer: AIOKafkaConsumer, dead_letters: AIOKafkaProducer) -> None:
        """Consume with clients already started (Kafka's, or a test's fakes) until stopped; then leave the group and
        stop both clients."""
        self._dead_letters, self.consumer = dead_letters, consumer
        await wait_for_topics(self.consumer, self._decoders)
        watching = await self._watch_the_group()
        self.consumer.subscribe(list(self._decoders), listener=self._assignment)
        in_hand: collections.deque[_Handling] = collections.deque()  # oldest first
        try:
            while not self._stopping.is_set():
                batch, read = await self._next_batch(self.consumer)
                # Once this batch is handed over, at most read_ahead are in hand; with nothing read, none stays
                # uncommitted while the partitions are quiet.
                may_keep = self._read_ahead - 1 if read else 0
                while in_hand and (len(in_hand) > may_keep or in_hand[0].done):
                    await self._finish(in_hand.popleft())
                if read:  # also a batch of only dead letters or skipped events: they are done with too
                    in_hand.append(self._start(batch, read))
                    if not self._read_ahead:
                        await self._finish(in_hand.popleft())
                await self._record_lag(self.consumer)
            while in_hand:
                await self._finish(in_hand.popleft())
        finally:
            for handling in in_hand:  # failed or cancelled: nothing more of them
                if handling.handled is not None:
                    handling.handled.cancel()
                    with contextlib.suppress(BaseException):
                        await handling.handled
            # Leave the group at once, so a rebalance need not wait for a session timeout; bounded, because at
            # shutdown the broker may already be gone (then the group notices by itself, and nothing is lost:
            # what was not committed is delivered again).
            for client in (self.consumer, self._dead_letters):
                await stop_within(client)
            if watching is not None:
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching

    async def _watch_the_group(self) -> asyncio.Task[None] | None:
        """Before joining: with a membership, the watch of the others' presence, running."""
        if self._membership is None:
            return None
        watch = await self._membership.before_joining(self._group_id, f"{self._service}-peer-watch")
        if watch is None:
            return None
        watching = asyncio.create_task(watch.run(), name=f"{self._service}-peer-watch")
        stop_the_service_if_it_fails(watching, self._stopping.is_set)
        return watching

    def _start(self, batch: list[Delivery], read: dict[TopicPartition, int]) -> _Handling:
        """Hand `batch` to the handler, as a task: with read_ahead the next batch is read meanwhile."""
        if not batch:
            return _Handling(batch, read, None)
        with correlated(delivery.correlation_id for delivery in batch):  # the task's log lines carry them
            return _Handling(batch, read, asyncio.create_task(self._handle(batch)))

    async def _finish(self, handling: _Handling) -> None:
        """Once the handler is done with a batch: dead-letter what it refused, then commit what was read."""
        rejections = (await handling.handled if handling.handled is not None else None) or ()
        for delivery, reason in rejections:
            await self._dead_letter(delivery.record, reason)
        for topic, handled in collections.Counter(delivery.topic for delivery in handling.batch).items():
            EVENTS_HANDLED.labels(topic).inc(handled)  # per batch: 2 µs an event when per event
        assert self.consumer is not None
        await commit_unless_rebalanced(self.consumer, handling.read)

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        """From what the last fetch said of each partition's end: no extra request to the broker."""
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            if end is not None:
                lag = end - await consumer.position(partition)
                CONSUMER_LAG.labels(self._group_id, partition.topic, str(partition.partition)).set(lag)

    async def _next_batch(self, consumer: AIOKafkaConsumer) -> tuple[list[Delivery], dict[TopicPartition, int]]:
        """The events to hand over, and how far each partition was read (what to commit once they are handled)."""
        batch: list[Delivery] = []
        read: dict[TopicPartition, int] = {}
        deadline: float | None = None
        while len(batch) < self._max_batch and not self._stopping.is_set():
            timeout = 0.5 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            fetched = await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=self._max_batch - len(batch))
            for partition, records in fetched.items():
                for record in records:
                    delivery = await self._decode(record)
                    if delivery is not None:
                        batch.append(delivery)
                if records:
                    read[partition] = records[-1].offset + 1
            if fetched and deadline is None:
                deadline = time.monotonic() + self._max_wait_s
            if not fetched and deadline is None:
                break  # idle: look again
        return batch, read

    async def _decode(self, record: ConsumerRecord) -> Delivery | None:
        topic = record.topic
        try:
            event = self._decoders[topic](record.value or b"")
        except NotReadHere:
            EVENTS_PASSED_OVER.labels(topic).inc()
            return None
        except UnknownEventType:
            EVENTS_SKIPPED.labels(topic).inc()
            return None
        except InvalidEvent as error:
            await self._dead_letter(record, error.reason)
            return None
        return Delivery(event, topic, record.partition, record.offset, record)

    async def _dead_letter(self, record: ConsumerRecord | None, reason: str) -> None:
        """Returns once the DLQ has the message, so committing past it loses nothing."""
        assert self._dead_letters is not None and record is not None
        await dead_letter(self._dead_letters, record, reason, self._service)
        EVENTS_DEAD_LETTERED.labels(record.topic).inc()
