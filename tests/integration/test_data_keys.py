"""People's data keys on the real broker (runtime/data_keys.py over privacy.keys): a field one replica seals another
opens; erasing the person shreds every key of theirs, for the replicas running and for one started afterwards;
privacy.keys holds no key in plain text; a record that is not a key is parked and the keys go on."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.builders import a_ticket_created
from tests.polling import until
from ticketstream_shared.contract.topics import PRIVACY_KEYS, dead_letter_topic
from ticketstream_shared.privacy import ERASED
from ticketstream_shared.runtime.data_keys import DataKeys
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.sealing import SecretBox

MASTER_KEY = bytes(range(32))
MASTER = SecretBox([MASTER_KEY])


@asynccontextmanager
async def a_replica(bootstrap: str, master: SecretBox = MASTER) -> AsyncIterator[DataKeys]:
    keys = DataKeys(master, "test", lambda: datetime.now(UTC))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    keys.log.producer = producer
    following = asyncio.create_task(keys.follow(consumer))
    try:
        await asyncio.wait_for(keys.caught_up.wait(), 30)
        yield keys
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


async def privacy_keys_as_written(bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        records = records_to_end(consumer, {TopicPartition(PRIVACY_KEYS, 0): None})
        return [(record.key, record.value) async for record in records]
    finally:
        await consumer.stop()


def test_a_field_sealed_by_one_replica_opens_on_another_until_its_person_is_erased(kafka_bootstrap):
    alice, bob = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    marker = f"Marker-{uuid.uuid4().hex}: my flat is above the bakery"

    async def story() -> None:
        async with a_replica(kafka_bootstrap) as first, a_replica(kafka_bootstrap) as second:
            sealed = await first.seal(marker, alice)
            others = await first.seal("The docking station is replaced", bob)
            assert marker not in sealed and await second.open(sealed) == marker
            assert await first.key_for(alice) == await second.key_for(alice), "one key, read back by both"
            assert await first.erase(alice) == [sealed.split(":")[2]]
            assert await first.open(sealed) == ERASED
            await until(lambda: second.ring.keys_of(alice) == [], timeout_s=15)
            assert await second.open(sealed) == ERASED
            assert await second.open(others) == "The docking station is replaced"
        async with a_replica(kafka_bootstrap) as later:
            assert await later.open(sealed) == ERASED and await later.open(others) == "The docking station is replaced"
        written = await privacy_keys_as_written(kafka_bootstrap)
        assert not any(marker.encode() in (value or b"") for _, value in written)
        alice_key = sealed.split(":")[2].encode()
        assert [value is None for key, value in written if key == alice_key] == [False, True], "issued, then shredded"

    asyncio.run(story())


def test_two_replicas_issuing_a_key_for_one_new_person_at_once_both_keep_opening(kafka_bootstrap):
    carol = f"carol-{uuid.uuid4().hex[:8]}"

    async def story() -> None:
        async with a_replica(kafka_bootstrap) as first, a_replica(kafka_bootstrap) as second:
            sealed = await asyncio.gather(first.seal("from the first", carol), second.seal("from the second", carol))
            for replica in (first, second):
                assert [await replica.open(value) for value in sealed] == ["from the first", "from the second"]
            shredded = await first.erase(carol)
            assert set(shredded) == {value.split(":")[2] for value in sealed}
            await until(lambda: second.ring.keys_of(carol) == [], timeout_s=15)
            assert [await second.open(value) for value in sealed] == [ERASED, ERASED]

    asyncio.run(story())


def test_a_record_that_is_not_a_key_is_parked_and_the_keys_go_on(kafka_bootstrap):
    dave = f"dave-{uuid.uuid4().hex[:8]}"

    async def story() -> None:
        async with a_replica(kafka_bootstrap) as replica:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                poison = await producer.send_and_wait(PRIVACY_KEYS, b'{"key_id": "not a key"}', key=b"poison")
            finally:
                await producer.stop()
            sealed = await replica.seal("still sealed and opened", dave)
            assert await replica.open(sealed) == "still sealed and opened"
            consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
            await consumer.start()
            try:
                parked = records_to_end(consumer, {TopicPartition(dead_letter_topic(PRIVACY_KEYS), 0): None})
                reasons = [dict(record.headers) async for record in parked]
            finally:
                await consumer.stop()
            assert any(
                headers.get("dlq.offset") == str(poison.offset).encode() and b"not a data key" in headers["dlq.reason"]
                for headers in reasons
            ), reasons

    asyncio.run(story())


def test_a_field_sealed_under_another_master_keys_key_stays_sealed_where_it_is_read(kafka_bootstrap):
    """Another deployment's data on the same topics, or a master key lost: what does not open is shown sealed and
    logged, never an error for whoever reads it (an API answer, a directory being read)."""
    alice = f"alice-{uuid.uuid4().hex[:8]}"

    async def story() -> None:
        async with a_replica(kafka_bootstrap) as ours:
            sealed = await ours.seal("My flat is above the bakery", alice)
        async with a_replica(kafka_bootstrap, SecretBox([bytes(range(1, 33))])) as theirs:
            assert await theirs.open(sealed) == sealed
            created = a_ticket_created(title=sealed)
            assert theirs.open_fields(created).data.title == sealed
            assert (await theirs.opened(created)).data.title == sealed

    asyncio.run(story())
