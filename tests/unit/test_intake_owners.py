"""Which intake replica decides for which ticket, and how a command reaches it: ownership follows the group's
partitions of intake.commands, handed over without a gap or an overlap, and a replica carries a command for a ticket
it does not own to the owner and answers from its own copy of the log. Kafka here is a fake (pure logic); how
refusals travel is in test_intake_refusals.py, the same on the real broker in tests/integration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable

import pytest
from aiokafka import TopicPartition

from intake.app import EndLookups
from intake.domain import NotReady, TicketNotFound
from intake.log import KafkaTicketLog, LogPositions, follow
from intake.owners import FORWARD_TIMEOUT_S, CommandBus, Ownership, tickets_log_end
from tests.fakes_kafka import FakeBroker, FakeConsumer, FakeProducer, every_partition, still_waiting
from tests.polling import until
from tests.unit.test_intake_domain import context, create, worklog
from tests.unit.test_intake_ledger import SlowLog, a_ledger
from ticketstream_shared.contract import dead_letter_topic
from ticketstream_shared.contract.topics import INTAKE_COMMANDS, INTAKE_REPLIES, TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import header, partition_of

OWNERS = "intake-owners"


def commands(*partitions: int) -> list[TopicPartition]:
    return [TopicPartition(INTAKE_COMMANDS, partition) for partition in partitions]


def an_ownership(log_ends: dict[int, int] | None = None) -> tuple[Ownership, LogPositions]:
    """Ownership over a ticket log whose partitions end where `log_ends` says (else at 0)."""
    ends = log_ends or {}

    async def log_end(partitions: list[int]) -> dict[int, int]:
        return {partition: ends.get(partition, 0) for partition in partitions}

    positions = LogPositions()
    return Ownership(positions, log_end), positions


async def may_decide(ownership: Ownership, partition: int) -> bool:
    async with ownership.deciding(partition) as owner:
        return owner


class Replica:
    """One intake replica wired as app.py wires it, on the fake broker: its ledger follows tickets.events, its bus
    listens on intake.replies and, as a member of intake-owners, serves the intake.commands it is given."""

    def __init__(self, broker: FakeBroker, answer_within_s: float = FORWARD_TIMEOUT_S) -> None:
        self.broker = broker
        producer = FakeProducer(broker)
        self.positions = LogPositions()
        event_log = KafkaTicketLog(self.positions)
        event_log.producer = producer  # type: ignore[assignment]
        self.ledger = a_ledger(event_log)
        lookups = FakeConsumer(broker)
        self.ownership = Ownership(self.positions, lambda partitions: tickets_log_end(lookups, partitions))  # type: ignore[arg-type]
        self.bus = CommandBus(self.ledger, self.ownership, answer_within_s)
        self.bus.producer, self.bus.partitions = producer, TICKET_PARTITIONS  # type: ignore[assignment]
        self.member = FakeConsumer(broker, OWNERS)
        self.reader = FakeConsumer(broker)  # of tickets.events, into the ledger
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, owns: Iterable[int] = ()) -> Replica:
        """Read the log, listen for replies, join the owners' group and own the partitions `owns` of it."""
        ledger, bus, broker = self.ledger, self.bus, self.broker
        reading = follow(
            self.reader, TICKETS_EVENTS, ledger.tickets.store, ledger.apply, ledger.caught_up, self.positions
        )  # type: ignore[arg-type]
        listening = bus.listen(FakeConsumer(broker, from_end=True))  # type: ignore[arg-type]
        self._tasks += [asyncio.create_task(work) for work in (reading, listening, self._own())]
        await until(lambda: ledger.caught_up.is_set() and bus.listening and self.member.subscribed)
        await self.member.rebalance(assigned=commands(*owns))
        return self

    async def _own(self) -> None:
        self.member.subscribe([INTAKE_COMMANDS], listener=self.ownership)
        await self.bus.serve(self.member)  # type: ignore[arg-type]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def a_bus_alone(owns: Iterable[int] = ()) -> tuple[CommandBus, list[object]]:
    """A bus owning `owns`, whose ledger has read its (empty) log; the partitions of the log not yet known. Returns
    the events appended to the log too."""
    event_log = SlowLog()
    ledger = a_ledger(event_log)
    ledger.caught_up.set()
    ownership, _ = an_ownership()
    await ownership.on_partitions_assigned(commands(*owns))
    return CommandBus(ledger, ownership), event_log.events


