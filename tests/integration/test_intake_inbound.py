"""tickets.inbound against the real broker: other systems' requests become ticket events once, in order, and
whatever cannot be carried out lands in tickets.inbound.dlq with its reason while the rest goes on."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from tests.dead_letters import dead_letters, headers
from tests.keys import ADMIN, bearer
from tests.polling import eventually
from ticketstream_shared.contract.codec import MAX_EVENT_BYTES
from ticketstream_shared.contract.requests import inbound_ticket_id
from ticketstream_shared.contract.topics import TICKETS_INBOUND

pytestmark = pytest.mark.integration


def send(kafka_bootstrap: str, *messages: bytes, key: str | None = None) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=2 * MAX_EVENT_BYTES)
        await producer.start()
        try:
            for message in messages:
                await producer.send_and_wait(TICKETS_INBOUND, message, key=key.encode() if key else None)
        finally:
            await producer.stop()

    asyncio.run(produce())


def reasons(kafka_bootstrap: str) -> dict[bytes, str]:
    """Original bytes -> reason, for everything in tickets.inbound.dlq so far."""
    return {record.value: headers(record)["dlq.reason"] for record in dead_letters(kafka_bootstrap, TICKETS_INBOUND)}


def request(kind: str, request_id: str, data: dict, ticket_id: str | None = None, **extra) -> bytes:
    message = {"type": kind, "request_id": request_id, "data": data, **extra}
    if ticket_id:
        message["ticket_id"] = ticket_id
    return json.dumps(message).encode()


def test_requests_from_other_systems_become_events_once_and_in_order(intake, kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    ticket_id = inbound_ticket_id(f"{run}-create")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    create = request(
        "create_ticket",
        f"{run}-create",
        {
            "client_id": "acme",
            "requester_id": "alice",
            "title": "Disk full on db-3",
            "category": "infrastructure",
            "priority": "P1",
            "channel": "monitoring",
        },
        occurred_at=yesterday,
    )
    worklog = request(
        "add_worklog",
        f"{run}-worklog",
        {"technician_id": "tech-2", "minutes": 45, "billable": True},
        ticket_id,
        occurred_at=yesterday,
    )
    status = request("change_status", f"{run}-status", {"status": "in_progress"}, ticket_id)
    # keyed by the ticket, as the contract asks, so they stay in order; resends of the same request_id included
    send(kafka_bootstrap, create, worklog, create, status, worklog, key=ticket_id)

    def settled():
        answer = intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN))
        return answer.status_code == 200 and answer.json()["status"] == "in_progress" and answer.json()

    ticket = eventually(settled, timeout_s=60, what="the inbound requests carried out")
    assert (ticket["version"], ticket["worklog_minutes"], ticket["channel"]) == (3, 45, "monitoring")
    assert ticket["created_at"].startswith(yesterday[:10]), "an import keeps the time it happened"


def test_what_cannot_be_carried_out_is_dead_lettered_with_its_reason(intake, kafka_bootstrap):
    run = uuid.uuid4().hex[:8]
    in_a_week = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    poison = {
        b"not json at all " + run.encode(): "not JSON",
        json.dumps({"type": "create_ticket", "request_id": run}).encode(): "data: Field required",
        request("merge_tickets", f"{run}-merge", {}): "type: Input should be",
        request(
            "add_comment", f"{run}-orphan", {"author_id": "x", "body": "hi", "public": True}
        ): "ticket_id: required",
        request(
            "add_comment", f"{run}-ghost", {"author_id": "x", "body": "hi", "public": True}, "no-such-ticket"
        ): "TicketNotFound",
        request(
            "create_ticket",
            f"{run}-future",
            {"client_id": "acme", "requester_id": "alice", "title": "t", "category": "c", "priority": "P3"},
            occurred_at=in_a_week,
        ): "occurred_at: may not be in the future",
        b'{"padding": "' + b"x" * MAX_EVENT_BYTES + run.encode() + b'"}': "oversized",
        request(
            "create_ticket",
            f"{run}-unknown-service",
            {
                "client_id": "acme",
                "requester_id": "alice",
                "title": "t",
                "category": "c",
                "priority": "P3",
                "service_id": "no-such-service",
            },
        ): "InvalidCommand: service_id: no service 'no-such-service' in the catalogue",
    }
    after = request(
        "create_ticket",
        f"{run}-after",
        {"client_id": "acme", "requester_id": "alice", "title": "After the poison", "category": "c", "priority": "P3"},
    )
    send(kafka_bootstrap, *poison, after)

    ticket_id = inbound_ticket_id(f"{run}-after")
    eventually(
        lambda: intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).status_code == 200,
        timeout_s=20,
        what="the consumer went on past the poison",
    )
    parked = eventually(
        lambda: (found := reasons(kafka_bootstrap)) and set(poison) <= set(found) and found,
        timeout_s=20,
        what="every poison message in the DLQ",
    )
    for original, reason in poison.items():
        assert reason in parked[original], (reason, parked[original])
