"""The sla worker: its share of tickets.events in, sla.events out, alarms on time, the same after any restart.

Durability, the simplest design that is correct: the clocks are not stored anywhere but in the logs they come from.
tickets.events is kept forever and the clocks are a pure function of it, of sla.config and of time, so when the
group hands this worker a partition it reads that partition of tickets.events from the beginning and rebuilds
the clocks (event time: the replay decides exactly what the live run decided). It also reads the same partition of
sla.events (same key, same partition count) for the ids already published; while rebuilding, and in the catch-up
that raises what fell due while no worker held the partition, decisions whose ids are there are not published
again. Alarm ids derive from (ticket, metric, kind, deadline), everything else from its cause, so after a kill -9
nothing is missed (what was decided but not acknowledged is decided again) and nothing is doubled.
The price is start-up time proportional to the partition's history (measured in bench/bench_sla.py); a compacted
changelog of clock snapshots is the next step when that grows too long, and needs no change to the domain.

One task does everything in order (fetch, decide, tick, publish), waiting for new events no longer than the next
deadline, so a ticket's sla events are published in the order they were decided and alarms are late only by the
time a batch takes. Offsets are committed after publishing, for lag monitoring only: a rebuild always starts over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from ticketstream_shared.contract import InvalidEvent, UnknownEventType, decode_ticket_event, encode
from ticketstream_shared.contract.sla import SlaEvent
from ticketstream_shared.contract.topics import SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import commit_unless_rebalanced, dead_letter, wait_for_topics
from ticketstream_shared.runtime.memory import tune_garbage_collection

from .timekeeper import Timekeeper

log = logging.getLogger(__name__)

PUBLISHED = Counter("ticketstream_sla_events_published_total", "sla events published", ["event_type"])
SUPPRESSED = Counter("ticketstream_sla_events_suppressed_total", "Decisions already published before a restart")
LATENESS = Histogram(
    "ticketstream_sla_alarm_lateness_seconds",
    "Publication time minus the moment an alarm was due",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300),
)
TICKETS = Gauge("ticketstream_sla_tickets", "Tickets with clocks held by this worker")

#: The longest a fetch waits when no alarm is due sooner.
IDLE_WAIT_S = 0.5
ALARMS = frozenset({"sla.warning", "sla.breached"})


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: ClockWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._worker.give_up(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.rebuild(assigned)


class ClockWorker:
    def __init__(
        self,
        timekeeper: Timekeeper,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        history_reader: Callable[[], AIOKafkaConsumer],
        now: Callable[[], datetime],
    ) -> None:
        self.timekeeper = timekeeper
        self._consumer = consumer
        self._producer = producer
        self._history_reader = history_reader
        self._now = now
        #: Ids published before this worker took its partitions; consulted until the catch-up is done.
        self._published_before: set[uuid.UUID] = set()
        #: Replay targets: read each newly assigned partition up to here before ticking.
        self._rebuild_until: dict[TopicPartition, int] = {}
        self._held: set[TopicPartition] = set()
        #: Partitions being set up for a rebuild (the rebalance listener runs beside the loop). They are paused
        #: meanwhile, so the loop fetches nothing of them until they have been sent back to the beginning.
        self._preparing: set[TopicPartition] = set()
        #: Counts rebuilds; `_rebuilt_at` says at which count each partition was last started over. Records
        #: fetched before that are stale (read from the committed offset, not from the beginning) and dropped.
        self._rebuilds = 0
        self._rebuilt_at: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()

    @property
    def ready(self) -> bool:
        return bool(self._held) and not self._rebuild_until and not self._preparing

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await wait_for_topics(self._consumer, [TICKETS_EVENTS, SLA_EVENTS])
        self._consumer.subscribe([TICKETS_EVENTS], listener=_Rebalance(self))
        while not self._stopping.is_set():
            fetched = await self._consumer.getmany(timeout_ms=self._wait_ms(), max_records=5_000)
            fetched_after = self._rebuilds  # no await since the fetch returned
            decided: list[SlaEvent] = []
            for partition, records in fetched.items():
                for record in records:
                    if self._rebuilt_at.get(partition, 0) > fetched_after:
                        break  # fetched before its rebuild began: it is read again from the beginning
                    decided.extend(await self._handle(record, partition))
            if self._preparing:
                await self._publish(decided)
                continue
            if self._rebuild_until and await self._rebuilt():
                decided.extend(self.timekeeper.catch_up(self._now()))
                await self._publish(decided)
                if not self._preparing:
                    self._published_before.clear()
                log.info("clocks rebuilt", extra={"tickets": len(self.timekeeper)})
                tune_garbage_collection()  # the clocks just rebuilt leave the collector's walks
                continue
            if not self._rebuild_until:
                decided.extend(self.timekeeper.tick(self._now()))
            await self._publish(decided)
            if fetched and not self._rebuild_until:
                await commit_unless_rebalanced(self._consumer)
            TICKETS.set(len(self.timekeeper))

    def _wait_ms(self) -> int:
        due = self.timekeeper.next_due
        if due is None or self._rebuild_until:
            return int(IDLE_WAIT_S * 1000)
        return int(min(max((due - self._now()).total_seconds(), 0), IDLE_WAIT_S) * 1000)

    async def _handle(self, record: object, partition: TopicPartition) -> list[SlaEvent]:
        if partition not in self._held:
            return []  # fetched before a rebalance took it away
        raw = getattr(record, "value", None) or b""
        try:
            event = decode_ticket_event(raw)
        except UnknownEventType:
            return []
        except InvalidEvent as error:
            if not self._rebuild_until:  # during a rebuild it was dead-lettered when first read
                await dead_letter(self._producer, record, error.reason, "sla")  # type: ignore[arg-type]
            return []
        return self.timekeeper.handle(event, partition.partition)

    def give_up(self, revoked: set[TopicPartition]) -> None:
        """Partitions taken away: whoever gets them rebuilds their clocks."""
        self.timekeeper.forget_partitions({tp.partition for tp in revoked})
        self._held -= revoked
        self._preparing -= revoked
        for tp in revoked:
            self._rebuilt_at.pop(tp, None)
        for tp in revoked:
            self._rebuild_until.pop(tp, None)

    async def rebuild(self, assigned: set[TopicPartition]) -> None:
        """Start the new partitions over, and learn what was already published for their tickets."""
        new = [tp for tp in assigned if tp not in self._held]
        if not new:
            return
        # Before any await: from here the loop neither receives nor handles records of these partitions read
        # from where the group had committed; after the seek they are read from the beginning.
        self._consumer.pause(*new)
        self._rebuilds += 1
        self._rebuilt_at.update(dict.fromkeys(new, self._rebuilds))
        self._held.update(new)
        self._preparing.update(new)
        try:
            self._published_before |= await self._published_ids({tp.partition for tp in new})
            ends = await self._consumer.end_offsets(new)
            await self._consumer.seek_to_beginning(*new)
            self._rebuild_until.update({tp: end for tp, end in ends.items() if end > 0})
            if not self._rebuild_until:  # empty partitions: nothing to replay, but still one catch-up to run
                self._rebuild_until[new[0]] = 0
        finally:
            still_held = [tp for tp in new if tp in self._held]  # a rebalance may have taken some away since
            self._preparing.difference_update(new)
            self._consumer.resume(*still_held)

    async def _rebuilt(self) -> bool:
        for tp, end in list(self._rebuild_until.items()):
            if await self._consumer.position(tp) >= end:
                del self._rebuild_until[tp]
        return not self._rebuild_until

    async def _published_ids(self, partitions: set[int]) -> set[uuid.UUID]:
        reader = self._history_reader()
        await reader.start()
        try:
            tps = [TopicPartition(SLA_EVENTS, number) for number in partitions]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            ids: set[uuid.UUID] = set()
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                for tp, records in (await reader.getmany(*pending, timeout_ms=500, max_records=10_000)).items():
                    for record in records:
                        ids.add(uuid.UUID(json.loads(record.value or b"")["event_id"]))  # we wrote them all
                    if await reader.position(tp) >= ends[tp]:
                        pending.discard(tp)
            return ids
        finally:
            await reader.stop()

    async def _publish(self, events: list[SlaEvent]) -> None:
        if not events:
            return
        sent = []
        published_at = time.time()
        for event in events:
            if event.event_id in self._published_before:
                SUPPRESSED.inc()
                continue
            sent.append(await self._producer.send(SLA_EVENTS, encode(event), key=event.ticket_id.encode()))
            PUBLISHED.labels(event.event_type).inc()
            if event.event_type in ALARMS:
                LATENESS.observe(max(published_at - event.occurred_at.timestamp(), 0))
        await asyncio.gather(*sent)
