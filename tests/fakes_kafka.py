"""Kafka in memory, for unit tests of the code around the clients (pure logic, no broker).

A `FakeBroker` holds every topic of the system (names and partition counts from the contract) as lists of real
`ConsumerRecord`s; a `FakeProducer` appends to it, keyed records landing on the partition Kafka's default
partitioner gives them; a `FakeConsumer` reads it as aiokafka's consumer does, as far as ticketstream uses one:
in no group it reads every partition of what it subscribes to, from the beginning (or the end); in a group it
reads only what a `rebalance` gives it, from the group's committed offsets, and calls the subscription's
listener. `getmany` waits, up to its timeout, for records to arrive, as a fetch from a broker does.

tests/integration has the same code paths against a real broker.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from ticketstream_shared.contract import TOPICS
from ticketstream_shared.runtime.kafka import partition_of

PARTITIONS = {spec.name: spec.partitions for spec in TOPICS}


def every_partition(topic: str) -> set[TopicPartition]:
    return {TopicPartition(topic, partition) for partition in range(PARTITIONS[topic])}


class FakeBroker:
    def __init__(self) -> None:
        self.logs: dict[TopicPartition, list[ConsumerRecord]] = defaultdict(list)
        self.committed: dict[str, dict[TopicPartition, int]] = defaultdict(dict)
        #: What happened, in order: ("appended", topic, partition, offset) and ("committed", group, offsets).
        self.journal: list[tuple[Any, ...]] = []
        self._waiting: set[asyncio.Future[None]] = set()

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        partition: int | None = None,
    ) -> ConsumerRecord:
        """Write a record, as a producer's acknowledged send does; a keyed one to its key's partition."""
        if partition is None:
            partition = partition_of(key.decode(), PARTITIONS[topic]) if key is not None else 0
        log = self.logs[TopicPartition(topic, partition)]
        record = ConsumerRecord(
            topic, partition, len(log), 0, 0, key, value, None, len(key or b""), len(value or b""), list(headers)
        )
        log.append(record)
        self.journal.append(("appended", topic, partition, record.offset))
        self.wake()
        return record

    def records(self, topic: str) -> list[ConsumerRecord]:
        """Every record of `topic`, in the order they were written."""
        appended = [entry[1:] for entry in self.journal if entry[0] == "appended"]
        return [
            self.logs[TopicPartition(topic, p)][offset] for written_to, p, offset in appended if written_to == topic
        ]

    def end(self, tp: TopicPartition) -> int:
        return len(self.logs.get(tp, []))

    def wake(self) -> None:
        """Tell waiting fetches to look again."""
        waiting, self._waiting = self._waiting, set()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    async def changed(self, timeout_s: float) -> None:
        """Return once something changed, or after `timeout_s`. (Not asyncio.wait_for: on Python 3.11 a
        cancellation arriving as the wait ends is lost, and a cancelled reader would go on reading.)"""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.add(waiter)
        timer = asyncio.get_running_loop().call_later(timeout_s, lambda: waiter.done() or waiter.set_result(None))
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiting.discard(waiter)


class FakeBatch:
    """A record batch as aiokafka's BatchBuilder takes records (no size limit)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]] = []
        self.closed = False

    def append(
        self,
        *,
        timestamp: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> object | None:
        if self.closed:
            return None
        self.records.append((key, value, headers))
        return object()

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Appends to the broker. With `acknowledging` False, sends are held (their futures pending, the records not in
    the log) until `acknowledge()`: a broker slow to answer."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.acknowledging = True
        self.held: list[tuple[asyncio.Future[ConsumerRecord], dict[str, Any]]] = []
        self.flushes = 0
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[ConsumerRecord]:
        future: asyncio.Future[ConsumerRecord] = asyncio.get_running_loop().create_future()
        record = {"topic": topic, "value": value, "key": key, "headers": headers or (), "partition": partition}
        self.held.append((future, record))
        if self.acknowledging:
            self.acknowledge()
        return future

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        """As many sends to `partition`, in order; the future resolves once Kafka has them all."""
        sent = [await self.send(topic, value, key, headers, partition) for key, value, headers in batch.records]
        return asyncio.ensure_future(asyncio.gather(*sent))

    async def send_and_wait(self, topic: str, value: bytes | None = None, **options: Any) -> ConsumerRecord:
        return await (await self.send(topic, value, **options))

    def acknowledge(self) -> None:
        """Kafka has every send so far."""
        held, self.held = self.held, []
        for future, record in held:
            future.set_result(self.broker.append(**record))

    async def flush(self) -> None:
        self.flushes += 1

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS[topic]))


