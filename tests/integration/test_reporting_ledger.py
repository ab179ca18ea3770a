"""The worklog ledger on a real chDB: filled by migration 010 from worklogs projected before it, then kept by the
projector, so that the hours per client are the same before and after the upgrade and stay exact afterwards."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reporting import warehouse as warehouse_module
from reporting.business_hours import ClientCalendars
from reporting.ledger import LedgerRow
from reporting.projector import Projector
from reporting.reports import HoursPerClientQuery
from reporting.warehouse import _NEWEST_LEDGER_ROWS, Warehouse
from reporting.worklogs import worklog_rows
from tests.builders import a_worklog_recorded
from tests.integration.test_reporting_views import MIGRATIONS
from tests.reporting_events import a_worklog_corrected, a_worklog_voided, read

MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
PRINTER = a_worklog_recorded("T-1", 2, minutes=90)
LAPTOP = a_worklog_recorded("T-2", 2, minutes=45, billable=False)
VPN = a_worklog_recorded("T-3", 2, minutes=30)


def hours(warehouse: Warehouse) -> list[dict[str, Any]]:
    return asyncio.run(warehouse.report(HoursPerClientQuery.model_validate(MARCH))).records()


def test_the_ledger_starts_from_the_worklogs_projected_before_it_and_then_follows_the_projector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warehouse_module, "LOOKUP_CHUNK", 1)  # a lookup of several worklogs takes several queries
    before_the_ledger = tmp_path / "migrations"
    before_the_ledger.mkdir()
    for migration in sorted(MIGRATIONS.glob("*.sql"))[:9]:
        shutil.copy(migration, before_the_ledger)
    dsn = f"chdb://{tmp_path / 'chdb'}"
    history = [PRINTER, LAPTOP, VPN, a_worklog_voided(VPN, 3)]

    async def before_the_upgrade() -> None:
        old = Warehouse(dsn, before_the_ledger)
        await old.open()
        # the worklogs table as the projector of that time wrote it, with each worklog's business minutes
        deliveries = [read(event, offset=offset) for offset, event in enumerate(history)]
        worklogs = [row for delivery in deliveries for row in worklog_rows(delivery, ClientCalendars())]
        await old.insert("worklogs", worklogs)
        await old.close()

    asyncio.run(before_the_upgrade())
    warehouse = Warehouse(dsn, MIGRATIONS)
    assert "010_worklog_ledger" in asyncio.run(warehouse.open())
    try:
        assert hours(warehouse) == [
            {"client_id": "acme", "hours": 2.25, "billable_hours": 1.5, "tickets": 2, "worklogs": 2}
        ]

        corrected = a_worklog_corrected(PRINTER, 3, minutes=60)
        redelivered = [read(PRINTER, offset=0), read(LAPTOP, offset=1)]
        asyncio.run(Projector(warehouse, ClientCalendars()).project([read(corrected, offset=10), *redelivered]))

        assert hours(warehouse) == [
            {"client_id": "acme", "hours": 1.75, "billable_hours": 1.0, "tickets": 2, "worklogs": 2}
        ]
    finally:
        asyncio.run(warehouse.close())


def test_ledger_rows_are_looked_up_as_they_were_written(tmp_path: Path) -> None:
    """A row that goes back as a cancelling row is the one read: every column's extremes, and text of several
    bytes a character, come back from ClickHouse as they went in (moments to the millisecond, which is what the
    column keeps, and in UTC; the last millisecond before the contract's latest moment not a second late)."""
    rows = [
        LedgerRow(
            client_id="acme",
            ticket_id="T-1",
            worklog_id=uuid.uuid4(),
            aggregate_version=2,
            sign=1,
            technician_id="tech-1",
            performed_at=datetime(2026, 3, 2, 9, 30, 15, 123_456, tzinfo=UTC),
            billable=True,
            minutes=90,
            business_minutes=75,
            event_id=uuid.uuid4(),
            partition=0,
            offset=0,
        ),
        LedgerRow(
            client_id="clínica-" + "ß" * 100,
            ticket_id="T-" + "9" * 126,
            worklog_id=uuid.UUID(int=2**128 - 1),
            aggregate_version=2**32 - 1,
            sign=-1,
            technician_id="",
            performed_at=datetime(1900, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC),
            billable=False,
            minutes=-(2**31),
            business_minutes=2**31 - 1,
            event_id=uuid.UUID(int=1),
            partition=2**16 - 1,
            offset=2**64 - 1,
        ),
        LedgerRow(
            client_id="initech",
            ticket_id="T-3",
            worklog_id=uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"),
            aggregate_version=7,
            sign=0,
            technician_id="t" * 128,
            performed_at=datetime(8999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            billable=True,
            minutes=0,
            business_minutes=0,
            event_id=uuid.UUID("ffeeddcc-bbaa-9988-7766-554433221100"),
            partition=7,
            offset=123_456_789_012,
        ),
    ]
    warehouse = Warehouse(f"chdb://{tmp_path / 'chdb'}", MIGRATIONS)

    async def written_and_read() -> dict[uuid.UUID, LedgerRow]:
        await warehouse.open()
        try:
            await warehouse.insert_ledger_rows(rows)
            return await warehouse.newest_ledger_rows([row.worklog_id for row in rows])
        finally:
            await warehouse.close()

    read_back = asyncio.run(written_and_read())

    to_the_millisecond = [
        row._replace(performed_at=row.performed_at.replace(microsecond=row.performed_at.microsecond // 1000 * 1000))
        for row in rows
    ]
    assert [read_back[row.worklog_id] for row in rows] == to_the_millisecond


#: Ledger rows enough for many granules (8,192 rows each): on a table of one granule ClickHouse reads the table.
MANY_ROWS = 100_000
_MANY_LEDGER_ROWS = f"""
    INSERT INTO worklog_ledger ({", ".join(LedgerRow._fields)})
    SELECT concat('client-', toString(number % 50)), concat('T-', toString(intDiv(number, 6))),
           reinterpretAsUUID(sipHash128(number)), 2, 1, 'tech-1', toDateTime64('2026-03-02 09:00:00', 3, 'UTC'),
           true, 15, 15, generateUUIDv4(), 0, number
    FROM numbers({MANY_ROWS})
"""


def test_the_newest_rows_of_worklogs_are_looked_up_by_worklog_not_by_reading_the_whole_ledger(tmp_path: Path) -> None:
    """The lookup before every batch reads the ledger's projection ordered by worklog (migration 015), also for the
    rows written before that migration: the granules of the worklogs asked for, not every granule's worklog_id."""
    before_the_projection = tmp_path / "migrations"
    before_the_projection.mkdir()
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        if not migration.name.startswith("015_"):
            shutil.copy(migration, before_the_projection)
    dsn = f"chdb://{tmp_path / 'chdb'}"

    async def written_before_the_projection() -> None:
        old = Warehouse(dsn, before_the_projection)
        await old.open()
        await old.select(_MANY_LEDGER_ROWS)
        await old.close()

    asyncio.run(written_before_the_projection())
    warehouse = Warehouse(dsn, MIGRATIONS)

    async def plan_and_rows() -> tuple[str, dict[uuid.UUID, LedgerRow], list[uuid.UUID]]:
        assert await warehouse.open() == ["015_ledger_by_worklog"]
        try:
            asked = [row[0] for row in (await warehouse.select(
                "SELECT reinterpretAsUUID(sipHash128(number)) FROM numbers(3) ORDER BY number"
            )).rows] + [uuid.uuid4()]  # fmt: skip
            plan = await warehouse.select(f"EXPLAIN indexes = 1 {_NEWEST_LEDGER_ROWS}", {"worklog_ids": asked})
            return "\n".join(line for (line,) in plan.rows), await warehouse.newest_ledger_rows(asked), asked
        finally:
            await warehouse.close()

    plan, newest, asked = asyncio.run(plan_and_rows())

    assert "ReadFromMergeTree (by_worklog)" in plan
    granules = [line.split(":")[1].strip() for line in plan.splitlines() if line.strip().startswith("Granules:")]
    read, of = (int(number) for number in granules[-1].split("/"))
    assert of >= MANY_ROWS // 8192 and read <= 3, plan
    assert sorted(newest) == sorted(asked[:3])
    assert [(newest[worklog].ticket_id, newest[worklog].offset) for worklog in asked[:3]] == [
        ("T-0", 0),
        ("T-0", 1),
        ("T-0", 2),
    ]
