"""The reporting tables in ClickHouse (a server, or chDB in-process) through clickhouse-connect.

Every call, opening the client included, runs on one dedicated thread: chDB hosts a single engine per process and
its handle must not be used concurrently, and the event loop (HTTP and the Kafka consumer) must never wait on a
query. Callers await; calls run one after another in the order they were made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from .migrations import apply_migrations, read_migrations
from .processors import Row
from .reports import Granularity, HoursPerClientQuery, Report, ReportsUnavailable

T = TypeVar("T")

#: How a worklog's performed_at (a UTC DateTime64) falls into a period of the report.
_PERIOD = {
    Granularity.DAY: "toDate(performed_at)",
    Granularity.WEEK: "toMonday(performed_at)",
    Granularity.MONTH: "toStartOfMonth(performed_at)",
}


def hours_per_client_sql(query: HoursPerClientQuery) -> tuple[str, dict[str, Any]]:
    """The SQL and its bound parameters. FINAL: a worklog delivered twice but not merged yet counts once."""
    start, end = query.utc_interval()
    parameters: dict[str, Any] = {"start": start, "end": end}
    keys = ["client_id"]
    period = ""
    if query.granularity is not None:
        period = f"{_PERIOD[query.granularity]} AS period,"
        keys.append("period")
    only_client = ""
    if query.client_id is not None:
        only_client = "AND client_id = {client_id:String}"
        parameters["client_id"] = query.client_id
    sql = f"""
        SELECT
            client_id,
            {period}
            round(sum(minutes) / 60, 2)                 AS hours,
            round(sumIf(minutes, billable) / 60, 2)     AS billable_hours,
            uniqExact(ticket_id)                        AS tickets,
            count()                                     AS worklogs
        FROM worklogs FINAL
        WHERE performed_at >= {{start:DateTime64(3, 'UTC')}}
          AND performed_at < {{end:DateTime64(3, 'UTC')}}
          {only_client}
        GROUP BY {", ".join(keys)}
        ORDER BY {", ".join(keys)}
    """
    return sql, parameters


class Warehouse:
    """The reporting tables, behind the single ClickHouse thread."""

    def __init__(self, dsn: str, migrations_dir: Path) -> None:
        self._dsn = dsn
        self._migrations_dir = migrations_dir
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._client: Client | None = None

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

    def _open(self) -> list[str]:
        self._client = clickhouse_connect.get_client(dsn=self._dsn)
        return apply_migrations(self._client, read_migrations(self._migrations_dir))

    async def close(self) -> None:
        await self._on_thread(self._close)
        self._thread.shutdown()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def ping(self) -> bool:
        return await self._on_thread(lambda: self._client is not None and self._client.ping())

    async def insert(self, rows: Mapping[str, Sequence[Row]]) -> None:
        """One insert per table, in the order given."""
        await self._on_thread(self._insert, rows)

    def _insert(self, rows: Mapping[str, Sequence[Row]]) -> None:
        client = self._open_client
        for table, table_rows in rows.items():
            if table_rows:
                client.insert(table, table_rows, column_names=table_rows[0]._fields)

    async def select(self, sql: str, parameters: dict[str, Any] | None = None) -> Report:
        return await self._on_thread(self._select, sql, parameters)

    def _select(self, sql: str, parameters: dict[str, Any] | None) -> Report:
        try:
            result = self._open_client.query(sql, parameters=parameters)
        except OperationalError as error:
            raise ReportsUnavailable(f"ClickHouse does not answer: {error}") from error
        return Report(tuple(result.column_names), [tuple(row) for row in result.result_rows])

    async def hours_per_client(self, query: HoursPerClientQuery) -> Report:
        return await self.select(*hours_per_client_sql(query))
