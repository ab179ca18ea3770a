"""Projects tickets.events, sla.events and assignment.events into the reporting tables, one batch at a time.

The shared EventConsumer reads, validates (inbox.decoders) and dead-letters what is not an event; it commits a batch
only once project() has returned, that is once the batch is in ClickHouse. A batch goes to ClickHouse as the
messages read, in one insert, and ClickHouse's views fill the tables (inbox.py). Python computes only the worklog
ledger, which needs each worklog's history and its client's calendar (ledger.py, worklogs.py). A crash therefore means
redelivery, never loss, and redelivery never double-counts: the tables collapse redelivered rows by key, an insert
repeated whole is recognised by its deduplication token, and the ledger skips the worklog versions it holds already.

Failures are told apart. An event whose version the tables cannot hold, or whose message ClickHouse refuses (found by
bisecting its batch), is handed back with the reason, and the consumer dead-letters it while the rest of its batch
lands. ClickHouse down is waited for (warehouse.clickhouse_is_down). Anything else is a defect of ours, raised so that
the service stops (runtime/supervision.py) instead of retrying it forever and stalling the partition.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol, TypeVar

from clickhouse_connect.driver.exceptions import DatabaseError

from ticketstream_shared.contract import InvalidEvent
from ticketstream_shared.runtime.consumer import Delivery, Rejections
from ticketstream_shared.runtime.retry import while_down
from ticketstream_shared.runtime.throughput import THROUGHPUT

from .business_hours import ClientCalendars
from .inbox import Arrival
from .ledger import LedgerRow, ledger_rows_of
from .warehouse import clickhouse_is_down
from .worklogs import WorklogRow, worklog_rows

T = TypeVar("T")

#: Batches a Projector is given at once: ClickHouse inserts one batch's messages while the one before writes its
#: ledger rows (and the service reads the next meanwhile). More measured the same.
BATCHES_IN_HAND = 2

#: More than the objects of the batches in hand and the one being read (three of up to 20,000 events, about ten
#: objects each), which all die by their reference counts: with the shared threshold, collections walked them over
#: and over, freeing nothing (1.1 s of a 6.4 s projection; measured, 32k events/s -> 36k, see docs/benchmarks.md).
YOUNG_OBJECTS_BEFORE_A_COLLECTION = 1_000_000

#: While ClickHouse is down, try again after this long, doubling up to the cap.
FIRST_RETRY_SECONDS = 0.5
LAST_RETRY_SECONDS = 30.0

#: The largest version the tables hold: aggregate_version is a UInt32 in every table, and the ticket tables collapse
#: redelivered rows by it (deploy/clickhouse). The contract bounds it from below only.
LARGEST_VERSION = 2**32 - 1

#: ClickHouse error codes that say a message holds a value the tables cannot take (e.g. a number beyond its column's
#: type, accurateCast in the views): the same message fails every time, the others of its batch do not.
_REFUSED_MESSAGE_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE: accurateCast of a value its type cannot hold
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        376,  # CANNOT_PARSE_UUID
        395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    }
)


def refuses_a_message(error: BaseException) -> bool:
    """Whether ClickHouse refused an insert of messages for a value in one of them (not for being down, and not for
    SQL that does not match the tables, which would refuse every message alike: a defect)."""
    return isinstance(error, DatabaseError) and error.code in _REFUSED_MESSAGE_CODES


def _reason(error: BaseException) -> str:
    """ClickHouse's error text on one line, as the dead-letter reason."""
    return " ".join(str(error).split())[:1000]


class RowStore(Protocol):
    """Where the messages and ledger rows go, and what the ledger holds: the Warehouse, or a fake in tests."""

    async def insert_messages(self, deliveries: Sequence[Delivery]) -> None:
        """One insert of the messages into inbox, whose views fill the tables."""
        ...

    async def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> None: ...

    async def newest_ledger_rows(self, worklog_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, LedgerRow]:
        """The newest ledger row of each of these worklogs that has one."""
        ...


