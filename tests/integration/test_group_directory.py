"""A group's directory of addresses on a real broker: intake's owners group takes it on in a rolling upgrade."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from ticketstream_shared.contract.topics import INTAKE_COMMANDS, TICKET_PARTITIONS
from ticketstream_shared.runtime.directory import RoundRobinDirectory

pytestmark = pytest.mark.integration


def test_a_replica_with_the_directory_joins_a_group_of_replicas_without_it(kafka_bootstrap: str) -> None:
    """The replica of the version before (aiokafka's default assignor) and one with the directory share the owners
    group: one protocol, every partition held by exactly one of them."""

    async def share() -> tuple[set[int], set[int], RoundRobinDirectory]:
        group = f"owners-upgrade-{uuid.uuid4().hex[:8]}"
        directory = RoundRobinDirectory("http://newer:8001")
        older = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, heartbeat_interval_ms=200)
        newer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            heartbeat_interval_ms=200,
            partition_assignment_strategy=(directory,),
        )
        for consumer in (older, newer):
            await consumer.start()
            consumer.subscribe([INTAKE_COMMANDS])
        try:
            every = set(range(TICKET_PARTITIONS))
            async with asyncio.timeout(60):
                while True:
                    await asyncio.gather(older.getmany(timeout_ms=200), newer.getmany(timeout_ms=200))
                    held = [{tp.partition for tp in consumer.assignment()} for consumer in (older, newer)]
                    if all(held) and not held[0] & held[1] and held[0] | held[1] == every:
                        return held[0], held[1], directory
        finally:
            for consumer in (older, newer):
                await consumer.stop()

    older_held, newer_held, directory = asyncio.run(share())
    assert older_held and newer_held
    # Whichever leads, the directory names no one who advertises no address: the older replica is not watched.
    assert set(directory.holders.values()) <= {"http://newer:8001"}
    assert directory.others() == set()