class _Metadata:
    """What runtime.kafka.partitions_of asks aiokafka's client for: the cluster's topics and their partitions."""

    async def fetch_all_metadata(self) -> _Metadata:
        return self

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(PARTITIONS[topic]))


class FakeConsumer:
    def __init__(self, broker: FakeBroker, group: str | None = None, *, from_end: bool = False) -> None:
        self._client = _Metadata()
        self.broker = broker
        self.group = group
        self.from_end = from_end
        self.subscribed: list[str] = []
        self.listener: ConsumerRebalanceListener | None = None
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        #: (timeout_ms, max_records) of every fetch, in order.
        self.fetches: list[tuple[int, int | None]] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.stopped = False
        #: How many times it was asked where partitions end.
        self.asked_for_ends = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def topics(self) -> set[str]:
        return set(PARTITIONS)

    def subscribe(self, topics: Iterable[str], listener: ConsumerRebalanceListener | None = None) -> None:
        self.subscribed, self.listener = list(topics), listener
        if self.group is None:  # no group: every partition is this consumer's at once
            self.assign([tp for topic in self.subscribed for tp in every_partition(topic)])

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self.positions = {tp: self.broker.end(tp) if self.from_end else 0 for tp in partitions}

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def rebalance(
        self, *, revoked: Iterable[TopicPartition] = (), assigned: Iterable[TopicPartition] = ()
    ) -> None:
        """What the group coordinator does to this member: take `revoked` away, then give `assigned` (each read from
        the group's committed offset, else from the beginning), telling the subscription's listener."""
        revoked, assigned = set(revoked), set(assigned)
        if revoked:
            if self.listener is not None:
                await self.listener.on_partitions_revoked(revoked)
            for tp in revoked:
                self.positions.pop(tp, None)
                self.paused.discard(tp)
        for tp in assigned:
            self.positions[tp] = self.broker.committed[self.group or ""].get(tp, 0)
        if assigned and self.listener is not None:
            await self.listener.on_partitions_assigned(assigned)
        self.broker.wake()

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.fetches.append((timeout_ms, max_records))
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            fetched = self._take(partitions or sorted(self.positions), max_records)
            remaining = deadline - time.monotonic()
            if fetched or remaining <= 0:
                return fetched
            await self.broker.changed(remaining)

    def _take(
        self, partitions: Iterable[TopicPartition], max_records: int | None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        left = max_records if max_records is not None else 1_000_000
        fetched: dict[TopicPartition, list[ConsumerRecord]] = {}
        for tp in partitions:
            if tp in self.paused or tp not in self.positions or left <= 0:
                continue
            start = self.positions[tp]
            records = self.broker.logs.get(tp, [])[start : start + left]
            if records:
                fetched[tp] = records
                self.positions[tp] = start + len(records)
                left -= len(records)
        return fetched

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)
        self.broker.wake()

    def highwater(self, tp: TopicPartition) -> int:
        return self.broker.end(tp)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked_for_ends += 1
        return {tp: self.broker.end(tp) for tp in partitions}

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.broker.committed[self.group or ""].get(tp)

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata | int] | None = None) -> None:
        """Without `offsets`, how far each assigned partition has been read (aiokafka's default)."""
        assert self.group is not None, "only a group member commits"
        chosen = (
            {tp: getattr(offset, "offset", offset) for tp, offset in offsets.items()}
            if offsets is not None
            else dict(self.positions)
        )
        self.broker.committed[self.group].update(chosen)
        self.broker.journal.append(("committed", self.group, chosen))
        self.commits.append(chosen)


async def still_waiting(task: asyncio.Future[Any], grace_s: float = 0.1) -> bool:
    """Whether `task` is still blocked after a short grace: only to show that something waits (it would be done at
    once otherwise); what it waits for is then given and awaited properly."""
    done, _ = await asyncio.wait({task}, timeout=grace_s)
    return not done
