"""The topics as intake's memory: appending to tickets.events with Kafka's acknowledgement, and reading topics
back into the local store (tickets.events into the ledger, assignment.events into the desk), each from where the
store has applied it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import Counter

from ticketstream_shared.contract import InvalidEvent, TicketEvent, UnknownEventType, decode_event, encode, read_logged
from ticketstream_shared.contract.topics import TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import correlation_headers, partitions_of, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.store import Changes, LocalStore

log = logging.getLogger(__name__)

EVENTS_APPENDED = Counter("ticketstream_intake_events_appended_total", "Events appended to tickets.events")
EVENTS_READ = Counter("ticketstream_intake_events_read_total", "Events folded into intake's state", ["topic"])
EVENTS_UNREADABLE = Counter(
    "ticketstream_intake_events_unreadable_total",
    "Messages intake skipped while reading a topic back (the consumer groups dead-letter them)",
    ["topic"],
)


class Landed(NamedTuple):
    """Where an append's last event landed, and whether each of its events is known to be the first at its version
    without reading it back."""

    partition: int
    offset: int
    alone: bool


class KafkaTicketLog:
    """Appends to tickets.events, keyed by ticket so each ticket's events keep their order in one partition.

    An event is the first at its version when no other writer's event landed between what this replica had read
    when it decided and the event itself. Only a partition's owner appends to it, so that holds but across a
    hand-over (a zombie owner, owners.py); the offsets this replica's events land at tell it without reading the
    log back: per partition, the latest run of consecutive offsets that were all this replica's.

    The producer is attached once the broker answers; the ledger appends only after it has read the log, which
    needs the broker too, so an append never finds it missing."""

    def __init__(self, positions: LogPositions) -> None:
        """`positions`: how far this replica's reader has read the log (follow), which decisions are taken on."""
        self.producer: AIOKafkaProducer | None = None
        self._positions = positions
        #: Per partition, [first, end): offsets this replica's events landed at, one after the other.
        self._runs: dict[int, list[int]] = {}

    def read_so_far(self) -> dict[int, int]:
        """How far this replica has read each partition: what a decision taken now is based on."""
        return self._positions.snapshot()

    async def append(self, events: list[TicketEvent], read: dict[int, int]) -> Landed:
        """Return once the log has durably stored every event, in order (`read`: read_so_far when deciding them)."""
        assert self.producer is not None, "appended before the broker answered"
        headers = correlation_headers()
        landed: list[Landed] = []

        def note(sent: asyncio.Future[Any]) -> None:
            # A callback, not the awaiting task: callbacks run in the order the broker acknowledged, so the run of
            # consecutive offsets is seen as it grew whichever task resumes first.
            if not sent.cancelled() and sent.exception() is None:
                landed.append(self._landed(sent.result().partition, sent.result().offset, read))

        pending = []
        for event in events:
            sent = await self.producer.send(
                TICKETS_EVENTS, encode(event), key=event.ticket_id.encode(), headers=headers
            )
            sent.add_done_callback(note)
            pending.append(sent)
        await asyncio.gather(*pending)
        EVENTS_APPENDED.inc(len(events))
        return landed[-1]._replace(alone=all(event.alone for event in landed))

    def _landed(self, partition: int, offset: int, read: dict[int, int]) -> Landed:
        run = self._runs.get(partition)
        if run is not None and run[1] == offset:
            run[1] = offset + 1
        else:  # another writer's events came between, or this is the first here
            run = self._runs[partition] = [offset, offset + 1]
        return Landed(partition, offset, read.get(partition, 0) >= run[0])

    async def read_back(self, landed: Landed) -> None:
        """Return once this replica has read the log past `landed`."""
        await self._positions.reached(landed.partition, landed.offset + 1)


class LogPositions:
    """How far a topic has been read, per partition: the offset of the next message to read."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}
        self._moved = asyncio.Event()

    def snapshot(self) -> dict[int, int]:
        return dict(self._next)

    def advance(self, partition: int, next_offset: int) -> None:
        self._next[partition] = next_offset
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def reached(self, partition: int, offset: int) -> None:
        """Return once everything before `offset` in `partition` has been read."""
        while self._next.get(partition, 0) < offset:
            await self._moved.wait()


#: Folds one event read from a topic into a write of the store; returns the changelog keys whose records it changed.
#: Intake's own log comes as its JSON as written (`read_logged`: intake validated each event when it wrote it), any
#: other topic as the contract's model.
Apply = Callable[[Changes, Any, bytes], set[bytes]]


async def follow(
    consumer: AIOKafkaConsumer,
    topic: str,
    store: LocalStore,
    apply: Apply,
    caught_up: asyncio.Event,
    positions: LogPositions | None = None,
    changed: Callable[[int, set[bytes]], None] | None = None,
) -> None:
    """Read every partition of `topic` from where `store` has applied it through `apply`, writing each fetched batch
    to the store atomically with how far it reaches; set `caught_up` once the end the topic had when we started is
    reached, and keep following what its writers append (recording how far in `positions`, and telling `changed`
    which changelog keys each batch changed). A message that is not an event this version folds is skipped (the
    consumer groups dead-letter it)."""
    await wait_for_topics(consumer, [topic])
    partitions = await partitions_of(consumer, topic)
    consumer.assign(partitions)
    applied = store.applied(topic)
    for partition in partitions:
        consumer.seek(partition, applied.get(partition.partition, 0))
        if positions is not None:
            positions.advance(partition.partition, applied.get(partition.partition, 0))  # held in the store already
    end_at_start = await consumer.end_offsets(partitions)
    log.info("reading from the store's position", extra={"topic": topic, "from": applied})
    read = read_logged if topic == TICKETS_EVENTS else decode_event
    while True:
        if not caught_up.is_set() and all([await consumer.position(tp) >= end for tp, end in end_at_start.items()]):
            log.info("read to its end", extra={"topic": topic})
            tune_garbage_collection()  # what start-up allocated leaves the collector's walks
            caught_up.set()
        batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
        folded = 0
        for partition, records in batches.items():
            changes, keys = Changes(), set()
            for record in records:
                raw = record.value or b""
                try:
                    keys |= apply(changes, read(topic, raw), raw)
                    folded += 1
                except UnknownEventType:
                    pass
                except InvalidEvent as error:
                    EVENTS_UNREADABLE.labels(topic).inc()
                    log.warning("skipped an unreadable event", extra={"topic": topic, "reason": error.reason})
            changes.applied(topic, partition.partition, records[-1].offset + 1)
            store.write(changes)
            if changed is not None:
                changed(partition.partition, keys)
            if positions is not None:
                positions.advance(partition.partition, records[-1].offset + 1)
        EVENTS_READ.labels(topic).inc(folded)  # per batch: 2 µs an event when per event
