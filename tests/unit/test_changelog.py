"""The shared changelog of a local store (runtime/changelog.py), on the in-memory broker and a real RocksDB store: a
restore resumes each input partition where the changelog's last record says; a writer taking a partition over
first writes what the input changed since then, and stops when it gives the partition up."""

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from tests.fakes_kafka import FakeBroker, FakeConsumer, FakeProducer
from tests.polling import until
from ticketstream_shared.contract.topics import INTAKE_TICKETS, TICKETS_EVENTS
from ticketstream_shared.runtime.changelog import (
    APPLIED_HEADER,
    PROGRESS_KEY,
    Changelog,
    ChangelogWriter,
    Standby,
    restore,
)
from ticketstream_shared.runtime.store import Changes, LocalStore

CHANGELOG = Changelog(INTAKE_TICKETS, TICKETS_EVENTS)


@pytest.fixture
def store():
    store = LocalStore(None)
    yield store
    store.close()


def changelogged(broker, key, value, partition, applied):
    broker.append(
        INTAKE_TICKETS, value, key=key, partition=partition, headers=[(APPLIED_HEADER, str(applied).encode())]
    )


def put(store, values, applied=None):
    """Values as the service writes them after its store is restored."""
    changes = Changes()
    changes.restored()
    for key, value in values.items():
        changes.put(b"v|" + key, value)
    for partition, offset in (applied or {}).items():
        changes.applied(TICKETS_EVENTS, partition, offset)
    store.write(changes)


def test_a_restore_keeps_the_latest_record_of_each_key_and_resumes_the_input_at_the_last_header(store):
    broker = FakeBroker()
    changelogged(broker, b"t-1", b"first", partition=0, applied=2)
    changelogged(broker, b"t-2", b"only", partition=0, applied=4)
    changelogged(broker, b"t-1", b"latest", partition=0, applied=5)
    changelogged(broker, b"t-3", b"other", partition=3, applied=7)
    changelogged(broker, PROGRESS_KEY, b"", partition=3, applied=9)

    def keep(changes, partition, key, value):
        changes.put(b"v|" + key, value)

    restored = asyncio.run(restore(FakeConsumer(broker), CHANGELOG, store, keep))
    assert restored == 4 and store.is_restored
    assert [store.get(b"v|" + key) for key in (b"t-1", b"t-2", b"t-3")] == [b"latest", b"only", b"other"]
    assert store.applied(TICKETS_EVENTS) == {0: 5, 3: 9} and store.get(b"v|" + PROGRESS_KEY) is None


def test_an_empty_changelog_restores_an_empty_store_that_reads_the_input_from_the_beginning(store):
    asyncio.run(restore(FakeConsumer(FakeBroker()), CHANGELOG, store, lambda *_: None))
    assert store.is_restored and store.applied(TICKETS_EVENTS) == {}


def held(store):
    """The service's side of a writer: a changed key stands for its one record, if the store holds it."""
    return lambda key: [(key, value)] if (value := store.get(b"v|" + key)) is not None else []


def a_writer(broker, store):
    async def reader():
        return FakeConsumer(broker)

    producer = FakeProducer(broker)
    return ChangelogWriter(CHANGELOG, store, held(store),
                           lambda: producer, reader)  # fmt: skip


def written(broker, partition):
    """The records the writer wrote to `partition`: key, value and `applied` header (progress records left out)."""
    return [
        (record.key, record.value, dict(record.headers)[APPLIED_HEADER])
        for record in broker.records(INTAKE_TICKETS)
        if record.partition == partition and record.key != PROGRESS_KEY
    ]


def progress(broker, partition):
    """The `applied` header of the partition's last progress record: how far a restore would resume the input."""
    marks = [r for r in broker.records(INTAKE_TICKETS) if r.partition == partition and r.key == PROGRESS_KEY]
    return dict(marks[-1].headers)[APPLIED_HEADER] if marks else None


