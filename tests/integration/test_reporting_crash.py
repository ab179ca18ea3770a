"""Kill -9: the reporting process dies in the middle of a batch and starts again; every total is then exactly the
sum computed from the events themselves (nothing lost, nothing counted twice). And a defect of the service's own
(here, tables out of step with the code) stops the process loudly instead of retrying forever.

The service runs as its own process (`python -m reporting`), as in production; this module also provides that
process to the dashboard's browser test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from deploy.kafka.launcher import free_ports
from tests.builders import T0, a_ticket_created, a_worklog_recorded
from tests.integration.test_reporting_rebuild import publish
from tests.keys import keys_file
from tests.metrics import EVICTED, metric
from tests.polling import eventually
from tests.reporting_events import a_csat, a_worklog_corrected, a_worklog_voided
from ticketstream_shared.contract import Envelope, WorklogCorrected, WorklogRecorded, WorklogVoided
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.auth import write_dev_keys

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
RUN = uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class Reporting:
    url: str
    manager_key: str
    consumer_group: str
    process: subprocess.Popen[bytes]

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(
            f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {self.manager_key}"}, timeout=10
        )


@contextmanager
def reporting_process(
    kafka_bootstrap: str,
    local: Path,
    *,
    batch_size: int = 20_000,
    port: int | None = None,
    **environment_overrides: str,
) -> Iterator[Reporting]:
    """`python -m reporting` on `port` (else a free one), with its data under `local` (and any other environment
    variables given); stopped with SIGTERM on exit (if it is still alive). Its log is local/reporting.log."""
    dev_keys, api_keys = write_dev_keys(local)
    port = port or free_ports(1)[0]
    group = f"reporting-{local.name}"
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "API_KEYS_FILE": str(api_keys),
        "CHDB_PATH": str(local / "clickhouse"),
        "HTTP_PORT": str(port),
        "CONSUMER_GROUP": group,
        "BATCH_SIZE": str(batch_size),
        "BATCH_MAX_WAIT_SECONDS": "0.2",
        **environment_overrides,
    }
    with (local / "reporting.log").open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reporting"], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    service = Reporting(f"http://127.0.0.1:{port}", json.loads(dev_keys.read_text())["manager"], group, process)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"reporting exited; see {local / 'reporting.log'}"
            try:
                return httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, timeout_s=90, interval_s=0.2, what="reporting ready")
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def a_busy_month(tickets: int, seed: int) -> list[Envelope]:
    """Tickets of three clients, each with worklogs, some corrected, some voided, on days across March."""
    chance = random.Random(seed)
    events: list[Envelope] = []
    for number in range(tickets):
        client = f"{('acme', 'globex', 'initech')[number % 3]}-{RUN}"
        ticket = a_ticket_created(f"T-{RUN}-{number}", client)
        events.append(ticket)
        version = 1
        for _ in range(chance.randint(1, 6)):
            version += 1
            performed_at = T0 + timedelta(days=chance.randint(0, 20), minutes=chance.randint(0, 600))
            worklog = a_worklog_recorded(ticket.ticket_id, version, chance.randint(5, 240), client,
                                         billable=chance.random() < 0.7, performed_at=performed_at)  # fmt: skip
            events.append(worklog)
            if chance.random() < 0.2:
                version += 1
                events.append(a_worklog_corrected(worklog, version, minutes=chance.randint(5, 240)))
            elif chance.random() < 0.1:
                version += 1
                events.append(a_worklog_voided(worklog, version))
    return events


def expected_hours(events: list[Envelope]) -> dict[str, tuple[float, float, int]]:
    """Per client, from the events alone: (hours, billable hours, worklogs), the newest version of each worklog
    counting and voided ones not."""
    newest: dict[uuid.UUID, Envelope] = {}
    for event in events:
        if isinstance(event, WorklogRecorded | WorklogCorrected | WorklogVoided):
            worklog_id = event.data.worklog_id
            if worklog_id not in newest or newest[worklog_id].aggregate_version < event.aggregate_version:
                newest[worklog_id] = event
    totals: dict[str, list[int]] = {}
    for event in newest.values():
        if isinstance(event, WorklogVoided):
            continue
        assert isinstance(event, WorklogRecorded | WorklogCorrected)
        minutes, billable, count = totals.setdefault(event.client_id, [0, 0, 0])
        totals[event.client_id] = [minutes + event.data.minutes, billable + event.data.minutes * event.data.billable,
                                   count + 1]  # fmt: skip
    return {client: (round(m / 60, 2), round(b / 60, 2), n) for client, (m, b, n) in sorted(totals.items())}


def reported_hours(service: Reporting) -> dict[str, tuple[float, float, int]]:
    rows = service.get("/v1/reports/hours-per-client", **{"from": "2026-03-01", "to": "2026-03-31"}).json()["rows"]
    return {
        row["client_id"]: (row["hours"], row["billable_hours"], row["worklogs"])
        for row in rows
        if RUN in row["client_id"]
    }


async def committed_offsets(bootstrap: str, group: str) -> int:
    """How many messages of tickets.events `group` has committed, over all partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(position.offset for partition, position in offsets.items() if partition.topic == TICKETS_EVENTS)
    finally:
        await admin.close()


