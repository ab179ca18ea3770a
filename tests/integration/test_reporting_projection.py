"""The reporting service inside this process, built by its composition root, against a real broker and real
ClickHouse (chDB always; a server too where CLICKHOUSE_URL is set or a Docker engine answers: tests/conftest.py),
asserted through its HTTP API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi.testclient import TestClient

from reporting.app import build_app
from reporting.reports import Report
from reporting.settings import ReportingSettings
from reporting.warehouse import Warehouse, clickhouse_is_down
from tests.builders import T0, a_ticket_created, a_worklog_recorded
from tests.dead_letters import dead_letters, headers
from tests.polling import eventually
from ticketstream_shared.contract import Envelope, Role, TicketStatusChanged, encode
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.auth import ApiKeyEntry, ApiKeys, hash_key
from ticketstream_shared.runtime.kafka import make_producer

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
ACME, GLOBEX = f"acme-{RUN}", f"globex-{RUN}"
ADMIN_KEY, ACME_MANAGER_KEY = "key-admin", "key-acme-manager"
KEYS = ApiKeys(
    [
        ApiKeyEntry(name="admin", sha256=hash_key(ADMIN_KEY), role=Role.ADMIN),
        ApiKeyEntry(name="acme-manager", sha256=hash_key(ACME_MANAGER_KEY), role=Role.MANAGER, client_id=ACME),
    ]
)
REPORT = "/v1/reports/hours-per-client"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
NEXT_MONDAY = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(
    scope="module",
    params=["chdb", "server"],
)
def clickhouse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Settings of a ClickHouse of our own: a fresh chDB directory, or a fresh database on the server."""
    if request.param == "chdb":
        yield {"clickhouse_url": None, "chdb_path": tmp_path_factory.mktemp("chdb")}
        return
    server = request.getfixturevalue("clickhouse_server")
    database = f"reporting_test_{RUN}"
    admin = clickhouse_connect.get_client(dsn=server)
    admin.command(f"CREATE DATABASE {database}")
    try:
        yield {"clickhouse_url": f"{server}/{database}"}
    finally:
        admin.command(f"DROP DATABASE {database}")
        admin.close()


def reporting_settings(bootstrap: str, clickhouse: dict[str, Any], group: str) -> ReportingSettings:
    return ReportingSettings(
        kafka_bootstrap_servers=bootstrap,
        api_keys_file=Path("unused-keys-come-from-the-test.json"),
        consumer_group=group,
        batch_max_wait_seconds=0.2,
        **clickhouse,
    )


def message(event: Envelope) -> tuple[bytes, bytes]:
    """The event as intake writes it: keyed by its ticket."""
    return event.ticket_id.encode(), encode(event)


async def _publish(settings: ReportingSettings, messages: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings, client_id="test-intake")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(TICKETS_EVENTS, value=value, key=key)
    finally:
        await producer.stop()


