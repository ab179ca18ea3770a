"""Projects tickets.events, sla.events and assignment.events into the reporting tables, one batch at a time.

The shared EventConsumer reads, decodes and dead-letters what is not an event; it commits a batch only once
project() has returned, that is once the batch is in ClickHouse. A crash therefore means redelivery, never loss,
and redelivery never double-counts: the tables collapse redelivered rows (see processors.py), and the worklog
ledger skips the worklog versions it holds already (see ledger.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from prometheus_client import Histogram

from ticketstream_shared.contract import Envelope, UnknownEventType, decode_event
from ticketstream_shared.contract.topics import ASSIGNMENT_EVENTS, SLA_EVENTS, TICKETS_EVENTS
from ticketstream_shared.runtime.consumer import Decoder, Delivery

from .business_hours import ClientCalendars
from .ledger import LedgerRow, ledger_rows_of
from .processors import Row, WorklogRow, processors

log = logging.getLogger(__name__)

INSERT_SECONDS = Histogram(
    "ticketstream_reporting_insert_seconds",
    "Time to insert one batch of projected rows into ClickHouse",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

#: While ClickHouse refuses a batch, try again after this long, doubling up to the cap.
FIRST_RETRY_SECONDS = 0.5
LAST_RETRY_SECONDS = 30.0

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


def rows_of(batch: Iterable[Delivery], calendars: ClientCalendars) -> dict[str, list[Row]]:
    """The rows of every table for a batch of events, in processors' order, worklogs split by `calendars`;
    tables without rows are left out."""
    deliveries = list(batch)
    rows = {
        table: [row for delivery in deliveries for row in rows_of_one(delivery)]
        for table, rows_of_one in processors(calendars).items()
    }
    return {table: table_rows for table, table_rows in rows.items() if table_rows}


class RowStore(Protocol):
    """Where projected rows go, and what the worklog ledger holds: the Warehouse, or a fake in tests."""

    async def insert(self, rows: Mapping[str, Sequence[Row | LedgerRow]]) -> None: ...

    async def newest_ledger_rows(self, worklogs: Collection[WorklogRow]) -> dict[uuid.UUID, LedgerRow]:
        """The newest ledger row of each of these worklogs that has one."""
        ...


async def stored_rows(
    store: RowStore, batch: list[Delivery], calendars: ClientCalendars
) -> dict[str, Sequence[Row | LedgerRow]]:
    """Everything a batch writes, table by table: the rows of the processors, and the ledger rows of the worklog
    versions the ledger does not hold yet (read from the store now, so call it again for a retry)."""
    rows: dict[str, Sequence[Row | LedgerRow]] = dict(rows_of(batch, calendars))
    worklogs = [row for row in rows.get("worklogs", ()) if isinstance(row, WorklogRow)]
    if worklogs:
        newest = await store.newest_ledger_rows(worklogs)
        if ledger := ledger_rows_of(worklogs, newest):
            rows["worklog_ledger"] = ledger
    return rows


class Projector:
    """The batch handler of the reporting consumer."""

    def __init__(
        self, store: RowStore, calendars: ClientCalendars, *, first_retry_seconds: float = FIRST_RETRY_SECONDS
    ) -> None:
        self._store = store
        self._calendars = calendars
        self._first_retry_seconds = first_retry_seconds

    async def project(self, batch: list[Delivery]) -> None:
        """Insert the rows of every event of `batch`, one insert per table; returns once they are stored.

        A failed insert is retried rather than raised: raising would stop the consumer, and skipping would
        commit events that never reached the tables. A retry computes the rows again, since the ledger may hold
        some of them now. On shutdown the wait is cancelled and nothing is committed.
        """
        retry_in = self._first_retry_seconds
        while True:
            try:
                rows = await stored_rows(self._store, batch, self._calendars)
                with INSERT_SECONDS.time():
                    await self._store.insert(rows)
                return
            except Exception:
                log.exception("ClickHouse refused a batch; trying again", extra={"retry_in_s": retry_in})
                await asyncio.sleep(retry_in)
                retry_in = min(retry_in * 2, LAST_RETRY_SECONDS)
