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
from .queries import statement_for
from .reports import Report, ReportQuery, ReportsUnavailable

T = TypeVar("T")


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

    def _open(self) -> list[str]:
        self._client = clickhouse_connect.get_client(dsn=self._dsn, database=self._database)
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

    async def insert(self, rows: Mapping[str, Sequence[Row]]) -> None:
        """One insert per table, in the order given."""
        await self._on_thread(self._insert, rows)

    def _insert(self, rows: Mapping[str, Sequence[Row]]) -> None:
        client = self._open_client
        for table, table_rows in rows.items():
            if table_rows:
                client.insert(table, table_rows, column_names=table_rows[0]._fields)

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
        try:
            result = self._open_client.query(sql, parameters=parameters)
        except OperationalError as error:
            raise ReportsUnavailable(f"ClickHouse does not answer: {error}") from error
        return Report(tuple(result.column_names), [tuple(row) for row in result.result_rows])

    async def report(self, query: ReportQuery) -> Report:
        return await self.select(*statement_for(query))
