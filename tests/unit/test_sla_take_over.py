"""Taking partitions over happens beside the rebalance, not inside it: the group's rebalance waits for every
member's callbacks no longer than its rebalance timeout, and a restore that outlasted it got the member expelled,
its partitions handed to the other replica, which restored them in turn: two replicas passed the partitions back
and forth without end. The partition's clocks come from the local store once the standby has read its changelog to
the end. Kafka here is a fake (pure logic); tests/integration has the same on the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from sla.agreements import Agreements
from sla.clock_store import CHANGELOG, ClockStore
from sla.snapshots import encode
from sla.timekeeper import SWEEP_PART, Timekeeper
from sla.worker import ClockWorker, _Rebalance
from tests.builders import T0, a_ticket_created
from tests.fakes_kafka import FakeBroker, FakeConsumer, FakeProducer
from tests.polling import until
from tests.unit.test_sla_asleep import NIGHTS
from tests.unit.test_sla_clocks import HOUR, MINUTE, Story, agreements_with, config, policy
from ticketstream_shared.contract import encode as encode_event
from ticketstream_shared.contract.sla import CalendarChanged
from ticketstream_shared.contract.topics import SLA_CLOCKS, SLA_EVENTS, TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.changelog import APPLIED_HEADER, ChangelogWriter, Standby
from ticketstream_shared.runtime.kafka import partition_of
from ticketstream_shared.runtime.store import Changes, LocalStore

HELD = TopicPartition(TICKETS_EVENTS, 3)
#: Where the changelog's record says the partition's clocks reach in tickets.events.
CHECKPOINT = 7


class Log:
    """Partitions of records by offset, read by a reader in no group (what `records_to_end` uses)."""

    def __init__(self, records: Mapping[TopicPartition, list[tuple[bytes, bytes]]], opened: asyncio.Event) -> None:
        self.records = {
            tp: [SimpleNamespace(partition=tp.partition, offset=i, key=k, value=v) for i, (k, v) in enumerate(rs)]
            for tp, rs in records.items()
        }
        self.opened = opened

    def reader(self) -> Reader:
        return Reader(self)


class Reader:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        await self.log.opened.wait()  # a slow broker, or a large changelog: as long as the test wants

    async def stop(self) -> None:
        pass

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(partitions, 0)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.log.records.get(tp, [])) for tp in partitions}

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def getmany(self, *partitions: TopicPartition, **_: Any) -> dict[TopicPartition, list[Any]]:
        fetched = {tp: self.log.records.get(tp, [])[self.positions[tp] :] for tp in partitions}
        for tp, records in fetched.items():
            self.positions[tp] += len(records)
        return fetched

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


class GroupMember:
    """The worker's group consumer, as far as a take-over touches it: the partitions of every topic end at
    `ends` (10 unless set), and it fetches nothing (a partition's position is where it was sought)."""

    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()
        self.sought: dict[TopicPartition, int] = {}
        self.ends: dict[TopicPartition, int] = {}

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused.difference_update(partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends.get(tp, 10) for tp in partitions}

    async def committed(self, _: TopicPartition) -> int | None:
        return None

    async def position(self, tp: TopicPartition) -> int:
        return self.sought.get(tp, 0)

    async def getmany(self, **_: Any) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.002)
        return {}


