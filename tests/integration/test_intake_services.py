"""Tickets filed under a service of the catalogue, against the real broker: intake follows sla.config (which sla
writes) to know the catalogue, takes a ticket naming a service published a moment before (it reads sla.config to
its end before refusing one it has not got), refuses a service the catalogue has not got with a 422 naming the
field, and records the service a ticket names in its creation event."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from sla.config_log import config_key
from tests.integration.conftest import NEW_TICKET
from tests.integration.test_intake import read_events_of
from tests.integration.test_intake_lifecycle import FORM, sent, sign_in
from tests.keys import ADMIN, INTEGRATION, REQUESTER, bearer
from tests.polling import eventually
from tests.unit.test_sla_clocks import config
from ticketstream_shared.contract.sla import ServiceChanged
from ticketstream_shared.contract.topics import SLA_CONFIG

pytestmark = pytest.mark.integration


def a_service_on_sla_config(bootstrap: str, published: bool, **data) -> str:
    """A service appended to sla.config as sla appends one (a PUT of the catalogue); its id."""
    service_id = f"vpn-{uuid.uuid4().hex[:8]}"
    body = {
        "name": "VPN",
        "owner_team": "network",
        "targets": {"P2": {"first_response_minutes": 60, "resolution_minutes": 480}},
        "published": published,
        **data,
    }
    change = config(ServiceChanged, datetime.now(UTC) - timedelta(seconds=1), service_id=service_id, data=body)

    async def append() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(SLA_CONFIG, change.model_dump_json().encode(), key=config_key(change))
        finally:
            await producer.stop()

    asyncio.run(append())
    return service_id


def create(intake, key: str, service_id: str, request_key: str | None = None):
    headers = {**bearer(key), "Idempotency-Key": request_key or str(uuid.uuid4())}
    return intake.post("/v1/tickets", json={**NEW_TICKET, "service_id": service_id}, headers=headers)


def test_a_ticket_names_a_service_of_the_catalogue_published_a_moment_before(intake, kafka_bootstrap):
    service_id = a_service_on_sla_config(kafka_bootstrap, published=True)
    created = create(intake, REQUESTER, service_id)
    assert created.status_code == 201, created.text
    assert created.json()["service_id"] == service_id
    [(_, event)] = read_events_of(kafka_bootstrap, created.json()["id"], 1)
    assert event.data.service_id == service_id
    # Without one, a ticket names none: sla and reporting take its category's service.
    plain = intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer(REQUESTER))
    assert plain.status_code == 201 and plain.json()["service_id"] is None


def test_a_service_the_catalogue_has_not_got_is_a_422_naming_it(intake):
    refused = create(intake, REQUESTER, "no-such-service")
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"field": "service_id", "message": "no service 'no-such-service' in the catalogue"}
    ]
    malformed = create(intake, REQUESTER, "not a service id")
    assert malformed.status_code == 422 and "service_id" in malformed.text


def test_a_draft_takes_tickets_from_staff_and_integrations_only(intake, kafka_bootstrap):
    draft = a_service_on_sla_config(kafka_bootstrap, published=False)
    taken = create(intake, INTEGRATION, draft)
    assert taken.status_code == 201, taken.text
    refused = create(intake, REQUESTER, draft)
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"field": "service_id", "message": f"service {draft!r} is not published"}]


def test_a_requester_opens_a_request_on_the_page_under_a_service_or_none(intake, kafka_bootstrap):
    """`/tickets`: the form offers the published services (a draft not), opens the request under the one chosen
    (its first category, channel portal) or, for something else, under PORTAL_CATEGORY, and leads to the request's
    page; sent twice, it is one request; a refusal is the list again, what was written kept."""
    marker = uuid.uuid4().hex[:8]
    service_id = a_service_on_sla_config(kafka_bootstrap, True, name=f"VPN {marker}", categories=[f"vpn-{marker}"])
    a_service_on_sla_config(kafka_bootstrap, False, name=f"Draft {marker}")
    try:
        sign_in(intake, REQUESTER, "/tickets")

        def offered() -> str | None:
            page = intake.get("/tickets").text
            return page if f"VPN {marker}" in page else None

        shown = eventually(offered, timeout_s=10, what="the service offered")
        assert f"Draft {marker}" not in shown, "requesters are offered the published services only"
        fields = {"service_id": service_id, "priority": "P2", "title": f"VPN <drops> {marker}", "description": "Hourly"}
        opened, body = sent(intake, "/tickets", "new-request", **fields)
        assert opened.status_code == 303 and opened.headers["location"].startswith("/tickets/"), opened.text
        again = intake.post("/tickets", content=body, headers=FORM, follow_redirects=False)
        assert again.status_code == 303 and again.headers["location"] == opened.headers["location"], "one request"
        ticket = intake.get(f"/v1{opened.headers['location']}", headers=bearer(ADMIN)).json()
        assert (ticket["service_id"], ticket["category"], ticket["channel"], ticket["priority"]) == (
            service_id, f"vpn-{marker}", "portal", "P2",
        )  # fmt: skip
        assert (ticket["client_id"], ticket["requester_id"], ticket["title"]) == ("acme", "alice", fields["title"])
        assert f"&lt;drops&gt; {marker}</a>" in intake.get("/tickets").text

        other, _ = sent(intake, "/tickets", "new-request", service_id="", priority="P3", title=f"Odd noise {marker}")
        something_else = intake.get(f"/v1{other.headers['location']}", headers=bearer(ADMIN)).json()
        assert (something_else["category"], something_else["service_id"]) == ("general", None)

        untitled, _ = sent(intake, "/tickets", "new-request", priority="P3", title=" ", description=f"kept {marker}")
        assert (
            untitled.status_code == 422 and "In a few words: String should have at least 1 character." in untitled.text
        )
        assert f">kept {marker}</textarea>" in untitled.text
    finally:
        intake.cookies.clear()