async def _caught_up(bootstrap: str, group: str) -> bool:
    """Whether `group` has committed every message of tickets.events there is."""
    partitions = [TopicPartition(TICKETS_EVENTS, number) for number in range(TICKET_PARTITIONS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        ends = await reader.end_offsets(partitions)
        return all(committed.get(p) is not None and committed[p].offset == ends[p] for p in partitions)
    finally:
        await reader.stop()
        await admin.close()


def ours(response_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of this module's clients: other tests share the broker and may report on other clients."""
    return [row for row in response_json["rows"] if row["client_id"] in (ACME, GLOBEX)]


def march(http: TestClient) -> list[dict[str, Any]]:
    response = http.get(REPORT, params=MARCH, headers=bearer(ADMIN_KEY))
    assert response.status_code == 200
    return ours(response.json())


EXPECTED_MARCH = [
    {"client_id": ACME, "hours": 2.25, "billable_hours": 1.5, "tickets": 2, "worklogs": 2},
    {"client_id": GLOBEX, "hours": 0.5, "billable_hours": 0.5, "tickets": 1, "worklogs": 1},
]


@dataclass(frozen=True)
class Desk:
    """A help desk's morning, projected: the running service and what was sent to it."""

    http: TestClient
    settings: ReportingSettings
    printer_ticket: str
    printer_worklog: tuple[bytes, bytes]
    unknown_event_id: uuid.UUID
    invalid_key: bytes
    too_new_worklog: uuid.UUID


@pytest.fixture(scope="module")
def desk(kafka_bootstrap: str, clickhouse: dict[str, Any]) -> Iterator[Desk]:
    settings = reporting_settings(kafka_bootstrap, clickhouse, group=f"reporting-test-{RUN}-{uuid.uuid4().hex[:4]}")
    printer, laptop, vpn = (a_ticket_created(client_id=client) for client in (ACME, ACME, GLOBEX))
    printer_worklog = a_worklog_recorded(printer.ticket_id, 2, minutes=90, client_id=ACME)
    printer_resolved = TicketStatusChanged.model_validate(
        {
            **printer.model_dump(include={"ticket_id", "client_id", "producer", "correlation_id"}),
            "event_id": uuid.uuid4(),
            "occurred_at": T0,
            "aggregate_version": 3,
            "data": {"from_status": "new", "to_status": "resolved"},
        }
    )
    laptop_worklog = a_worklog_recorded(
        laptop.ticket_id, 2, minutes=45, client_id=ACME, billable=False, performed_at=NEXT_MONDAY
    )
    vpn_worklog = a_worklog_recorded(vpn.ticket_id, 2, minutes=30, client_id=GLOBEX)
    unknown = {**printer_resolved.model_dump(mode="json"), "event_id": str(uuid.uuid4())}
    unknown.update(event_type="ticket.merged", aggregate_version=4, data={"into": "T-1"})
    invalid_key = f"invalid-{RUN}".encode()
    # A valid event the tables cannot hold (aggregate_version is a UInt32 column), amid the others of its partition:
    # refused with its reason; the rest of its batch lands, and its 4 hours count nowhere.
    too_new_worklog = a_worklog_recorded(vpn.ticket_id, 2**32, minutes=240, client_id=GLOBEX)
    messages = [
        *map(message, (printer, laptop, vpn, printer_worklog)),
        message(printer_worklog),  # redelivered at once: same event, same bytes, likely the same insert
        *map(message, (printer_resolved, laptop_worklog, too_new_worklog, vpn_worklog)),
        (printer.ticket_id.encode(), json.dumps(unknown).encode()),
        (invalid_key, b'{"event_type": "ticket.worklog_recorded", "ticket_id": "T-9"}'),
    ]
    with TestClient(build_app(settings, KEYS)) as http:
        eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="reporting ready")
        asyncio.run(_publish(settings, messages))
        yield Desk(
            http,
            settings,
            printer.ticket_id,
            message(printer_worklog),
            uuid.UUID(unknown["event_id"]),
            invalid_key,
            too_new_worklog.event_id,
        )


def test_hours_per_client_count_a_redelivered_worklog_once(desk: Desk) -> None:
    eventually(lambda: march(desk.http) == EXPECTED_MARCH, what="the March figures")

    # Delivered again after the first copy is stored: the two copies now sit in different parts of the table.
    asyncio.run(_publish(desk.settings, [desk.printer_worklog]))
    eventually(lambda: asyncio.run(_caught_up(desk.settings.kafka_bootstrap_servers, desk.settings.consumer_group)))

    assert march(desk.http) == EXPECTED_MARCH


def test_a_report_by_week_starts_on_monday(desk: Desk) -> None:
    def by_week() -> list[dict[str, Any]]:
        params = {**MARCH, "granularity": "week", "client_id": ACME}
        return ours(desk.http.get(REPORT, params=params, headers=bearer(ADMIN_KEY)).json())

    eventually(lambda: len(by_week()) == 2, what="two weeks of acme")
    assert [(row["period"], row["hours"], row["billable_hours"]) for row in by_week()] == [
        ("2026-03-02", 1.5, 1.5),
        ("2026-03-09", 0.75, 0.0),
    ]


def test_csv_has_a_header_row(desk: Desk) -> None:
    params = {"from": "2026-03-02", "to": "2026-03-02", "client_id": GLOBEX, "format": "csv"}

    def csv_lines() -> list[str]:
        response = desk.http.get(REPORT, params=params, headers=bearer(ADMIN_KEY))
        assert response.headers["content-type"].startswith("text/csv")
        return response.text.splitlines()

    eventually(
        lambda: csv_lines() == ["client_id,hours,billable_hours,tickets,worklogs", f"{GLOBEX},0.5,0.5,1,1"],
        what="the globex CSV",
    )


def test_a_key_scoped_to_a_client_sees_only_that_client(desk: Desk) -> None:
    def scoped() -> list[dict[str, Any]]:
        return desk.http.get(REPORT, params=MARCH, headers=bearer(ACME_MANAGER_KEY)).json()["rows"]

    assert eventually(lambda: scoped() == EXPECTED_MARCH[:1], what="acme's figures only")
    asking_for_globex = {**MARCH, "client_id": GLOBEX}
    assert desk.http.get(REPORT, params=asking_for_globex, headers=bearer(ACME_MANAGER_KEY)).status_code == 403


def test_an_invalid_message_is_dead_lettered_with_its_reason(desk: Desk) -> None:
    reason = eventually(
        lambda: next(
            (
                headers(record)["dlq.reason"]
                for record in dead_letters(desk.settings.kafka_bootstrap_servers, TICKETS_EVENTS)
                if record.key == desk.invalid_key
            ),
            "",
        ),
        what="the dead letter",
    )

    assert "event_id: Field required" in reason


def test_an_event_the_tables_cannot_hold_is_dead_lettered_with_its_reason_and_the_rest_lands(desk: Desk) -> None:
    def parked() -> list[dict[str, str]]:
        letters = dead_letters(desk.settings.kafka_bootstrap_servers, TICKETS_EVENTS)
        return [headers(record) for record in letters if str(desk.too_new_worklog).encode() in (record.value or b"")]

    (letter, *_) = eventually(parked, what="the worklog of version 2**32 in the DLQ")

    assert letter["dlq.reason"] == "aggregate_version: 4294967296 is more than the tables hold (4294967295)"
    assert letter["dlq.consumer"] == "reporting"
    eventually(lambda: march(desk.http) == EXPECTED_MARCH, what="the March figures, without its hours")


def test_clickhouse_short_of_memory_is_down_and_a_missing_table_a_defect(desk: Desk) -> None:
    """The classification against the real engine: what it raises, not what it is thought to raise."""

    async def errors() -> tuple[BaseException, BaseException]:
        warehouse = Warehouse(desk.settings.clickhouse_dsn(), desk.settings.clickhouse_migrations_dir)
        await warehouse.open()
        try:
            with pytest.raises(DatabaseError) as short_of_memory:
                await warehouse.select(
                    "SELECT number % 100000 AS n, count() FROM numbers(1000000) GROUP BY n "
                    "SETTINGS max_memory_usage = 1000"
                )
            with pytest.raises(DatabaseError) as missing:
                await warehouse.select("SELECT count() FROM no_such_table")
            return short_of_memory.value, missing.value
        finally:
            await warehouse.close()

    short_of_memory, missing = asyncio.run(errors())

    assert clickhouse_is_down(short_of_memory), short_of_memory
    assert not clickhouse_is_down(missing), missing


def test_tables_keep_unknown_event_types_and_the_newest_ticket_state(desk: Desk) -> None:
    async def look() -> tuple[Report, Report]:
        warehouse = Warehouse(desk.settings.clickhouse_dsn(), desk.settings.clickhouse_migrations_dir)
        assert await warehouse.open() == [], "the service applied every migration at start-up"
        try:
            raw = await warehouse.select(
                "SELECT event_type, aggregate_version FROM ticket_events FINAL WHERE event_id = {id:UUID}",
                {"id": desk.unknown_event_id},
            )
            ticket = await warehouse.select(
                "SELECT argMaxMerge(status), argMaxMerge(priority), max(aggregate_version) FROM tickets "
                "WHERE ticket_id = {ticket:String} GROUP BY client_id, ticket_id",
                {"ticket": desk.printer_ticket},
            )
            return raw, ticket
        finally:
            await warehouse.close()

    def projected() -> tuple[Report, Report] | None:
        raw, ticket = asyncio.run(look())
        return (raw, ticket) if raw.rows else None

    found = eventually(projected, what="the unknown event")
    assert found is not None
    raw, ticket = found
    assert raw.rows == [("ticket.merged", 4)]
    assert ticket.rows == [("resolved", "P2", 3)]


def test_a_replay_from_the_beginning_changes_no_figure(desk: Desk) -> None:
    """A second group on the same tables reads the whole topic again, as a rebuild or a lost commit would."""
    bootstrap = desk.settings.kafka_bootstrap_servers
    replay = desk.settings.model_copy(update={"consumer_group": f"{desk.settings.consumer_group}-replay"})
    eventually(lambda: march(desk.http) == EXPECTED_MARCH, what="the March figures")

    with TestClient(build_app(replay, KEYS)) as http:
        eventually(lambda: asyncio.run(_caught_up(bootstrap, replay.consumer_group)), timeout_s=60, what="replay")
        assert march(http) == EXPECTED_MARCH

    assert asyncio.run(_caught_up(bootstrap, replay.consumer_group))