class Harness:
    """A worker whose partition HELD has one ticket in sla.clocks, and `published` in sla.events; the standby that
    fills its store starts once `opened` is set (a slow broker, or a large changelog: as long as the test wants)."""

    def __init__(
        self, opened: asyncio.Event, published: Sequence[bytes] = (), agreements: Agreements | None = None
    ) -> None:
        story = Story()
        self.ticket_id = story.ticket_id
        broker = FakeBroker()
        headers = [(APPLIED_HEADER, str(CHECKPOINT).encode()), (f"{APPLIED_HEADER} {SLA_EVENTS}", b"0")]
        self.record = encode(story.state)
        broker.append(SLA_CLOCKS, self.record, key=story.ticket_id.encode(), partition=3, headers=headers)
        self.store = LocalStore(None)
        agreements = agreements or Agreements.with_defaults()
        clocks = ClockStore(self.store, agreements)
        self.standby = Standby(CHANGELOG, self.store, clocks.restore, FakeConsumer(broker))
        self.opened = opened
        self.member = GroupMember()
        self.broker = broker
        self.worker = ClockWorker(
            Timekeeper(agreements, wake=clocks.load),
            self.member,  # type: ignore[arg-type]
            producer=FakeProducer(broker),  # type: ignore[arg-type]
            history_reader=Log({TopicPartition(SLA_EVENTS, 3): [(b"", raw) for raw in published]}, opened).reader,  # type: ignore[arg-type]
            now=lambda: datetime.now(T0.tzinfo),
            clocks=clocks,
            changelog=ChangelogWriter(CHANGELOG, self.store, clocks.records_of, lambda: None, None),  # type: ignore[arg-type]
            standby=self.standby,
        )

    async def __aenter__(self) -> Harness:
        async def follow() -> None:
            await self.opened.wait()
            await self.standby.run()

        self._following = asyncio.create_task(follow())
        return self

    async def __aexit__(self, *_: object) -> None:
        self._following.cancel()
        await asyncio.gather(self._following, return_exceptions=True)
        self.store.close()


def test_the_rebalance_goes_on_while_the_restore_waits_and_the_partition_resumes_at_its_checkpoint() -> None:
    async def story() -> None:
        opened = asyncio.Event()
        async with Harness(opened) as harness:
            worker, member = harness.worker, harness.member
            worker.take_over({HELD})  # what the rebalance callback does: it returns at once, the restore not begun
            assert member.paused == {HELD} and not member.sought and not worker.ready
            opened.set()
            await until(lambda: not member.paused)
            assert member.sought == {HELD: CHECKPOINT}
            assert worker.timekeeper.holds(harness.ticket_id) and worker.timekeeper.asleep == 1  # not decoded yet

    asyncio.run(story())


def test_a_partition_taken_away_during_its_take_over_is_left_alone() -> None:
    async def story() -> None:
        opened = asyncio.Event()
        async with Harness(opened) as harness:
            worker, member = harness.worker, harness.member
            worker.take_over({HELD})
            worker.give_up({HELD})
            opened.set()
            await until(lambda: not worker._taking_over)
            assert member.sought == {} and not worker.timekeeper.holds(harness.ticket_id)

    asyncio.run(story())


def test_a_partition_taken_away_and_given_back_is_restored_once_by_its_last_take_over() -> None:
    async def story() -> None:
        opened = asyncio.Event()
        async with Harness(opened) as harness:
            worker, member = harness.worker, harness.member
            worker.take_over({HELD})
            worker.give_up({HELD})
            worker.take_over({HELD})
            assert member.paused == {HELD}
            opened.set()
            await until(lambda: not worker._taking_over)
            assert member.sought == {HELD: CHECKPOINT} and not member.paused
            assert len(worker.timekeeper) == 1 and worker.timekeeper.holds(harness.ticket_id)

    asyncio.run(story())


def test_what_is_not_an_sla_event_in_sla_events_does_not_stop_a_take_over() -> None:
    """Poison, or another system's record, in sla.events: not ours, nothing to keep from publishing twice."""
    ours = Story().out[0]

    async def story() -> None:
        poison = [b"{not json", b"[]", b'{"event_id": 7}', b"\xff", b""]
        opened = asyncio.Event()
        opened.set()
        async with Harness(opened, published=[*poison, encode_event(ours)]) as harness:
            harness.worker.take_over({HELD})
            await until(lambda: not harness.member.paused)
            assert harness.worker._published_before == {ours.event_id}

    asyncio.run(story())


def naming_an_unknown_calendar(snapshot: bytes) -> bytes:
    data = json.loads(snapshot)
    for clock in data["clocks"]:
        clock["calendar_version"] = 99
    return json.dumps(data).encode()


