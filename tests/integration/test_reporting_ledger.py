"""The worklog ledger on a real chDB: filled by migration 010 from worklogs projected before it, then kept by the
projector, so that the hours per client are the same before and after the upgrade and stay exact afterwards."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from reporting import warehouse as warehouse_module
from reporting.business_hours import ClientCalendars
from reporting.projector import Projector
from reporting.reports import HoursPerClientQuery
from reporting.settings import ReportingSettings
from reporting.warehouse import Warehouse
from reporting.worklogs import worklog_rows
from tests.builders import a_worklog_recorded
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
    migrations = ReportingSettings(api_keys_file=Path("unused.json")).clickhouse_migrations_dir
    before_the_ledger = tmp_path / "migrations"
    before_the_ledger.mkdir()
    for migration in sorted(migrations.glob("*.sql"))[:9]:
        shutil.copy(migration, before_the_ledger)
    dsn = f"chdb://{tmp_path / 'chdb'}"
    history = [PRINTER, LAPTOP, VPN, a_worklog_voided(VPN, 3)]

    async def before_the_upgrade() -> None:
        old = Warehouse(dsn, before_the_ledger)
        await old.open()
        # the worklogs table as the projector of that time wrote it, with each worklog's business minutes
        deliveries = [read(event, offset=offset) for offset, event in enumerate(history)]
        worklogs = [row for delivery in deliveries for row in worklog_rows(delivery, ClientCalendars())]
        await old.insert({"worklogs": worklogs})
        await old.close()

    asyncio.run(before_the_upgrade())
    warehouse = Warehouse(dsn, migrations)
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
