"""Rebuild: replay every topic from the beginning into fresh tables, then swap them in for the live ones.

    python -m reporting rebuild        (same environment as the service)

The fresh tables live in a database of their own, created with the same migrations. sla.config is read first (the
calendars that split worked hours, see business_hours.py), then the replay reads every partition from its first
offset up to the end it had when the rebuild began, outside any consumer group, so the service's committed offsets
stay as they are. Then each stored table is exchanged with its live namesake
(EXCHANGE TABLES, atomic per table), and what was written after the rebuild began is replayed once more into the
swapped-in tables, so nothing the service projected into the old tables meanwhile is missing (with chDB the
service cannot run meanwhile: one process per data directory). The old tables are dropped with that database.
Everything is idempotent: the tables collapse whatever is read twice.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from ticketstream_shared.contract import TOPICS, InvalidEvent
from ticketstream_shared.runtime.consumer import Decoder, Delivery, Rejections
from ticketstream_shared.runtime.kafka import batches_to_end, make_consumer, start_when_reachable
from ticketstream_shared.runtime.memory import tune_garbage_collection

from .business_hours import ClientCalendars
from .inbox import decoders
from .projector import BATCHES_IN_HAND, YOUNG_OBJECTS_BEFORE_A_COLLECTION, Projector
from .settings import ReportingSettings
from .sla_config import read_changes
from .warehouse import Warehouse

log = logging.getLogger(__name__)

Offsets = Mapping[TopicPartition, int]


@dataclass(frozen=True)
class RebuildSummary:
    events: int
    skipped: int
    tables: tuple[str, ...]
    seconds: float


def _partitions(topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`, as the topic specifications of the contract create them."""
    counts = {spec.name: spec.partitions for spec in TOPICS}
    return [TopicPartition(topic, number) for topic in topics for number in range(counts[topic])]


async def replay(
    consumer: AIOKafkaConsumer, decode: Mapping[str, Decoder], start: Offsets, until: Offsets, batch_size: int
) -> AsyncIterator[tuple[list[Delivery], int]]:
    """Batches of the events between `start` (a partition missing there: its beginning) and `until`, with how
    many messages were not events (they were dead-lettered when the service first read them)."""
    since = {partition: start.get(partition) for partition in until}
    async for records in batches_to_end(consumer, since, until, max_records=batch_size):
        batch: list[Delivery] = []
        skipped = 0
        for record in records:
            try:
                event = decode[record.topic](record.value or b"")
            except InvalidEvent:
                skipped += 1
                continue
            batch.append(Delivery(event, record.topic, record.partition, record.offset, record))
        yield batch, skipped


async def _project(
    warehouse: Warehouse,
    consumer: AIOKafkaConsumer,
    calendars: ClientCalendars,
    start: Offsets,
    until: Offsets,
    batch_size: int,
) -> tuple[int, int]:
    """Replay into `warehouse` through the service's own Projector, given as many batches at once as the service
    gives it while the next is read and validated; returns (events, skipped). An event the projector refuses (the
    service dead-lettered it when it first read it) is skipped, as the service does: the same path, so a rebuild
    gives the service's figures."""
    projector = Projector(warehouse, calendars)
    read = not_events = refused = 0
    in_hand: collections.deque[asyncio.Task[Rejections]] = collections.deque()
    try:
        async for batch, skipped in replay(consumer, decoders(), start, until, batch_size):
            read, not_events = read + len(batch), not_events + skipped
            if len(in_hand) == BATCHES_IN_HAND:
                refused += len(await in_hand.popleft())
            in_hand.append(asyncio.create_task(projector.project(batch)))
        while in_hand:
            refused += len(await in_hand.popleft())
    finally:
        for projecting in in_hand:  # failed: the rest would be projected into tables that are not swapped in
            projecting.cancel()
    return read - refused, not_events + refused


async def rebuild(settings: ReportingSettings) -> RebuildSummary:
    began = time.monotonic()
    tune_garbage_collection(young=YOUNG_OBJECTS_BEFORE_A_COLLECTION)  # as the service projects
    live = Warehouse(settings.clickhouse_dsn(), settings.clickhouse_migrations_dir)
    await live.open()
    fresh_database = f"reporting_rebuild_{int(time.time())}"
    await live.create_database(fresh_database)
    fresh = Warehouse(settings.clickhouse_dsn(), settings.clickhouse_migrations_dir, database=fresh_database)
    consumer = await start_when_reachable(
        lambda: make_consumer(settings, group_id=None, client_id="reporting-rebuild"), "consumer"
    )
    try:
        await fresh.open()
        partitions = _partitions(list(decoders()))
        until = await consumer.end_offsets(partitions)
        calendars = ClientCalendars()  # read after `until`: every calendar change made before the worklogs replayed
        config_read = await read_changes(consumer, calendars, 0)
        events, skipped = await _project(fresh, consumer, calendars, {}, until, settings.batch_size)
        tables = await live.swap_tables_with(fresh_database)
        caught_up = await consumer.end_offsets(partitions)
        await read_changes(consumer, calendars, config_read)
        more, more_skipped = await _project(live, consumer, calendars, until, caught_up, settings.batch_size)
        await live.drop_database(fresh_database)
    finally:
        await consumer.stop()
        await fresh.close()
        await live.close()
    summary = RebuildSummary(events + more, skipped + more_skipped, tables, time.monotonic() - began)
    log.info("rebuilt the reporting tables", extra={"events": summary.events, "tables": list(tables)})
    return summary
