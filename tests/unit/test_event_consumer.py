"""The consuming loop every service shares: how batches are cut, what goes to the DLQ, and when offsets are committed
(only once the service is done with a batch, so a crash loses nothing). Kafka here is a fake (pure logic)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from tests.builders import a_ticket_created, a_worklog_recorded
from tests.fakes_kafka import FakeBroker, FakeConsumer, FakeProducer, every_partition
from tests.polling import until
from ticketstream_shared.contract import TicketCreated, TicketEvent, decode_ticket_event, decoder_reading, encode
from ticketstream_shared.contract.topics import TICKETS_EVENTS, dead_letter_topic
from ticketstream_shared.runtime.consumer import EVENTS_PASSED_OVER, Delivery, EventConsumer, Rejections
from ticketstream_shared.runtime.settings import ServiceSettings

GROUP = "reporting-tickets"
DLQ = dead_letter_topic(TICKETS_EVENTS)
SETTINGS = ServiceSettings(api_keys_file=Path("unused-in-unit-tests.json"))


class Projector:
    """A service's batch handler: keeps what it was handed; can refuse events, hold a batch, or fail."""

    def __init__(self, refuse: dict[int, str] | None = None, fail: Exception | None = None) -> None:
        self.batches: list[list[TicketEvent]] = []
        self.refuse = refuse or {}
        self.fail = fail
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def handle(self, batch: list[Delivery]) -> Rejections:
        self.batches.append([delivery.event for delivery in batch])
        self.entered.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [(delivery, self.refuse[delivery.offset]) for delivery in batch if delivery.offset in self.refuse]


def an_event_consumer(
    projector: Projector, max_batch: int = 500, max_wait_s: float = 0.05, read_ahead: int = 0
) -> EventConsumer:
    return EventConsumer(
        SETTINGS,
        service="reporting",
        group_id=GROUP,
        decoders={TICKETS_EVENTS: decode_ticket_event},
        handle=projector.handle,
        max_batch=max_batch,
        max_wait_s=max_wait_s,
        read_ahead=read_ahead,
    )


def one_tickets_story(broker: FakeBroker, worklogs: int) -> tuple[TopicPartition, list[TicketEvent]]:
    """A ticket created and worked on: all in one partition, in order."""
    created = a_ticket_created()
    events: list[TicketEvent] = [created]
    events += [a_worklog_recorded(created.ticket_id, version) for version in range(2, worklogs + 2)]
    for event in events:
        record = broker.append(TICKETS_EVENTS, encode(event), key=event.ticket_id.encode())
    return TopicPartition(TICKETS_EVENTS, record.partition), events


def raw_on(broker: FakeBroker, tp: TopicPartition, value: bytes) -> None:
    broker.append(TICKETS_EVENTS, value, key=b"t-poison", partition=tp.partition)


def a_type_from_a_newer_version() -> bytes:
    payload = json.loads(encode(a_ticket_created()))
    payload.update(event_type="ticket.merged", data={"into": "t-2"})
    return json.dumps(payload).encode()


def dlq_headers(broker: FakeBroker) -> list[dict[str, str]]:
    return [{key: value.decode() for key, value in record.headers} for record in broker.records(DLQ)]


class Running:
    """An EventConsumer consuming from the broker in its own task, the group's only member."""

    def __init__(self, broker: FakeBroker, consumer: EventConsumer) -> None:
        self.broker, self.consumer = broker, consumer
        self.group_member = FakeConsumer(broker, GROUP)
        self.dead_letters = FakeProducer(broker)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.consumer.consume(self.group_member, self.dead_letters))
        await until(lambda: self.group_member.subscribed)
        await self.group_member.rebalance(assigned=every_partition(TICKETS_EVENTS))
        return self.task

    async def __aenter__(self) -> Running:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.consumer.stop()
        assert self.task is not None
        await self.task

    def committed(self) -> dict[TopicPartition, int]:
        return {tp: offset for tp, offset in self.broker.committed[GROUP].items() if offset}


# --- cutting batches --------------------------------------------------------------------------------------------


def test_a_batch_ends_at_max_batch_events_and_the_rest_comes_in_the_next():
    """A big backlog is handed over in bounded batches, in log order, each fetch asking only for what fits."""

    async def story() -> None:
        broker = FakeBroker()
        tp, events = one_tickets_story(broker, worklogs=4)
        consumer, member = an_event_consumer(Projector(), max_batch=2, max_wait_s=5.0), FakeConsumer(broker, GROUP)
        await member.rebalance(assigned={tp})
        first, _ = await consumer._next_batch(member)
        second, _ = await consumer._next_batch(member)
        assert [d.event for d in first] == events[:2] and [d.event for d in second] == events[2:4]
        assert [d.offset for d in first + second] == [0, 1, 2, 3]
        assert member.fetches == [(500, 2), (500, 2)]

    asyncio.run(story())


