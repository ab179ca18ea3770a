"""Reading a topic's dead-letter queue back, for the tests that check what landed there and why."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from ticketstream_shared.contract import dead_letter_topic
from ticketstream_shared.contract.codec import MAX_EVENT_BYTES
from ticketstream_shared.runtime.kafka import records_to_end


def dead_letters(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every dead letter of `topic` so far, in the order they were parked."""

    async def read() -> list[ConsumerRecord[bytes, bytes]]:
        partition = TopicPartition(dead_letter_topic(topic), 0)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=4 * MAX_EVENT_BYTES
        )
        await consumer.start()
        try:
            return [record async for record in records_to_end(consumer, {partition: None})]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


def parked_json(letter: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    """A dead letter's value as a JSON object; {} for one that is not (the poison tests park such letters in the
    same DLQs, in whatever order the tests run)."""
    try:
        parked = json.loads(letter.value or b"")
    except ValueError:
        return {}
    return parked if isinstance(parked, dict) else {}