# --- ownership --------------------------------------------------------------------------------------------------


def test_a_replica_decides_for_the_partitions_the_group_gave_it_until_it_hands_them_over():
    """A ticket is decided by the replica holding its partition of intake.commands, and by no other."""

    async def story() -> None:
        ownership, _ = an_ownership()
        assert not ownership.owns(2) and not ownership.joined
        await ownership.on_partitions_assigned(commands(2, 5))
        assert ownership.joined and ownership.owns(2) and ownership.owns(5) and not ownership.owns(3)
        assert await asyncio.wait_for(may_decide(ownership, 3), 1) is False, "not held: no, at once"
        await ownership.on_partitions_revoked(commands(2))
        assert not ownership.owns(2) and ownership.owns(5)
        assert await asyncio.wait_for(may_decide(ownership, 2), 1) is False

    asyncio.run(story())


def test_a_new_owner_decides_only_once_it_has_read_the_ticket_log_as_far_as_it_reached_at_assignment():
    """What the previous owner appended must be known before deciding, or versions would repeat."""

    async def story() -> None:
        ownership, positions = an_ownership({2: 3})
        await ownership.on_partitions_assigned(commands(2))
        deciding = asyncio.create_task(may_decide(ownership, 2))
        assert await still_waiting(deciding)
        positions.advance(2, 2)
        assert await still_waiting(deciding)
        positions.advance(2, 3)
        assert await deciding is True

    asyncio.run(story())


def test_handing_a_partition_over_waits_for_the_decisions_in_flight():
    """The next owner reads the log up to where it ends at its assignment: a decision appended later would be
    unknown to it."""

    async def story() -> None:
        ownership, _ = an_ownership({2: 0})
        await ownership.on_partitions_assigned(commands(2))
        inside, leave = asyncio.Event(), asyncio.Event()

        async def deciding_slowly() -> bool:
            async with ownership.deciding(2) as owner:
                inside.set()
                await leave.wait()
                return owner

        decision = asyncio.create_task(deciding_slowly())
        await inside.wait()
        handing_over = asyncio.create_task(ownership.on_partitions_revoked(commands(2)))
        assert await still_waiting(handing_over)
        assert not ownership.owns(2), "no new decision starts meanwhile"
        leave.set()
        await handing_over
        assert await decision is True

    asyncio.run(story())


def test_a_decision_still_reading_the_log_when_its_partition_is_handed_over_does_not_decide():
    """The partition's next owner decides the command (it is delivered again): deciding here too would fork the
    ticket's versions."""

    async def story() -> None:
        ownership, positions = an_ownership({2: 3})
        await ownership.on_partitions_assigned(commands(2))
        decision = asyncio.create_task(may_decide(ownership, 2))
        assert await still_waiting(decision)
        handing_over = asyncio.create_task(ownership.on_partitions_revoked(commands(2)))
        assert await still_waiting(handing_over)
        positions.advance(2, 3)
        assert await decision is False
        await asyncio.wait_for(handing_over, 1)

    asyncio.run(story())


def test_a_lookup_reading_the_log_to_its_end_gives_up_with_not_ready():
    """A read of a ticket another replica just created waits for this replica's copy, but not forever."""

    async def story() -> None:
        ownership, positions = an_ownership({1: 4})
        with pytest.raises(NotReady):
            await ownership.read_to_end(1, timeout_s=0.05)
        positions.advance(1, 4)
        await asyncio.wait_for(ownership.read_to_end(1, timeout_s=5), 1)

    asyncio.run(story())


def test_a_partition_given_before_intake_can_ask_where_the_log_ends_is_taken_once_it_can():
    """The group may hand a starting replica its partitions before the consumer that asks where tickets.events ends
    has connected: the takeover waits for it (it was refused, and the replica owned nothing until the next
    rebalance), and a read to the log's end meanwhile still gives up with NotReady within its time."""

    async def story() -> None:
        broker = FakeBroker()
        for _ in range(3):
            broker.append(TICKETS_EVENTS, b"{}", partition=2)
        lookups, positions = EndLookups(), LogPositions()
        ownership = Ownership(positions, lookups.tickets_log_end)
        taking = asyncio.create_task(ownership.on_partitions_assigned(commands(2)))
        assert await still_waiting(taking) and not ownership.owns(2)
        with pytest.raises(NotReady):
            await ownership.read_to_end(2, timeout_s=0.05)
        serving = asyncio.create_task(lookups.serve(FakeConsumer(broker)))  # type: ignore[arg-type]
        await asyncio.wait_for(taking, 5)
        assert ownership.joined and ownership.owns(2)
        deciding = asyncio.create_task(may_decide(ownership, 2))
        assert await still_waiting(deciding), "not before the log is read as far as it reached"
        positions.advance(2, 3)
        assert await asyncio.wait_for(deciding, 5) is True
        serving.cancel()

    asyncio.run(story())


