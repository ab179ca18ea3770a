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

With an archive (archive.py), the desk is checkpointed every CHECKPOINT_EVERY_S between two batches, once what they
decided is acknowledged: what it put aside, its memory and how far each partition is folded, in one atomic write. A
restart resumes from the last checkpoint on disk and reads the team log from there; the outcomes of decisions the
checkpoint already holds (below each partition's end when it was taken) are skipped, those after it applied.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
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
from ticketstream_shared.runtime.kafka import correlation_headers, header, partitions_of, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.outbox import Headers, Outbox
from ticketstream_shared.runtime.ownership import ActingPartitions, Parking, PartitionOwnership
from ticketstream_shared.runtime.store import store_belongs_to

from .archive import DeskArchive
from .desk import DECISION_IDS, Decision, Desk, Forwarded, published, recorded
from .records import OutcomeRecorded, OwnRecords, team_key

log = logging.getLogger(__name__)

DECISIONS = Counter("ticketstream_assignment_decisions_total", "Decisions published", ["kind"])
#: Header of an outcome record naming the process that decided it, which skips it without decoding.
DECIDED_BY = "assignment.decided_by"
#: Records folded between two sends of what they decided: a long catch-up sends as it goes.
SENT_TOGETHER = 500
RECORDS_SKIPPED = Counter("ticketstream_assignment_team_records_unreadable_total", "Unreadable team-log records")
#: How often the desk's memory is checkpointed to its archive (and what was put aside since written with it); a
#: restart folds the team log from the last checkpoint on disk.
CHECKPOINT_EVERY_S = 5.0
#: ... or sooner, once this many tickets done with wait in memory to be put aside (a long fold, on a new machine).
CHECKPOINT_DONE_WITH = 50_000


class TeamLog:
    def __init__(self, desk: Desk, clock: Callable[[], datetime], archive: DeskArchive | None = None) -> None:
        self.desk = desk
        #: Where the desk's memory is checkpointed and its tickets done with put aside (None: all in memory).
        self.archive = archive
        self.instance = str(uuid.uuid4())
        self._clock = clock
        self.producer: AIOKafkaProducer | None = None
        #: Set once the team log has been read to the end it had at start-up.
        self.caught_up = asyncio.Event()
        #: How far the team log is read, which partitions the group gave us, and which we decide for.
        self.partitions = ActingPartitions()
        self._teams_in: dict[int, set[str]] = defaultdict(set)
        self._waiters: dict[uuid.UUID, asyncio.Future[None]] = {}
        #: Held while a batch is folded and its decisions sent, so giving up a partition waits for it.
        self._batch = asyncio.Lock()
        self._owner: AIOKafkaConsumer | None = None
        self.parking = Parking(ASSIGNMENT_BY_TEAM, "assignment", lambda: self.producer)
        self._own = OwnRecords()
        #: Per (earlier process, partition): the offset below which its decisions' outcomes are in the desk already,
        #: as the checkpoint we resumed from had them.
        self._decided_below: dict[tuple[str, int], int] = {}
        self._follower: AIOKafkaConsumer | None = None
        #: Where this process resumed folding the team log, per partition: None if from the beginning.
        self.resumed_from: dict[int, int] | None = None
        self._checkpointed_at = time.monotonic()
        #: Set once following failed (a send refused, say): the desk may hold decisions Kafka does not have.
        self._broken = False

    def decides(self, partition: int) -> bool:
        return self.partitions.acts_on(partition)

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
        """Read every partition into the desk, for as long as the service runs: from the archive's last checkpoint
        on, or from the beginning."""
        await wait_for_topics(consumer, [ASSIGNMENT_BY_TEAM])
        partitions = await partitions_of(consumer, ASSIGNMENT_BY_TEAM)
        consumer.assign(partitions)  # without a group: every partition
        self._follower = consumer
        await self._resume(consumer)
        for tp in partitions:
            if tp.partition in self.partitions.positions:
                consumer.seek(tp, self.partitions.positions[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
                self.partitions.positions[tp.partition] = await consumer.position(tp)
        end_at_start = {tp.partition: end for tp, end in (await consumer.end_offsets(partitions)).items()}
        try:
            await self._fold_for_ever(consumer, end_at_start)
        except BaseException:
            self._broken = True  # what the desk holds may not all have reached Kafka: no checkpoint of it from now
            raise

    async def _fold_for_ever(self, consumer: AIOKafkaConsumer, end_at_start: dict[int, int]) -> None:
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=5_000)
            async with self._batch:
                outbox, pending = self.outbox(), []
                for records in fetched.values():
                    for record in records:
                        await self._fold(record, outbox)
                        if len(outbox) >= SENT_TOGETHER:
                            pending += await outbox.send()
                for partition in self.partitions.now_acted_on():
                    cause = str(DECISION_IDS(f"takeover:{partition}:{self.partitions.positions.get(partition, 0)}"))
                    for team in sorted(self._teams_in[partition]):
                        self._publish(self.desk.settle(team, cause), outbox)
                    log.info("took a team partition over", extra={"partition": partition})
                await asyncio.gather(*pending, *await outbox.send())
                if self._checkpoint_due():
                    await self._checkpoint()
            if self._owner is not None:
                await self.parking.commit(self._owner)  # outside the batch lock: a commit may wait for a rebalance
            if self.partitions.read_to(end_at_start) and not self.caught_up.is_set():
                log.info("team log read to its end", extra={"teams": len(self.desk.teams)})
                tune_garbage_collection()  # the desk just read: out of the collector's walks from now on
                self.caught_up.set()

    async def _fold(self, message: ConsumerRecord, outbox: Outbox) -> None:
        partition = message.partition
        self.partitions.read(message)
        decided_by = header(message, DECIDED_BY)
        if decided_by is not None and (
            decided_by == self.instance or message.offset < self._decided_below.get((decided_by, partition), 0)
        ):
            return  # a decision's outcome applied when it was decided (ours, or before the checkpoint we resumed)
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

    # checkpoints

    def _checkpoint_due(self) -> bool:
        if self.archive is None:
            return False
        if len(self.desk.done_with) >= CHECKPOINT_DONE_WITH:
            return True
        return time.monotonic() - self._checkpointed_at >= CHECKPOINT_EVERY_S

    async def _checkpoint(self) -> None:
        """Write the desk's memory, with how far it has folded each partition, to the archive. Only between batches,
        once what they decided is acknowledged: a restart from here must not decide those again, nor apply their
        outcomes, which the desk has, a second time when it reads them."""
        assert self.archive is not None and self._follower is not None
        # Our decisions sent so far are all below each partition's end now (nothing is sent while this runs).
        ends = await self._follower.end_offsets(
            [TopicPartition(ASSIGNMENT_BY_TEAM, p) for p in self.partitions.positions]
        )
        decided_below = {(self.instance, tp.partition): end for tp, end in ends.items()}
        decided_below.update(self._decided_below)
        # Only where they are still ahead of what is folded.
        ahead = {(by, p): below for (by, p), below in decided_below.items() if below > self.partitions.positions[p]}
        self.desk.put_aside()
        memory = (self.desk.memory(), dict(self._teams_in), self.parking.unparked(), ahead)
        self.archive.checkpoint(pickle.dumps(memory, pickle.HIGHEST_PROTOCOL), dict(self.partitions.positions))
        self._checkpointed_at = time.monotonic()

    async def checkpoint(self) -> None:
        """A checkpoint now, between two batches (a service stopping)."""
        if self.archive is not None and self.caught_up.is_set():
            async with self._batch:
                if not self._broken:
                    await self._checkpoint()

    async def _resume(self, consumer: AIOKafkaConsumer) -> None:
        """The desk as the archive's last checkpoint left it, if it has one that belongs to this team log."""
        if self.archive is None:
            return
        last = self.archive.last_checkpoint()
        if last is None or not await store_belongs_to(consumer, ASSIGNMENT_BY_TEAM, self.archive.store):
            self.archive.start_over()
            return
        memory, positions = last
        try:
            desk_memory, teams_in, unparked, decided_below = pickle.loads(memory)
        except Exception as error:  # written by another release that kept the layout's name: fold it all again
            log.warning("could not read the desk's checkpoint; folding the team log again", extra={"error": str(error)})
            self.archive.start_over()
            return
        self.desk.resume(desk_memory)
        self._teams_in.update(teams_in)
        await self.parking.resume(unparked)
        self._decided_below.update(decided_below)
        self.partitions.positions.update(positions)
        self.resumed_from = dict(positions)
        log.info("resumed the desk from its checkpoint", extra={"positions": positions})

    def _publish(self, decisions: list[Decision], outbox: Outbox) -> None:
        now = self._clock()
        for decision in decisions:
            if not isinstance(decision.outcome, Forwarded):
                ticket = self.desk.ticket(decision.outcome.ticket_id)
                assert ticket is not None, "a decision about a ticket the desk does not have"
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
        async with self._batch:  # the follower sees the partition given and its DLQ mark together
            await self.partitions.take(self._owner, assigned)
            await self.parking.taken(self._owner, assigned)

    async def _given_up(self, revoked: set[TopicPartition]) -> None:
        self.parking.given_up(revoked)
        self.partitions.give_up(revoked)
        async with self._batch:  # the batch in hand finishes deciding and sending
            if self.producer is not None:
                await self.producer.flush()
