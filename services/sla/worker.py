"""The sla worker: its share of tickets.events in, sla.events out, alarms on time, the same after any restart.

Durability: the clocks are a pure function of tickets.events (kept forever), of sla.config and of time. After each
batch the worker publishes the sla events it decided, then writes to its local store (clock_store.py), in one
atomic write, the clocks of the tickets that changed and per partition how far they reach: the tickets.events
offset, and the sla.events offset below which every published event is reflected in them. The changelog writer
carries both into sla.clocks; the other replicas follow it as standbys. Only then does it commit (for lag
monitoring). Memory holds the tickets whose clocks run or wait, those taken over asleep by their next alarm only;
settled ones are in the store, loaded again by the event that reopens them.

When the group hands it a partition, the worker lets the standby read the partition's changelog to its end (the
tail only, when the store is warm; all of it on a new machine), reads the store's index of its live clocks (each
ticket held asleep by its next alarm, its clocks decoded when an alarm or an event first needs them), replays
tickets.events from the store's position (from the beginning when it has none, e.g. the first start on an existing
history, or clocks naming a calendar version sla.config no longer has: found when they are first needed, the
partition is then started over), and reads the sla.events published since:
while replaying, and in the catch-up that raises what fell due while no worker held the partition, decisions whose
ids are there are not published again. Replayed events the clocks already reflect change nothing
(aggregate_version). Alarm ids derive from (ticket, metric, kind, deadline), everything else from its cause, so
after a kill -9 nothing is missed (what was decided but not acknowledged is decided again) and nothing is doubled.
Meanwhile the alarms of that partition wait; those of the partitions it holds whole ring on time.

A rebalance takes every partition away first (aiokafka's is eager) and mostly gives a worker its own back. Their
clocks stay in memory, their alarms held back, until the rebalance says: given back, and nobody else wrote to their
sla.events or sla.clocks meanwhile, they go on where they were, with nothing loaded or replayed; otherwise they are
dropped (and, if given back after all, restored like any other).

One task does everything in order (fetch, decide, tick, publish, save), waiting for new events no longer than the
next deadline, so a ticket's sla events are published in the order they were decided and alarms are late only by
the time a batch takes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Gauge, Histogram

from ticketstream_shared.contract import InvalidEvent, UnknownEventType, decode_ticket_event, encode
from ticketstream_shared.contract.sla import SlaEvent
from ticketstream_shared.contract.topics import SLA_CLOCKS, SLA_EVENTS, TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.changelog import ChangelogWriter, Standby
from ticketstream_shared.runtime.kafka import (
    commit_unless_rebalanced,
    dead_letter,
    partition_of,
    records_to_end,
    wait_for_topics,
)
from ticketstream_shared.runtime.memory import tune_garbage_collection
from ticketstream_shared.runtime.retry import while_down
from ticketstream_shared.runtime.store import Changes
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .clock_store import ClockStore, is_settled
from .snapshots import Checkpoint, UnreadableSnapshot
from .timekeeper import Timekeeper

log = logging.getLogger(__name__)

PUBLISHED = Counter("ticketstream_sla_events_published_total", "sla events published", ["event_type"])
SUPPRESSED = Counter("ticketstream_sla_events_suppressed_total", "Decisions already published before a restart")
LATENESS = Histogram(
    "ticketstream_sla_alarm_lateness_seconds",
    "Publication time minus the moment an alarm was due",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 300),
)
TICKETS = Gauge("ticketstream_sla_tickets", "Tickets with live clocks held by this worker, awake or asleep")
ASLEEP = Gauge("ticketstream_sla_tickets_asleep", "Tickets held by their next alarm only, their clocks in the store")
RESTORED = Counter("ticketstream_sla_tickets_restored_total", "Tickets whose clocks were loaded from the local store")
REPLAYED = Counter("ticketstream_sla_events_replayed_total", "Ticket events read again when a partition was taken over")

#: The longest a fetch waits when no alarm is due sooner.
IDLE_WAIT_S = 0.5
#: The first wait between attempts to take partitions over while Kafka refuses (a leader moving, a broker
#: restarting); later waits double, up to the shared policy's longest (runtime/retry.py).
TAKE_OVER_RETRY_S = 1.0
ALARMS = frozenset({"sla.warning", "sla.breached"})
#: Bounds on the work done between two yields to the event loop while taking partitions over and saving.
LOADED_BETWEEN_YIELDS = 2_000
SAVED_PER_WRITE = 5_000


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: ClockWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # The next owner reads where sla.events and sla.clocks end when it takes over: nothing may land later.
        async with self._worker.between_decisions():
            self._worker.give_up(revoked)
        await self._worker.changelog.written()
        await self._worker.suspend(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._worker.take_over(assigned)


class ClockWorker:
    def __init__(
        self,
        timekeeper: Timekeeper,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        history_reader: Callable[[], AIOKafkaConsumer],
        now: Callable[[], datetime],
        clocks: ClockStore,
        changelog: ChangelogWriter,
        standby: Standby,
    ) -> None:
        self.timekeeper = timekeeper
        self.clocks = clocks
        self.changelog = changelog
        self._standby = standby
        self._consumer = consumer
        self._producer = producer
        self._history_reader = history_reader
        self._now = now
        #: Ids published before this worker took its partitions; consulted until the catch-up is done.
        self._published_before: set[uuid.UUID] = set()
        #: Replay targets: read each newly assigned partition up to here before ticking.
        self._rebuild_until: dict[TopicPartition, int] = {}
        self._held: set[TopicPartition] = set()
        #: Partitions being set up for a rebuild (the take-over task runs beside the loop). They are paused
        #: meanwhile, so the loop fetches nothing of them until they have been sent back to their checkpoint.
        self._preparing: set[TopicPartition] = set()
        self._taking_over: set[asyncio.Task[None]] = set()
        self._take_over_failure: BaseException | None = None
        #: Per partition taken over: below this offset the group had acknowledged every record, so a poison one
        #: replayed from there is already in the dead-letter topic.
        self._dead_letter_from: dict[TopicPartition, int] = {}
        #: Partitions taken over: once their replay is done, what fell due while no worker held them is raised.
        self._catch_up_due: set[int] = set()
        #: Partitions a rebalance took away whose clocks are kept, their alarms held back, in case the same
        #: rebalance gives them back (an eager one takes every partition away first): where sla.events and
        #: sla.clocks ended once this worker had written its last of them. If both end there still when the
        #: partition comes back, nobody else decided anything of it, and it goes on without a restore.
        self._suspended: dict[TopicPartition, tuple[int, int] | None] = {}
        #: Counts rebuilds; `_rebuilt_at` says at which count each partition was last started over. Records
        #: fetched before that are stale (read from the committed offset, not from the beginning) and dropped.
        self._rebuilds = 0
        self._rebuilt_at: dict[TopicPartition, int] = {}
        #: Per partition: the next tickets.events offset to decide, and the sla.events offset below which every
        #: event is reflected in the clocks held (what the store records with them).
        self._next_offset: dict[int, int] = {}
        self._sla_offset: dict[int, int] = {}
        #: Per partition being replayed, the sla.events offset its clocks reflect (the store's, at the take-over):
        #: what a save records until the replay is done, since the clocks do not yet reflect what was published
        #: after it (a restart then looks those events up again).
        self._replayed_sla_offset: dict[int, int] = {}
        #: Settled tickets loaded from the store since the last save (a reopen, a late comment): they leave memory
        #: again at the save unless the event woke a clock.
        self._loaded: set[str] = set()
        #: Partitions replayed from their beginning (no checkpoint, or clocks the store cannot read): until their
        #: catch-up, a ticket whose clocks cannot be read is rebuilt by its events.
        self._whole_replay: set[int] = set()
        #: Held while what fell due is decided and published (`_decide_due`).
        self._deciding = asyncio.Lock()
        self._stopping = asyncio.Event()

    @property
    def ready(self) -> bool:
        return bool(self._held) and not (self._rebuild_until or self._preparing or self._catch_up_due)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await wait_for_topics(self._consumer, [TICKETS_EVENTS, SLA_EVENTS, SLA_CLOCKS])
        self._consumer.subscribe([TICKETS_EVENTS], listener=_Rebalance(self))
        try:
            await self._work()
        finally:
            for task in list(self._taking_over):
                task.cancel()
            await asyncio.gather(*self._taking_over, return_exceptions=True)

    async def _work(self) -> None:
        while not self._stopping.is_set():
            if self._take_over_failure is not None:
                raise self._take_over_failure
            fetched = await self._consumer.getmany(timeout_ms=self._wait_ms(), max_records=5_000)
            fetched_after = self._rebuilds  # no await since the fetch returned
            decided: list[SlaEvent] = []
            for partition, records in fetched.items():
                for record in records:
                    if self._rebuilt_at.get(partition, 0) > fetched_after:
                        break  # fetched before its rebuild began: it is read again from its checkpoint
                    decided.extend(await self._handle(record, partition))
                    THROUGHPUT.processed()
                    if self._rebuild_until:
                        REPLAYED.inc()
            if self._rebuild_until and not self._preparing:
                await self._rebuilt()
            if self._preparing:  # checked after the last await: a take-over may have begun meanwhile
                await self._decide_due(decided)
                continue
            if self._catch_up_due and not self._rebuild_until:
                # one partition per turn: a large one's catch-up and save take long enough without the others
                caught_up = self._catch_up_due.pop()
                self._whole_replay.discard(caught_up)
                decided.extend(self.timekeeper.catch_up(self._now(), {caught_up}))
                await self._decide_due(decided)
                await self._save()
                if not (self._preparing or self._catch_up_due or self._rebuild_until):
                    self._published_before.clear()  # every id in it is published: keeping one more is harmless
                    log.info("clocks rebuilt", extra={"tickets": len(self.timekeeper)})
                    tune_garbage_collection()  # the clocks just rebuilt leave the collector's walks
                continue
            await self._decide_due(decided)
            await self._save()  # mid-replay too: memory holds only the tickets still live, even on a first start
            if fetched and not self._rebuild_until:
                await commit_unless_rebalanced(self._consumer)
            TICKETS.set(len(self.timekeeper))
            ASLEEP.set(self.timekeeper.asleep)

    def _paused(self) -> set[int]:
        """Partitions whose alarms wait: being restored or replayed (some restored clocks are already past due, and
        the replay may settle them), waiting for their catch-up, or kept through a rebalance."""
        partitions = [*self._preparing, *self._rebuild_until, *self._suspended]
        return {tp.partition for tp in partitions} | self._catch_up_due

    async def _decide_due(self, decided: list[SlaEvent]) -> None:
        """What fell due (configuration changes, then alarms) added to what the batch `decided`, all published. One
        unit no rebalance enters (`between_decisions`): a configuration change's sweep, which lets the event loop
        run between its parts (heartbeats, HTTP), re-times every ticket held when it began and publishes all it
        decided before a partition may be given up."""
        async with self._deciding:
            for part in self.timekeeper.sweeping(self._now(), self._paused()):
                decided.extend(part)
                await asyncio.sleep(0)
            decided.extend(self.timekeeper.tick(self._now(), self._paused()))
            await self._carry_out(decided)

    @asynccontextmanager
    async def between_decisions(self) -> AsyncIterator[None]:
        """Hold off `_decide_due` (a rebalance giving partitions up): once entered, everything decided is
        published."""
        async with self._deciding:
            yield

    def _wait_ms(self) -> int:
        """How long the next fetch may wait: until the next alarm of a partition not paused, and no longer than
        IDLE_WAIT_S. While a partition is being restored or replayed the fetch waits at least a millisecond: a
        fetch without a wait returns without yielding to the event loop, and the loop would then spin without ever
        letting the take-over (a task beside it) go on. Partitions waiting for their catch-up (one per turn, a turn
        for each) do not wait."""
        if self._catch_up_due and not (self._rebuild_until or self._preparing):
            return 0
        wait_s = IDLE_WAIT_S
        if (due := self.timekeeper.next_due(self._paused())) is not None:
            wait_s = min(max((due - self._now()).total_seconds(), 0), IDLE_WAIT_S)
        floor_ms = 1 if self._rebuild_until or self._preparing else 0
        return max(int(wait_s * 1000), floor_ms)

    async def _handle(self, record: object, partition: TopicPartition) -> list[SlaEvent]:
        if partition not in self._held:
            return []  # fetched before a rebalance took it away
        raw = getattr(record, "value", None) or b""
        try:
            event = decode_ticket_event(raw)
        except UnknownEventType:
            return []
        except InvalidEvent as error:
            if record.offset >= self._dead_letter_from.get(partition, 0):  # type: ignore[attr-defined]
                await dead_letter(self._producer, record, error.reason, "sla")
            return []
        finally:
            self._next_offset[partition.partition] = record.offset + 1  # type: ignore[attr-defined]
        if not self.timekeeper.holds(event.ticket_id):
            self._load(event.ticket_id, partition.partition)  # settled, or a partition replayed from its beginning
        return self.timekeeper.handle(event, partition.partition)

    def _load(self, ticket_id: str, partition: int) -> None:
        """The ticket's clocks from the store, if it has readable ones. Otherwise, in a partition replayed from its
        beginning, the ticket's events rebuild them; in any other the partition is started over."""
        try:
            state = self.clocks.load(ticket_id)
        except UnreadableSnapshot:
            if partition not in self._whole_replay:
                self.timekeeper.mark_unreadable(partition)
            return
        if state is not None:
            self.timekeeper.restore(state, partition)
            self._loaded.add(ticket_id)

    def give_up(self, revoked: set[TopicPartition]) -> None:
        """Partitions taken away: whoever gets them rebuilds their clocks. Those wholly taken over are kept,
        their alarms held back, until the rebalance says who has them next (`suspend`, then `take_over`)."""
        whole = {tp for tp in revoked & self._held if not self._still_rebuilding(tp)}
        self.changelog.give_up(tp.partition for tp in revoked)
        self._held -= revoked
        self._drop(revoked - whole)
        self._suspended.update(dict.fromkeys(whole))

    def _still_rebuilding(self, tp: TopicPartition) -> bool:
        return tp in self._preparing or tp in self._rebuild_until or tp.partition in self._catch_up_due

    def _drop(self, partitions: Collection[TopicPartition]) -> None:
        """Forget partitions another worker rebuilds."""
        self._forget(partitions)
        for tp in partitions:
            self._preparing.discard(tp)
            self._rebuilt_at.pop(tp, None)

    def _forget(self, partitions: Collection[TopicPartition]) -> None:
        """Forget what this worker knew of the partitions: their clocks leave memory (the standby follows them
        again), and where it was in reading, replaying and publishing them."""
        forgotten = {tp.partition for tp in partitions}
        self.timekeeper.forget_partitions(forgotten)
        self._standby.follow(forgotten)
        self._whole_replay -= forgotten
        for tp in partitions:
            self._suspended.pop(tp, None)
            self._rebuild_until.pop(tp, None)
            self._replayed_sla_offset.pop(tp.partition, None)
            self._dead_letter_from.pop(tp, None)
            self._catch_up_due.discard(tp.partition)
            self._next_offset.pop(tp.partition, None)
            self._sla_offset.pop(tp.partition, None)

    async def suspend(self, revoked: set[TopicPartition]) -> None:
        """Once the last of a revoked partition's sla.events and changelog are written: note where both end, to
        tell on its return whether anybody else wrote there. Not knowing, the partition is dropped."""
        kept = [tp for tp in revoked if tp in self._suspended]
        try:
            ends = await self._written_ends(kept)
        except KafkaError:
            self._drop(kept)
            return
        for tp in kept:
            if tp in self._suspended:
                self._suspended[tp] = ends[tp]

    async def _written_ends(self, partitions: list[TopicPartition]) -> dict[TopicPartition, tuple[int, int]]:
        """Where sla.events and sla.clocks end, for each of `partitions` of tickets.events (partitioned alike)."""
        written = [TopicPartition(topic, tp.partition) for tp in partitions for topic in (SLA_EVENTS, SLA_CLOCKS)]
        ends = await self._consumer.end_offsets(written) if written else {}
        return {
            tp: (ends[TopicPartition(SLA_EVENTS, tp.partition)], ends[TopicPartition(SLA_CLOCKS, tp.partition)])
            for tp in partitions
        }

    def take_over(self, assigned: set[TopicPartition]) -> None:
        """Partitions given by a rebalance: start them over beside the loop and return at once. The group waits
        for every member's rebalance callbacks, and no longer than its rebalance timeout (the session timeout):
        a restore inside the callback that outlasts it gets the member expelled, its partitions go to another
        member which restores them in turn, and two replicas can pass the partitions back and forth forever."""
        self._drop([tp for tp in self._suspended if tp not in assigned])
        new = [tp for tp in assigned if tp not in self._held]
        if not new:
            return
        # Before any await: from here the loop neither receives nor handles records of these partitions read
        # from where the group had committed; after the seek they are read from their checkpoint.
        self._consumer.pause(*new)
        self._rebuilds += 1
        self._rebuilt_at.update(dict.fromkeys(new, self._rebuilds))
        self._held.update(new)
        self._preparing.update(new)
        task = asyncio.create_task(self._take_over(new, self._rebuilds), name="sla-take-over")
        self._taking_over.add(task)
        task.add_done_callback(self._taken_over)

    def _taken_over(self, task: asyncio.Task[None]) -> None:
        self._taking_over.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._take_over_failure = task.exception()  # raised by the loop: a defect, not a refusal by Kafka

    def _still_taking_over(self, partitions: list[TopicPartition], rebuild: int) -> list[TopicPartition]:
        """Those of `partitions` that no rebalance has taken away (or given again) since take-over `rebuild`."""
        return [tp for tp in partitions if self._rebuilt_at.get(tp) == rebuild]

    async def _take_over(self, partitions: list[TopicPartition], rebuild: int) -> None:
        """Restore, then send the partitions back to their checkpoint; tried again while Kafka refuses."""
        async for attempt in while_down("Kafka (sla take-over)", KafkaError, first_wait_s=TAKE_OVER_RETRY_S):
            with attempt:
                if not (partitions := self._still_taking_over(partitions, rebuild)):
                    return
                if not (partitions := await self._resume(partitions, rebuild)):
                    return
                try:
                    await self._restore(partitions, rebuild)
                except KafkaError:
                    self.timekeeper.forget_partitions({tp.partition for tp in partitions})
                    raise

    async def _resume(self, partitions: list[TopicPartition], rebuild: int) -> list[TopicPartition]:
        """Go on with the partitions kept through the rebalance that nobody else wrote for meanwhile, from where
        this worker was; returns the others, to be restored."""
        back = [tp for tp in partitions if tp in self._suspended]
        if not back:
            return partitions
        ends = await self._written_ends(back)
        # No await from here on: the partitions still ours stay ours until this is done.
        resumed = []
        for tp in self._still_taking_over(back, rebuild):
            if self._suspended.pop(tp) == ends[tp]:
                resumed.append(tp)
            else:  # another worker held it meanwhile: restored from the changelog like any partition taken over
                self._forget([tp])
        for tp in resumed:
            self._consumer.seek(tp, self._next_offset[tp.partition])
        self.changelog.take(tp.partition for tp in resumed)
        self._preparing.difference_update(resumed)
        self._consumer.resume(*resumed)
        if resumed:
            log.info(
                "partitions resumed after a rebalance", extra={"partitions": sorted(tp.partition for tp in resumed)}
            )
        return [tp for tp in partitions if tp not in resumed]

    async def _restore(self, partitions: list[TopicPartition], rebuild: int) -> None:
        """The partitions' live clocks from the local store (once it holds their changelog to its end), what was
        published since, and where to replay tickets.events from. Whatever a rebalance took away meanwhile is left
        alone."""
        began = time.monotonic()
        await self._standby.hand_over(tp.partition for tp in partitions)
        # given up while their changelog was read: the standby follows them on
        self._standby.follow(tp.partition for tp in partitions if tp not in self._held)
        changelog_read = time.monotonic()
        checkpoints: dict[int, Checkpoint] = {}
        for tp in partitions:
            if self._still_taking_over([tp], rebuild):
                checkpoints[tp.partition] = await self._restore_partition(tp, rebuild)
        loaded = time.monotonic()
        published, sla_offsets = await self._published_since(
            {partition: checkpoint.sla_offset for partition, checkpoint in checkpoints.items()}
        )
        ends = await self._consumer.end_offsets(partitions)
        acknowledged = {tp: await self._consumer.committed(tp) for tp in partitions}
        log.info(
            "partitions' clocks loaded",
            extra={
                "partitions": sorted(tp.partition for tp in partitions),
                "changelog_tail_s": round(changelog_read - began, 3),
                "load_s": round(loaded - changelog_read, 3),
                "published_since_s": round(time.monotonic() - loaded, 3),
                "tickets_held": len(self.timekeeper),
                "tickets_asleep": self.timekeeper.asleep,
            },
        )
        # No await from here on: the partitions still ours stay ours until this is done.
        partitions = self._still_taking_over(partitions, rebuild)
        self._published_before |= published
        for tp in partitions:
            checkpoint = checkpoints[tp.partition]
            self._sla_offset[tp.partition] = sla_offsets[tp.partition]
            self._next_offset[tp.partition] = checkpoint.tickets_offset
            self._consumer.seek(tp, checkpoint.tickets_offset)  # below the log start: the earliest (reset policy)
            self._dead_letter_from[tp] = acknowledged[tp] or checkpoint.tickets_offset
            if ends[tp] > checkpoint.tickets_offset:
                self._rebuild_until[tp] = ends[tp]
                self._replayed_sla_offset[tp.partition] = checkpoint.sla_offset
        self.changelog.take(tp.partition for tp in partitions)
        self._catch_up_due.update(tp.partition for tp in partitions)
        self._preparing.difference_update(partitions)
        self._consumer.resume(*partitions)

    async def _rebuilt(self) -> None:
        """Forget the replay targets reached."""
        for tp, end in list(self._rebuild_until.items()):
            if tp in self._rebuild_until and await self._consumer.position(tp) >= end:
                self._rebuild_until.pop(tp, None)
                self._replayed_sla_offset.pop(tp.partition, None)

    async def _restore_partition(self, tp: TopicPartition, rebuild: int) -> Checkpoint:
        """One partition's live tickets from the store's index into the timekeeper, asleep, and how far they reach;
        an empty start (a replay from the beginning) if the store has nothing of it, or clocks it cannot read.
        A ticket is loaded at once if a configuration change came after it was last advanced (it is re-timed in the
        catch-up), or if the index does not say (a store written before it did). A few thousand at a time:
        heartbeats (the group expels a member silent for its session timeout) and the HTTP API go on meanwhile."""
        partition, store = tp.partition, self.clocks.store
        tickets_offset = store.applied(TICKETS_EVENTS).get(partition)
        if tickets_offset is None or partition in self._whole_replay:
            self._whole_replay.add(partition)
            return Checkpoint()
        agreements, loaded = self.timekeeper.agreements, 0
        try:
            for held, entry in enumerate(self.clocks.hot(partition), start=1):
                if entry.as_of is not None and agreements.next_change_after(entry.as_of) is None:
                    self.timekeeper.rest(entry.ticket_id, partition, entry.next_due)
                elif (state := self.clocks.load(entry.ticket_id)) is not None:
                    self.timekeeper.restore(state, partition)
                    loaded += 1
                if held % LOADED_BETWEEN_YIELDS == 0:
                    await asyncio.sleep(0)
                    if not self._still_taking_over([tp], rebuild):
                        break  # given up meanwhile: what was loaded is forgotten with it
        except UnreadableSnapshot as error:
            log.warning("replaying a partition's history instead", extra={"partition": partition, "why": str(error)})
            self.timekeeper.forget_partitions({partition})
            self._whole_replay.add(partition)
            return Checkpoint()
        finally:
            RESTORED.inc(loaded)
        return Checkpoint(tickets_offset, store.applied(SLA_EVENTS).get(partition, 0))

    async def _published_since(self, since: dict[int, int]) -> tuple[set[uuid.UUID], dict[int, int]]:
        """Ids of the sla events published from the given offsets on, per partition of sla.events, and the offset
        each partition was read to."""
        ids: set[uuid.UUID] = set()
        read_to = dict(since)
        async for record in self._read(SLA_EVENTS, since):
            if (event_id := _event_id(record.value)) is not None:
                ids.add(event_id)
            read_to[record.partition] = record.offset + 1
        return ids, read_to

    async def _read(self, topic: str, since: dict[int, int]) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        """Every record of the given partitions of `topic` from the given offsets to the end they have now."""
        reader = self._history_reader()
        await reader.start()
        try:
            since_tps = {TopicPartition(topic, partition): offset for partition, offset in since.items()}
            async for record in records_to_end(reader, since_tps):
                yield record
        finally:
            await reader.stop()

    async def _save(self) -> None:
        """The clocks of the tickets that changed, then how far each partition is, written to the store; the
        changelog writes them on. Tickets whose clocks are all settled then leave memory (the store has them).

        A few thousand tickets per write, yielding between (heartbeats go on), the offsets in the last: a process
        killed in between keeps clocks newer than its offsets say, and reading the input again from there changes
        nothing it holds."""
        changed = self.timekeeper.take_changed()
        reflected = {
            partition: (offset, self._replayed_sla_offset.get(partition, self._sla_offset.get(partition, 0)))
            for partition, offset in self._next_offset.items()
        }
        settled = []
        for start in range(0, max(len(changed), 1), SAVED_PER_WRITE):
            changes = Changes()
            keys: dict[int, list[bytes]] = {}
            for partition, state in changed[start : start + SAVED_PER_WRITE]:
                keys.setdefault(partition, []).append(self.clocks.save(changes, partition, state))
                if is_settled(state):
                    settled.append(state.ticket_id)
            if start + SAVED_PER_WRITE >= len(changed):
                for partition, (offset, sla_offset) in reflected.items():
                    changes.applied(TICKETS_EVENTS, partition, offset)
                    changes.applied(SLA_EVENTS, partition, sla_offset)
            self.clocks.store.write(changes)
            for partition, written in keys.items():
                self.changelog.changed(partition, written)
            if start + SAVED_PER_WRITE < len(changed):
                await asyncio.sleep(0)
        loaded, self._loaded = self._loaded, set()
        settled.extend(t for t in loaded if (held := self.timekeeper.ticket(t)) is not None and is_settled(held))
        self.timekeeper.forget(settled)

    async def _carry_out(self, decided: list[SlaEvent]) -> None:
        """What a batch decided: the partitions where a ticket's clocks could not be read are started over first,
        and nothing of theirs is published; the rest is."""
        if unreadable := self.timekeeper.take_unreadable():
            self._start_over(unreadable)
        await self._publish(decided)

    async def _publish(self, events: list[SlaEvent]) -> None:
        """Publish what was decided, but nothing of a partition given up meanwhile: its next owner decides that
        again from the log (and should it come back here, it is restored: its clocks in memory reflect what was not
        published). A revocation waits for this (`between_decisions`), so that the next owner, which reads what
        was published before it takes over, sees every event sent from here. Nor anything of a partition being
        prepared, as one started over is (`_carry_out`)."""
        sent, unsent = [], set[TopicPartition]()
        published_at = time.time()
        for event in events:
            if event.event_id in self._published_before:
                SUPPRESSED.inc()
                continue
            partition = partition_of(event.ticket_id, TICKET_PARTITIONS)  # the producer's, computed once
            tp = TopicPartition(TICKETS_EVENTS, partition)
            if tp not in self._held or tp in self._preparing:
                unsent.add(tp)
                continue
            key = event.ticket_id.encode()
            sent.append(await self._producer.send(SLA_EVENTS, encode(event), key=key, partition=partition))
            PUBLISHED.labels(event.event_type).inc()
            if event.event_type in ALARMS:
                LATENESS.observe(max(published_at - event.occurred_at.timestamp(), 0))
        self._drop(unsent & self._suspended.keys())
        for written in await asyncio.gather(*sent):
            self._sla_offset[written.partition] = max(self._sla_offset.get(written.partition, 0), written.offset + 1)

    def _start_over(self, partitions: set[int]) -> None:
        """Replay partitions from their beginning: a ticket's clocks in the store could not be read. What was
        decided of them and not yet published is decided again by the replay."""
        tps = {TopicPartition(TICKETS_EVENTS, partition) for partition in partitions} & self._held
        log.warning(
            "replaying partitions from their beginning: clocks in the store cannot be read",
            extra={"partitions": sorted(tp.partition for tp in tps)},
        )
        self.changelog.give_up(tp.partition for tp in tps)
        self._held -= tps
        self._drop(tps)
        self._whole_replay.update(tp.partition for tp in tps)
        self.take_over(tps)


def _event_id(raw: bytes | None) -> uuid.UUID | None:
    """The id of an sla event as published; None for anything else written to sla.events (by another system, or
    poison): there is nothing of ours to keep from publishing twice."""
    try:
        envelope = json.loads(raw or b"")
        return uuid.UUID(envelope["event_id"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
