"""Owning partitions without reading them: a member of a consumer group that fetches nothing and only holds a
share of a topic's partitions, telling its service which ones it was given and which it gave up.

For a log every replica reads whole (assignment's team log, notify's deliveries) while one replica at a time acts
on each partition (decides for its teams, sends its deliveries): the group settles who acts, as it settles who
consumes, and a take-over follows the group's own rebalance protocol and session timeout.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from .consumer import EVENTS_DEAD_LETTERED
from .kafka import dead_letter, wait_for_topics

log = logging.getLogger(__name__)

#: Told of partitions given to (or taken from) this member, while the group rebalances: a service that gives one up
#: finishes what it does for it first, so the next owner starts where this one ended.
Handover = Callable[[set[TopicPartition]], Awaitable[None]]


class PartitionOwnership(ConsumerRebalanceListener):
    def __init__(self, consumer: AIOKafkaConsumer, topic: str, taken: Handover, given_up: Handover) -> None:
        self._consumer = consumer
        self._topic = topic
        self._taken = taken
        self._given_up = given_up

    async def hold(self) -> None:
        """Be a member for as long as the service runs; every partition stays paused (the service reads elsewhere)."""
        await wait_for_topics(self._consumer, [self._topic])
        self._consumer.subscribe([self._topic], listener=self)
        while True:
            await self._consumer.getmany(timeout_ms=1_000)  # keeps the membership alive

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer.pause(*assigned)
        await self._taken(set(assigned))

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._given_up(set(revoked))


class ActingPartitions:
    """Of a log every replica reads whole: how far this replica has read each partition, which partitions the group
    gave it, and which of those it acts on. A partition given is acted on only once the log has been read up to
    where it ended when given, so that what its previous owner did is folded first."""

    def __init__(self) -> None:
        #: The offset of the next record to read, per partition.
        self.positions: dict[int, int] = {}
        #: The partitions the group gave this replica, acted on or not yet.
        self.given: set[int] = set()
        #: Partitions given and not acted on yet: the offset to read up to first.
        self._read_first: dict[int, int] = {}

    def acts_on(self, partition: int) -> bool:
        return partition in self.given and partition not in self._read_first

    @property
    def acting(self) -> set[int]:
        return self.given - self._read_first.keys()

    def read(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.positions[record.partition] = record.offset + 1

    def read_to(self, ends: Mapping[int, int] | None) -> bool:
        """Whether every partition of `ends` has been read up to its end there (False for None: no ends yet)."""
        return ends is not None and all(self.positions.get(p, 0) >= end for p, end in ends.items())

    async def take(self, owner: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """The group gave `assigned` to `owner`, this replica's member: acted on once read to where they end now."""
        ends = await owner.end_offsets(list(assigned)) if assigned else {}
        for tp in assigned:
            self._read_first[tp.partition] = ends[tp]
            self.given.add(tp.partition)

    def give_up(self, revoked: set[TopicPartition]) -> set[int]:
        """The group took `revoked` away: no longer acted on. Returns their numbers."""
        partitions = {tp.partition for tp in revoked}
        self.given -= partitions
        for partition in partitions:
            self._read_first.pop(partition, None)
        return partitions

    def now_acted_on(self) -> list[int]:
        """The partitions given that the log is now read far enough in to act on, from now (each told once)."""
        ready = sorted(p for p, end in self._read_first.items() if self.positions.get(p, 0) >= end)
        for partition in ready:
            del self._read_first[partition]
        return ready


class Parking:
    """The unreadable records of such a log, each parked in its DLQ once: by the partition's owner, which commits in
    the owners' group the offset below which the partition's unreadable records are parked. A new owner (or this one
    after a restart, reading the log again) parks only those nobody parked yet, including those it read while it did
    not own the partition."""

    def __init__(self, topic: str, service: str, producer: Callable[[], AIOKafkaProducer | None]) -> None:
        self._producer = producer
        self._topic = topic
        self._service = service
        self._owned: set[int] = set()
        self._parked_below: dict[int, int] = {}
        self._uncommitted: set[int] = set()
        #: Unreadable records of partitions others own, with the reason: ours to park if we take one over first.
        self._unparked: dict[int, list[tuple[ConsumerRecord[bytes, bytes], str]]] = defaultdict(list)

    async def unreadable(self, message: ConsumerRecord[bytes, bytes], reason: str) -> None:
        if message.partition in self._owned:
            await self._park(message, reason)
        else:
            self._unparked[message.partition].append((message, reason))

    async def taken(self, owner: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            self._parked_below[tp.partition] = await owner.committed(tp) or 0
            self._owned.add(tp.partition)
            for message, reason in self._unparked.pop(tp.partition, []):
                await self._park(message, reason)

    def given_up(self, revoked: set[TopicPartition]) -> None:
        self._owned -= {tp.partition for tp in revoked}

    def unparked(self) -> dict[int, list[tuple[ConsumerRecord[bytes, bytes], str]]]:
        """The unreadable records read while others owned their partitions, for a checkpoint of the log's reader
        (which will not read them again): `resume` takes them back."""
        return {partition: list(waiting) for partition, waiting in self._unparked.items() if waiting}

    async def resume(self, unparked: dict[int, list[tuple[ConsumerRecord[bytes, bytes], str]]]) -> None:
        """Those of a checkpoint, as if read again: parked now if their partition was taken over meanwhile."""
        for waiting in unparked.values():
            for message, reason in waiting:
                await self.unreadable(message, reason)

    async def _park(self, message: ConsumerRecord[bytes, bytes], reason: str) -> None:
        if message.offset < self._parked_below.get(message.partition, 0):
            return  # an owner before us parked it
        producer = self._producer()
        assert producer is not None, "parked before the broker answered"
        await dead_letter(producer, message, reason, self._service)
        EVENTS_DEAD_LETTERED.labels(message.topic).inc()
        self._parked_below[message.partition] = message.offset + 1
        self._uncommitted.add(message.partition)

    async def commit(self, owner: AIOKafkaConsumer) -> None:
        """Commit how far each owned partition's unreadable records are parked. Not from a rebalance listener (a
        commit may wait for the rebalance); a refused commit only means the next owner parks those records again."""
        offsets = {
            TopicPartition(self._topic, partition): OffsetAndMetadata(self._parked_below[partition], "")
            for partition in self._uncommitted & self._owned
        }
        self._uncommitted.clear()
        if offsets:
            try:
                await owner.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                log.warning("could not commit how far the DLQ has %s", self._topic, extra={"error": str(error)})