def test_a_changed_key_may_stand_for_several_records_and_each_is_written(store):
    broker = FakeBroker()

    async def reader():
        return FakeConsumer(broker)

    held = {b"t-1": {b"summary": b"v2", b"1": b"opened", b"2": b"solved"}}

    def parts(key):  # as intake's ticket id stands for every run of its events, and a run for itself
        ticket, _, part = key.partition(b"/")
        return [(ticket + b"/" + p, value) for p, value in held.get(ticket, {}).items() if part in (b"", p)]

    async def story():
        producer = FakeProducer(broker)
        writer = ChangelogWriter(CHANGELOG, store, parts, lambda: producer, reader)
        writer.take([0])
        put(store, {}, applied={0: 1})
        running = asyncio.create_task(writer.run())
        try:
            await until(lambda: progress(broker, 0) == b"1")
            writer.changed(0, {b"t-1", b"t-1/2", b"t-2"})  # t-1/2 is one of t-1's; t-2: nothing held, nothing written
            await writer.flush()
            assert sorted((key, value) for key, value, _ in written(broker, 0)) == [
                (b"t-1/1", b"opened"), (b"t-1/2", b"solved"), (b"t-1/summary", b"v2"),
            ]  # fmt: skip
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(story())


def test_a_writer_taking_a_partition_over_first_writes_what_the_input_changed_since_the_changelog(store):
    """A previous owner applied offsets 0-2 of partition 1 but wrote only offset 0's change before it died."""
    broker = FakeBroker()
    for key in (b"t-1", b"t-2", b"t-3"):
        broker.append(TICKETS_EVENTS, b"{}", key=key, partition=1)
    changelogged(broker, b"t-1", b"t-1 v1", partition=1, applied=1)

    async def story():
        writer = a_writer(broker, store)
        writer.take([1])
        put(store, {b"t-1": b"t-1 v1", b"t-2": b"t-2 v1", b"t-3": b"t-3 v1"}, applied={1: 3})
        running = asyncio.create_task(writer.run())
        try:
            await until(lambda: len(written(broker, 1)) == 3)
            # a flush's records say what the previous complete flush covered (here, the changelog before it); once
            # they are acknowledged, a progress record says how far this one reached
            assert sorted(written(broker, 1)[1:]) == [(b"t-2", b"t-2 v1", b"1"), (b"t-3", b"t-3 v1", b"1")]
            await until(lambda: progress(broker, 1) == b"3")
            put(store, {b"t-2": b"t-2 v2"}, applied={1: 4})
            writer.changed(1, {b"t-2"})
            writer.changed(2, {b"t-9"})  # not a partition it writes
            await until(lambda: len(written(broker, 1)) == 4)
            assert written(broker, 1)[-1] == (b"t-2", b"t-2 v2", b"3")
            await until(lambda: progress(broker, 1) == b"4")

            store.clear()  # restoring again: what it would write could say it covers less than the changelog does
            writer.changed(1, {b"t-3"})
            await writer.flush()
            assert len(written(broker, 1)) == 4, "nothing written while the store is not restored"
            put(store, {b"t-3": b"t-3 v2"}, applied={1: 5})
            await until(lambda: len(written(broker, 1)) == 5)
            assert written(broker, 1)[-1] == (b"t-3", b"t-3 v2", b"4")
            await until(lambda: progress(broker, 1) == b"5")  # written after the record's acknowledgement

            writer.give_up([1])
            put(store, {b"t-3": b"t-3 v3"}, applied={1: 6})
            writer.changed(1, {b"t-3"})
            await writer.flush()
            assert len(written(broker, 1)) == 5 and written(broker, 2) == [] and progress(broker, 1) == b"5"
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(story())


