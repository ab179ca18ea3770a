"""A local store's changelog: a compacted topic, partitioned as the store's input is, that holds the latest record of
every key the store keeps. It rebuilds the store on a new machine without the input's history (Kafka Streams'
changelog topics, in the shape of store.py).

Each changelog record carries, in its `applied` header, how far its partition of the input is covered: the writer
keeps one rule, that every change the input made before that offset is in the changelog at or before that record.
A record therefore says what the writer's previous complete flush covered, which a flush cut short cannot falsify.
A restore resumes the input at the header of each partition's last record. Resuming earlier than necessary is
harmless, since applying an input message twice leaves a store as it was (the service's apply skips what it
holds), so a record may carry state newer than its header says.

A store may also record how far it is in other topics, partitioned as the input (sla: the sla.events it published):
each of those is carried the same way, in a header `applied <topic>`.

One writer per partition: the replica owning it (the service's own ownership scheme says which). On taking a
partition over, the writer first reads where the changelog stops and marks every key the input changed since then,
so whatever a previous owner applied but did not get into the changelog (killed in between) gets in now.

A standby (`Standby`) keeps a store warm for the partitions another replica owns: it follows their changelog into
the store, each partition's read position written with what it read, so that taking one over reads only the tail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, RecordMetadata
from prometheus_client import Counter

from .kafka import header, partitions_of, records_to_end
from .retry import while_down
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

#: Puts a changelog record (partition, key, value) into a write of the store.
Restore = Callable[[Changes, int, bytes, bytes], None]
#: The changelog records (key, value) a changed key stands for, as the store holds them now: none if it holds none.
#: A key may stand for several, so that no record has to hold what grows without bound (a ticket's every event).
RecordsOf = Callable[[bytes], Iterable[tuple[bytes, bytes]]]


@dataclass(frozen=True)
class Changelog:
    """A store's changelog: its topic, the input it is partitioned as (whose keys a new writer marks), and the other
    topics, partitioned alike, whose offsets its records' headers carry too."""

    topic: str
    source: str
    also: tuple[str, ...] = ()

    @property
    def covered(self) -> tuple[str, ...]:
        """Every topic whose offsets the headers carry."""
        return (self.source, *self.also)

    def headers(self, covered: dict[str, int]) -> list[tuple[str, bytes]]:
        return [(self._header_name(topic), str(offset).encode()) for topic, offset in covered.items()]

    def covered_by(self, record: ConsumerRecord) -> dict[str, int]:
        """The offsets a record says its partition of each topic is covered to (those it names)."""
        covered = {}
        for topic in self.covered:
            if (applied := header(record, self._header_name(topic))) is not None:
                covered[topic] = int(applied)
        return covered

    def _header_name(self, topic: str) -> str:
        return APPLIED_HEADER if topic == self.source else f"{APPLIED_HEADER} {topic}"


async def restore(consumer: AIOKafkaConsumer, changelog: Changelog, store: LocalStore, put: Restore) -> int:
    """Rebuild `store` from `changelog` read to its end, and note how far each partition of its inputs it covers.

    `consumer` is started and in no group. The store is marked restored only at the end: an interrupted restore
    starts again from the beginning, never from the middle of a compacted topic (whose order is not the input's)."""
    partitions = await partitions_of(consumer, changelog.topic)
    covered: dict[tuple[str, int], int] = {}
    changes, restored = Changes(), 0
    async for record in records_to_end(consumer, dict.fromkeys(partitions)):
        if record.key is None or record.value is None:
            continue
        for topic, offset in changelog.covered_by(record).items():
            covered[topic, record.partition] = offset
        if record.key == PROGRESS_KEY:
            continue
        put(changes, record.partition, record.key, record.value)
        restored += 1
        if len(changes) >= 10_000:
            store.write(changes)
            changes = Changes()
    for (topic, partition), offset in covered.items():
        changes.applied(topic, partition, offset)
    changes.restored()
    store.write(changes)
    RECORDS_RESTORED.labels(changelog.topic).inc(restored)
    covers = {topic: {p: offset for (t, p), offset in covered.items() if t == topic} for topic in changelog.covered}
    log.info("restored the local store", extra={"changelog": changelog.topic, "records": restored, "covers": covers})
    return restored


