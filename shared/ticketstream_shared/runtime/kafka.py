"""Kafka clients as every service configures them, and the dead-letter path for unreadable messages."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.structs import ConsumerRecord

from ticketstream_shared.contract import dead_letter_topic

from .logging import correlated, correlation_id
from .retry import while_down
from .settings import ServiceSettings

log = logging.getLogger(__name__)

CORRELATION_HEADER = "correlation_id"

T = TypeVar("T")


def _broken_connections_raise_connection_errors() -> None:
    """A request written to a socket the broker has just closed fails, in aiokafka, as a KafkaConnectionError when
    the event loop raises OSError; uvloop (which uvicorn runs every service on) raises RuntimeError instead. aiokafka
    retries the first and reconnects; the second ended a group consumer's coordination and stopped the service in a
    broker restart (aiokafka issue #1038, open). So the second becomes the first."""
    send = AIOKafkaConnection.send

    def send_or_fail_as_broken(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        try:
            return send(self, request, expect_response)
        except RuntimeError as error:
            if self._writer is None or not self._writer.transport.is_closing():
                raise
            self.close(reason=CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError(f"Connection at {self.host}:{self.port} broken: {error}") from error

    AIOKafkaConnection.send = send_or_fail_as_broken


_broken_connections_raise_connection_errors()


def make_producer(settings: ServiceSettings, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """Durable by default: a send is acknowledged only once every in-sync replica has it, without duplicates."""
    options: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 1,
        "client_id": client_id,
        "partitioner": keyed_partition,
        **settings.kafka_client_config(),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    settings: ServiceSettings, *topics: str, group_id: str | None, client_id: str, **overrides: Any
) -> AIOKafkaConsumer:
    """Offsets are committed by the service after its work is durable, never automatically."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        **settings.kafka_client_config(),
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


def make_admin(settings: ServiceSettings, client_id: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(client_id=client_id, **settings.kafka_client_config())


def correlation_headers() -> list[tuple[str, bytes]]:
    current = correlation_id.get()
    return [(CORRELATION_HEADER, current.encode())] if current else []


async def batches_to_end(
    consumer: AIOKafkaConsumer,
    since: Mapping[TopicPartition, int | None],
    ends: Mapping[TopicPartition, int] | None = None,
    *,
    max_records: int = 10_000,
) -> AsyncIterator[list[ConsumerRecord]]:
    """The records of the given partitions from the given offsets (None: the beginning) up to `ends` (by default the
    ends they have now), as read, in batches of up to `max_records`, read by `consumer` (started, in no group; it
    is assigned these partitions). The one read-to-a-known-end of every service: restores, rebuilds, replays."""
    consumer.assign(list(since))
    if ends is None:
        ends = await consumer.end_offsets(list(since))
    starts = {
        **await consumer.beginning_offsets([tp for tp, offset in since.items() if offset is None]),
        **{tp: offset for tp, offset in since.items() if offset is not None},
    }
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    pending = {tp for tp in since if ends[tp] > starts[tp]}
    while pending:
        fetched = await consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
        batch = [record for tp, records in fetched.items() for record in records if record.offset < ends[tp]]
        if batch:
            yield batch
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)


async def records_to_end(
    consumer: AIOKafkaConsumer, since: Mapping[TopicPartition, int | None]
) -> AsyncIterator[ConsumerRecord]:
    """`batches_to_end`'s records one by one, to the ends the partitions have now."""
    async for batch in batches_to_end(consumer, since):
        for record in batch:
            yield record


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (murmur2, as the Java client): where a ticket's events,
    commands and downstream decisions live."""
    return partition_of_key(key.encode(), partitions)


def partition_of_key(key: bytes, partitions: int) -> int:
    """As aiokafka's DefaultPartitioner places a keyed record, without building a list of every partition and a
    partitioner for each record (the outbox asks for each one it sends)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keyed_partition(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Every producer's partitioner: aiokafka's DefaultPartitioner (a keyed record where the Java client puts it,
    one without a key anywhere available), with the murmur2 below."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[partition_of_key(key, len(all_partitions))]


_MURMUR_MIX = 0x5BD1E995
_WORD = 0xFFFFFFFF


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of `key` (the Java client's `Utils.murmur2`), as an unsigned 32-bit number. aiokafka's
    reads the key a byte at a time: 7 us for a ticket id, against 2.6 here, and every keyed send hashes its key."""
    length = len(key)
    hashed = 0x9747B28C ^ length
    whole = length >> 2
    for word in struct.unpack_from(f"<{whole}I", key):
        word = (word * _MURMUR_MIX) & _WORD
        hashed = ((hashed * _MURMUR_MIX) ^ ((word ^ (word >> 24)) * _MURMUR_MIX)) & _WORD
    if length & 3:
        hashed = ((hashed ^ int.from_bytes(key[whole * 4 :], "little")) * _MURMUR_MIX) & _WORD
    hashed ^= hashed >> 13
    hashed = (hashed * _MURMUR_MIX) & _WORD
    return hashed ^ (hashed >> 15)


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def record_correlation(record: ConsumerRecord) -> str | None:
    """The correlation id the record was written under, even when its value cannot be read."""
    return header(record, CORRELATION_HEADER)


async def dead_letter(producer: AIOKafkaProducer, record: ConsumerRecord, reason: str, consumer: str) -> None:
    """Park `record` in its topic's DLQ with the reason and the original bytes; returns once Kafka has it, so
    the caller may then commit past the original offset without losing anything."""
    headers = [
        *((key, value) for key, value in record.headers or () if key == CORRELATION_HEADER),
        ("dlq.reason", reason.encode()[:4096]),
        ("dlq.topic", record.topic.encode()),
        ("dlq.partition", str(record.partition).encode()),
        ("dlq.offset", str(record.offset).encode()),
        ("dlq.consumer", consumer.encode()),
    ]
    await producer.send_and_wait(dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers)
    with correlated([record_correlation(record)]):
        log.warning(
            "dead-lettered a message",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset, "reason": reason},
        )


#: How long a client may take to stop: to leave its group, to flush what it holds. At shutdown the broker may be
#: gone, or a join in progress may hold the stop until its request times out (40 s); the group notices by itself.
STOP_TIMEOUT_S = 3.0


async def stop_within(client: AIOKafkaConsumer | AIOKafkaProducer, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a client, or give up on it after `timeout_s` or on any error: a process stopping does not wait on Kafka,
    and what was not committed is delivered again."""
    try:
        await asyncio.wait_for(client.stop(), timeout_s)
    except Exception as error:
        log.warning(
            "a Kafka client did not stop cleanly; left behind",
            extra={"client": type(client).__name__, "why": repr(error)},
        )


def kafka_is_down(error: BaseException) -> bool:
    """Whether `error`, raised by aiokafka, means the brokers are unreachable, restarting or moving a leader, so that
    the same request succeeds later: aiokafka marks those errors `retriable`, except a request no broker answered in
    time (KafkaTimeoutError). Any other KafkaError (authorization, configuration, a request this client should not
    have made) would fail the same way again."""
    return isinstance(error, KafkaError) and (error.retriable or isinstance(error, KafkaTimeoutError))


async def start_when_reachable(make_client: Callable[[], T], what: str, max_delay_s: float = 5.0) -> T:
    """Start a fresh client until the broker answers: a service comes up (and says 'not ready') before its
    broker does, instead of dying and taking its process group down with it."""

    async def start() -> T:
        client = make_client()
        try:
            await client.start()  # type: ignore[attr-defined]
        except KafkaConnectionError:
            await client.stop()  # type: ignore[attr-defined]
            raise
        return client

    return await while_down(f"Kafka ({what})", KafkaConnectionError, longest_wait_s=max_delay_s)(start)


class TopicsMissing(Exception):
    """Topics a client waits for that the broker does not have (yet)."""


async def wait_for_topics(consumer: AIOKafkaConsumer, topics: Iterable[str], max_delay_s: float = 5.0) -> None:
    """Topics are created explicitly (the launcher, or the operator), never by the broker on first use: wait for
    them rather than subscribe to nothing."""
    wanted = set(topics)

    async def all_there() -> None:
        if missing := wanted - await consumer.topics():
            raise TopicsMissing(", ".join(sorted(missing)))

    waiting = while_down(f"Kafka topics {', '.join(sorted(wanted))}", TopicsMissing, longest_wait_s=max_delay_s)
    await waiting(all_there)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, from the broker's metadata now. (The consumer's own partitions_for_topic reads the
    metadata it has cached, which has none for a topic it was never subscribed to: None, read as no partitions.)"""
    cluster = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


async def commit_unless_rebalanced(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int] | None = None
) -> None:
    """Commit what was handled: `offsets` (the next offset to read, per partition; those no longer assigned are left
    out), else how far every assigned partition has been read. If the group rebalanced meanwhile, the partitions'
    new owners get those messages again, which every handler tolerates (ids derive from the event or command): say
    so and go on, rather than let the loop die."""
    if offsets is not None:
        offsets = {tp: offset for tp, offset in offsets.items() if tp in consumer.assignment()}
        if not offsets:
            return
    try:
        await consumer.commit(offsets)
    except CommitFailedError as error:
        log.warning(
            "commit refused after a rebalance; the new owner handles those messages again",
            extra={"error": str(error).splitlines()[0]},
        )
