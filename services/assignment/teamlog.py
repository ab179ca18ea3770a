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

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import Counter

from ticketstream_shared.contract import Envelope, InvalidEvent, UnknownEventType, encode
from ticketstream_shared.contract.assignment import TeamLogEvent
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM, ASSIGNMENT_EVENTS
from ticketstream_shared.runtime.consumer import EVENTS_DEAD_LETTERED
from ticketstream_shared.runtime.kafka import correlation_headers, dead_letter, header, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection

from .desk import DECISION_IDS, Decision, Desk, Forwarded, published, recorded
from .records import OutcomeRecorded, decode_team_record, team_key

log = logging.getLogger(__name__)

DECISIONS = Counter("ticketstream_assignment_decisions_total", "Decisions published", ["kind"])
#: Header of an outcome record naming the process that decided it, which skips it without decoding.
DECIDED_BY = "assignment.decided_by"
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
        #: Per owned partition: below this offset, its unreadable records are parked (committed in the group).
        self._parked_below: dict[int, int] = {}
        self._uncommitted: set[int] = set()
        #: Unreadable records of partitions others own, with the reason: ours to park if we take one over first.
        self._unparked: dict[int, list[tuple[ConsumerRecord, str]]] = defaultdict(list)

    def decides(self, partition: int) -> bool:
        return partition in self.owned and partition not in self._takeovers

    # writing

    async def send(
        self, topic: str, event: Envelope | TeamLogEvent, key: str, headers: list[tuple[str, bytes]] | None = None
    ) -> asyncio.Future[object]:
        """Queue `event`; the returned future resolves once Kafka acknowledged it (acks=all)."""
        assert self.producer is not None, "sent before the broker answered"
        headers = correlation_headers() + (headers or [])
        return await self.producer.send(topic, encode(event), key=key.encode(), headers=headers)  # type: ignore[arg-type]

    async def send_record(self, record: TeamLogEvent) -> asyncio.Future[object]:
        """Queue a record for the team log under its team's key."""
        return await self.send(ASSIGNMENT_BY_TEAM, record, team_key(record))

    async def append(self, records: list[TeamLogEvent], visible_within_s: float) -> bool:
        """Append records to the team log and wait until this process has folded the last one (so a read sees
        it); False if Kafka has them but that took longer than `visible_within_s`."""
        event_id = records[-1].event_id
        waiter = self._waiters[event_id] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.gather(*[await self.send_record(record) for record in records])
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
                pending: list[asyncio.Future[object]] = []
                for records in fetched.values():
                    for record in records:
                        pending += await self._fold(record)
                for partition in [p for p, end in self._takeovers.items() if self._positions.get(p, 0) >= end]:
                    del self._takeovers[partition]
                    cause = DECISION_IDS(f"takeover:{partition}:{self._positions.get(partition, 0)}")
                    for team in sorted(self._teams_in[partition]):
                        pending += await self._publish(self.desk.settle(team, cause))
                    log.info("took a team partition over", extra={"partition": partition})
                await asyncio.gather(*pending)
            await self._commit_parked()
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

    async def _fold(self, message: ConsumerRecord) -> list[asyncio.Future[object]]:
        partition = message.partition
        self._positions[partition] = message.offset + 1
        if header(message, DECIDED_BY) == self.instance:
            return []  # our own decision's outcome, applied when we decided: not worth decoding
        try:
            record = decode_team_record(message.value or b"")
        except UnknownEventType as error:  # written by a newer version of this service, which decides on it
            log.info("skipped a team-log record of an unknown type", extra={"reason": error.reason})
            return []
        except InvalidEvent as error:
            RECORDS_SKIPPED.inc()
            if partition in self.owned:
                await self._park(message, error.reason)
            else:
                self._unparked[partition].append((message, error.reason))
            return []
        self._teams_in[partition].add(team_key(record))
        decisions = self.desk.apply(record, decides=self.decides(partition), instance=self.instance)
        waiter = self._waiters.get(record.event_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return await self._publish(decisions)

    async def _publish(self, decisions: list[Decision]) -> list[asyncio.Future[object]]:
        now = self._clock()
        pending = []
        for decision in decisions:
            if not isinstance(decision.outcome, Forwarded):
                ticket = self.desk.teams[decision.team].tickets[decision.outcome.ticket_id]
                event = published(decision, ticket, now)
                if event is not None:
                    pending.append(await self.send(ASSIGNMENT_EVENTS, event, ticket.ticket_id))
                    DECISIONS.labels(event.event_type).inc()
            record = recorded(decision, self.instance, now)
            if record is not None:
                ours = [(DECIDED_BY, self.instance.encode())] if isinstance(record, OutcomeRecorded) else None
                pending.append(await self.send(ASSIGNMENT_BY_TEAM, record, decision.team, ours))
        return pending

    async def _park(self, message: ConsumerRecord, reason: str) -> None:
        """Put an unreadable record of an owned partition in the DLQ, unless an owner already did."""
        if message.offset < self._parked_below.get(message.partition, 0):
            return
        assert self.producer is not None
        await dead_letter(self.producer, message, reason, "assignment")
        EVENTS_DEAD_LETTERED.labels(message.topic).inc()
        self._parked_below[message.partition] = message.offset + 1
        self._uncommitted.add(message.partition)

    async def _commit_parked(self) -> None:
        """Commit how far each owned partition's unreadable records are parked. Outside the batch lock: a commit
        may wait for a rebalance, whose listener waits for that lock. A refused commit only means the next owner
        parks those records again."""
        offsets = {
            TopicPartition(ASSIGNMENT_BY_TEAM, partition): OffsetAndMetadata(self._parked_below[partition], "")
            for partition in self._uncommitted & self.owned
        }
        self._uncommitted.clear()
        if offsets and self._owner is not None:
            try:
                await self._owner.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                log.warning("could not commit how far the DLQ has the team log", extra={"error": str(error)})

    # owning

    async def own(self, consumer: AIOKafkaConsumer) -> None:
        """Hold a share of the team log's partitions in the group; fetch nothing (the follower reads)."""
        await wait_for_topics(consumer, [ASSIGNMENT_BY_TEAM])
        self._owner = consumer
        consumer.subscribe([ASSIGNMENT_BY_TEAM], listener=_Ownership(self, consumer))
        while True:
            await consumer.getmany(timeout_ms=1_000)  # keeps the membership alive; every partition is paused

    async def _taken(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        consumer.pause(*assigned)
        ends = await consumer.end_offsets(list(assigned)) if assigned else {}
        parked = {tp: await consumer.committed(tp) for tp in assigned}
        async with self._batch:  # the follower sees the partition owned and its DLQ mark together
            for tp in assigned:
                self._takeovers[tp.partition] = ends[tp]
                self._parked_below[tp.partition] = parked[tp] or 0
                self.owned.add(tp.partition)
                for message, reason in self._unparked.pop(tp.partition, []):
                    await self._park(message, reason)

    async def _given_up(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.owned.discard(tp.partition)
            self._takeovers.pop(tp.partition, None)
        async with self._batch:  # the batch in hand finishes deciding and sending
            if self.producer is not None:
                await self.producer.flush()


class _Ownership(ConsumerRebalanceListener):
    def __init__(self, team_log: TeamLog, consumer: AIOKafkaConsumer) -> None:
        self._team_log = team_log
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._team_log._given_up(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._team_log._taken(self._consumer, assigned)
