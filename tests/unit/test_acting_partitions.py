"""Which partitions of a log every replica reads whole a replica acts on (assignment's team log, notify's
deliveries): one given is acted on once the log is read to where it ended when given, and not once taken away."""

import asyncio

from aiokafka import TopicPartition

from tests.fakes_kafka import FakeBroker, FakeConsumer
from ticketstream_shared.contract.topics import NOTIFY_DELIVERIES
from ticketstream_shared.runtime.ownership import ActingPartitions

FIRST, SECOND = TopicPartition(NOTIFY_DELIVERIES, 0), TopicPartition(NOTIFY_DELIVERIES, 1)


def written(broker: FakeBroker, tp: TopicPartition, count: int) -> list:
    return [broker.append(tp.topic, b"{}", partition=tp.partition) for _ in range(count)]


def test_a_partition_given_is_acted_on_once_read_to_where_it_ended_and_told_once():
    broker, partitions = FakeBroker(), ActingPartitions()
    first = written(broker, FIRST, 3)
    asyncio.run(partitions.take(FakeConsumer(broker, "owners"), {FIRST, SECOND}))

    assert partitions.given == {0, 1}
    assert partitions.now_acted_on() == [1]  # nothing to read first: empty when given
    assert not partitions.acts_on(0) and partitions.acting == {1}
    partitions.read(first[1])
    assert partitions.now_acted_on() == [] and not partitions.acts_on(0)
    partitions.read(first[2])
    assert partitions.now_acted_on() == [0]
    assert partitions.acts_on(0) and partitions.acting == {0, 1}
    assert partitions.now_acted_on() == []


def test_a_partition_taken_away_is_not_acted_on_whether_read_far_enough_or_not():
    broker, partitions = FakeBroker(), ActingPartitions()
    first = written(broker, FIRST, 2)
    asyncio.run(partitions.take(FakeConsumer(broker, "owners"), {FIRST, SECOND}))
    partitions.now_acted_on()

    assert partitions.give_up({FIRST, SECOND}) == {0, 1}
    partitions.read(first[1])
    assert partitions.now_acted_on() == []
    assert partitions.given == set() and partitions.acting == set()
    assert not partitions.acts_on(0) and not partitions.acts_on(1)


def test_read_to_says_whether_every_partition_reached_its_end():
    broker, partitions = FakeBroker(), ActingPartitions()
    records = written(broker, FIRST, 2)
    partitions.read(records[0])

    assert not partitions.read_to(None)  # the ends are not known yet
    assert partitions.read_to({})
    assert not partitions.read_to({0: 2, 1: 0})
    partitions.read(records[1])
    assert partitions.read_to({0: 2, 1: 0}) and partitions.positions == {0: 2}
