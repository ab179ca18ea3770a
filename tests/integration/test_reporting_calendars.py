"""Hours inside and outside each client's own business hours, end to end: calendars and client agreements written
to sla.config as sla writes them, worklogs to tickets.events, and the figures of the hours-per-client report of the
reporting service (its composition root, a real broker, real chDB)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reporting.app import build_app
from reporting.rebuild import rebuild
from reporting.settings import ReportingSettings
from sla.config_log import config_key
from tests.builders import a_ticket_created, a_worklog_recorded
from tests.integration.test_reporting_projection import (
    ADMIN_KEY,
    KEYS,
    REPORT,
    bearer,
    clickhouse,  # noqa: F401 (a fixture)
    message,
    reporting_settings,
)
from tests.polling import eventually
from tests.unit.test_reporting_business_hours import BERLIN, NIGHTS, a_calendar, an_agreement
from ticketstream_shared.contract import Envelope
from ticketstream_shared.contract.sla import SlaConfigEvent
from ticketstream_shared.contract.topics import SLA_CONFIG, TICKETS_EVENTS
from ticketstream_shared.runtime.kafka import make_producer

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
BERLIN_ID, NIGHTS_ID = f"berlin-{RUN}", f"nights-{RUN}"
#: On Berlin office hours from before the service starts; moves to the night shift mid-March, while it runs.
ACME = f"acme-{RUN}"
#: Gets its agreement (night shift) while the service runs, just before its worklogs are recorded.
GLOBEX = f"globex-{RUN}"
#: No agreement: office hours, Monday to Friday 09:00-17:00 UTC.
INITECH = f"initech-{RUN}"
SWITCH = datetime(2026, 3, 16, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


async def _publish(settings: ReportingSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = make_producer(settings, client_id="test-sla-and-intake")
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def config(change: SlaConfigEvent) -> tuple[str, bytes, bytes]:
    """The change as sla's API appends it."""
    return SLA_CONFIG, config_key(change), change.model_dump_json().encode()


def ticket_event(event: Envelope) -> tuple[str, bytes, bytes]:
    return TICKETS_EVENTS, *message(event)


def worklogs(client_id: str, *spans: tuple[datetime, int]) -> list[tuple[str, bytes, bytes]]:
    """A ticket of `client_id` and one worklog per (performed_at, minutes)."""
    ticket = a_ticket_created(client_id=client_id)
    logged = [
        a_worklog_recorded(ticket.ticket_id, version, minutes=minutes, client_id=client_id, performed_at=at)
        for version, (at, minutes) in enumerate(spans, start=2)
    ]
    return [ticket_event(event) for event in (ticket, *logged)]


EXPECTED = {
    ACME: {"hours": 3.5, "business_hours": 2.0, "outside_business_hours": 1.5},
    GLOBEX: {"hours": 11.0, "business_hours": 8.0, "outside_business_hours": 3.0},
    INITECH: {"hours": 2.0, "business_hours": 1.0, "outside_business_hours": 1.0},
}


def split(http: TestClient) -> dict[str, dict[str, float] | None]:
    """Each of this module's clients' March hours, inside and outside business hours (None while it has none)."""
    response = http.get(
        REPORT, params={"from": "2026-03-01", "to": "2026-03-31", "business_hours": "true"}, headers=bearer(ADMIN_KEY)
    )
    assert response.status_code == 200
    columns = ("hours", "business_hours", "outside_business_hours")
    rows = {row["client_id"]: {name: row[name] for name in columns} for row in response.json()["rows"]}
    return {client: rows.get(client) for client in EXPECTED}


def test_hours_are_split_by_each_clients_calendar_in_force_when_the_work_was_done_and_so_by_a_rebuild(
    kafka_bootstrap: str,
    clickhouse: dict[str, Any],  # noqa: F811
) -> None:
    settings = reporting_settings(kafka_bootstrap, clickhouse, group=f"reporting-calendars-{RUN}")
    asyncio.run(
        _publish(
            settings,
            [
                config(a_calendar(BERLIN_ID, **BERLIN)),
                config(a_calendar(NIGHTS_ID, **NIGHTS)),
                config(an_agreement(ACME, BERLIN_ID)),
            ],
        )
    )
    with TestClient(build_app(settings, KEYS)) as http:
        eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="reporting ready")
        asyncio.run(
            _publish(
                settings,
                [
                    config(an_agreement(ACME, NIGHTS_ID, effective_at=SWITCH)),
                    config(an_agreement(GLOBEX, NIGHTS_ID)),
                    # Tuesday 07:30 UTC is 08:30 in Berlin: 60 of 90 minutes inside (before the switch).
                    # Tuesday 21:00-23:00 UTC after the switch: the night shift from 22:00, 60 of 120 inside.
                    *worklogs(ACME, (utc(10, 7, 30), 90), (utc(17, 21), 120)),
                    # Monday 21:00 to Tuesday 07:00: 8 of 10 hours on the night shift; a Tuesday noon hour: none.
                    *worklogs(GLOBEX, (utc(2, 21), 600), (utc(3, 12), 60)),
                    # Office hours UTC: Monday 16:00-18:00, one hour inside.
                    *worklogs(INITECH, (utc(2, 16), 120)),
                ],
            )
        )
        eventually(lambda: split(http) == EXPECTED, what="the split hours")

    asyncio.run(rebuild(settings))  # fresh tables from the topics, sla.config read first

    with TestClient(build_app(settings, KEYS)) as http:
        eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="reporting ready")
        assert split(http) == EXPECTED