async def end_offsets(bootstrap: str) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        partitions = [TopicPartition(TICKETS_EVENTS, number) for number in range(TICKET_PARTITIONS)]
        return sum((await reader.end_offsets(partitions)).values())
    finally:
        await reader.stop()


def test_kill_9_in_the_middle_of_a_batch_loses_nothing_and_counts_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = a_busy_month(tickets=3_000, seed=9)
    expected = expected_hours(events)
    asyncio.run(publish(kafka_bootstrap, events))
    total = asyncio.run(end_offsets(kafka_bootstrap))

    with reporting_process(kafka_bootstrap, tmp_path, batch_size=2_000) as service:
        # The backlog goes in batches of 2,000: once the first is committed, the next is being read or inserted.
        committed = eventually(lambda: asyncio.run(committed_offsets(kafka_bootstrap, service.consumer_group)),
                               timeout_s=60, interval_s=0.005, what="a first commit")  # fmt: skip
        service.process.kill()
        service.process.wait(timeout=10)
    assert committed < total, "the kill came too late: everything was committed already"

    with reporting_process(kafka_bootstrap, tmp_path) as service:
        eventually(lambda: reported_hours(service) == expected, timeout_s=120, interval_s=0.5, what="exact totals")
        eventually(lambda: asyncio.run(committed_offsets(kafka_bootstrap, service.consumer_group)) == total)
        assert reported_hours(service) == expected


def test_a_process_started_again_at_its_address_is_taken_into_its_group_without_waiting_for_the_one_that_died(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A container restarted in its pod, on its own disk: the new process would wait for the session of the one that
    died (two minutes here) before the group gave it the partitions, the reports going stale meanwhile. It removes
    that member first (runtime/presence.py), and is ready long before."""
    (port,) = free_ports(1)
    settings = {"SESSION_TIMEOUT_SECONDS": "120", "API_KEYS_FILE": str(keys_file(tmp_path / "test-keys.json"))}
    with reporting_process(kafka_bootstrap, tmp_path, port=port, **settings) as service:
        service.process.kill()
        service.process.wait(timeout=10)
    with reporting_process(kafka_bootstrap, tmp_path, port=port, **settings) as service:
        assert metric(service.url, EVICTED) == 1


def migrations_that_lose_the_csat_table(directory: Path) -> Path:
    """The service's migrations, and then one that drops the table a view of theirs writes csat ratings to: a defect
    of ours (views and tables out of step), which no retry can mend."""
    directory.mkdir()
    for migration in (ROOT / "deploy" / "clickhouse").glob("*.sql"):
        (directory / migration.name).write_text(migration.read_text())
    (directory / "999_a_defect.sql").write_text("DROP TABLE IF EXISTS csat_ratings;\n")
    return directory


def test_a_defect_stops_the_service_loudly_instead_of_retrying_forever(kafka_bootstrap: str, tmp_path: Path) -> None:
    migrations = migrations_that_lose_the_csat_table(tmp_path / "migrations")
    ticket = a_ticket_created(f"T-{RUN}-rated", f"acme-{RUN}")
    log_path = tmp_path / "reporting.log"

    with reporting_process(kafka_bootstrap, tmp_path, CLICKHOUSE_MIGRATIONS_DIR=str(migrations)) as service:
        asyncio.run(
            publish(kafka_bootstrap, [ticket, a_csat(ticket.ticket_id, 2, rating=5, client_id=ticket.client_id)])
        )
        eventually(lambda: service.process.poll() is not None, timeout_s=60, interval_s=0.2, what="reporting to stop")

    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line["level"] == "CRITICAL"]
    assert stopped and stopped[0]["message"] == "reporting-consumer stopped; stopping the service", stopped
    assert "csat_ratings" in stopped[0]["exc_info"] and "UNKNOWN_TABLE" in stopped[0]["exc_info"]
    assert not [line for line in lines if "trying again" in line["message"] and "ClickHouse" in line["message"]]