def too_new_to_store(delivery: Delivery) -> str | None:
    """Why the tables cannot hold this event's version, if they cannot."""
    arrival: Arrival = delivery.event
    version = arrival.event.aggregate_version
    if version is not None and version > LARGEST_VERSION:
        return f"aggregate_version: {version} is more than the tables hold ({LARGEST_VERSION})"
    return None


class Projector:
    """The batch handler of the reporting consumer, and of rebuild."""

    def __init__(
        self, store: RowStore, calendars: ClientCalendars, *, first_retry_seconds: float = FIRST_RETRY_SECONDS
    ) -> None:
        self._store = store
        self._calendars = calendars
        self._first_retry_seconds = first_retry_seconds
        #: Set once the batch handed over last has written its ledger rows (or will write none).
        self._ledger_written = asyncio.Event()
        self._ledger_written.set()

    async def _while_down(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call`, tried again while ClickHouse is down rather than raised: raising would stop the service, and
        skipping would commit events that never reached the tables. On shutdown the wait is cancelled."""
        waiting = while_down(
            "ClickHouse",
            clickhouse_is_down,
            first_wait_s=self._first_retry_seconds,
            longest_wait_s=LAST_RETRY_SECONDS,
        )
        async for attempt in waiting:
            with attempt:
                return await call()
        raise AssertionError("while_down retries until the call succeeds or raises")

    async def project(self, batch: list[Delivery]) -> Rejections:
        """Insert every event of `batch` that can be projected; returns once they are stored, with the events that
        cannot be and why (the consumer dead-letters them). The ledger rows are computed after the messages are in,
        from the ledger as it is then (read again on a retry, since it may hold some of them by then).

        The next batch may be handed over before this one is done (BATCHES_IN_HAND): its messages are inserted
        meanwhile, but its ledger rows are looked up only once this batch's are written, since they may apply on top
        of them (a worklog recorded in this batch and corrected in the next)."""
        ledger_written_before = self._ledger_written
        ledger_written = self._ledger_written = asyncio.Event()
        try:
            rejections = await self._project(batch, ledger_written_before)
        finally:
            # Also on failure or cancellation: the batches after this one are not committed before it is, and if it
            # is delivered again, it applies what it holds on top of whatever they wrote (the ledger is order-free).
            ledger_written.set()
        THROUGHPUT.processed(len(batch))
        return rejections

    async def _project(self, batch: list[Delivery], ledger_written_before: asyncio.Event) -> Rejections:
        refused: Rejections = []
        storable: list[Delivery] = []
        worklogs: dict[int, list[WorklogRow]] = {}  # id of the delivery -> its worklog versions
        for delivery in batch:
            try:
                if (reason := too_new_to_store(delivery)) is not None:
                    raise InvalidEvent(reason)
                worklogs[id(delivery)] = worklog_rows(delivery, self._calendars)
            except InvalidEvent as error:
                refused.append((delivery, error.reason))
            else:
                storable.append(delivery)
        refused_by_clickhouse = await self._insert_messages(storable)
        for delivery, _ in refused_by_clickhouse:
            del worklogs[id(delivery)]
        await ledger_written_before.wait()
        if versions := [row for rows in worklogs.values() for row in rows]:
            await self._while_down(lambda: self._insert_ledger_rows(versions))
        return refused + refused_by_clickhouse

    async def _insert_messages(self, deliveries: Sequence[Delivery]) -> Rejections:
        """Insert `deliveries`; if ClickHouse refuses a value in one, halve and try again until the messages it
        refuses are alone, and hand those back with ClickHouse's reason."""
        if not deliveries:
            return []
        try:
            await self._while_down(lambda: self._store.insert_messages(deliveries))
        except Exception as error:
            if not refuses_a_message(error):
                raise
            if len(deliveries) == 1:
                return [(deliveries[0], _reason(error))]
            half = len(deliveries) // 2
            return await self._insert_messages(deliveries[:half]) + await self._insert_messages(deliveries[half:])
        return []

    async def _insert_ledger_rows(self, worklogs: list[WorklogRow]) -> None:
        newest = await self._store.newest_ledger_rows({worklog.worklog_id for worklog in worklogs})
        if ledger := ledger_rows_of(worklogs, newest):
            await self._store.insert_ledger_rows(ledger)
