"""The team log on Kafka: every process folds all of assignment.by_team into its desk, and only the owner of a team's
partition decides for the team. Kafka here is a fake (pure logic); tests/integration has the same on the broker."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from assignment.archive import LAYOUT, DeskArchive
from assignment.desk import Desk, recorded
from assignment.records import OutcomeRecorded, OwnRecords, decode_team_record, team_key
from assignment.teamlog import DECIDED_BY, TeamLog
from tests.builders import T0
from tests.fakes_kafka import FakeBroker, FakeConsumer, FakeProducer, still_waiting
from tests.polling import until
from tests.unit.test_assignment_desk import a_profile, a_shift, routed
from ticketstream_shared.contract import Actor, InvalidEvent, dead_letter_topic, decode_assignment_event, encode
from ticketstream_shared.contract.assignment import TeamLogEvent, TechnicianProfiled, TicketAssigned
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM, ASSIGNMENT_EVENTS, TEAM_PARTITIONS
from ticketstream_shared.runtime.kafka import partition_of
from ticketstream_shared.runtime.store import LocalStore

GROUP = "assignment-teams"
NET = TopicPartition(ASSIGNMENT_BY_TEAM, partition_of("net-team", TEAM_PARTITIONS))
DLQ = dead_letter_topic(ASSIGNMENT_BY_TEAM)


class Process:
    """One assignment process: its team log, the follower that reads all of it, the group member that owns some."""

    def __init__(self, broker: FakeBroker, archive: DeskArchive | None = None) -> None:
        self.broker = broker
        self.team_log = TeamLog(Desk(shelf=archive), clock=lambda: T0, archive=archive)
        self.producer = self.team_log.producer = FakeProducer(broker)  # type: ignore[assignment]
        self.follower = FakeConsumer(broker)
        self.member = FakeConsumer(broker, GROUP)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def desk(self) -> Desk:
        return self.team_log.desk

    def follow(self) -> None:
        self._tasks.append(asyncio.create_task(self.team_log.follow(self.follower)))  # type: ignore[arg-type]

    async def join(self, owns: set[TopicPartition] | None = None) -> None:
        self._tasks.append(asyncio.create_task(self.team_log.own(self.member)))  # type: ignore[arg-type]
        await until(lambda: self.member.subscribed)
        if owns:
            await self.member.rebalance(assigned=owns)

    def has_read_all(self) -> bool:
        """Its follower has read net-team's partition to the end."""
        return self.follower.positions.get(NET) == self.broker.end(NET)

    async def __aenter__(self) -> Process:
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def on_the_team_log(broker: FakeBroker, *records: TeamLogEvent) -> None:
    for record in records:
        broker.append(ASSIGNMENT_BY_TEAM, encode(record), key=team_key(record).encode())


def decided_elsewhere(*records: TeamLogEvent) -> list[TeamLogEvent]:
    """The outcome records another process, owning the team, wrote deciding `records`."""
    owner, outcomes = Desk(), []
    for record in records:
        for decision in owner.apply(record, decides=True, instance="old-owner"):
            outcome = recorded(decision, "old-owner", T0)
            outcomes += [outcome] if outcome is not None else []
    return outcomes


def published(broker: FakeBroker) -> list[object]:
    return [decode_assignment_event(record.value) for record in broker.records(ASSIGNMENT_EVENTS)]


def test_a_follower_folds_the_team_log_into_its_desk_and_applies_the_owners_outcomes():
    """Any process answers reads about any team; deciding is left to the owner, whose outcomes it takes as given."""

    async def story() -> None:
        broker = FakeBroker()
        roster, vpn_down = [a_profile("ann"), a_shift("ann", True)], routed("t1")
        on_the_team_log(broker, *roster, vpn_down)
        async with Process(broker) as process:
            process.follow()
            await until(process.team_log.caught_up.is_set)
            assert process.desk.technician("ann").on_shift and process.desk.ticket("t1").assignee is None
            assert published(broker) == [] and len(broker.records(ASSIGNMENT_BY_TEAM)) == 3
            on_the_team_log(broker, *decided_elsewhere(*roster, vpn_down))
            await until(lambda: process.desk.ticket("t1").assignee == "ann")
            assert process.desk.teams["net-team"].load_of("ann").open_tickets == 1
            assert published(broker) == []

    asyncio.run(story())


def test_the_owner_decides_publishes_and_records_its_outcome_once_for_every_process():
    """One decision per ticket, published once; the others (and the owner, reading its own record back) fold it."""

    async def story() -> None:
        broker = FakeBroker()
        async with Process(broker) as owner, Process(broker) as other:
            await owner.join(owns={NET})
            owner.follow()
            other.follow()
            await until(lambda: owner.team_log.decides(NET.partition))
            on_the_team_log(broker, a_profile("ann"), a_shift("ann", True), routed("t1"))
            await until(lambda: other.desk.ticket("t1") is not None and other.desk.ticket("t1").assignee == "ann")
            [assigned] = published(broker)
            assert isinstance(assigned, TicketAssigned) and assigned.ticket_id == "t1"
            assert assigned.data.technician_id == "ann"
            outcome = broker.records(ASSIGNMENT_BY_TEAM)[-1]
            assert isinstance(decode_team_record(outcome.value), OutcomeRecorded)
            assert dict(outcome.headers)[DECIDED_BY] == owner.team_log.instance.encode()
            await until(owner.has_read_all)  # its own outcome too, skipped rather than counted again
            for process in (owner, other):
                assert process.desk.teams["net-team"].load_of("ann").open_tickets == 1

    asyncio.run(story())


