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
from reporting.warehouse import Warehouse
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
