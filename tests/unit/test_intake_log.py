"""The ticket log tells an append that no other writer's event can have preceded (acknowledged at once) from one
that another's may have (read back first): by the offsets this replica's events landed at."""

import asyncio
from types import SimpleNamespace

from intake.domain import decide
from intake.log import KafkaTicketLog, LogPositions
from tests.fakes_kafka import FakeBroker, FakeProducer
from tests.unit.test_intake_domain import context, create
from ticketstream_shared.contract import encode
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import partition_of


def opening(ticket_id):
    return decide(None, create(ticket_id), context())


def same_partition_as(ticket_id, count):
    partition = partition_of(ticket_id, TICKET_PARTITIONS)
    found = (f"t-{n}" for n in range(10**6) if partition_of(f"t-{n}", TICKET_PARTITIONS) == partition)
    return [next(found) for _ in range(count)]


def a_log(broker):
    event_log = KafkaTicketLog(LogPositions())
    event_log.producer = FakeProducer(broker)
    return event_log


def test_appends_to_a_partition_only_this_replica_writes_are_alone_however_far_it_has_read():
    async def scenario():
        event_log = a_log(FakeBroker())
        tickets = same_partition_as("t-0", 3)
        landed = [await event_log.append(opening(ticket), read={}) for ticket in tickets]
        assert [(each.offset, each.alone) for each in landed] == [(0, True), (1, True), (2, True)]

    asyncio.run(scenario())


def test_an_append_after_another_writers_event_is_alone_only_if_decided_on_having_read_it():
    async def scenario():
        broker = FakeBroker()
        event_log = a_log(broker)
        mine, theirs, second, third = same_partition_as("t-0", 4)
        first = await event_log.append(opening(mine), read={})
        broker.append(TICKETS_EVENTS, encode(opening(theirs)[0]), key=theirs.encode())  # offset 1
        unseen = await event_log.append(opening(second), read={first.partition: 1})
        seen = await event_log.append(opening(third), read={first.partition: 2})
        assert [(landed.offset, landed.alone) for landed in (first, unseen, seen)] == [(0, True), (2, False), (3, True)]

    asyncio.run(scenario())


class _AcknowledgingInAnyOrder:
    """A producer whose sends the test acknowledges, in whatever order it chooses, at the offsets it chooses."""

    def __init__(self):
        self.sent = []

    async def send(self, topic, value, key=None, headers=None):
        self.sent.append(asyncio.get_running_loop().create_future())
        return self.sent[-1]


def test_acknowledgements_out_of_order_are_never_taken_for_a_run_of_this_replicas_own():
    async def scenario():
        event_log = KafkaTicketLog(LogPositions())
        producer = event_log.producer = _AcknowledgingInAnyOrder()
        earlier = asyncio.create_task(event_log.append(opening("t-1"), read={0: 5}))
        later = asyncio.create_task(event_log.append(opening("t-2"), read={0: 5}))
        while len(producer.sent) < 2:
            await asyncio.sleep(0)
        producer.sent[1].set_result(SimpleNamespace(partition=0, offset=6))
        producer.sent[0].set_result(SimpleNamespace(partition=0, offset=5))
        # Offset 6 came first: offset 5 was not known to be this replica's then.
        assert [(landed.offset, landed.alone) for landed in await asyncio.gather(earlier, later)] == [
            (5, True),
            (6, False),
        ]

    asyncio.run(scenario())