def test_events_arriving_within_the_wait_after_the_first_join_its_batch():
    """One batch spans several fetches while its window is open, each fetch waiting only as long as it still is."""

    async def story() -> None:
        broker = FakeBroker()
        created = a_ticket_created()
        worked = a_worklog_recorded(created.ticket_id, 2)
        record = broker.append(TICKETS_EVENTS, encode(created), key=created.ticket_id.encode())
        consumer, member = an_event_consumer(Projector(), max_batch=2, max_wait_s=5.0), FakeConsumer(broker, GROUP)
        await member.rebalance(assigned={TopicPartition(TICKETS_EVENTS, record.partition)})
        batch = asyncio.create_task(consumer._next_batch(member))
        await until(lambda: len(member.fetches) == 2)  # the first event is in; the window is open
        broker.append(TICKETS_EVENTS, encode(worked), key=created.ticket_id.encode())
        events, read_any = await batch
        assert [d.event for d in events] == [created, worked] and read_any
        waited_ms, asked_for = member.fetches[1]
        assert 0 < waited_ms <= 5000 and asked_for == 1

    asyncio.run(story())


def test_a_batch_ends_max_wait_after_its_first_event_and_a_later_one_starts_the_next():
    """A lone event is not held for the idle wait (0.5 s) nor for max_batch: max_wait_s after it, it goes."""

    async def story() -> None:
        broker = FakeBroker()
        tp, [created] = one_tickets_story(broker, worklogs=0)
        consumer, member = an_event_consumer(Projector(), max_wait_s=0.1), FakeConsumer(broker, GROUP)
        await member.rebalance(assigned={tp})
        began = time.monotonic()
        events, read_any = await consumer._next_batch(member)
        assert [d.event for d in events] == [created] and read_any
        assert time.monotonic() - began >= 0.1
        assert member.fetches[0] == (500, 500) and all(0 <= ms <= 100 for ms, _ in member.fetches[1:])
        later = a_worklog_recorded(created.ticket_id, 2)
        broker.append(TICKETS_EVENTS, encode(later), key=created.ticket_id.encode())
        events, _ = await consumer._next_batch(member)
        assert [d.event for d in events] == [later]

    asyncio.run(story())


def test_an_idle_fetch_returns_an_empty_batch_with_nothing_to_commit():
    """With nothing to read the loop comes round (to see a stop, to record lag) after one fetch."""

    async def story() -> None:
        member = FakeConsumer(FakeBroker(), GROUP)
        await member.rebalance(assigned=every_partition(TICKETS_EVENTS))
        assert await an_event_consumer(Projector())._next_batch(member) == ([], {})
        assert member.fetches == [(500, 500)]

    asyncio.run(story())


# --- dead letters and skipped events ----------------------------------------------------------------------------


def test_an_unreadable_message_is_dead_lettered_with_its_reason_and_the_batch_goes_on():
    """One bad message must not hold up the events after it, nor be lost: the DLQ keeps it with the reason."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        tp, [created] = one_tickets_story(broker, worklogs=0)
        raw_on(broker, tp, b"{not json")
        worked = a_worklog_recorded(created.ticket_id, 2)
        broker.append(TICKETS_EVENTS, encode(worked), key=created.ticket_id.encode())
        async with Running(broker, an_event_consumer(projector)) as running:
            await until(lambda: running.committed() == {tp: 3})
        assert projector.batches == [[created, worked]]
        [parked] = broker.records(DLQ)
        [why] = dlq_headers(broker)
        assert parked.value == b"{not json" and why["dlq.reason"].startswith("not JSON")
        assert (why["dlq.topic"], why["dlq.offset"], why["dlq.consumer"]) == (TICKETS_EVENTS, "1", "reporting")

    asyncio.run(story())


def test_an_event_of_a_type_a_newer_version_writes_is_skipped_not_dead_lettered():
    """Another version's event is well formed: not ours to read, and nothing wrong with it."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        tp, [created] = one_tickets_story(broker, worklogs=0)
        raw_on(broker, tp, a_type_from_a_newer_version())
        async with Running(broker, an_event_consumer(projector)) as running:
            await until(lambda: running.committed() == {tp: 2})
        assert projector.batches == [[created]] and broker.records(DLQ) == []

    asyncio.run(story())