async def _held_and_caught_up(harness: Harness) -> asyncio.Task[None]:
    """The worker's loop running, HELD taken over from the checkpoint (nothing to replay) and caught up."""
    harness.member.ends[HELD] = CHECKPOINT
    harness.opened.set()
    harness.worker.take_over({HELD})
    running = asyncio.create_task(harness.worker._work())
    await until(lambda: harness.worker.ready)
    return running


async def _stopped(harness: Harness, running: asyncio.Task[None]) -> None:
    harness.worker.stop()
    await asyncio.wait_for(running, 5)


def test_a_partition_given_back_by_the_same_rebalance_goes_on_with_the_clocks_it_had() -> None:
    """An eager rebalance takes every partition away and gives most back: a worker that kept them loads nothing
    again, and resumes reading where it was."""

    async def story() -> None:
        async with Harness(asyncio.Event()) as harness:
            worker, member = harness.worker, harness.member
            running = await _held_and_caught_up(harness)
            clocks = worker.timekeeper.ticket(harness.ticket_id)
            assert clocks is not None
            worker.give_up({HELD})
            await worker.suspend({HELD})
            assert worker.timekeeper.ticket(harness.ticket_id) is clocks  # kept, its alarms held back
            member.sought.clear()
            worker.take_over({HELD})
            await until(lambda: worker.ready)
            assert worker.timekeeper.ticket(harness.ticket_id) is clocks  # not loaded again from the store
            assert member.sought == {HELD: CHECKPOINT} and not member.paused
            await _stopped(harness, running)

    asyncio.run(story())


def test_a_partition_another_worker_wrote_for_meanwhile_is_restored_from_the_changelog() -> None:
    async def story() -> None:
        async with Harness(asyncio.Event()) as harness:
            worker, member = harness.worker, harness.member
            running = await _held_and_caught_up(harness)
            clocks = worker.timekeeper.ticket(harness.ticket_id)
            worker.give_up({HELD})
            await worker.suspend({HELD})
            member.ends[TopicPartition(SLA_EVENTS, HELD.partition)] = 11  # an alarm published by another worker
            worker.take_over({HELD})
            await until(lambda: worker.ready)
            assert clocks is not None and worker.timekeeper.ticket(harness.ticket_id) is None
            assert worker.timekeeper.holds(harness.ticket_id)  # asleep again: read from the store's index
            await _stopped(harness, running)

    asyncio.run(story())


def test_a_partition_not_given_back_leaves_memory_and_its_changelog_is_followed() -> None:
    async def story() -> None:
        async with Harness(asyncio.Event()) as harness:
            worker = harness.worker
            running = await _held_and_caught_up(harness)
            worker.give_up({HELD})
            await worker.suspend({HELD})
            worker.take_over({TopicPartition(TICKETS_EVENTS, 4)})
            assert not worker.timekeeper.holds(harness.ticket_id)
            assert HELD.partition in harness.standby._followed
            await _stopped(harness, running)

    asyncio.run(story())


def test_a_ticket_taken_over_after_a_configuration_change_is_loaded_at_once() -> None:
    """Asleep, it would be re-timed only by its next alarm: the catch-up re-times it instead."""
    agreements = agreements_with(policy("later", 30, 120, at=T0 + HOUR))

    async def story() -> None:
        opened = asyncio.Event()
        opened.set()
        async with Harness(opened, agreements=agreements) as harness:
            harness.worker.take_over({HELD})
            await until(lambda: not harness.member.paused)
            assert harness.worker.timekeeper.ticket(harness.ticket_id) is not None
            assert harness.worker.timekeeper.asleep == 0

    asyncio.run(story())


