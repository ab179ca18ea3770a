"""The reporting tables in ClickHouse (a server, or chDB in-process) through clickhouse-connect.

Every call, opening the client included, runs on one dedicated thread: chDB hosts a single engine per process and
its handle must not be used concurrently, and the event loop (HTTP and the Kafka consumer) must never wait on a
query. Callers await; calls run one after another in the order they were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import uuid
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError, error_name_from_body
from prometheus_client import Histogram

from ticketstream_shared.runtime.consumer import Delivery
from ticketstream_shared.runtime.retry import while_down

from .inbox import INBOX_COLUMNS, deduplication_token, inbox_rows
from .ledger import LedgerRow
from .migrations import apply_migrations, read_migrations
from .queries import NO_SERVICES, Services, statement_for
from .reports import Report, ReportQuery, ReportsUnavailable

T = TypeVar("T")

#: Moments go to ClickHouse as what a DateTime64(3) column stores (every moment column of these tables is one), a
#: count of milliseconds since the Unix epoch, computed here in integers: clickhouse-connect computes it from
#: `datetime.timestamp()`, a float, which lands a second late for moments after about the year 2242
#: (8999-12-31 23:59:59.999999 was stored as 9000-01-01 00:00:00.999).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)

#: A worklog's newest ledger row: the newest version applied, and of it the row that counts if there is one.
#: Filtered on worklog_id alone, which ClickHouse reads from the ledger's projection ordered by it (migration 015):
#: the granules of the worklogs asked for, not the ledger's whole worklog_id column.
#: Worklog ids per lookup: as many as fit in the URL that carries a ClickHouse server's query parameters (1 MiB by
#: default; 15,000 UUIDs take about 700 kB).
LOOKUP_CHUNK = 15_000
_NEWEST_LEDGER_ROWS = f"""
    SELECT {", ".join(f"argMax({column}, (aggregate_version, sign))" for column in LedgerRow._fields)}
    FROM worklog_ledger
    WHERE worklog_id IN {{worklog_ids:Array(UUID)}}
    GROUP BY worklog_id