# --- the command bus ----------------------------------------------------------------------------------------------


def test_a_command_for_a_ticket_another_replica_owns_is_not_decided_here():
    """None tells the bus to carry it to the owner; until the log's partitions are known, nobody can tell whose."""

    async def story() -> None:
        here, elsewhere = partition_of("t-1", TICKET_PARTITIONS), partition_of("t-2", TICKET_PARTITIONS)
        assert here != elsewhere
        bus, appended = await a_bus_alone(owns=[elsewhere])
        with pytest.raises(NotReady):
            await bus.decide_if_owner(create("t-2"), context())
        bus.partitions = TICKET_PARTITIONS
        assert await bus.decide_if_owner(create("t-1"), context()) is None and appended == []
        ticket, replayed = await bus.decide_if_owner(create("t-2"), context())
        assert (ticket.ticket_id, ticket.version, replayed) == ("t-2", 1, False) and len(appended) == 1

    asyncio.run(story())


def test_a_ticket_not_known_here_is_not_called_missing_before_the_logs_partitions_are_known():
    """A replica just started has read the log, but cannot yet tell which partition to read to its end for a ticket
    another replica created a moment ago: it says to retry (503), never that the ticket does not exist (404)."""

    async def story() -> None:
        bus, _ = await a_bus_alone(owns=range(TICKET_PARTITIONS))
        with pytest.raises(NotReady):
            await bus.lookup("t-1")
        bus.partitions = TICKET_PARTITIONS
        assert await bus.lookup("t-1") is None
        await bus.execute(create("t-1"), context())
        assert (await bus.lookup("t-1")).ticket_id == "t-1"

    asyncio.run(story())


def test_a_new_tickets_id_is_drawn_on_a_partition_this_replica_owns():
    """Then its creation is decided here, without a round trip through intake.commands."""

    async def story() -> None:
        bus, _ = await a_bus_alone(owns=[0, 1, 2])
        assert uuid.UUID(bus.fresh_ticket_id())  # before the partitions are known: any id
        bus.partitions = TICKET_PARTITIONS
        drawn = {partition_of(bus.fresh_ticket_id(), TICKET_PARTITIONS) for _ in range(50)}
        assert drawn <= {0, 1, 2}

    asyncio.run(story())


def test_the_owner_of_a_ticket_decides_it_here_without_a_round_trip():
    """The fast path, and with one replica the only one: nothing goes through intake.commands."""

    async def story() -> None:
        broker = FakeBroker()
        owner = await Replica(broker).start(owns=range(TICKET_PARTITIONS))
        try:
            ticket, replayed = await owner.bus.execute(create("t-1"), context())
        finally:
            await owner.stop()
        assert (ticket.ticket_id, ticket.version, replayed) == ("t-1", 1, False)
        assert len(broker.records(TICKETS_EVENTS)) == 1 and broker.records(INTAKE_COMMANDS) == []

    asyncio.run(story())


def test_a_command_for_another_replicas_ticket_is_carried_to_the_owner_and_answered_from_the_log():
    """The owner decides and appends; the replica that was asked answers once its own copy of the log holds the
    version the owner reached (read-your-writes), and a retry comes back as the first outcome."""

    async def story() -> None:
        broker = FakeBroker()
        owner = await Replica(broker).start(owns=range(TICKET_PARTITIONS))
        asked = await Replica(broker).start()
        try:
            ticket, replayed = await asked.bus.execute(create("t-1"), context())
            assert (ticket.version, replayed) == (1, False)
            [call] = broker.records(INTAKE_COMMANDS)
            assert call.key == b"t-1" and header(call, "reply_to") == asked.bus.replica_id
            first_worklog, its_context = worklog("t-1", minutes=45), context()
            await asked.bus.execute(first_worklog, its_context)
            await asked.bus.execute(worklog("t-1", minutes=15), context())
            ticket, replayed = await asked.bus.execute(first_worklog, its_context)
            assert replayed and (ticket.version, ticket.worklog_minutes) == (2, 45)
            assert asked.ledger.get("t-1").version == owner.ledger.get("t-1").version == 3
        finally:
            await asyncio.gather(owner.stop(), asked.stop())
        assert len(broker.records(TICKETS_EVENTS)) == 3, "appended once each, by the owner"
        assert {reply.key for reply in broker.records(INTAKE_REPLIES)} == {asked.bus.replica_id.encode()}

    asyncio.run(story())