def test_taking_a_partition_over_reads_it_to_its_end_before_deciding_what_still_waits():
    """The previous owner assigned t1 and stopped before deciding t2. Deciding while reading would assign t1 a
    second time (its outcome comes after it in the log); reading to the end first decides t2 only."""

    async def story() -> None:
        broker = FakeBroker()
        roster = [a_profile("ann", capacity=1), a_profile("bob", capacity=1), a_shift("ann", True)]
        roster.append(a_shift("bob", True))
        printer, vpn = routed("t1"), routed("t2")
        on_the_team_log(broker, *roster, printer, *decided_elsewhere(*roster, printer), vpn)
        async with Process(broker) as taking_over:
            await taking_over.join(owns={NET})
            assert taking_over.team_log.partitions.given == {NET.partition} and not taking_over.team_log.decides(
                NET.partition
            )
            assert NET in taking_over.member.paused, "the group member only holds the partition, it reads nothing"
            taking_over.follow()
            await until(lambda: taking_over.team_log.caught_up.is_set() and taking_over.team_log.decides(NET.partition))
            [assigned] = published(broker)
            assert (assigned.ticket_id, assigned.data.technician_id) == ("t2", "bob")
            assert assigned.correlation_id == "takeover"
            assert taking_over.desk.ticket("t1").assignee == "ann"

    asyncio.run(story())


def test_an_unreadable_record_is_parked_by_the_owner_of_its_partition_and_the_mark_committed():
    """A follower skips it (parking is one process's job); on taking the partition over it parks what it skipped,
    and what comes while it owns, and commits how far the partition is parked."""

    async def story() -> None:
        broker = FakeBroker()
        on_the_team_log(broker, a_profile("ann"))
        broker.append(ASSIGNMENT_BY_TEAM, b"{not json", key=b"net-team")
        async with Process(broker) as process:
            await process.join()
            process.follow()
            await until(process.team_log.caught_up.is_set)
            assert broker.records(DLQ) == [] and process.desk.technician("ann") is not None
            await process.member.rebalance(assigned={NET})
            await until(lambda: broker.committed[GROUP].get(NET) == 2)
            [parked] = broker.records(DLQ)
            reasons = {key: value.decode() for key, value in parked.headers}
            assert parked.value == b"{not json" and reasons["dlq.reason"].startswith("not JSON")
            assert reasons["dlq.offset"] == "1" and reasons["dlq.consumer"] == "assignment"
            broker.append(ASSIGNMENT_BY_TEAM, b"[]", key=b"net-team")
            await until(lambda: broker.committed[GROUP].get(NET) == 3)
            assert [record.value for record in broker.records(DLQ)] == [b"{not json", b"[]"]

    asyncio.run(story())


def test_a_process_owning_a_partition_again_after_a_restart_parks_nothing_twice():
    """The mark committed in the ownership group tells a restarted owner, reading the log again, what is parked."""

    async def story() -> None:
        broker = FakeBroker()
        broker.append(ASSIGNMENT_BY_TEAM, b"\xff", key=b"net-team")
        async with Process(broker) as first:
            await first.join(owns={NET})
            first.follow()
            await until(lambda: broker.committed[GROUP].get(NET) == 1)
        async with Process(broker) as restarted:
            await restarted.join(owns={NET})
            restarted.follow()
            await until(lambda: restarted.team_log.caught_up.is_set() and restarted.team_log.decides(NET.partition))
            assert len(broker.records(DLQ)) == 1

    asyncio.run(story())


def test_a_process_resumed_from_its_checkpoint_parks_what_it_read_unparked_before_it(tmp_path):
    """An unreadable record of a partition nobody owned is carried by the checkpoint: the restarted process, which
    does not read it again, parks it on taking the partition over."""

    async def story() -> None:
        broker = FakeBroker()
        on_the_team_log(broker, a_profile("ann"))
        broker.append(ASSIGNMENT_BY_TEAM, b"{not json", key=b"net-team")
        store = LocalStore(tmp_path, layout=LAYOUT)
        async with Process(broker, DeskArchive(store)) as first:
            first.follow()
            await until(first.team_log.caught_up.is_set)
            await first.team_log.checkpoint()
        async with Process(broker, DeskArchive(store)) as restarted:
            restarted.follow()
            await until(restarted.team_log.caught_up.is_set)
            assert restarted.team_log.resumed_from == {**dict.fromkeys(range(TEAM_PARTITIONS), 0), NET.partition: 2}
            assert restarted.desk.technician("ann") is not None and broker.records(DLQ) == []
            await restarted.join(owns={NET})
            await until(lambda: len(broker.records(DLQ)) == 1)
            assert broker.records(DLQ)[0].value == b"{not json"
        store.close()

    asyncio.run(story())


