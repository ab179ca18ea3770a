"""Records written together: what a service decides for a batch of input, sent as one record batch per partition.

`producer.send` costs tens of microseconds of Python per record (the partitioner, a future per record, the
accumulator), which was a third of the assignment worker's CPU through Kafka. An outbox collects a turn's records,
then builds each partition's batch with the client's C record builder and submits it whole: one future per batch.
Records keep their order within a partition, as `send` keeps it; the partition is the one `send` would choose for the
key (murmur2, as the Java client). Each batch is submitted closed, so it goes out at once instead of lingering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from .kafka import partition_of_key

Headers = Sequence[tuple[str, bytes]]


class Outbox:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._waiting: dict[str, list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]] = {}

    def __len__(self) -> int:
        return sum(len(records) for records in self._waiting.values())

    def put(self, topic: str, value: bytes | None, key: bytes, headers: Headers = ()) -> None:
        """`value` None: a tombstone (a compacted topic forgets the key)."""
        self._waiting.setdefault(topic, []).append((key, value, list(headers)))  # the C builder takes a list

    async def send(self) -> list[asyncio.Future[object]]:
        """Submit what was put since the last send; each future resolves once Kafka acknowledged its batch (acks and
        idempotence as the producer's), or fails with the batch's error."""
        waiting, self._waiting = self._waiting, {}
        sent: list[asyncio.Future[object]] = []
        for topic, records in waiting.items():
            partitions = len(await self._producer.partitions_for(topic))
            by_partition: dict[int, list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]] = {}
            for record in records:
                by_partition.setdefault(partition_of_key(record[0], partitions), []).append(record)
            for partition, in_order in by_partition.items():
                batch = self._producer.create_batch()
                for key, value, headers in in_order:
                    if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:  # full
                        sent.append(await self._submit(batch, topic, partition))
                        batch = self._producer.create_batch()
                        if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                            raise MessageSizeTooLargeError(f"a record of {len(value or b'')} bytes for {topic}")
                sent.append(await self._submit(batch, topic, partition))
        return sent

    async def _submit(self, batch: object, topic: str, partition: int) -> asyncio.Future[object]:
        batch.close()  # type: ignore[attr-defined]
        return await self._producer.send_batch(batch, topic, partition=partition)