def test_the_replica_that_asked_answers_only_once_its_own_copy_of_the_log_has_the_owners_decision():
    """Else a GET to it right after would not find what it just answered (read-your-writes)."""

    async def story() -> None:
        broker = FakeBroker()
        owner = await Replica(broker).start(owns=range(TICKET_PARTITIONS))
        asked = await Replica(broker).start()
        try:
            asked.reader.pause(*every_partition(TICKETS_EVENTS))  # its copy of the log lags behind
            answer = asyncio.create_task(asked.bus.execute(create("t-1"), context()))
            await until(lambda: broker.records(INTAKE_REPLIES))
            assert await still_waiting(answer)
            asked.reader.resume(*every_partition(TICKETS_EVENTS))
            ticket, _ = await answer
            assert ticket.version == 1 and asked.ledger.get("t-1") is not None
        finally:
            await asyncio.gather(owner.stop(), asked.stop())

    asyncio.run(story())


def test_a_replica_whose_copy_of_the_log_stalls_answers_503_and_a_retry_gets_the_first_outcome():
    """The owner made the change, but the replica that asked cannot read it: a bounded wait, then NotReady (503)
    instead of a request that never ends; the same request again, once the log is read, is the first outcome."""

    async def story() -> None:
        broker = FakeBroker()
        owner = await Replica(broker).start(owns=range(TICKET_PARTITIONS))
        asked = await Replica(broker, answer_within_s=0.2).start()
        try:
            asked.reader.pause(*every_partition(TICKETS_EVENTS))
            creation, its_context = create("t-1"), context()
            with pytest.raises(NotReady, match="the change was made"):
                await asked.bus.execute(creation, its_context)
            asked.reader.resume(*every_partition(TICKETS_EVENTS))
            ticket, replayed = await asked.bus.execute(creation, its_context)
            assert (ticket.version, replayed) == (1, True)
        finally:
            await asyncio.gather(owner.stop(), asked.stop())
        assert len(broker.records(TICKETS_EVENTS)) == 1

    asyncio.run(story())


def test_a_refusal_by_the_owner_is_raised_at_the_replica_that_asked():
    """So its caller gets the same answer (here a 404) from any replica."""

    async def story() -> None:
        broker = FakeBroker()
        owner = await Replica(broker).start(owns=range(TICKET_PARTITIONS))
        asked = await Replica(broker).start()
        try:
            with pytest.raises(TicketNotFound, match="no ticket t-404"):
                await asked.bus.execute(worklog("t-404"), context())
        finally:
            await asyncio.gather(owner.stop(), asked.stop())
        assert len(broker.records(INTAKE_COMMANDS)) == 1 and broker.records(TICKETS_EVENTS) == []

    asyncio.run(story())


def test_an_unreadable_call_is_dead_lettered_and_the_owner_goes_on_answering():
    """One bad message on intake.commands must not stop the owner of its partition from serving the others."""

    async def story() -> None:
        broker = FakeBroker()
        broker.append(INTAKE_COMMANDS, b'{"kind": "CreateTicket"}', key=b"t-1")
        broker.append(INTAKE_COMMANDS, b"{not json", key=b"t-1", headers=[("call_id", b"c"), ("reply_to", b"r")])
        [served] = {TopicPartition(record.topic, record.partition) for record in broker.records(INTAKE_COMMANDS)}
        owner = await Replica(broker).start(owns=range(TICKET_PARTITIONS))
        asked = await Replica(broker).start()
        try:
            ticket, _ = await asked.bus.execute(create("t-1"), context())
            await until(lambda: broker.committed[OWNERS].get(served) == 3)
        finally:
            await asyncio.gather(owner.stop(), asked.stop())
        assert ticket.version == 1
        parked = broker.records(dead_letter_topic(INTAKE_COMMANDS))
        [no_headers, not_json] = [dict(record.headers)["dlq.reason"].decode() for record in parked]
        assert no_headers == "headers: a call needs call_id and reply_to" and not_json.startswith("not JSON")

    asyncio.run(story())
