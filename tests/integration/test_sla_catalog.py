"""The service catalogue, served by sla against the real broker: kept by admins and managers as versions on
sla.config, read by everyone, each service's promise in the words a requester reads."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi.testclient import TestClient

from tests.builders import a_ticket_created
from tests.integration.test_sla_service import follow_up, produce, running_sla, sla_events
from tests.keys import ADMIN, INTEGRATION, MANAGER, REQUESTER, TECHNICIAN, bearer
from tests.polling import eventually
from ticketstream_shared.contract import CommentAdded
from ticketstream_shared.contract.codec import decode_sla_config_change
from ticketstream_shared.contract.sla import ServiceChanged
from ticketstream_shared.contract.topics import SLA_CONFIG
from ticketstream_shared.runtime.kafka import records_to_end

pytestmark = pytest.mark.integration

OFFICE = {
    "timezone": "Europe/Berlin",
    "week": {
        day: [{"start": "08:00", "end": "17:00"}] for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    },
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sla(kafka_bootstrap: str) -> Iterator[TestClient]:
    with running_sla(kafka_bootstrap) as http:
        yield http


@pytest.fixture(scope="module")
def office(sla: TestClient) -> str:
    calendar_id = unique("office")
    put = sla.put(f"/v1/sla/calendars/{calendar_id}", json=OFFICE, headers=bearer(ADMIN))
    assert put.status_code == 200, put.text
    return calendar_id


def a_service(calendar_id: str | None, **changes: Any) -> dict[str, Any]:
    return {
        "name": "E-mail",
        "description": "Mailboxes, shared mailboxes and distribution lists.",
        "owner_team": "messaging",
        "categories": [unique("email"), unique("mailbox")],
        "targets": {
            "P1": {"first_response_minutes": 30, "resolution_minutes": 4 * 60},
            "P3": {"first_response_minutes": 4 * 60, "next_reply_minutes": 9 * 60, "resolution_minutes": 18 * 60},
        },
        "calendar_id": calendar_id,
        **changes,
    }


def listed(sla: TestClient, key: str, **params: Any) -> dict[str, dict[str, Any]]:
    answer = sla.get("/v1/catalog/services", params=params, headers=bearer(key))
    assert answer.status_code == 200, answer.text
    return {service["id"]: service for service in answer.json()["services"]}


def test_a_published_service_is_listed_to_everyone_with_its_promise_in_plain_words(
    sla: TestClient, office: str
) -> None:
    service_id = unique("email")
    draft = sla.put(f"/v1/catalog/services/{service_id}", json=a_service(office), headers=bearer(MANAGER))
    assert draft.status_code == 200, draft.text
    assert draft.json()["current_version"] == 1
    assert service_id not in listed(sla, REQUESTER)
    assert sla.get(f"/v1/catalog/services/{service_id}", headers=bearer(REQUESTER)).status_code == 404
    assert listed(sla, MANAGER, include_drafts=True)[service_id]["published"] is False

    published = sla.put(
        f"/v1/catalog/services/{service_id}", json=a_service(office, published=True), headers=bearer(ADMIN)
    )
    assert published.status_code == 200, published.text

    for key in (REQUESTER, TECHNICIAN, INTEGRATION, MANAGER):
        service = listed(sla, key)[service_id]
        assert service["promises"] == {
            "P1": "We answer within 30 working minutes and solve it within 4 working hours "
            "(Mon–Fri 08:00–17:00, Europe/Berlin).",
            "P3": "We answer within 4 working hours, reply to each of your messages within 1 working day and solve "
            "it within 2 working days (Mon–Fri 08:00–17:00, Europe/Berlin).",
        }
        assert service["calendar"] == {"id": office, "hours": "Mon–Fri 08:00–17:00, Europe/Berlin"}
        assert (service["name"], service["owner_team"], service["version"]) == ("E-mail", "messaging", 2)
    assert sla.get(f"/v1/catalog/services/{service_id}", headers=bearer(REQUESTER)).json()["version"] == 2


def test_without_a_calendar_a_service_promises_around_the_clock(sla: TestClient) -> None:
    service_id = unique("phones")
    body = a_service(None, published=True, targets={"P2": {"first_response_minutes": 90, "resolution_minutes": 2880}})
    assert sla.put(f"/v1/catalog/services/{service_id}", json=body, headers=bearer(ADMIN)).status_code == 200
    assert listed(sla, REQUESTER)[service_id]["promises"] == {
        "P2": "We answer within 1 h 30 min and solve it within 2 days (around the clock)."
    }


def test_only_admins_and_managers_keep_the_catalogue_and_see_its_drafts(sla: TestClient, office: str) -> None:
    service_id = unique("printing")
    for key in (TECHNICIAN, REQUESTER, INTEGRATION):
        refused = sla.put(f"/v1/catalog/services/{service_id}", json=a_service(office), headers=bearer(key))
        assert refused.status_code == 403, refused.text
    assert (
        sla.get("/v1/catalog/services", params={"include_drafts": True}, headers=bearer(REQUESTER)).status_code == 403
    )
    assert sla.get("/v1/catalog/services", headers={}).status_code == 401
    kept = sla.put(f"/v1/catalog/services/{service_id}", json=a_service(office), headers=bearer(MANAGER))
    assert kept.status_code == 200, kept.text
    history = sla.get(f"/v1/catalog/services/{service_id}", headers=bearer(MANAGER)).json()
    assert [version["changed_by"] for version in history["versions"]] == ["manager"]
    assert [version["actor"]["role"] for version in history["versions"]] == ["manager"]
    assert history["service"]["published"] is False


def test_a_service_is_versioned_and_a_retry_records_nothing(sla: TestClient, office: str, kafka_bootstrap: str) -> None:
    service_id = unique("vpn")
    body = a_service(office, published=True)
    first = sla.put(f"/v1/catalog/services/{service_id}", json=body, headers=bearer(ADMIN))
    again = sla.put(f"/v1/catalog/services/{service_id}", json=body, headers=bearer(ADMIN))
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()

    next_week = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    renamed = {**body, "name": "VPN and remote access", "effective_at": next_week.isoformat()}
    later = sla.put(f"/v1/catalog/services/{service_id}", json=renamed, headers=bearer(ADMIN)).json()
    assert [version["version"] for version in later["versions"]] == [1, 2]
    # Each version says what it changed: the audit trail of the catalogue.
    assert later["versions"][1]["changes"] == {"name": {"before": "E-mail", "after": "VPN and remote access"}}
    assert later["versions"][0]["changes"]["name"] == {"before": None, "after": "E-mail"}
    assert later["current_version"] == 1, "the new version takes effect next week"
    assert listed(sla, REQUESTER)[service_id]["name"] == "E-mail"

    changes = [change for change in sla_config(kafka_bootstrap) if change.subject == service_id]
    assert [type(change) for change in changes] == [ServiceChanged, ServiceChanged]
    assert [change.data.name for change in changes] == ["E-mail", "VPN and remote access"]
    assert changes[1].effective_at == next_week


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"calendar_id": "no-such-calendar"}, "calendar_id"),
        ({"targets": {}}, "targets"),
        ({"categories": ["printers", "printers"]}, "categories"),
        (
            {"targets": {"P1": {"first_response_minutes": 0, "resolution_minutes": 60}}},
            "targets.P1.first_response_minutes",
        ),
        ({"owner_team": "no spaces"}, "owner_team"),
        ({"name": ""}, "name"),
    ],
)
def test_a_service_that_cannot_be_kept_is_refused_field_by_field(
    sla: TestClient, office: str, body: dict[str, Any], field: str
) -> None:
    refused = sla.put(
        f"/v1/catalog/services/{unique('bad')}", json={**a_service(office), **body}, headers=bearer(ADMIN)
    )
    assert refused.status_code == 422, refused.text
    assert field in [error["field"] for error in refused.json()["errors"]], refused.text


def test_a_category_belongs_to_one_service(sla: TestClient, office: str) -> None:
    shared = unique("printers")
    first, second = unique("printing"), unique("office-devices")
    kept = sla.put(f"/v1/catalog/services/{first}", json=a_service(office, categories=[shared]), headers=bearer(ADMIN))
    assert kept.status_code == 200, kept.text
    again = sla.put(f"/v1/catalog/services/{first}", json=a_service(office, categories=[shared]), headers=bearer(ADMIN))
    assert again.status_code == 200, "its own category again"
    taken = sla.put(
        f"/v1/catalog/services/{second}", json=a_service(office, categories=[shared]), headers=bearer(ADMIN)
    )
    assert taken.status_code == 422, taken.text
    assert taken.json()["errors"] == [
        {"field": "categories", "message": f"already in another service: {shared} (service {first})"}
    ]
    moved = sla.put(f"/v1/catalog/services/{first}", json=a_service(office, categories=[]), headers=bearer(ADMIN))
    assert moved.status_code == 200
    given = sla.put(
        f"/v1/catalog/services/{second}", json=a_service(office, categories=[shared]), headers=bearer(ADMIN)
    )
    assert given.status_code == 200, given.text


def test_a_published_service_times_the_tickets_of_its_categories(
    sla: TestClient, office: str, kafka_bootstrap: str
) -> None:
    service_id, category = unique("laptops"), unique("laptop")
    body = a_service(office, published=True, categories=[category])
    assert sla.put(f"/v1/catalog/services/{service_id}", json=body, headers=bearer(ADMIN)).status_code == 200
    opened = datetime.now(UTC)  # clocks start under the terms in force when the ticket was opened
    ticket = a_ticket_created(client_id=unique("client"), category=category, priority="P3", occurred_at=opened)
    produce(kafka_bootstrap, ticket)

    def clocks() -> list[dict[str, Any]] | None:
        answer = sla.get(f"/v1/sla/tickets/{ticket.ticket_id}", headers=bearer(ADMIN))
        return answer.json()["clocks"] if answer.status_code == 200 else None

    timed = {clock["metric"]: clock for clock in eventually(clocks, what="the ticket's clocks")}
    assert {metric: clock["service"] for metric, clock in timed.items()} == {
        "first_response": {"id": service_id, "version": 1},
        "resolution": {"id": service_id, "version": 1},
    }
    assert timed["first_response"]["policy"] == {"id": f"service:{service_id}", "version": 1}
    assert timed["first_response"]["target_business_seconds"] == 4 * 3600
    assert timed["resolution"]["target_business_seconds"] == 18 * 3600
    assert timed["resolution"]["calendar"]["id"] == office

    impostor = {
        "targets": {"P3": {"first_response_minutes": 1, "resolution_minutes": 2}},
        "match": {"client_ids": ["x"]},
    }
    refused = sla.put(f"/v1/sla/policies/service:{service_id}", json=impostor, headers=bearer(ADMIN))
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "policy_id", refused.text


def test_a_late_next_reply_breaches_the_service_promise(sla: TestClient, kafka_bootstrap: str) -> None:
    """A requester's message after the first answer waits a minute at most for the next reply, around the clock.
    The ticket's story is told a little in the past, so the breach is due as soon as the message is read; unless
    another test changed sla.config meanwhile: the ticket's clocks are re-timed at that moment, and what comes after
    in the log cannot act before it (the breach then falls due within the minute)."""
    service_id, category = unique("vpn"), unique("vpn")
    since = datetime.now(UTC) - timedelta(minutes=4)  # in effect before the ticket below was opened
    targets = {"P2": {"first_response_minutes": 60, "next_reply_minutes": 1, "resolution_minutes": 480}}
    body = a_service(None, published=True, categories=[category], targets=targets, effective_at=since.isoformat())
    assert sla.put(f"/v1/catalog/services/{service_id}", json=body, headers=bearer(MANAGER)).status_code == 200
    opened = since + timedelta(minutes=1)
    ticket = a_ticket_created(client_id=unique("client"), category=category, priority="P2", occurred_at=opened)

    def comment(version: int, minutes: int, role: str, author_id: str) -> CommentAdded:
        data = {"comment_id": uuid.uuid4(), "author_id": author_id, "author_role": role, "body": "..."}
        at = opened + timedelta(minutes=minutes)
        return follow_up(CommentAdded, ticket.ticket_id, ticket.client_id, version, at, **data, visibility="public")

    answer, message = comment(2, 0, "technician", "tech-1"), comment(3, 1, "requester", "alice")
    produce(kafka_bootstrap, ticket, answer, message)

    def next_reply_breached() -> list[dict[str, Any]]:
        events = sla_events(kafka_bootstrap, {ticket.ticket_id})
        return [e for e in events if e["event_type"] == "sla.breached" and e["data"]["metric"] == "next_reply"]

    [breach] = eventually(next_reply_breached, timeout_s=90, interval_s=1, what="the next reply's breach")
    assert breach["data"]["policy_id"] == f"service:{service_id}"  # whose promise was broken
    assert breach["actor"] == {"key_name": "system:sla", "role": "system", "subject": None, "on_behalf_of": None}
    deadline = datetime.fromisoformat(breach["data"]["deadline"])
    assert deadline >= message.occurred_at + timedelta(minutes=1)
    clocks = sla.get(f"/v1/sla/tickets/{ticket.ticket_id}", headers=bearer(ADMIN)).json()["clocks"]
    [next_reply] = [clock for clock in clocks if clock["metric"] == "next_reply"]
    assert datetime.fromisoformat(next_reply["target_at"]) == deadline
    assert next_reply["breached"] and next_reply["status"] == "running"
    assert next_reply["service"] == {"id": service_id, "version": 1}
    assert next_reply["explanation"].startswith("We promised a reply to your message by ")


# --- sla.config, read raw -------------------------------------------------------------------------------------------


def sla_config(bootstrap: str) -> list[Any]:
    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return [
                decode_sla_config_change(record.value)
                async for record in records_to_end(consumer, {TopicPartition(SLA_CONFIG, 0): None})
                if (record.key or b"").startswith(b"sla.service_changed/")
            ]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_a_service_id_leaves_room_for_the_prefix_its_clocks_carry(sla: TestClient, office: str) -> None:
    """A clock timed by a service names `service:<id>`, an id of 128 characters at most like any other."""
    too_long = sla.put(f"/v1/catalog/services/{'s' * 121}", json=a_service(office), headers=bearer(ADMIN))
    assert too_long.status_code == 422, too_long.text
    assert (
        sla.put(f"/v1/catalog/services/{'s' * 120}", json=a_service(office), headers=bearer(ADMIN)).status_code == 200
    )