def test_events_of_types_the_service_reads_nothing_of_are_passed_over_counted_and_committed():
    """A reader of creations only (assignment's router reads no worklog) is handed none, does not judge them (an
    invalid worklog is its readers' to dead-letter), and commits past them."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        tp, [created, worked] = one_tickets_story(broker, worklogs=1)
        invalid = encode(a_worklog_recorded(created.ticket_id, 3)).replace(b'"minutes":30', b'"minutes":-30')
        raw_on(broker, tp, invalid)
        reader = an_event_consumer(projector)
        reader._decoders = {TICKETS_EVENTS: decoder_reading(TICKETS_EVENTS, [TicketCreated])}
        passed_over = EVENTS_PASSED_OVER.labels(TICKETS_EVENTS)._value.get()
        async with Running(broker, reader) as running:
            await until(lambda: running.committed() == {tp: 3})
        assert projector.batches == [[created]] and broker.records(DLQ) == []
        assert EVENTS_PASSED_OVER.labels(TICKETS_EVENTS)._value.get() == passed_over + 2

    asyncio.run(story())


def test_a_batch_of_only_dead_letters_is_committed_too():
    """Parked messages are done with: not committing them would park them again after every restart."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        tp = TopicPartition(TICKETS_EVENTS, 4)
        raw_on(broker, tp, b"\xff")
        raw_on(broker, tp, b"[]")
        async with Running(broker, an_event_consumer(projector)) as running:
            await until(lambda: running.committed() == {tp: 2})
        assert projector.batches == [] and len(broker.records(DLQ)) == 2
        dlq = [i for i, entry in enumerate(broker.journal) if entry[:2] == ("appended", DLQ)]
        commit = next(i for i, entry in enumerate(broker.journal) if entry[0] == "committed")
        assert max(dlq) < commit

    asyncio.run(story())


# --- committing -------------------------------------------------------------------------------------------------


def test_what_the_handler_refuses_is_dead_lettered_before_the_batch_is_committed():
    """Committing first would lose the refused command if the process died before the DLQ had it."""

    async def story() -> None:
        broker = FakeBroker()
        tp, events = one_tickets_story(broker, worklogs=1)
        projector = Projector(refuse={1: "TicketNotFound: no ticket t-9"})
        async with Running(broker, an_event_consumer(projector)) as running:
            await until(lambda: running.committed() == {tp: 2})
        assert projector.batches == [events]
        assert [h["dlq.reason"] for h in dlq_headers(broker)] == ["TicketNotFound: no ticket t-9"]
        parked = broker.journal.index(("appended", DLQ, 0, 0))
        committed = next(i for i, entry in enumerate(broker.journal) if entry[0] == "committed")
        assert parked < committed

    asyncio.run(story())


def test_offsets_are_committed_only_once_the_handler_has_returned():
    """Until then the batch's work may not be durable: a crash must deliver it again."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        projector.release.clear()
        tp, _ = one_tickets_story(broker, worklogs=2)
        async with Running(broker, an_event_consumer(projector)) as running:
            await projector.entered.wait()
            assert running.committed() == {} and running.group_member.commits == []
            projector.release.set()
            await until(lambda: running.committed() == {tp: 3})

    asyncio.run(story())


def test_nothing_is_committed_when_the_handler_fails_and_the_consumer_leaves_the_group():
    """The failure ends the loop (the service stops itself); the batch is delivered again to whoever comes next."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector(fail=RuntimeError("ClickHouse went away"))
        one_tickets_story(broker, worklogs=1)
        running = Running(broker, an_event_consumer(projector))
        with pytest.raises(RuntimeError, match="ClickHouse went away"):
            await (await running.start())
        assert len(projector.batches) == 1 and running.group_member.commits == []
        assert running.group_member.stopped and running.dead_letters.stopped

    asyncio.run(story())


