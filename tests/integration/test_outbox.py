"""The outbox on a real broker: records sent a batch per partition land where `send` would put them, in the order
they were put, with their keys and headers, also when a partition's records need several batches."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from ticketstream_shared.contract.topics import TopicSpec
from ticketstream_shared.runtime.kafka_admin import ensure_topics
from ticketstream_shared.runtime.outbox import Outbox

pytestmark = pytest.mark.integration

DEADLINE_S = 30
PARTITIONS = 6


async def read_all(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(DEADLINE_S):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def test_records_land_as_send_would_put_them_in_the_order_put(kafka_bootstrap: str) -> None:
    topics = [f"test.outbox.{uuid.uuid4().hex[:12]}" for _ in range(2)]

    async def check() -> None:
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, PARTITIONS) for topic in topics])
        # small batches: a partition's records take several, which must keep their order
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, max_batch_size=1024
        )
        await producer.start()
        try:
            outbox = Outbox(producer)
            for number in range(300):
                key = f"team-{number % 7}".encode()
                outbox.put(topics[number % 2], b"%d" % number + b"." * 40, key, [("n", b"%d" % number)])
            assert len(outbox) == 300
            acknowledged = await asyncio.gather(*await outbox.send())
            assert len(outbox) == 0
            # where `send` puts the same keys
            chosen = {key: (await producer.send_and_wait(topics[0], b"probe", key=key)).partition
                      for key in {f"team-{n}".encode() for n in range(7)}}  # fmt: skip
        finally:
            await producer.stop()
        batches = Counter((sent.topic, sent.partition) for sent in acknowledged)  # type: ignore[attr-defined]
        assert max(batches.values()) > 1  # some partition's records took several batches
        for index, topic in enumerate(topics):
            records = [r for r in await read_all(kafka_bootstrap, topic, 150 + 7 * (index == 0)) if r.value != b"probe"]
            assert len(records) == 150
            numbers_by_key = defaultdict(list)
            for record in sorted(records, key=lambda r: (r.partition, r.offset)):
                number = int(record.value.split(b".")[0])
                assert record.partition == chosen[record.key]
                assert dict(record.headers) == {"n": b"%d" % number}
                numbers_by_key[record.key].append(number)
            for key, numbers in numbers_by_key.items():
                assert numbers == sorted(numbers), key  # put in increasing order: read in it

    asyncio.run(check())


def test_a_record_larger_than_a_batch_goes_in_a_batch_of_its_own(kafka_bootstrap: str) -> None:
    topic = f"test.outbox.{uuid.uuid4().hex[:12]}"

    async def check() -> None:
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_batch_size=1024)
        await producer.start()
        try:
            outbox = Outbox(producer)
            for value in (b"small", b"x" * 5_000, b"after"):
                outbox.put(topic, value, b"k")
            await asyncio.gather(*await outbox.send())
        finally:
            await producer.stop()
        records = await read_all(kafka_bootstrap, topic, 3)
        assert [record.value for record in records] == [b"small", b"x" * 5_000, b"after"]

    asyncio.run(check())


def test_a_tombstone_goes_as_one(kafka_bootstrap: str) -> None:
    topic = f"test.outbox.{uuid.uuid4().hex[:12]}"

    async def check() -> None:
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            outbox = Outbox(producer)
            outbox.put(topic, b"brief", b"t-1")
            outbox.put(topic, None, b"t-1")  # the ticket closed: a compacted topic forgets it
            await asyncio.gather(*await outbox.send())
        finally:
            await producer.stop()
        records = await read_all(kafka_bootstrap, topic, 2)
        assert [(record.key, record.value) for record in records] == [(b"t-1", b"brief"), (b"t-1", None)]

    asyncio.run(check())