"""

_AS_NUMBER = attrgetter("int")

#: Timed on the ClickHouse thread, so that a call queued behind another batch's is not counted twice.
PROJECTION_SECONDS = Histogram(
    "ticketstream_reporting_insert_seconds",
    "Time ClickHouse takes for one part of projecting a batch: its messages, its ledger lookup, its ledger rows",
    ["work"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

#: ClickHouse error codes that say the engine is short of something or lost a peer, not that the statement is
#: wrong: the same statement succeeds once the server has recovered, so it is waited for.
_BUSY_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED: the server was too slow this time
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY: a replicated table that lost its Keeper session
        243,  # NOT_ENOUGH_SPACE: a full disk
        252,  # TOO_MANY_PARTS: inserts faster than merges; the server asks to slow down
        279,  # ALL_CONNECTION_TRIES_FAILED
        319,  # UNKNOWN_STATUS_OF_INSERT: the connection broke during an insert (a replay is deduplicated)
        394,  # QUERY_WAS_CANCELLED: by a server shutting down (this code never cancels its queries)
        999,  # KEEPER_EXCEPTION
    }
)


def clickhouse_is_down(error: BaseException) -> bool:
    """Whether `error`, raised by clickhouse-connect (HTTP or chDB), means ClickHouse is down or overloaded, and the
    same call will succeed later. The one list of it: the projector and the start-up wait while it holds, reports
    answer 503. Everything else clickhouse-connect raises says the code is wrong, and trying again would fail the
    same way: SQL or tables that do not match the code (DatabaseError of any other code, e.g. 60 UNKNOWN_TABLE, 16
    NO_SUCH_COLUMN_IN_TABLE), rows that do not fit their columns (DataError, raised before anything is sent), a
    client used closed or not open (ProgrammingError).

    - OperationalError: the HTTP transport failed (connection refused or reset, a timeout) or the server answered
      429/503/504 after the client's own retries (driver/_backend/http_sync.py, httpcommon.build_http_error), and
      its subclass StreamFailureError, a result stream broken off (HTTP or chDB).
    - DatabaseError with a code of _BUSY_CODES: chDB wraps every engine error, and the HTTP client every error the
      server answers, as DatabaseError(code=...) (driver/_backend/chdb_backend.py, _wrap_exception).
    - chDB's directory locked by another process (one process only may open it, e.g. the previous instance still
      stopping): clickhouse-connect raises ProgrammingError without a code, only its message tells.
    """
    if isinstance(error, OperationalError):
        return True
    if isinstance(error, ProgrammingError):
        message = str(error)
        return error_name_from_body(message) == "CANNOT_OPEN_FILE" and "Another server instance" in message
    return isinstance(error, DatabaseError) and error.code in _BUSY_CODES


class Warehouse:
    """The reporting tables, behind the single ClickHouse thread."""

    def __init__(self, dsn: str, migrations_dir: Path, *, database: str | None = None) -> None:
        self._dsn = dsn
        self._migrations_dir = migrations_dir
        self._database = database
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Client | None = None
        self._closed = False

    async def _on_thread(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    @property
    def _open_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the warehouse is not open")
        return self._client

    async def open(self) -> list[str]:
        """Connect and bring the schema up to date; returns the migrations applied now."""
        return await self._on_thread(self._open)

    async def open_when_reachable(self, stopping: asyncio.Event, max_delay_s: float = 5.0) -> bool:
        """Open, trying again while ClickHouse is down (services wait for ClickHouse as for Kafka, instead of exiting
        and taking `make run`'s other processes down with them); False if told to stop first."""

        async def wait_unless_stopping(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), seconds)

        async def open_unless_stopping() -> bool:
            if stopping.is_set():
                return False
            await self.open()
            return True

        opening = while_down("ClickHouse", clickhouse_is_down, longest_wait_s=max_delay_s, sleep=wait_unless_stopping)
        return await opening(open_unless_stopping)

    def _open(self) -> list[str]:
        self._client = clickhouse_connect.get_client(dsn=self._dsn, database=self._database)
        # clickhouse-connect imports pandas, if there is one (chDB's dependency), on a client's first insert, to ask
        # whether the rows are a DataFrame: 1.5 s on this thread in the middle of the first batch with worklogs,
        # which every batch after it waited for. Here it is part of opening, before the service is ready.
        with contextlib.suppress(ImportError):
            importlib.import_module("pandas")
        return apply_migrations(self._client, read_migrations(self._migrations_dir))

    async def close(self) -> None:
        """Idempotent, so that a failure half-way through opening can be cleaned up like a success."""
        if self._closed:
            return
        await self._on_thread(self._close)
        self._thread.shutdown()
        self._closed = True

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def ping(self) -> bool:
        return await self._on_thread(lambda: self._client is not None and self._client.ping())

    async def insert_messages(self, deliveries: Sequence[Delivery]) -> None:
        """One insert of the messages into inbox, whose views fill the tables; repeated whole (its outcome unknown
        after a broken connection), it is recognised by its deduplication token and adds nothing."""
        await self._on_thread(self._insert_messages, deliveries)

    @PROJECTION_SECONDS.labels("messages").time()
    def _insert_messages(self, deliveries: Sequence[Delivery]) -> None:
        settings = {
            "insert_deduplicate": 1,
            "insert_deduplication_token": deduplication_token(deliveries),
            "deduplicate_blocks_in_dependent_materialized_views": 1,
        }
        self._open_client.raw_insert("inbox", INBOX_COLUMNS, inbox_rows(deliveries), settings=settings, fmt="RowBinary")

    async def insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> None:
        """One insert of a batch's ledger rows."""
        await self._on_thread(self._insert_ledger_rows, rows)

    @PROJECTION_SECONDS.labels("ledger rows").time()
    def _insert_ledger_rows(self, rows: Sequence[LedgerRow]) -> None:
        self._insert("worklog_ledger", rows)

    async def insert(self, table: str, rows: Sequence[NamedTuple]) -> None:
        """One insert of `rows`, their fields named as the table's columns."""
        await self._on_thread(self._insert, table, rows)

    def _insert(self, table: str, rows: Sequence[NamedTuple]) -> None:
        if not rows:
            return
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for index, value in enumerate(rows[0]):
            if isinstance(value, datetime):
                columns[index] = [(moment - _EPOCH) // _MILLISECOND for moment in columns[index]]
        self._open_client.insert(table, columns, column_names=rows[0]._fields, column_oriented=True)

    async def newest_ledger_rows(self, worklog_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, LedgerRow]:
        """The newest ledger row of each of these worklogs that has one."""
        # Sorted by the number each UUID is (the order UUIDs compare in): 4 ms for 12,000, where comparing the UUIDs
        # themselves (a Python method a comparison) took 25 ms of the event loop a batch.
        return await self._on_thread(self._newest_ledger_rows, sorted(set(worklog_ids), key=_AS_NUMBER))

    @PROJECTION_SECONDS.labels("ledger lookup").time()
    def _newest_ledger_rows(self, worklog_ids: list[uuid.UUID]) -> dict[uuid.UUID, LedgerRow]:
        newest: dict[uuid.UUID, LedgerRow] = {}
        for first in range(0, len(worklog_ids), LOOKUP_CHUNK):
            chunk = worklog_ids[first : first + LOOKUP_CHUNK]
            report = self._select(_NEWEST_LEDGER_ROWS, {"worklog_ids": chunk})
            for values in report.rows:
                row = LedgerRow(*values)
                # clickhouse-connect reads DateTime64 as naive UTC; the row may go back as a cancelling row.
                newest[row.worklog_id] = row._replace(performed_at=row.performed_at.replace(tzinfo=UTC))
        return newest

    async def create_database(self, name: str) -> None:
        await self._on_thread(self._open_client.command, f"CREATE DATABASE IF NOT EXISTS `{name}`")

    async def drop_database(self, name: str) -> None:
        await self._on_thread(self._open_client.command, f"DROP DATABASE IF EXISTS `{name}` SYNC")

    async def swap_tables_with(self, database: str) -> tuple[str, ...]:
        """Exchange every stored table (the MergeTree family; Null tables and views hold nothing) with its namesake
        in `database`; the views keep feeding the tables by name, so from now on they feed the swapped-in ones."""
        return await self._on_thread(self._swap_tables_with, database)

    def _swap_tables_with(self, database: str) -> tuple[str, ...]:
        client = self._open_client
        live = client.query("SELECT currentDatabase()").result_rows[0][0]
        tables = tuple(
            name
            for (name,) in client.query(
                "SELECT name FROM system.tables WHERE database = {database:String} AND engine LIKE '%MergeTree' "
                "AND name != 'schema_migrations' ORDER BY name",
                parameters={"database": database},
            ).result_rows
        )
        for table in tables:
            client.command(f"EXCHANGE TABLES `{live}`.`{table}` AND `{database}`.`{table}`")
        return tables

    async def select(self, sql: str, parameters: dict[str, Any] | None = None) -> Report:
        return await self._on_thread(self._select, sql, parameters)

    def _select(self, sql: str, parameters: dict[str, Any] | None) -> Report:
        result = self._open_client.query(sql, parameters=parameters)
        return Report(tuple(result.column_names), [tuple(row) for row in result.result_rows])

    async def report(self, query: ReportQuery, services: Services = NO_SERVICES) -> Report:
        """Raises ReportsUnavailable while ClickHouse is down (the caller answers 503), and anything else as is."""
        try:
            return await self.select(*statement_for(query, services))
        except Exception as error:
            if clickhouse_is_down(error):
                raise ReportsUnavailable(f"ClickHouse does not answer: {type(error).__name__}") from error
            raise
