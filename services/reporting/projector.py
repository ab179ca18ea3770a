"""Projects tickets.events, sla.events and assignment.events into the reporting tables, one batch at a time.

The shared EventConsumer reads, decodes and dead-letters what is not an event; it commits a batch only once
project() has returned, that is once the batch is in ClickHouse. A crash therefore means redelivery, never loss,
and redelivery never double-counts: the tables collapse redelivered rows (see processors.py), and the worklog
ledger skips the worklog versions it holds already (see ledger.py).

Failures are told apart. An event that cannot be projected (a processor refuses it with InvalidEvent) is handed
back with the reason, and the consumer dead-letters it while the rest of its batch lands. ClickHouse down is waited
for (warehouse.clickhouse_is_down). Anything else is a defect of ours, raised so that the service stops
(runtime/supervision.py) instead of retrying it forever and stalling the partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from prometheus_client import Histogram

from ticketstream_shared.contract import Envelope, InvalidEvent, UnknownEventType, decode_event
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Decoder, Delivery, Rejections
from ticketstream_shared.runtime.retry import while_down
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .business_hours import ClientCalendars
from .ledger import LedgerRow, ledger_rows_of
from .processors import Row, WorklogRow, processors
from .warehouse import clickhouse_is_down

INSERT_SECONDS = Histogram(
    "ticketstream_reporting_insert_seconds",
    "Time to insert one batch of projected rows into ClickHouse",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

#: While ClickHouse is down, try again after this long, doubling up to the cap.
FIRST_RETRY_SECONDS = 0.5
LAST_RETRY_SECONDS = 30.0

#: The largest version the tables hold: aggregate_version is a UInt32 in every table, and the ticket tables collapse
#: redelivered rows by it (deploy/clickhouse). The contract bounds it from below only; a bigger one would fail the
#: insert of its whole batch, every time it is delivered.
LARGEST_VERSION = 2**32 - 1

#: The topics reporting reads.
TOPICS_READ = (TICKETS_EVENTS, SLA_EVENTS, ASSIGNMENT_EVENTS)


def topic_decoder(topic: str) -> Decoder:
    """The decoder of one topic: the event, or for an event type this contract does not know yet its envelope,
    which the raw table keeps so that a later version can report on it. Raises InvalidEvent (the message goes to
    the DLQ) otherwise."""

    def decode(raw: bytes) -> Envelope:
        try:
            return decode_event(topic, raw)
        except UnknownEventType:
            return Envelope.model_validate_json(raw)

    return decode


def decoders() -> dict[str, Decoder]:
    return {topic: topic_decoder(topic) for topic in TOPICS_READ}


def _check_storable(delivery: Delivery) -> None:
    version = delivery.event.aggregate_version
    if version is not None and version > LARGEST_VERSION:
        raise InvalidEvent(f"aggregate_version: {version} is more than the tables hold ({LARGEST_VERSION})")


def rows_of(batch: Iterable[Delivery], calendars: ClientCalendars) -> dict[str, list[Row]]:
    """The rows of every table for a batch of events, in processors' order, worklogs split by `calendars`;
    tables without rows are left out. Raises InvalidEvent if an event cannot be projected."""
    deliveries = list(batch)
    for delivery in deliveries:
        _check_storable(delivery)
    rows = {
        table: [row for delivery in deliveries for row in rows_of_one(delivery)]
        for table, rows_of_one in processors(calendars).items()
    }
    return {table: table_rows for table, table_rows in rows.items() if table_rows}


def decided_rows(batch: list[Delivery], calendars: ClientCalendars) -> tuple[dict[str, list[Row]], Rejections]:
    """The rows of the events of `batch` that can be projected (as rows_of), and the others with the reason."""
    try:
        return rows_of(batch, calendars), []
    except InvalidEvent:
        pass  # rare: find the events that cannot be projected, one by one
    projectable: list[Delivery] = []
    refused: Rejections = []
    for delivery in batch:
        try:
            rows_of([delivery], calendars)
        except InvalidEvent as error:
            refused.append((delivery, error.reason))
        else:
            projectable.append(delivery)
    return rows_of(projectable, calendars), refused


class RowStore(Protocol):
    """Where projected rows go, and what the worklog ledger holds: the Warehouse, or a fake in tests."""

    async def insert(self, rows: Mapping[str, Sequence[Row | LedgerRow]]) -> None: ...

    async def newest_ledger_rows(self, worklogs: Collection[WorklogRow]) -> dict[uuid.UUID, LedgerRow]:
        """The newest ledger row of each of these worklogs that has one."""
        ...


async def with_ledger_rows(store: RowStore, rows: Mapping[str, Sequence[Row]]) -> dict[str, Sequence[Row | LedgerRow]]:
    """`rows`, and the ledger rows of their worklog versions that the ledger does not hold yet (read from the store
    now, so call it again for a retry)."""
    stored: dict[str, Sequence[Row | LedgerRow]] = dict(rows)
    worklogs = [row for row in rows.get("worklogs", ()) if isinstance(row, WorklogRow)]
    if worklogs:
        newest = await store.newest_ledger_rows(worklogs)
        if ledger := ledger_rows_of(worklogs, newest):
            stored["worklog_ledger"] = ledger
    return stored


class Projector:
    """The batch handler of the reporting consumer."""

    def __init__(
        self, store: RowStore, calendars: ClientCalendars, *, first_retry_seconds: float = FIRST_RETRY_SECONDS
    ) -> None:
        self._store = store
        self._calendars = calendars
        self._first_retry_seconds = first_retry_seconds

    async def project(self, batch: list[Delivery]) -> Rejections:
        """Insert the rows of every event of `batch` that can be projected, one insert per table; returns once they
        are stored, with the events that cannot be and why (the consumer dead-letters them).

        While ClickHouse is down the insert is retried rather than raised: raising would stop the service, and
        skipping would commit events that never reached the tables. A retry reads the ledger again, since it may
        hold some of the rows now. Any other error is raised. On shutdown the wait is cancelled and nothing is
        committed.
        """
        rows, refused = decided_rows(batch, self._calendars)
        waiting = while_down(
            "ClickHouse",
            clickhouse_is_down,
            first_wait_s=self._first_retry_seconds,
            longest_wait_s=LAST_RETRY_SECONDS,
        )
        async for attempt in waiting:
            with attempt:
                stored = await with_ledger_rows(self._store, rows)
                with INSERT_SECONDS.time():
                    await self._store.insert(stored)
        THROUGHPUT.processed(len(batch))
        return refused