def test_a_partition_given_up_while_another_is_written_is_skipped(store):
    """The rebalance that takes partition 2 away arrives while the writer waits for Kafka on partition 1."""
    broker = FakeBroker()
    put(store, {b"t-1": b"one", b"t-2": b"two"}, applied={1: 1, 2: 1})

    async def story():
        producer = FakeProducer(broker)

        async def reader():
            return FakeConsumer(broker)

        writer = ChangelogWriter(CHANGELOG, store, held(store),
                                 lambda: producer, reader)  # fmt: skip
        writer.take([1, 2])
        await writer._catch_up([1, 2])
        await writer.flush()
        writer.changed(1, {b"t-1"})
        writer.changed(2, {b"t-2"})
        producer.acknowledging = False  # Kafka slow to answer: the flush waits on partition 1's records
        flushing = asyncio.create_task(writer.flush())
        await until(lambda: producer.held)
        writer.give_up([2])
        producer.acknowledging = True
        producer.acknowledge()
        await asyncio.wait_for(flushing, 5)
        assert [key for key, _, _ in written(broker, 1)] == [b"t-1"] and written(broker, 2) == []

    asyncio.run(story())


class RefusingAtFirst(FakeProducer):
    """A broker that refuses the first records sent (a leader moving), then takes them."""

    def __init__(self, broker, refusals):
        super().__init__(broker)
        self.refusals = refusals

    async def send(self, topic, value=None, key=None, headers=None, partition=None):
        if key != PROGRESS_KEY and self.refusals:
            self.refusals -= 1
            raise KafkaConnectionError()
        return await super().send(topic, value, key, headers, partition)


def test_a_write_kafka_refuses_is_tried_again_and_loses_no_change(store):
    broker = FakeBroker()
    put(store, {b"t-1": b"one", b"t-2": b"two"}, applied={0: 1})

    async def story():
        async def reader():
            return FakeConsumer(broker)

        producer = RefusingAtFirst(broker, refusals=2)
        writer = ChangelogWriter(CHANGELOG, store, held(store), lambda: producer, reader)
        writer.take([0])
        running = asyncio.create_task(writer.run())
        try:
            await until(lambda: progress(broker, 0) == b"1")
            writer.changed(0, {b"t-1", b"t-2"})
            await until(lambda: sorted(key for key, _, _ in written(broker, 0)) == [b"t-1", b"t-2"], timeout_s=10)
            assert producer.refusals == 0 and not running.done()
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    asyncio.run(story())


class FetchingAfterRefusals(FakeConsumer):
    """A broker that refuses the first requests (a leader moving, a broker restarting), then answers."""

    def __init__(self, broker, refusals):
        super().__init__(broker)
        self.refusals = refusals

    def _refused(self):
        if self.refusals:
            self.refusals -= 1
            raise KafkaConnectionError()

    async def beginning_offsets(self, partitions):
        self._refused()
        return await super().beginning_offsets(partitions)

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):
        self._refused()
        return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)


def test_a_standby_waits_out_kafka_refusing_and_follows_on(store):
    """Before, a refusal ended the standby's task, and the supervisor stopped the whole service."""
    broker = FakeBroker()
    changelogged(broker, b"t-1", b"one", partition=1, applied=3)

    def keep(changes, partition, key, value):
        changes.put(b"v|" + key, value)

    async def story():
        consumer = FetchingAfterRefusals(broker, refusals=3)  # the start's first request, then two fetches
        standby = Standby(CHANGELOG, store, keep, consumer)
        following = asyncio.create_task(standby.run())
        try:
            await until(lambda: store.get(b"v|t-1") == b"one", timeout_s=10)
            changelogged(broker, b"t-2", b"two", partition=1, applied=4)
            await until(lambda: store.get(b"v|t-2") == b"two", timeout_s=10)
            assert consumer.refusals == 0 and not following.done() and store.applied(TICKETS_EVENTS) == {1: 4}
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    asyncio.run(story())


