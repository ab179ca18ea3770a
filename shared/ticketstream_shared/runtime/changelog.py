"""A local store's changelog: a compacted topic, partitioned as the store's input is, that holds the latest record of
every key the store keeps. It rebuilds the store on a new machine without the input's history (Kafka Streams'
changelog topics, in the shape of store.py).

Each changelog record carries, in its `applied` header, how far its partition of the input is covered: the writer
keeps one rule, that every change the input made before that offset is in the changelog at or before that record.
A record therefore says what the writer's previous complete flush covered, which a flush cut short cannot falsify.
A restore resumes the input at the header of each partition's last record. Resuming earlier than necessary is
harmless, since applying an input message twice leaves a store as it was (the service's apply skips what it
holds), so a record may carry state newer than its header says.

One writer per partition: the replica owning it (the service's own ownership scheme says which). On taking a
partition over, the writer first reads where the changelog stops and marks every key the input changed since then,
so whatever a previous owner applied but did not get into the changelog (killed in between) gets in now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from .kafka import header, partitions_of, records_to_end
from .store import Changes, LocalStore

log = logging.getLogger(__name__)

APPLIED_HEADER = "applied"
FLUSH_INTERVAL_S = 0.2
SENDS_IN_FLIGHT = 5_000
#: The key of the record saying how far a partition of the input is covered (compaction keeps the latest).
PROGRESS_KEY = b"\x00covered"

RECORDS_WRITTEN = Counter("ticketstream_changelog_records_written_total", "Records written to changelogs", ["topic"])
RECORDS_RESTORED = Counter(
    "ticketstream_changelog_records_restored_total", "Records restored from changelogs", ["topic"]
)

#: Puts a changelog record's key and value into a write of the store.
Restore = Callable[[Changes, bytes, bytes], None]
#: The changelog record of a key as the store holds it now, or None if the store does not hold it.
RecordOf = Callable[[bytes], bytes | None]


async def restore(consumer: AIOKafkaConsumer, changelog: str, source: str, store: LocalStore, put: Restore) -> int:
    """Rebuild `store` from `changelog` read to its end, and note how far each partition of `source` it covers.

    `consumer` is started and in no group. The store is marked restored only at the end: an interrupted restore
    starts again from the beginning, never from the middle of a compacted topic (whose order is not the input's)."""
    partitions = await partitions_of(consumer, changelog)
    covered: dict[int, int] = {}
    changes, restored = Changes(), 0
    async for record in records_to_end(consumer, dict.fromkeys(partitions)):
        if record.key is None or record.value is None:
            continue
        applied = header(record, APPLIED_HEADER)
        if applied is not None:
            covered[record.partition] = int(applied)
        if record.key == PROGRESS_KEY:
            continue
        put(changes, record.key, record.value)
        restored += 1
        if len(changes) >= 10_000:
            store.write(changes)
            changes = Changes()
    for partition, offset in covered.items():
        changes.applied(source, partition, offset)
    changes.restored()
    store.write(changes)
    RECORDS_RESTORED.labels(changelog).inc(restored)
    log.info("restored the local store", extra={"changelog": changelog, "records": restored, "covers": covered})
    return restored


class ChangelogWriter:
    """Writes the changes of the partitions this replica owns to the changelog, a few times a second."""

    def __init__(
        self,
        changelog: str,
        source: str,
        store: LocalStore,
        record_of: RecordOf,
        producer: Callable[[], AIOKafkaProducer | None],
        reader: Callable[[], Awaitable[AIOKafkaConsumer]],
    ) -> None:
        self._changelog = changelog
        self._source = source
        self._store = store
        self._record_of = record_of
        self._producer = producer
        self._reader = reader
        #: Per owned partition, the keys changed and not yet written; a partition is writable once taken over.
        self._dirty: dict[int, set[bytes]] = {}
        self._writable: set[int] = set()
        self._to_take: set[int] = set()
        #: Per writable partition, how far the input is in the changelog: what the next records' header says.
        self._covered: dict[int, int] = {}

    def changed(self, partition: int, keys: Iterable[bytes]) -> None:
        """Keys the store has just applied changes to (called after the store's write)."""
        if (dirty := self._dirty.get(partition)) is not None:
            dirty.update(keys)

    def take(self, partitions: Iterable[int]) -> None:
        """Become the writer of `partitions`: first (in run) mark what the input changed since the changelog's last
        record of each, then write their changes."""
        for partition in partitions:
            if partition not in self._dirty:
                self._dirty[partition] = set()
                self._to_take.add(partition)

    def give_up(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self._dirty.pop(partition, None)
            self._to_take.discard(partition)
            self._writable.discard(partition)
            self._covered.pop(partition, None)

    async def run(self) -> None:
        while True:
            if self._to_take and self._store.is_restored:
                taken, self._to_take = self._to_take, set()
                await self._catch_up(sorted(taken))
            await self.flush()
            await asyncio.sleep(FLUSH_INTERVAL_S)  # a cadence, not a wait for anything: changes collect meanwhile

    async def _catch_up(self, taken: list[int]) -> None:
        reader = await self._reader()
        try:
            since = await _last_applied(reader, self._changelog, taken)
            async for record in records_to_end(reader, {TopicPartition(self._source, p): since[p] for p in taken}):
                if record.key is not None and record.partition in self._dirty:
                    self._dirty[record.partition].add(record.key)
        finally:
            await reader.stop()
        for partition in taken:
            if partition in self._dirty:
                self._writable.add(partition)
                self._covered[partition] = since[partition] or 0
        log.info("writing the changelog", extra={"changelog": self._changelog, "partitions": taken, "from": since})

    async def flush(self) -> None:
        """Write what is dirty in the writable partitions, and return once Kafka has it."""
        producer = self._producer()
        if producer is None or not self._store.is_restored:
            # while the store restores, its offsets are not yet the changelog's: a record written now would say it
            # covers less than the changelog does, and a later restore would read the input from further back
            return
        applied = self._store.applied(self._source)  # read before the records: they are at least this recent
        for partition in list(self._writable):
            if partition not in self._writable:
                continue  # given up while an earlier partition was written
            keys, self._dirty[partition] = self._dirty[partition], set()
            # The records say what the last complete flush covered, not this one: if this one is cut short (the
            # partition is given up, the process dies), the changelog's last record still tells the truth.
            headers = [(APPLIED_HEADER, str(self._covered[partition]).encode())]
            sends: list[asyncio.Future[object]] = []
            for key in keys:
                if partition not in self._writable:
                    break  # given up meanwhile: its new writer marks what this one leaves
                value = self._record_of(key)
                if value is not None:
                    sends.append(
                        await producer.send(self._changelog, value, key=key, partition=partition, headers=headers)
                    )
                if len(sends) >= SENDS_IN_FLIGHT:  # a take-over may mark a whole partition: keep memory flat
                    await self._acknowledged(sends)
            await self._acknowledged(sends)
            reached = applied.get(partition, 0)
            if partition in self._writable and reached > self._covered[partition]:
                self._covered[partition] = reached
                # Progress without a change to any key (events that changed nothing, or all written above) would
                # otherwise never reach the changelog: a restore would read the input from much further back.
                marker = [(APPLIED_HEADER, str(reached).encode())]
                await producer.send_and_wait(
                    self._changelog, b"", key=PROGRESS_KEY, partition=partition, headers=marker
                )

    async def _acknowledged(self, sends: list[asyncio.Future[object]]) -> None:
        await asyncio.gather(*sends)
        RECORDS_WRITTEN.labels(self._changelog).inc(len(sends))
        sends.clear()


async def _last_applied(consumer: AIOKafkaConsumer, changelog: str, partitions: list[int]) -> dict[int, int | None]:
    """Per partition, the `applied` header of the changelog's last record (None: from the input's beginning)."""
    tps = [TopicPartition(changelog, p) for p in partitions]
    ends = await consumer.end_offsets(tps)
    since: dict[int, int | None] = {p: None for p in partitions}
    last = {tp: end - 1 for tp, end in ends.items() if end > 0}
    if not last:
        return since
    async for record in records_to_end(consumer, last):
        if record.offset == last[TopicPartition(changelog, record.partition)]:
            applied = header(record, APPLIED_HEADER)
            since[record.partition] = int(applied) if applied is not None else None
    return since
