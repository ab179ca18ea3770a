"""The broker the services rely on: topics as the contract says, no auto-creation, durable round trips.

Runs against the session broker of `kafka_bootstrap`, and starts its own LocalKafka to check that
data survives a restart (which is what `make run` relies on between sessions).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError
from aiokafka.structs import ConsumerRecord, TopicPartition

from deploy.kafka.launcher import LocalKafka
from ticketstream_shared.contract.topics import TICKETS_EVENTS, TOPICS, TopicSpec
from ticketstream_shared.runtime.kafka import batches_to_end, records_to_end
from ticketstream_shared.runtime.kafka_admin import TopicSetupError, ensure_topics

pytestmark = pytest.mark.integration

DEADLINE_S = 30


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


async def read(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord]:
    """Poll until `count` records arrived; a deadline rather than a sleep bounds the wait."""
    records: list[ConsumerRecord] = []
    async with asyncio.timeout(DEADLINE_S):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    return records


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def test_every_contract_topic_exists_with_its_partitions_and_config(kafka_bootstrap: str) -> None:
    async def check() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            described = {t["topic"]: t for t in await admin.describe_topics([spec.name for spec in TOPICS])}
            [configs] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, TICKETS_EVENTS, {"retention.ms": None})]
            )
        finally:
            await admin.close()
        for spec in TOPICS:
            assert described[spec.name]["error_code"] == 0, spec.name
            assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name
        [resource] = configs.to_object()["resources"]
        assert {e["config_names"]: e["config_value"] for e in resource["config_entries"]} == {"retention.ms": "-1"}

    asyncio.run(check())


def test_ensure_topics_is_idempotent_but_refuses_a_topic_with_too_few_partitions(kafka_bootstrap: str) -> None:
    topic = unique("test.narrow")

    async def check() -> None:
        await ensure_topics(kafka_bootstrap)  # the fixture already created them: a no-op now
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
        with pytest.raises(TopicSetupError, match="has 1 partitions"):
            await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 2)])

    asyncio.run(check())


def test_producing_to_an_unknown_topic_does_not_create_it(kafka_bootstrap: str) -> None:
    topic = unique("test.unknown")

    async def check() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=2_000)
        await producer.start()
        try:
            with pytest.raises((UnknownTopicOrPartitionError, KafkaTimeoutError)):
                await producer.send_and_wait(topic, b"lost")
        finally:
            await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            assert topic not in await admin.list_topics()
        finally:
            await admin.close()

    asyncio.run(check())


def test_idempotent_producer_and_consumer_group_round_trip_with_committed_offsets(kafka_bootstrap: str) -> None:
    topic, group = unique("test.roundtrip"), unique("test-group")
    partitions = [TopicPartition(topic, p) for p in range(3)]
    messages = [(f"ticket-{n % 4}".encode(), f"event-{n}".encode()) for n in range(20)]

    async def check() -> None:
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, len(partitions))])
        await produce(kafka_bootstrap, topic, messages)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            records = await read(consumer, len(messages))
            await consumer.commit()
            committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
        finally:
            await consumer.stop()

        assert sorted((r.key, r.value) for r in records) == sorted(messages)
        by_key: dict[bytes, list[ConsumerRecord]] = defaultdict(list)
        for record in records:
            by_key[record.key].append(record)
        for key, of_key in by_key.items():
            assert len({r.partition for r in of_key}) == 1, f"{key!r} spread over partitions"
            in_order = [value for k, value in messages if k == key]
            assert [r.value for r in sorted(of_key, key=lambda r: r.offset)] == in_order
        # A partition that got no record may have no committed offset at all, or 0.
        ends = {
            tp: 1 + max((r.offset for r in records if r.partition == tp.partition), default=-1) for tp in partitions
        }
        assert {tp: committed.get(tp) or 0 for tp in partitions} == ends

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            stored = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        assert {tp: stored[tp].offset if tp in stored else 0 for tp in partitions} == ends

    asyncio.run(check())


def test_reading_to_the_end_stops_where_the_partitions_ended_and_starts_where_asked(kafka_bootstrap: str) -> None:
    """`batches_to_end`, the read-to-a-known-end of restores, rebuilds and what-ifs: from a given offset or the
    beginning, up to the ends given or those the partitions have when it starts, never a record past them."""
    topic = unique("test.to-end")
    first, second = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def check() -> None:
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 2)])
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            for n in range(25):
                await producer.send_and_wait(topic, f"{n}".encode(), partition=n % 2)
            read: list[ConsumerRecord] = []
            async for batch in batches_to_end(consumer, {first: None, second: 5}, max_records=4):
                assert 0 < len(batch) <= 4
                read.extend(batch)
                if len(read) == 4:  # records appended meanwhile are past the ends it started with
                    for n in range(25, 31):
                        await producer.send_and_wait(topic, f"{n}".encode(), partition=n % 2)
            # partition 0 holds 0, 2, ..., 24 (13), partition 1 holds 1, 3, ..., 23 (12), of which offsets 5 on
            assert sorted(int(record.value or b"") for record in read) == sorted([*range(0, 25, 2), *range(11, 25, 2)])
            told = [record.offset async for record in records_to_end(consumer, {first: 13})]
            assert told == [13, 14, 15]  # the three appended meanwhile, and only them
            bounded = [batch async for batch in batches_to_end(consumer, {second: 0}, {second: 3})]
            assert [record.offset for batch in bounded for record in batch] == [0, 1, 2]
            assert [batch async for batch in batches_to_end(consumer, {second: 15})] == []  # nothing to read
        finally:
            await consumer.stop()
            await producer.stop()

    asyncio.run(check())


def test_local_kafka_keeps_topics_and_messages_across_a_restart(tmp_path: Path) -> None:
    topic = unique("test.restart")

    async def write(bootstrap: str) -> str:
        await ensure_topics(bootstrap, [TopicSpec(topic, 1)])
        await produce(bootstrap, topic, [(b"ticket-1", b"survives")])
        return await cluster_id(bootstrap)

    async def cluster_id(bootstrap: str) -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return (await admin.describe_cluster())["cluster_id"]
        finally:
            await admin.close()

    async def read_back(bootstrap: str) -> tuple[str, list[ConsumerRecord]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            return await cluster_id(bootstrap), await read(consumer, 1)
        finally:
            await consumer.stop()

    kafka = LocalKafka(tmp_path / "kafka")
    with kafka:
        first_cluster = asyncio.run(write(kafka.bootstrap_servers))
    with kafka:
        second_cluster, records = asyncio.run(read_back(kafka.bootstrap_servers))

    assert second_cluster == first_cluster, "storage was formatted again"
    assert [(r.key, r.value) for r in records] == [(b"ticket-1", b"survives")]


def test_the_topic_command_reads_the_broker_and_its_security_from_the_environment(kafka_bootstrap: str) -> None:
    """What the compose file and the Kubernetes Job run: no flags, only the KAFKA_* variables."""
    import os
    import subprocess
    import sys

    environment = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    done = subprocess.run(
        [sys.executable, "-m", "deploy.kafka.launcher", "create-topics"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    refused = subprocess.run(
        [sys.executable, "-m", "deploy.kafka.launcher", "create-topics"],
        env={**environment, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "KAFKA_SASL_MECHANISM" in refused.stderr, "incomplete SASL is refused by name"
