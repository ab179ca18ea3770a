"""A decision whose version another writer's event took first (a zombie owner, owners.py) is refused to its caller,
not acknowledged and lost; on a real broker, with intake's ledger and log as app.py wires them."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from intake.domain import NotReady, decide
from intake.log import KafkaTicketLog, LogPositions, follow
from tests.unit.test_intake_domain import context, create, worklog
from tests.unit.test_intake_ledger import a_ledger
from tests.unit.test_intake_log import same_partition_as
from ticketstream_shared.contract import encode
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import keyed_partition, partition_of

pytestmark = pytest.mark.integration


def test_a_version_another_writer_took_first_is_refused_and_a_retry_is_decided_on_it(kafka_bootstrap):
    asyncio.run(_zombie(kafka_bootstrap))


def a_producer(kafka_bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, partitioner=keyed_partition
    )


async def _zombie(kafka_bootstrap: str) -> None:
    positions = LogPositions()
    event_log = KafkaTicketLog(positions)
    event_log.producer = a_producer(kafka_bootstrap)
    other_writer = a_producer(kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    ledger = a_ledger(event_log)
    for client in (event_log.producer, other_writer, consumer):
        await client.start()

    def reading() -> asyncio.Task[None]:
        store = ledger.tickets.store
        return asyncio.create_task(follow(consumer, TICKETS_EVENTS, store, ledger.apply, ledger.caught_up, positions))

    reader = reading()
    try:
        await asyncio.wait_for(ledger.caught_up.wait(), 60)
        ticket_id = f"t-{uuid.uuid4()}"
        await ledger.execute(create(ticket_id), context())
        await asyncio.wait_for(ledger.reached(ticket_id, 1), 30)

        reader.cancel()  # this replica stops reading the log: what it decides now, it decides on what it has
        ticket, _ = await asyncio.wait_for(ledger.execute(worklog(ticket_id, minutes=10), context()), 30)
        assert ticket.version == 2, "only this replica wrote since: acknowledged without reading it back"

        # Another writer appends to another ticket of the partition: read back, this replica's change stands.
        partition = TopicPartition(TICKETS_EVENTS, partition_of(ticket_id, TICKET_PARTITIONS))
        (neighbour,) = same_partition_as(ticket_id, 1)
        sent = await other_writer.send_and_wait(
            TICKETS_EVENTS, encode(decide(None, create(neighbour), context())[0]), key=neighbour.encode()
        )
        deciding = asyncio.create_task(ledger.execute(worklog(ticket_id, minutes=20), context()))
        async with asyncio.timeout(30):  # the decision is appended after the neighbour's, then this replica reads on
            while (await consumer.end_offsets([partition]))[partition] <= sent.offset + 1:
                await asyncio.sleep(0.01)
        assert not deciding.done(), "another writer's event came between: not acknowledged before it is read back"
        reader = reading()
        ticket, _ = await asyncio.wait_for(deciding, 30)
        assert ticket.version == 3

        # Another writer (the partition's new owner) appends version 4 while this replica does not see it.
        reader.cancel()
        taken = decide(ticket, worklog(ticket_id, minutes=30), context())
        await other_writer.send_and_wait(TICKETS_EVENTS, encode(taken[0]), key=ticket_id.encode())
        late, decided_late = worklog(ticket_id, minutes=40), context()
        deciding = asyncio.create_task(ledger.execute(late, decided_late))
        reader = reading()
        with pytest.raises(NotReady, match=f"ticket {ticket_id} changed on another intake replica"):
            await asyncio.wait_for(deciding, 30)
        held = ledger.get(ticket_id)
        assert held is not None and held.version == 4
        assert sorted(entry.minutes for entry in held.worklogs.values()) == [10, 20, 30]

        ticket, replayed = await asyncio.wait_for(ledger.execute(late, decided_late), 30)
        assert (ticket.version, replayed) == (5, False)
        assert sorted(entry.minutes for entry in ticket.worklogs.values()) == [10, 20, 30, 40]
    finally:
        reader.cancel()
        for client in (event_log.producer, other_writer, consumer):
            await client.stop()