def test_a_desk_whose_decisions_kafka_refused_is_not_checkpointed(tmp_path):
    """Following stops when Kafka refuses what the owner decided; a checkpoint then (the service stopping) would
    hold decisions nobody published, and a restart from it would never publish them."""

    async def story() -> None:
        broker = FakeBroker()
        store = LocalStore(tmp_path, layout=LAYOUT)
        archive = DeskArchive(store)
        async with Process(broker, archive) as owner:
            await owner.join(owns={NET})
            owner.follow()
            await until(lambda: owner.team_log.caught_up.is_set() and owner.team_log.decides(NET.partition))
            owner.producer.acknowledging = False
            on_the_team_log(broker, a_profile("ann"), a_shift("ann", True), routed("t1"))
            await until(lambda: owner.producer.held)  # the decision for t1, sent
            for future, _ in owner.producer.held:
                future.set_exception(KafkaConnectionError())
            await until(lambda: owner._tasks[-1].done())
            assert isinstance(owner._tasks[-1].exception(), KafkaConnectionError)
            assert owner.desk.ticket("t1").assignee == "ann"  # decided, and not published
            await owner.team_log.checkpoint()
            assert archive.last_checkpoint() is None
        store.close()

    asyncio.run(story())


def test_append_returns_only_once_this_process_has_folded_its_record():
    """So a GET right after a PUT sees the change (read-your-writes)."""

    async def story() -> None:
        broker = FakeBroker()
        on_the_team_log(broker, a_profile("ann"))
        async with Process(broker) as process:
            appending = asyncio.create_task(process.team_log.append([a_shift("ann", True)], visible_within_s=5))
            await until(lambda: len(broker.records(ASSIGNMENT_BY_TEAM)) == 2)  # Kafka has it
            assert await still_waiting(appending), "it waits for its record to be folded"
            process.follow()
            assert await appending is True
            assert process.desk.technician("ann").on_shift

    asyncio.run(story())


def test_append_says_so_when_kafka_has_the_record_but_this_process_has_not_read_it_in_time():
    """The HTTP edge then answers 202 instead of a state that does not show the change yet."""

    async def story() -> None:
        broker = FakeBroker()
        async with Process(broker) as process:
            assert await process.team_log.append([a_profile("ann")], visible_within_s=0.05) is False
            assert len(broker.records(ASSIGNMENT_BY_TEAM)) == 1

    asyncio.run(story())


def test_a_partition_given_up_is_flushed_first_and_no_longer_decided_for():
    """Its decisions in flight reach Kafka before the next owner reads the partition to its end; after that, the next
    owner alone decides."""

    async def story() -> None:
        broker = FakeBroker()
        async with Process(broker) as process:
            await process.join(owns={NET})
            process.follow()
            await until(lambda: process.team_log.decides(NET.partition))
            on_the_team_log(broker, a_profile("ann"), a_shift("ann", True))
            await until(process.has_read_all)
            await process.member.rebalance(revoked={NET})
            assert process.team_log.partitions.given == set() and process.producer.flushes == 1
            on_the_team_log(broker, routed("t1"))
            await until(lambda: process.desk.ticket("t1") is not None)
            assert published(broker) == [] and process.desk.ticket("t1").assignee is None

    asyncio.run(story())


def test_a_roster_change_from_before_actors_is_read_with_no_actor():
    """The team log is kept: a change written before actors were recorded is upcast, one written since keeps its."""
    now = a_profile("ann").model_copy(update={"actor": Actor(key_name="ops", role="manager", subject="maria")})
    assert decode_team_record(encode(now)) == now  # type: ignore[arg-type]
    old = json.loads(encode(now))  # type: ignore[arg-type]
    del old["actor"]
    old["schema_version"] = 1
    read = decode_team_record(json.dumps(old).encode())
    assert isinstance(read, TechnicianProfiled) and read.actor is None and read.data == now.data


def test_a_process_reads_its_own_records_back_as_it_wrote_them_and_decodes_the_rest():
    own = OwnRecords(limit=2)
    record = routed("t1")
    raw = own.encode(record)
    assert raw == encode(record)
    assert own.decode(raw) is record, "the record it wrote, not decoded again"
    again = own.decode(raw)  # read a second time: forgotten once read, so decoded
    assert again == record and again is not record
    first, second, third = routed("t2"), routed("t3"), routed("t4")
    written = [own.encode(each) for each in (first, second, third)]
    assert len(own) == 2, "bounded: the oldest one never read back is forgotten"
    assert own.decode(written[0]) == first and own.decode(written[2]) is third
    with pytest.raises(InvalidEvent):
        own.decode(b"not json")