def test_stopping_finishes_the_batch_in_hand_commits_it_and_leaves():
    """A graceful stop (a rolling deploy) hands nothing over twice."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        projector.release.clear()
        tp, _ = one_tickets_story(broker, worklogs=1)
        consumer = an_event_consumer(projector)
        running = Running(broker, consumer)
        consuming = await running.start()
        await projector.entered.wait()
        consumer.stop()
        projector.release.set()
        await consuming
        assert running.committed() == {tp: 2} and len(projector.batches) == 1
        assert running.group_member.stopped and running.dead_letters.stopped

    asyncio.run(story())


# --- reading ahead ----------------------------------------------------------------------------------------------


def test_reading_ahead_reads_the_next_batch_while_the_handler_works_and_commits_each_batch_once_handled():
    """The next batch is read meanwhile, but handed over only after this one, and this one's commit covers only
    what it was read with: a crash while the handler works delivers this batch and the next one again."""

    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        projector.release.clear()
        tp, first = one_tickets_story(broker, worklogs=1)
        async with Running(broker, an_event_consumer(projector, read_ahead=True)) as running:
            await projector.entered.wait()
            fetches = len(running.group_member.fetches)
            later = a_worklog_recorded(first[0].ticket_id, 3)
            broker.append(TICKETS_EVENTS, encode(later), key=later.ticket_id.encode(), partition=tp.partition)
            await until(lambda: running.group_member.positions[tp] == 3)  # read while the handler holds batch one
            assert len(running.group_member.fetches) > fetches
            assert running.committed() == {} and len(projector.batches) == 1
            projector.release.set()
            await until(lambda: running.committed() == {tp: 3})
        assert [[event.aggregate_version for event in batch] for batch in projector.batches] == [[1, 2], [3]]

    asyncio.run(story())


def test_reading_ahead_commits_nothing_of_a_batch_whose_handler_failed():
    async def story() -> None:
        broker, projector = FakeBroker(), Projector(fail=RuntimeError("ClickHouse went away"))
        one_tickets_story(broker, worklogs=1)
        running = Running(broker, an_event_consumer(projector, read_ahead=True))
        with pytest.raises(RuntimeError, match="ClickHouse went away"):
            await (await running.start())
        assert running.group_member.commits == [] and running.group_member.stopped

    asyncio.run(story())


def test_reading_ahead_stopping_finishes_the_batch_in_hand_and_commits_it():
    async def story() -> None:
        broker, projector = FakeBroker(), Projector()
        projector.release.clear()
        tp, _ = one_tickets_story(broker, worklogs=2)
        consumer = an_event_consumer(projector, read_ahead=True)
        running = Running(broker, consumer)
        consuming = await running.start()
        await projector.entered.wait()
        consumer.stop()
        projector.release.set()
        await consuming
        assert running.committed() == {tp: 3} and len(projector.batches) == 1

    asyncio.run(story())


class HoldingProjector(Projector):
    """Holds every batch until its own release is set (`releases[n]` for the nth batch handed over); keeps which
    batches it is done with, in the order done, and the most it held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.releases: list[asyncio.Event] = []
        self.done: list[int] = []
        self.most_in_hand = 0

    async def handle(self, batch: list[Delivery]) -> Rejections:
        number = len(self.releases)
        self.releases.append(release := asyncio.Event())
        self.batches.append([delivery.event for delivery in batch])
        self.most_in_hand = max(self.most_in_hand, len(self.releases) - len(self.done))
        await release.wait()
        self.done.append(number)
        return []


def test_reading_two_ahead_hands_over_the_next_batch_before_this_one_is_done_and_commits_them_in_order():
    """With read_ahead 2 the handler holds two batches at once; the second, done first, is committed only after
    the first: a crash before delivers both again, never the first alone (which would be lost to the group)."""

    async def story() -> None:
        broker, projector = FakeBroker(), HoldingProjector()
        tp, _ = one_tickets_story(broker, worklogs=3)
        consumer = an_event_consumer(projector, max_batch=2, max_wait_s=0, read_ahead=2)  # a batch: what a fetch has
        async with Running(broker, consumer) as running:
            await until(lambda: len(projector.releases) == 2)  # both handed over, neither done
            projector.releases[1].set()
            await until(lambda: projector.done == [1])
            # a third batch read, of another partition: the loop goes round with the second batch done
            other = a_ticket_created()
            elsewhere = TopicPartition(TICKETS_EVENTS, (tp.partition + 1) % len(every_partition(TICKETS_EVENTS)))
            broker.append(TICKETS_EVENTS, encode(other), key=other.ticket_id.encode(), partition=elsewhere.partition)
            await until(lambda: running.group_member.positions[elsewhere] == 1)
            if committed_early := running.group_member.commits:
                for release in projector.releases:  # so that the consumer can stop, and the test fail
                    release.set()
            assert committed_early == []
            projector.releases[0].set()
            await until(lambda: len(projector.releases) == 3)
            projector.releases[2].set()
            await until(lambda: running.committed() == {tp: 4, elsewhere: 1})
        assert running.group_member.commits[:2] == [{tp: 2}, {tp: 4}]
        assert [[event.aggregate_version for event in batch] for batch in projector.batches] == [[1, 2], [3, 4], [1]]

    asyncio.run(story())


def test_reading_two_ahead_hands_over_no_third_batch_while_two_are_in_hand():
    async def story() -> None:
        broker, projector = FakeBroker(), HoldingProjector()
        tp, _ = one_tickets_story(broker, worklogs=5)
        async with Running(broker, an_event_consumer(projector, max_batch=2, read_ahead=2)) as running:
            await until(lambda: running.group_member.positions[tp] == 6)  # the third batch is read meanwhile
            projector.releases[0].set()
            await until(lambda: len(projector.releases) == 3)
            for release in projector.releases[1:]:
                release.set()
            await until(lambda: running.committed() == {tp: 6})
        assert projector.most_in_hand == 2

    asyncio.run(story())