class ChangelogWriter:
    """Writes the changes of the partitions this replica owns to the changelog, a few times a second."""

    def __init__(
        self,
        changelog: Changelog,
        store: LocalStore,
        records_of: RecordsOf,
        producer: Callable[[], AIOKafkaProducer | None],
        reader: Callable[[], Awaitable[AIOKafkaConsumer]],
    ) -> None:
        self._changelog = changelog
        self._store = store
        self._records_of = records_of
        self._producer = producer
        self._reader = reader
        #: Per owned partition, the keys changed and not yet written; a partition is writable once taken over.
        self._dirty: dict[int, set[bytes]] = {}
        self._writable: set[int] = set()
        self._to_take: set[int] = set()
        #: Per writable partition, how far each topic is in the changelog: what the next records' headers say.
        self._covered: dict[int, dict[str, int]] = {}
        #: Per writable partition, the changelog offset below which the store holds every record: read by its
        #: standby before the take-over, or written from here since, with no record of anyone else's between.
        self._held_to: dict[int, int] = {}
        self._flushing = asyncio.Lock()

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
            self._held_to.pop(partition, None)

    async def run(self) -> None:
        """Write the changes a few times a second while the service runs. Kafka refusing (a broker down, a leader
        moving) is waited out: what a refused attempt did not write is written by the next."""
        while True:
            async for attempt in while_down(f"Kafka ({self._changelog.topic})", KafkaError):
                with attempt:
                    await self._take_marked()
                    await self.flush()
            await asyncio.sleep(FLUSH_INTERVAL_S)  # a cadence, not a wait for anything: changes collect meanwhile

    async def _take_marked(self) -> None:
        if self._to_take and self._store.is_restored:
            taken, self._to_take = self._to_take, set()
            try:
                await self._catch_up(sorted(taken))
            except BaseException:
                self._to_take |= {partition for partition in taken if partition in self._dirty}  # still ours
                raise

    async def _catch_up(self, taken: list[int]) -> None:
        reader = await self._reader()
        try:
            last = await _last_covered(reader, self._changelog, taken)
            source = self._changelog.source
            since = {p: last[p].get(source) for p in taken}
            async for record in records_to_end(reader, {TopicPartition(source, p): since[p] for p in taken}):
                if record.key is not None and record.partition in self._dirty:
                    self._dirty[record.partition].add(record.key)
        finally:
            await reader.stop()
        for partition in taken:
            if partition in self._dirty:
                self._writable.add(partition)
                self._covered[partition] = {topic: last[partition].get(topic, 0) for topic in self._changelog.covered}
                self._held_to[partition] = self._store.applied(self._changelog.topic).get(partition, 0)
        log.info(
            "writing the changelog", extra={"changelog": self._changelog.topic, "partitions": taken, "from": since}
        )

    async def written(self) -> None:
        """Return once no flush is under way: after `give_up`, nothing more of those partitions reaches Kafka from
        here, so their new owner reads where their changelog ends without a record of this one landing later."""
        async with self._flushing:
            pass

    async def flush(self) -> None:
        """Write what is dirty in the writable partitions, and return once Kafka has it."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        producer = self._producer()
        if producer is None or not self._store.is_restored:
            # while the store restores, its offsets are not yet the changelog's: a record written now would say it
            # covers less than the changelog does, and a later restore would read the input from further back
            return
        # read before the records: they are at least this recent
        applied = {topic: self._store.applied(topic) for topic in self._changelog.covered}
        for partition in list(self._writable):
            if partition not in self._writable:
                continue  # given up while an earlier partition was written
            keys, self._dirty[partition] = self._dirty[partition], set()
            try:
                await self._write(producer, partition, keys, applied)
            except BaseException:
                if (dirty := self._dirty.get(partition)) is not None:
                    dirty |= keys  # written by the next flush (a key written twice is one record once compacted)
                raise

    async def _write(
        self, producer: AIOKafkaProducer, partition: int, keys: set[bytes], applied: dict[str, dict[int, int]]
    ) -> None:
        """The records of a partition's changed `keys`, then (if the store applied more) a progress record."""
        # The records say what the last complete flush covered, not this one: if this one is cut short (the
        # partition is given up, the process dies), the changelog's last record still tells the truth.
        headers = self._changelog.headers(self._covered[partition])
        sends: list[asyncio.Future[RecordMetadata]] = []
        offsets: list[int] = []
        sent: set[bytes] = set()  # two changed keys may stand for one record (intake: a ticket, and its run)
        for key in keys:
            if partition not in self._writable:
                break  # given up meanwhile: its new writer marks what this one leaves
            for record_key, value in self._records_of(key):
                if record_key in sent:
                    continue
                sent.add(record_key)
                sends.append(
                    await producer.send(
                        self._changelog.topic, value, key=record_key, partition=partition, headers=headers
                    )
                )
                if len(sends) >= SENDS_IN_FLIGHT:  # a take-over may mark a whole partition: keep memory flat
                    offsets.extend(await self._acknowledged(sends))
        offsets.extend(await self._acknowledged(sends))
        if partition in self._writable:
            covered = self._covered[partition]
            reached = {t: max(applied[t].get(partition, 0), covered[t]) for t in self._changelog.covered}
            if reached != covered:
                self._covered[partition] = reached
                # Progress without a change to any key (events that changed nothing, or all written above)
                # would otherwise never reach the changelog: a restore would read the input from further back.
                marked = await producer.send_and_wait(
                    self._changelog.topic,
                    b"",
                    key=PROGRESS_KEY,
                    partition=partition,
                    headers=self._changelog.headers(reached),
                )
                offsets.append(marked.offset)
        self._hold(partition, offsets)

    def _hold(self, partition: int, written: list[int]) -> None:
        """The store holds what it wrote: were it to follow this partition again (given up, or restarted), it reads
        on past its own records, but never past one written by another (a previous owner the group expelled
        without its knowing, still writing when this one took over): those are read, or the store would lack them."""
        if (held_to := self._held_to.get(partition)) is None:
            return
        for offset in sorted(written):
            if offset != held_to:
                break
            held_to += 1
        if held_to != self._held_to[partition]:
            self._held_to[partition] = held_to
            position = Changes()
            position.applied(self._changelog.topic, partition, held_to)
            self._store.write(position)

    async def _acknowledged(self, sends: list[asyncio.Future[RecordMetadata]]) -> list[int]:
        """Wait for `sends` (emptied); the offsets they were written at."""
        offsets = [metadata.offset for metadata in await asyncio.gather(*sends)]
        RECORDS_WRITTEN.labels(self._changelog.topic).inc(len(sends))
        sends.clear()
        return offsets


