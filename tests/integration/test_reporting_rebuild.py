"""Rebuild: the service projects a help desk's week from all three topics; its tables are then damaged (a table
emptied, as a bad migration or a lost disk would); `rebuild` replays the topics into fresh tables and swaps them
in, and every report shows the same figures as before, while the service's own offsets are left alone."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.structs import TopicPartition
from fastapi.testclient import TestClient

from reporting.api import REPORTS
from reporting.app import build_app
from reporting.inbox import TOPICS_READ
from reporting.rebuild import rebuild
from reporting.settings import ReportingSettings
from tests.builders import a_worklog_recorded
from tests.integration.test_reporting_projection import ADMIN_KEY, KEYS, bearer
from tests.integration.test_reporting_reports import week
from tests.polling import eventually
from tests.reporting_events import topic_of
from ticketstream_shared.contract import Envelope, encode
from ticketstream_shared.contract.topics import TICKET_PARTITIONS
from ticketstream_shared.runtime.kafka import make_producer

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


def of_this_run(event: Envelope, run: str = RUN) -> Envelope:
    """The event for clients and tickets of this run only: other tests share the broker."""
    return event.model_copy(update={"client_id": f"{event.client_id}-{run}", "ticket_id": f"{event.ticket_id}-{run}"})


async def publish(bootstrap: str, events: list[Envelope]) -> None:
    """Each event to its topic, keyed by its ticket, in order, many in flight; returns once all are acknowledged."""
    producer = make_producer(ReportingSettings(kafka_bootstrap_servers=bootstrap, api_keys_file=Path("unused")),
                             client_id="test-writers")  # fmt: skip
    await producer.start()
    try:
        sent = [await producer.send(topic_of(e), value=encode(e), key=e.ticket_id.encode()) for e in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def caught_up(bootstrap: str, group: str) -> bool:
    """Whether `group` has committed every message there is on the three topics reporting reads."""
    partitions = [TopicPartition(topic, n) for topic in TOPICS_READ for n in range(TICKET_PARTITIONS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await reader.end_offsets(partitions)
        # A partition nothing was ever written to has nothing to commit (alone on a fresh broker, some have none).
        return all((committed[p].offset if p in committed else 0) == ends[p] for p in partitions)
    except GroupCoordinatorNotAvailableError:  # a group's first moments on a fresh broker
        return False
    finally:
        await reader.stop()
        await admin.close()


def figures(http: TestClient, run: str = RUN) -> dict[str, list[dict[str, Any]]]:
    """Every report for March, this run's clients only."""
    found = {}
    for name in REPORTS:
        response = http.get(f"/v1/reports/{name}", params=MARCH, headers=bearer(ADMIN_KEY))
        assert response.status_code == 200
        rows = response.json()["rows"]
        found[name] = [row for row in rows if run in row.get("client_id", run)]
    return found


def test_a_rebuild_gives_the_same_figures(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = ReportingSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file=Path("unused-keys-come-from-the-test.json"),
        consumer_group=f"reporting-rebuild-{RUN}",
        batch_max_wait_seconds=0.2,
        chdb_path=tmp_path / "chdb",
    )
    # One worklog the tables cannot hold (its version is past UInt32): the service dead-letters it, and a rebuild
    # must skip it as the service did, not stop on it.
    unstorable = a_worklog_recorded("printer", 2**32, minutes=600, performed_at=week()[0].occurred_at)
    asyncio.run(publish(kafka_bootstrap, [of_this_run(event) for event in [*week(), unstorable]]))
    with TestClient(build_app(settings, KEYS)) as http:
        eventually(
            lambda: asyncio.run(caught_up(kafka_bootstrap, settings.consumer_group)), timeout_s=60, what="caught up"
        )
        before = figures(http)
    assert before["hours-per-client"][0] == {
        "client_id": f"acme-{RUN}", "hours": 4.0, "billable_hours": 2.0, "tickets": 2, "worklogs": 3
    }  # fmt: skip
    assert all(before[name] for name in ("hours-per-client", "sla-compliance", "backlog", "csat"))

    damaged = clickhouse_connect.get_client(dsn=settings.clickhouse_dsn())
    for table in ("worklogs", "sla_clock_events"):
        damaged.command(f"TRUNCATE TABLE {table}")
    damaged.close()
    summary = asyncio.run(rebuild(settings))

    assert summary.events >= len(week())
    assert summary.skipped >= 1
    assert {"worklogs", "tickets", "ticket_events", "sla_clock_events", "csat_ratings"} <= set(summary.tables)
    with TestClient(build_app(settings, KEYS)) as http:
        eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="reporting ready")
        assert figures(http) == before
