"""Intake against the real broker: the HTTP contract, the events it appends, and a restart that reads them back."""

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from tests.integration.conftest import NEW_TICKET, running_intake
from tests.keys import ADMIN, INTEGRATION, REQUESTER, TECHNICIAN, bearer
from tests.polling import eventually
from ticketstream_shared.contract import TicketCreated, WorklogRecorded, decode_ticket_event
from ticketstream_shared.contract.topics import TICKETS_EVENTS

pytestmark = pytest.mark.integration


def read_events_of(kafka_bootstrap: str, ticket_id: str, count: int) -> list:
    """The ticket's events as other systems see them on tickets.events."""

    async def read() -> list:
        consumer = AIOKafkaConsumer(TICKETS_EVENTS, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        found = []
        try:
            async with asyncio.timeout(20):
                while len(found) < count:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        mine = [r for r in records if r.key == ticket_id.encode()]
                        found += [(r.partition, decode_ticket_event(r.value)) for r in mine]
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def test_a_ticket_and_its_worklog_become_events_in_order(intake, kafka_bootstrap):
    created = intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer(INTEGRATION))
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert (ticket["version"], ticket["status"], ticket["client_id"]) == (1, "new", "acme")

    logged = intake.post(
        f"/v1/tickets/{ticket['id']}/worklogs",
        json={"technician_id": "tech-1", "minutes": 90, "billable": True},
        headers=bearer(TECHNICIAN),
    )
    assert logged.status_code == 201, logged.text
    assert logged.json()["minutes"] == 90

    read = intake.get(f"/v1/tickets/{ticket['id']}", headers=bearer(ADMIN)).json()
    assert (read["version"], read["worklog_minutes"], read["title"]) == (2, 90, NEW_TICKET["title"])

    events = read_events_of(kafka_bootstrap, ticket["id"], 2)
    assert [type(e) for _, e in events] == [TicketCreated, WorklogRecorded]
    assert [e.aggregate_version for _, e in events] == [1, 2]
    assert len({partition for partition, _ in events}) == 1, "a ticket's events share one partition"
    assert events[1][1].data.minutes == 90 and events[0][1].producer == "intake"


def test_a_retried_creation_returns_the_first_response(intake):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = intake.post("/v1/tickets", json=NEW_TICKET, headers={**bearer(INTEGRATION), **key})
    again = intake.post("/v1/tickets", json=NEW_TICKET, headers={**bearer(INTEGRATION), **key})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    reused = intake.post(
        "/v1/tickets", json={**NEW_TICKET, "title": "Something else"}, headers={**bearer(INTEGRATION), **key}
    )
    assert reused.status_code == 409


def test_callers_without_a_key_or_with_the_wrong_client_are_refused(intake):
    assert intake.post("/v1/tickets", json=NEW_TICKET).status_code == 401
    assert intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer("not-a-key")).status_code == 401
    other_client = {**NEW_TICKET, "client_id": "globex"}
    assert intake.post("/v1/tickets", json=other_client, headers=bearer(REQUESTER)).status_code == 403
    own = intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer(REQUESTER))
    assert own.status_code == 201
    worklog = {"technician_id": "tech-1", "minutes": 5, "billable": False}
    refused = intake.post(f"/v1/tickets/{own.json()['id']}/worklogs", json=worklog, headers=bearer(REQUESTER))
    assert refused.status_code == 403


def test_bad_bodies_get_field_level_messages(intake):
    answer = intake.post("/v1/tickets", json={**NEW_TICKET, "priority": "P9", "title": ""}, headers=bearer(ADMIN))
    assert answer.status_code == 422
    assert {error["field"] for error in answer.json()["errors"]} == {"priority", "title"}
    not_json = intake.post("/v1/tickets", content=b"{", headers={**bearer(ADMIN), "Content-Type": "application/json"})
    assert not_json.status_code == 422
    unknown = intake.post(
        f"/v1/tickets/{uuid.uuid4()}/worklogs",
        json={"technician_id": "t", "minutes": 5, "billable": True},
        headers=bearer(ADMIN),
    )
    assert unknown.status_code == 404, unknown.text


def test_a_stale_if_match_is_a_conflict(intake):
    ticket = intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer(ADMIN)).json()
    worklog = {"technician_id": "tech-1", "minutes": 15, "billable": True}
    path = f"/v1/tickets/{ticket['id']}/worklogs"
    assert intake.post(path, json=worklog, headers={**bearer(ADMIN), "If-Match": '"7"'}).status_code == 409
    assert intake.post(path, json=worklog, headers={**bearer(ADMIN), "If-Match": '"1"'}).status_code == 201


def test_a_restarted_intake_reads_its_tickets_back_from_the_log(intake, kafka_bootstrap):
    ticket = intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer(ADMIN)).json()
    worklog = {"technician_id": "tech-1", "minutes": 20, "billable": True}
    intake.post(f"/v1/tickets/{ticket['id']}/worklogs", json=worklog, headers=bearer(ADMIN))

    with running_intake(kafka_bootstrap) as restarted:
        eventually(lambda: restarted.get("/readyz").status_code == 200, what="restarted intake ready")
        read = restarted.get(f"/v1/tickets/{ticket['id']}", headers=bearer(ADMIN)).json()
        assert (read["version"], read["worklog_minutes"]) == (2, 20)
        more = restarted.post(f"/v1/tickets/{ticket['id']}/worklogs", json=worklog, headers=bearer(ADMIN))
        assert more.headers["ETag"] == '"3"', "versions continue where the log ends"