async def _last_covered(
    consumer: AIOKafkaConsumer, changelog: Changelog, partitions: list[int]
) -> dict[int, dict[str, int]]:
    """Per partition, the offsets the changelog's last record says are covered (none: from the beginning)."""
    tps = [TopicPartition(changelog.topic, p) for p in partitions]
    ends = await consumer.end_offsets(tps)
    covered: dict[int, dict[str, int]] = {p: {} for p in partitions}
    last = {tp: end - 1 for tp, end in ends.items() if end > 0}
    if not last:
        return covered
    async for record in records_to_end(consumer, last):
        if record.offset == last[TopicPartition(changelog.topic, record.partition)]:
            covered[record.partition] = changelog.covered_by(record)
    return covered


class Standby:
    """Follows the changelog of the partitions this replica does not own into its store, so that one taken over after
    its owner died (or moved) is read from the local disk and only the changelog's tail from Kafka (Kafka Streams'
    standby replicas). With a new store it reads every partition from the beginning: a new machine's restore.

    Each batch of records is written with the position it reached, in one atomic write: a restart resumes where it
    stopped. A compacted topic may be resumed anywhere, because compaction keeps every key's latest record. The
    records' headers become the store's position in the input (and the other covered topics): its owner's replay
    starts there."""

    def __init__(self, changelog: Changelog, store: LocalStore, put: Restore, consumer: AIOKafkaConsumer) -> None:
        self._changelog = changelog
        self._topic = changelog.topic
        self._store = store
        self._put = put
        self._consumer = consumer  # started, in no group: this task's alone
        self._followed: set[int] = set()
        #: Partitions a take-over waits for: the end of the changelog to reach, and who is waiting.
        self._handing_over: dict[int, tuple[int, asyncio.Future[None]]] = {}
        self._started = asyncio.Event()

    async def run(self) -> None:
        """Follow while the service runs. Kafka refusing (a broker down, a leader moving) is waited out: a refused
        fetch wrote nothing, and the next reads on from the same positions."""
        dependency = f"Kafka ({self._topic}, standby)"
        async for attempt in while_down(dependency, KafkaError):
            with attempt:
                await self._start()
        while True:
            async for attempt in while_down(dependency, KafkaError):
                with attempt:
                    await self._follow_once()

    async def _start(self) -> None:
        positions = self._store.applied(self._topic)
        tps = await partitions_of(self._consumer, self._topic)
        self._consumer.assign(tps)
        beginnings = await self._consumer.beginning_offsets(tps)
        for tp in tps:
            self._consumer.seek(tp, max(positions.get(tp.partition, 0), beginnings[tp]))
            self._followed.add(tp.partition)
        self._started.set()

    async def _follow_once(self) -> None:
        fetched = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
        changes = Changes()
        for tp, records in fetched.items():
            if tp.partition not in self._followed:
                continue  # owned since the fetch: its owner writes its state
            for record in records:
                self._apply(changes, record)
            changes.applied(self._topic, tp.partition, records[-1].offset + 1)
        self._store.write(changes)
        RECORDS_RESTORED.labels(self._topic).inc(sum(len(records) for records in fetched.values()))
        await self._hand_over_those_read()

    def _apply(self, changes: Changes, record: ConsumerRecord) -> None:
        if record.key is None or record.value is None:
            return
        for topic, offset in self._changelog.covered_by(record).items():
            changes.applied(topic, record.partition, offset)
        if record.key != PROGRESS_KEY:
            self._put(changes, record.partition, record.key, record.value)

    async def _hand_over_those_read(self) -> None:
        if not self._handing_over:
            return
        for partition, (end, waiting) in list(self._handing_over.items()):
            tp = TopicPartition(self._topic, partition)
            if partition in self._followed and await self._consumer.position(tp) < end:
                continue
            if self._handing_over.get(partition, (None, None))[1] is not waiting:
                continue  # handed over meanwhile, or asked again
            self._handed_over(tp, waiting)

    def _handed_over(self, tp: TopicPartition, waiting: asyncio.Future[None]) -> None:
        del self._handing_over[tp.partition]
        self._followed.discard(tp.partition)
        self._consumer.pause(tp)
        if not waiting.done():
            waiting.set_result(None)

    async def hand_over(self, partitions: Iterable[int]) -> None:
        """Stop following `partitions` once the store holds their changelog to the end it has now: the caller
        becomes their owner, and their state (and position in the input) is the store's."""
        await self._started.wait()
        tps = [TopicPartition(self._topic, p) for p in partitions]
        ends = await self._consumer.end_offsets(tps)
        waits = []
        held_to = self._store.applied(self._topic)
        for tp in tps:
            waiting = asyncio.get_running_loop().create_future()
            self._handing_over[tp.partition] = (ends[tp], waiting)
            waits.append(waiting)
            if held_to.get(tp.partition, 0) >= ends[tp]:  # already held to its end: no fetch to wait for
                self._handed_over(tp, waiting)
        await asyncio.gather(*waits)

    def follow(self, partitions: Iterable[int]) -> None:
        """Partitions given up: follow their changelog again, from where this store last read it (their new owner
        writes what this replica had not, or what it changes next)."""
        for partition in partitions:
            if (handing := self._handing_over.pop(partition, None)) is not None and not handing[1].done():
                handing[1].set_result(None)  # its take-over finds the partition gone and leaves it alone
            if not self._started.is_set() or partition in self._followed:
                continue  # run follows every partition from the start
            tp = TopicPartition(self._topic, partition)
            self._followed.add(partition)
            self._consumer.seek(tp, self._store.applied(self._topic).get(partition, 0))
            self._consumer.resume(tp)
