"""assignment.by_team on Kafka: appending to the team log, following all of it into the desk, owning a share of it.

Every process reads every partition of the team log (no group) into its `Desk`, so any process answers reads and
knows where each ticket and technician is. Which process *decides* for a team is settled by a second consumer,
in the group `<CONSUMER_GROUP>-teams`, that fetches nothing: it only holds partitions. A partition's owner settles
the teams of that partition and publishes the decisions; everyone else applies the owner's recorded outcomes.

Taking a partition over, the new owner first reads it to the end it had when the partition was assigned (the
previous owner flushed its decisions before giving it up), then settles whatever still waits. Giving one up, the
owner finishes the batch in hand and flushes before the group moves on.

An unreadable record (not JSON, wrong shape, unknown schema_version, oversized) is skipped by every follower, and
the partition's owner parks it in assignment.by_team.dlq with the reason. The owner commits, in the ownership
group, the offset up to which the partition's unreadable records are parked, so a new owner (or this one after a
restart, reading the log again) parks only those nobody parked yet, including those it skipped while it did not
own the partition.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from ticketstream_shared.contract import Envelope, InvalidEvent, UnknownEventType, encode
from ticketstream_shared.contract.assignment import TeamLogEvent
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM, ASSIGNMENT_EVENTS
from ticketstream_shared.runtime.kafka import correlation_headers, header, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.outbox import Headers, Outbox
from ticketstream_shared.runtime.ownership import Parking, PartitionOwnership

from .desk import DECISION_IDS, Decision, Desk, Forwarded, published, recorded
from .records import OutcomeRecorded, OwnRecords, team_key

log = logging.getLogger(__name__)

DECISIONS = Counter("ticketstream_assignment_decisions_total", "Decisions published", ["kind"])
#: Header of an outcome record naming the process that decided it, which skips it without decoding.
DECIDED_BY = "assignment.decided_by"
#: Records folded between two sends of what they decided: a long catch-up sends as it goes.
SENT_TOGETHER = 500
RECORDS_SKIPPED = Counter("ticketstream_assignment_team_records_unreadable_total", "Unreadable team-log records")


class TeamLog:
    def __init__(self, desk: Desk, clock: Callable[[], datetime]) -> None:
        self.desk = desk
        self.instance = str(uuid.uuid4())
        self._clock = clock
        self.producer: AIOKafkaProducer | None = None
        #: Set once the team log has been read to the end it had at start-up.
        self.caught_up = asyncio.Event()
        self.owned: set[int] = set()
        #: Partitions just assigned to us: the offset to read up to before deciding for them.
        self._takeovers: dict[int, int] = {}
        self._positions: dict[int, int] = {}
        self._teams_in: dict[int, set[str]] = defaultdict(set)
        self._waiters: dict[uuid.UUID, asyncio.Future[None]] = {}
        #: Held while a batch is folded and its decisions sent, so giving up a partition waits for it.
        self._batch = asyncio.Lock()
        self._owner: AIOKafkaConsumer | None = None
        self.parking = Parking(ASSIGNMENT_BY_TEAM, "assignment", lambda: self.producer)
        self._own = OwnRecords()

    def decides(self, partition: int) -> bool:
        return partition in self.owned and partition not in self._takeovers

    # writing

    def outbox(self) -> Outbox:
        """Where a turn's records wait to be sent together (`Outbox.send`)."""
        assert self.producer is not None, "sent before the broker answered"
        return Outbox(self.producer)

    @staticmethod
    def put(outbox: Outbox, topic: str, event: Envelope | TeamLogEvent, key: str, headers: Headers = ()) -> None:
        outbox.put(topic, encode(event), key.encode(), [*correlation_headers(), *headers])

    def put_record(self, outbox: Outbox, record: TeamLogEvent) -> None:
        """A record for the team log, under its team's key; kept until it is read back (`OwnRecords`)."""
        outbox.put(ASSIGNMENT_BY_TEAM, self._own.encode(record), team_key(record).encode(), correlation_headers())

    async def append(self, records: list[TeamLogEvent], visible_within_s: float) -> bool:
        """Append records to the team log and wait until this process has folded the last one (so a read sees
        it); False if Kafka has them but that took longer than `visible_within_s`."""
        event_id = records[-1].event_id
        waiter = self._waiters[event_id] = asyncio.get_running_loop().create_future()
        try:
            outbox = self.outbox()
            for record in records:
                self.put_record(outbox, record)
            await asyncio.gather(*await outbox.send())
            await asyncio.wait_for(waiter, visible_within_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(event_id, None)

    # following

    async def follow(self, consumer: AIOKafkaConsumer) -> None:
        """Read every partition from the beginning into the desk, for as long as the service runs."""
        await wait_for_topics(consumer, [ASSIGNMENT_BY_TEAM])
        consumer.subscribe([ASSIGNMENT_BY_TEAM])  # without a group: every partition, from the beginning
        end_at_start: dict[int, int] | None = None
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=5_000)
            async with self._batch:
                outbox, pending = self.outbox(), []
                for records in fetched.values():
                    for record in records:
                        await self._fold(record, outbox)
                        if len(outbox) >= SENT_TOGETHER:
                            pending += await outbox.send()
                for partition in [p for p, end in self._takeovers.items() if self._positions.get(p, 0) >= end]:
                    del self._takeovers[partition]
                    cause = str(DECISION_IDS(f"takeover:{partition}:{self._positions.get(partition, 0)}"))
                    for team in sorted(self._teams_in[partition]):
                        self._publish(self.desk.settle(team, cause), outbox)
                    log.info("took a team partition over", extra={"partition": partition})
                await asyncio.gather(*pending, *await outbox.send())
            if self._owner is not None:
                await self.parking.commit(self._owner)  # outside the batch lock: a commit may wait for a rebalance
            if end_at_start is None and consumer.assignment():
                assigned = list(consumer.assignment())
                end_at_start = {tp.partition: end for tp, end in (await consumer.end_offsets(assigned)).items()}
                for tp in assigned:
                    self._positions.setdefault(tp.partition, await consumer.position(tp))
            if self._read_to(end_at_start) and not self.caught_up.is_set():
                log.info("team log read to its end", extra={"teams": len(self.desk.teams)})
                tune_garbage_collection()  # the desk just read: out of the collector's walks from now on
                self.caught_up.set()

    def _read_to(self, ends: dict[int, int] | None) -> bool:
        return ends is not None and all(self._positions[p] >= end for p, end in ends.items())

    async def _fold(self, message: ConsumerRecord, outbox: Outbox) -> None:
        partition = message.partition
        self._positions[partition] = message.offset + 1
        if header(message, DECIDED_BY) == self.instance:
            return  # our own decision's outcome, applied when we decided: not worth decoding
        try:
            record = self._own.decode(message.value or b"")
        except UnknownEventType as error:  # written by a newer version of this service, which decides on it
            log.info("skipped a team-log record of an unknown type", extra={"reason": error.reason})
            return
        except InvalidEvent as error:
            RECORDS_SKIPPED.inc()
            await self.parking.unreadable(message, error.reason)
            return
        self._teams_in[partition].add(team_key(record))
        decisions = self.desk.apply(record, decides=self.decides(partition), instance=self.instance)
        waiter = self._waiters.get(record.event_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._publish(decisions, outbox)

    def _publish(self, decisions: list[Decision], outbox: Outbox) -> None:
        now = self._clock()
        for decision in decisions:
            if not isinstance(decision.outcome, Forwarded):
                ticket = self.desk.teams[decision.team].tickets[decision.outcome.ticket_id]
                event = published(decision, ticket, now)
                if event is not None:
                    self.put(outbox, ASSIGNMENT_EVENTS, event, ticket.ticket_id)
                    DECISIONS.labels(event.event_type).inc()
            record = recorded(decision, self.instance, now)
            if isinstance(record, OutcomeRecorded):  # we skip it undecoded when it comes back (DECIDED_BY)
                self.put(outbox, ASSIGNMENT_BY_TEAM, record, decision.team, [(DECIDED_BY, self.instance.encode())])
            elif record is not None:
                self.put_record(outbox, record)

    # owning

    async def own(self, consumer: AIOKafkaConsumer) -> None:
        """Hold a share of the team log's partitions in the group; fetch nothing (the follower reads)."""
        self._owner = consumer
        await PartitionOwnership(consumer, ASSIGNMENT_BY_TEAM, self._taken, self._given_up).hold()

    async def _taken(self, assigned: set[TopicPartition]) -> None:
        assert self._owner is not None
        ends = await self._owner.end_offsets(list(assigned)) if assigned else {}
        async with self._batch:  # the follower sees the partition owned and its DLQ mark together
            for tp in assigned:
                self._takeovers[tp.partition] = ends[tp]
                self.owned.add(tp.partition)
            await self.parking.taken(self._owner, assigned)

    async def _given_up(self, revoked: set[TopicPartition]) -> None:
        self.parking.given_up(revoked)
        for tp in revoked:
            self.owned.discard(tp.partition)
            self._takeovers.pop(tp.partition, None)
        async with self._batch:  # the batch in hand finishes deciding and sending
            if self.producer is not None:
                await self.producer.flush()