def test_a_partition_whose_clocks_cannot_be_read_when_woken_is_replayed_from_its_beginning() -> None:
    """The take-over reads the index only; the clocks are decoded when the ticket's alarm falls due, and name a
    calendar version sla.config does not have: the partition is started over, its clocks rebuilt from the log."""

    async def story() -> None:
        async with Harness(asyncio.Event()) as harness:
            worker, member = harness.worker, harness.member
            unreadable = naming_an_unknown_calendar(harness.record)
            changes = Changes()
            changes.put(b"c|" + harness.ticket_id.encode(), unreadable)  # as the changelog would have restored it
            harness.member.ends[HELD] = CHECKPOINT
            harness.opened.set()
            await harness.standby.hand_over([HELD.partition])
            harness.store.write(changes)
            worker.take_over({HELD})
            assert worker.timekeeper.asleep == 0
            running = asyncio.create_task(worker._work())
            await until(lambda: member.sought.get(HELD) == 0)
            assert HELD.partition in worker._whole_replay and not worker.timekeeper.holds(harness.ticket_id)
            assert worker.timekeeper.unreadable == set() and HELD in worker._held
            await _stopped(harness, running)

    asyncio.run(story())


def test_a_settled_ticket_whose_clocks_cannot_be_read_when_reopened_starts_its_partition_over() -> None:
    """Before, its clocks started afresh from the reopening event, which starts none: they were lost."""
    settled = Story()
    settled.status(T0 + HOUR, "new", "resolved")
    unreadable = naming_an_unknown_calendar(encode(settled.state))
    settled.status(T0 + 2 * HOUR, "resolved", "open")
    reopened = SimpleNamespace(value=encode_event(settled.told[-1]), offset=CHECKPOINT)

    async def story() -> None:
        async with Harness(asyncio.Event()) as harness:
            worker, member = harness.worker, harness.member
            running = await _held_and_caught_up(harness)
            changes = Changes()
            changes.put(b"c|" + settled.ticket_id.encode(), unreadable)
            harness.store.write(changes)
            assert await worker._handle(reopened, HELD) == []
            assert worker.timekeeper.unreadable == {HELD.partition}
            await until(lambda: member.sought.get(HELD) == 0)
            assert HELD.partition in worker._whole_replay
            await _stopped(harness, running)

    asyncio.run(story())


def test_a_configuration_change_re_times_every_clock_in_parts_and_a_rebalance_waits_for_its_events() -> None:
    """A change read live re-times every clock held (seconds at 100k tickets): the event loop runs between parts
    of the sweep (heartbeats, HTTP), and a revocation meanwhile waits until what the sweep decided is published."""
    now = datetime.now(T0.tzinfo)
    names = (f"TICKET-{n}" for n in range(100_000))
    tickets = [name for name in names if partition_of(name, TICKET_PARTITIONS) == HELD.partition]
    tickets = tickets[: 2 * SWEEP_PART + 1]

    async def story() -> None:
        async with Harness(asyncio.Event()) as harness:
            worker = harness.worker
            running = await _held_and_caught_up(harness)
            for ticket_id in tickets:
                worker.timekeeper.handle(a_ticket_created(ticket_id, occurred_at=now - MINUTE), HELD.partition)
            before = {ticket_id: worker.timekeeper.ticket(ticket_id) for ticket_id in tickets}
            swept_seen: set[int] = set()
            revoking: list[asyncio.Task[None]] = []
            worker.timekeeper.record_change(config(CalendarChanged, at=now, calendar_id="default", data=NIGHTS))
            while len(tickets) not in swept_seen:
                swept = sum(worker.timekeeper.ticket(ticket_id) is not was for ticket_id, was in before.items())
                swept_seen.add(swept)
                if 0 < swept < len(tickets) and not revoking:
                    revoking.append(asyncio.create_task(_Rebalance(worker).on_partitions_revoked({HELD})))
                await asyncio.sleep(0)
            assert any(0 < swept < len(tickets) for swept in swept_seen), swept_seen  # the loop ran mid-sweep
            await asyncio.wait_for(revoking[0], 5)
            retargeted = [json.loads(record.value) for record in harness.broker.records(SLA_EVENTS)]
            retargeted = [e for e in retargeted if e["event_type"] == "sla.retargeted" and e["ticket_id"] in before]
            assert len(retargeted) == 2 * len(tickets)  # both clocks of every ticket, published before giving up
            assert HELD in worker._suspended  # kept, with clocks that reflect what was published
            await _stopped(harness, running)

    asyncio.run(story())