def test_a_standby_follows_the_changelog_and_hands_a_partition_over_once_it_holds_its_end(store):
    """What a standby reads lands in the store with the positions it reached and the headers' input offsets; a
    partition handed over is no longer applied (its owner writes it), and given up it is followed on from there."""
    broker = FakeBroker()
    changelogged(broker, b"t-1", b"one", partition=1, applied=3)
    changelogged(broker, b"t-2", b"two", partition=2, applied=5)

    def keep(changes, partition, key, value):
        changes.put(b"v|" + key, value)

    async def story():
        standby = Standby(CHANGELOG, store, keep, FakeConsumer(broker))
        following = asyncio.create_task(standby.run())
        await until(lambda: store.get(b"v|t-2") == b"two")
        assert store.applied(TICKETS_EVENTS) == {1: 3, 2: 5} and store.applied(INTAKE_TICKETS) == {1: 1, 2: 1}

        changelogged(broker, b"t-1", b"one v2", partition=1, applied=4)  # its owner's last record before it died
        await asyncio.wait_for(standby.hand_over([1]), 5)
        assert store.get(b"v|t-1") == b"one v2" and store.applied(TICKETS_EVENTS)[1] == 4

        changelogged(broker, b"t-1", b"written while owned here", partition=1, applied=9)
        changelogged(broker, b"t-2", b"two v2", partition=2, applied=6)
        await until(lambda: store.get(b"v|t-2") == b"two v2")
        assert store.get(b"v|t-1") == b"one v2", "a partition owned here is its owner's to write"

        standby.follow([1])  # given up: followed on from where this store last read it
        await until(lambda: store.get(b"v|t-1") == b"written while owned here")
        assert store.applied(TICKETS_EVENTS) == {1: 9, 2: 6}
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)

        # A restart resumes at the positions written with what was read, not at the changelog's beginning.
        overwritten = Changes()
        overwritten.put(b"v|t-2", b"newer here")
        store.write(overwritten)
        changelogged(broker, b"t-3", b"three", partition=2, applied=7)
        again = asyncio.create_task(Standby(CHANGELOG, store, keep, FakeConsumer(broker)).run())
        await until(lambda: store.get(b"v|t-3") == b"three")
        assert store.get(b"v|t-2") == b"newer here"
        again.cancel()
        await asyncio.gather(again, return_exceptions=True)

    asyncio.run(story())


def test_a_writer_giving_a_partition_up_leaves_its_standby_to_read_what_another_wrote_meanwhile(store):
    """A previous owner the group expelled without its knowing wrote on after this replica's standby handed the
    partition over. This replica's writer skips its own records when it follows the partition again, but not that
    one: before, its position jumped past its own records and everything below them, and the tickets that owner
    wrote were missing from this store, and so from every take-over served from it."""
    broker = FakeBroker()
    for partition in (1, 2):
        changelogged(broker, b"t-1", b"one", partition=partition, applied=3)

    def keep(changes, partition, key, value):
        changes.put(b"v|" + key, value)

    async def story():
        standby = Standby(CHANGELOG, store, keep, FakeConsumer(broker))
        following = asyncio.create_task(standby.run())
        await asyncio.wait_for(standby.hand_over([1, 2]), 5)
        changelogged(broker, b"t-2", b"the expelled owner's", partition=1, applied=3)

        writer = a_writer(broker, store)
        writer.take([1, 2])
        put(store, {b"t-3": b"three"}, applied={1: 5, 2: 5})
        running = asyncio.create_task(writer.run())
        try:
            await until(lambda: progress(broker, 1) == b"5" and progress(broker, 2) == b"5")
            writer.changed(1, {b"t-3"})
            writer.changed(2, {b"t-3"})
            await writer.flush()
            ends = {p: max(r.offset for r in broker.records(INTAKE_TICKETS) if r.partition == p) + 1 for p in (1, 2)}
            assert store.applied(INTAKE_TICKETS)[2] == ends[2], "nobody else wrote: its own records are skipped"
            assert store.applied(INTAKE_TICKETS)[1] == 1, "read from the other owner's record on"
            assert store.get(b"v|t-2") is None
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        writer.give_up([1, 2])
        standby.follow([1, 2])
        await until(lambda: store.get(b"v|t-2") == b"the expelled owner's")
        await until(lambda: store.applied(INTAKE_TICKETS)[1] == ends[1])
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)

    asyncio.run(story())
