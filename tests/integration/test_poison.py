"""Poison messages of every kind (not JSON, wrong shape, unknown schema_version, oversized) on every consumed
topic: each lands in the topic's DLQ with a dlq.reason header, and its consumers go on with what follows.

Every service runs in process against the session's broker (sla, assignment, reporting and notify in consumer
groups of their own). "Goes on" is seen where the service shows it: a group commits past the good message written
after the poison (commits follow the handling), a ticket sent after it is created, a configuration change after it
is read back, a webhook delivery after it made.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient

from assignment.app import build_app as build_assignment
from assignment.settings import AssignmentSettings
from intake.domain import CommandContext, CreateTicket
from intake.owners import encode_call
from notify.app import build_app as build_notify
from notify.settings import NotifySettings
from reporting.app import build_app as build_reporting
from reporting.settings import ReportingSettings
from sla.app import build_app as build_sla
from sla.settings import SlaSettings
from tests.builders import a_ticket_created
from tests.dead_letters import dead_letters
from tests.keys import ADMIN, TEST_KEYS, bearer
from tests.polling import eventually
from tests.receivers import Receiver, http_receiver
from ticketstream_shared.contract import dead_letter_topic
from ticketstream_shared.contract.assignment import TicketAssigned
from ticketstream_shared.contract.codec import MAX_EVENT_BYTES
from ticketstream_shared.contract.events import Priority
from ticketstream_shared.contract.requests import inbound_ticket_id
from ticketstream_shared.contract.sla import ClockStarted
from ticketstream_shared.contract.topics import (
    ASSIGNMENT_BY_TEAM,
    ASSIGNMENT_EVENTS,
    INTAKE_COMMANDS,
    INTAKE_REPLIES,
    NOTIFY_CONFIG,
    NOTIFY_DELIVERIES,
    SLA_CONFIG,
    SLA_EVENTS,
    TICKETS_EVENTS,
    TICKETS_INBOUND,
)
from ticketstream_shared.sealing import write_key

pytestmark = pytest.mark.integration

KINDS = ("not JSON", "wrong shape", "unknown schema_version", "oversized")
#: The intake's groups: the session's intake runs with the defaults.
INTAKE_INBOUND_GROUP, INTAKE_OWNERS_GROUP = "intake-inbound", "intake-owners"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def poison_like(good: dict[str, Any], spoil: str, marker: str) -> dict[str, bytes]:
    """One message of each kind, made from a good one, each carrying `marker` so that it can be told apart."""
    return {
        "not JSON": f"{{{marker} is not JSON".encode(),
        "wrong shape": json.dumps({**good, spoil: {"spoiled": marker}}).encode(),
        "unknown schema_version": json.dumps({**good, "schema_version": 99}).encode(),
        "oversized": json.dumps({**good, "padding": marker + "x" * MAX_EVENT_BYTES}).encode(),
    }


@dataclass
class System:
    bootstrap: str
    intake: TestClient
    sla: TestClient
    assignment: TestClient
    reporting: TestClient
    notify: TestClient
    receiver: Receiver
    groups: dict[str, str]  # service -> its consumer group


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, intake: TestClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    groups = {service: unique(f"poison-{service}") for service in ("sla", "assignment", "reporting", "notify")}
    common = {"kafka_bootstrap_servers": kafka_bootstrap, "api_keys_file": Path("unused-keys-come-from-tests")}
    reporting = ReportingSettings(
        **common,
        consumer_group=groups["reporting"],
        chdb_path=tmp_path_factory.mktemp("chdb"),
        clickhouse_url=None,
        batch_max_wait_seconds=0.2,
    )
    notify = NotifySettings(
        **common,
        consumer_group=groups["notify"],
        notify_secrets_key_file=write_key(tmp_path_factory.mktemp("notify") / "secrets.key"),
        notify_allowed_hosts="127.0.0.1",
    )
    with (
        TestClient(build_sla(SlaSettings(**common, consumer_group=groups["sla"]), TEST_KEYS)) as sla,
        TestClient(
            build_assignment(AssignmentSettings(**common, consumer_group=groups["assignment"]), TEST_KEYS)
        ) as assignment,
        TestClient(build_reporting(reporting, TEST_KEYS)) as reporting_app,
        TestClient(build_notify(notify, TEST_KEYS)) as notify_app,
        http_receiver() as receiver,
    ):
        apps = (("sla", sla), ("assignment", assignment), ("reporting", reporting_app), ("notify", notify_app))
        for name, app in apps:
            eventually(lambda a=app: a.get("/readyz").status_code == 200, timeout_s=90, what=f"{name} ready")
        yield System(kafka_bootstrap, intake, sla, assignment, reporting_app, notify_app, receiver, groups)


def send(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], headers=None) -> TopicPartition:
    """Write `messages` in order; they share a key, so a partition: that partition."""

    async def produce() -> TopicPartition:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * MAX_EVENT_BYTES)
        await producer.start()
        try:
            partitions = {
                (sent.topic, sent.partition)
                for key, value in messages
                for sent in [await producer.send_and_wait(topic, value, key=key, headers=headers or [])]
            }
        finally:
            await producer.stop()
        [(name, number)] = partitions
        return TopicPartition(name, number)

    return asyncio.run(produce())


def parked_copies(bootstrap: str, topic: str) -> dict[bytes, list[dict[str, bytes]]]:
    """Original bytes -> the headers of each dead letter of them, over the whole DLQ of `topic`."""
    found: dict[bytes, list[dict[str, bytes]]] = {}
    for record in dead_letters(bootstrap, topic):
        found.setdefault(record.value, []).append(dict(record.headers))
    return found


def assert_dead_lettered(bootstrap: str, topic: str, poison: dict[str, bytes]) -> None:
    """Each poison message in the topic's DLQ, byte for byte, each copy with a reason and its origin."""
    parked = eventually(
        lambda: (found := parked_copies(bootstrap, topic)) and all(raw in found for raw in poison.values()) and found,
        timeout_s=60,
        interval_s=0.5,
        what=f"every poison message in {dead_letter_topic(topic)}",
    )
    for kind, raw in poison.items():
        for headers in parked[raw]:
            assert headers.get("dlq.reason"), f"{topic}, {kind}: no reason"
            assert headers["dlq.topic"].decode() == topic
    reasons = {kind: parked[raw][0]["dlq.reason"].decode() for kind, raw in poison.items()}
    assert reasons["not JSON"].startswith("not JSON"), reasons
    assert reasons["oversized"].startswith("oversized"), reasons


def committed(bootstrap: str, group: str, partition: TopicPartition) -> int:
    async def ask() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
        finally:
            await admin.close()
        found = offsets.get(partition)
        return found.offset if found is not None else -1

    return asyncio.run(ask())


def end_of(bootstrap: str, partition: TopicPartition) -> int:
    async def ask() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            return (await consumer.end_offsets([partition]))[partition]
        finally:
            await consumer.stop()

    return asyncio.run(ask())


def assert_groups_go_on(bootstrap: str, groups: list[str], partition: TopicPartition) -> None:
    """Each group commits past everything written to `partition` so far (poison, then a good message): commits
    follow the handling, so a consumer stuck on the poison, or dead of it, never gets there."""
    end = end_of(bootstrap, partition)
    for group in groups:
        eventually(
            lambda g=group: committed(bootstrap, g, partition) >= end,
            timeout_s=60,
            interval_s=0.5,
            what=f"{group} past offset {end} of {partition}",
        )


def event_topic_case(system: System, topic: str, good: Any, groups: list[str]) -> None:
    marker = unique("poison")
    poison = poison_like(json.loads(good.model_dump_json()), "data", marker)
    key = good.ticket_id.encode()
    partition = send(
        system.bootstrap, topic, [*((key, raw) for raw in poison.values()), (key, good.model_dump_json().encode())]
    )
    assert_dead_lettered(system.bootstrap, topic, poison)
    assert_groups_go_on(system.bootstrap, groups, partition)


def test_tickets_events(system: System) -> None:
    good = a_ticket_created(unique("poison-ticket"), occurred_at=datetime.now(UTC))
    groups = [system.groups[s] for s in ("sla", "assignment", "reporting", "notify")]
    event_topic_case(system, TICKETS_EVENTS, good, groups)


def test_sla_events(system: System) -> None:
    now = datetime.now(UTC)
    clock = {
        "metric": "resolution", "policy_id": "std", "policy_version": 1, "calendar_id": "office",
        "calendar_version": 1, "target_business_seconds": 3600, "deadline": now, "elapsed_business_seconds": 0,
        "remaining_business_seconds": 3600,
    }  # fmt: skip
    good = ClockStarted(event_id=uuid.uuid4(), occurred_at=now, ticket_id=unique("poison-ticket"),
                        client_id="acme", producer="sla", correlation_id="test", data=clock)  # fmt: skip
    event_topic_case(system, SLA_EVENTS, good, [system.groups[s] for s in ("assignment", "reporting", "notify")])


def test_assignment_events(system: System) -> None:
    assigned = {"technician_id": "tech-1", "team": "network", "tier": 1, "strategy": "least_loaded",
                "reason": "least loaded"}  # fmt: skip
    good = TicketAssigned(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=unique("poison-ticket"),
                          client_id="acme", producer="assignment", correlation_id="test", data=assigned)  # fmt: skip
    event_topic_case(system, ASSIGNMENT_EVENTS, good, [system.groups[s] for s in ("reporting", "notify")])


def test_assignment_events_a_value_only_clickhouse_refuses(system: System) -> None:
    """The contract bounds a tier from below only; reporting's table holds up to 255. ClickHouse refuses the message
    (its batch is bisected), reporting parks it with ClickHouse's reason and goes on."""
    assigned = {"technician_id": "tech-1", "team": "network", "tier": 300, "strategy": "least_loaded",
                "reason": "least loaded"}  # fmt: skip
    too_high = TicketAssigned(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), ticket_id=unique("tier-300"),
                              client_id="acme", producer="assignment", correlation_id="t", data=assigned)  # fmt: skip
    good = too_high.model_copy(update={"event_id": uuid.uuid4(), "data": too_high.data.model_copy(update={"tier": 2})})
    key = too_high.ticket_id.encode()
    raw = too_high.model_dump_json().encode()

    partition = send(system.bootstrap, ASSIGNMENT_EVENTS, [(key, raw), (key, good.model_dump_json().encode())])

    parked = eventually(
        lambda: parked_copies(system.bootstrap, ASSIGNMENT_EVENTS).get(raw),
        timeout_s=60,
        interval_s=0.5,
        what="the tier-300 assignment in the DLQ",
    )
    reason = parked[0]["dlq.reason"].decode()
    assert "Code: 395" in reason and "tier: above 255, what assignment_events holds" in reason, reason
    assert good.model_dump_json().encode() not in parked_copies(system.bootstrap, ASSIGNMENT_EVENTS)
    assert_groups_go_on(system.bootstrap, [system.groups["reporting"]], partition)


def test_tickets_inbound(system: System) -> None:
    request_id = unique("poison-request")
    good = {
        "type": "create_ticket",
        "request_id": request_id,
        "data": {"client_id": "acme", "requester_id": "dave", "title": "Disk full", "category": "hardware",
                 "priority": "P3"},
    }  # fmt: skip
    poison = poison_like(good, "data", request_id)
    ticket_id = inbound_ticket_id(request_id)
    key = ticket_id.encode()
    partition = send(
        system.bootstrap, TICKETS_INBOUND, [*((key, raw) for raw in poison.values()), (key, json.dumps(good).encode())]
    )
    assert_dead_lettered(system.bootstrap, TICKETS_INBOUND, poison)
    eventually(
        lambda: system.intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).status_code == 200,
        timeout_s=30,
        what="the ticket requested after the poison",
    )
    assert_groups_go_on(system.bootstrap, [INTAKE_INBOUND_GROUP], partition)


def test_intake_commands(system: System) -> None:
    ticket_id = unique("poison-ticket")
    create = CreateTicket(ticket_id=ticket_id, client_id="acme", requester_id="erin", title="Forwarded",
                          category="hardware", priority=Priority.P3)  # fmt: skip
    context = CommandContext(now=datetime.now(UTC), correlation_id="poison-test", command_id=unique("command"))
    good = encode_call(create, context)
    headers = [("reply_to", b"nobody-waits"), ("call_id", unique("call").encode())]
    poison = poison_like(json.loads(good), "command", ticket_id)
    key = ticket_id.encode()
    partition = send(
        system.bootstrap, INTAKE_COMMANDS, [*((key, raw) for raw in poison.values()), (key, good)], headers
    )
    assert_dead_lettered(system.bootstrap, INTAKE_COMMANDS, poison)
    eventually(
        lambda: system.intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).status_code == 200,
        timeout_s=30,
        what="the ticket of the command sent after the poison",
    )
    assert_groups_go_on(system.bootstrap, [INTAKE_OWNERS_GROUP], partition)


def test_intake_replies(system: System) -> None:
    """Replies are read by every replica (no group), each taking those keyed with its id: the poison is
    addressed to the session's intake, which must park it and keep listening (else it would say not ready)."""
    replica = system.intake.app.state.replica_id.encode()
    good = {"call_id": unique("call"), "version": 1, "replayed": False}  # answers a call nobody waits for
    poison = poison_like(good, "call_id", good["call_id"])
    send(
        system.bootstrap,
        INTAKE_REPLIES,
        [*((replica, raw) for raw in poison.values()), (replica, json.dumps(good).encode())],
    )
    assert_dead_lettered(system.bootstrap, INTAKE_REPLIES, poison)
    ready = system.intake.get("/readyz")
    assert ready.status_code == 200, ready.text


def test_assignment_by_team(system: System) -> None:
    """Every assignment process reads all of the team log (the owner of a partition parks what it cannot read); a
    roster change written after the poison is answered 200 only once this process has read it back."""
    team = unique("poison-team")
    routed = {
        "event_id": str(uuid.uuid4()), "event_type": "assignment.ticket_routed", "schema_version": 1,
        "occurred_at": "2026-03-02T09:00:00Z", "producer": "assignment", "correlation_id": team,
        "data": {"team": team, "ticket": {"ticket_id": f"{team}-ghost", "client_id": "acme", "priority": "P2",
                 "status": "new", "category": "x", "skill": "x", "version": 1}},
    }  # fmt: skip
    poison = poison_like(routed, "data", team)
    send(system.bootstrap, ASSIGNMENT_BY_TEAM, [(team.encode(), raw) for raw in poison.values()])
    technician = {"name": "Poison", "team": team, "tier": 1, "skills": ["x"], "capacity": 3}
    put = system.assignment.put(f"/v1/technicians/{team}-tech", json=technician, headers=bearer(ADMIN))
    assert put.status_code == 200, (put.status_code, put.text)
    assert_dead_lettered(system.bootstrap, ASSIGNMENT_BY_TEAM, poison)


def test_sla_config(system: System) -> None:
    """Every sla worker reads all of sla.config (no group); a change written after the poison is answered only
    once the worker has read it back, so the answer shows the reader went on."""
    calendar = unique("poison-calendar")
    change = {
        "event_id": str(uuid.uuid4()), "event_type": "sla.calendar_changed", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "effective_at": datetime.now(UTC).isoformat(),
        "producer": "sla", "correlation_id": calendar, "changed_by": "admin", "calendar_id": calendar,
        "data": {"timezone": "UTC", "always_open": True},
    }  # fmt: skip
    poison = poison_like(change, "data", calendar)
    send(system.bootstrap, SLA_CONFIG, [(f"sla.calendar_changed/{calendar}".encode(), raw) for raw in poison.values()])
    after = system.sla.put(f"/v1/sla/calendars/{calendar}", json={"timezone": "UTC", "always_open": True},
                           headers=bearer(ADMIN))  # fmt: skip
    assert after.status_code == 200, after.text
    assert after.json()["current_version"] == 1, "a poison message counted as a version"
    assert_dead_lettered(system.bootstrap, SLA_CONFIG, poison)


def test_notify_config(system: System) -> None:
    """Every notify replica reads all of notify.config (no group); a person put after the poison is answered only
    once this replica has read it back."""
    person = unique("poison-person")
    change = {
        "event_id": uuid.uuid4().hex, "event_type": "notify.person_changed", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "producer": "notify", "correlation_id": person,
        "changed_by": "admin", "person_id": person, "data": {"name": "Poison", "email": f"{person}@example.org"},
    }  # fmt: skip
    poison = poison_like(change, "data", person)
    send(system.bootstrap, NOTIFY_CONFIG, [(f"person/{person}".encode(), raw) for raw in poison.values()])
    body = {"name": "After the poison", "email": f"{person}@example.org"}
    after = system.notify.put(f"/v1/notify/people/{person}", json=body, headers=bearer(ADMIN))
    assert after.status_code == 200 and after.json()["created"], after.text
    assert_dead_lettered(system.bootstrap, NOTIFY_CONFIG, poison)


def test_notify_deliveries(system: System) -> None:
    """Every notify replica reads all of notify.deliveries; the owner of a partition parks what it cannot read, and
    a webhook whose deliveries share that partition still gets the next event."""
    client_id, hook = unique("poison-client"), unique("poison-hook")
    scheduled = {
        "delivery_id": uuid.uuid4().hex, "event_type": "notify.delivery_scheduled", "schema_version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "channel": "webhook", "target": hook, "ticket_id": hook,
        "source_event_id": hook, "source_event_type": "ticket.created", "content": {"body": "{}"},
    }  # fmt: skip
    poison = poison_like(scheduled, "content", hook)
    send(system.bootstrap, NOTIFY_DELIVERIES, [(f"webhook:{hook}".encode(), raw) for raw in poison.values()])
    body = {"url": f"{system.receiver.url}/{hook}", "event_types": ["ticket.created"], "client_id": client_id,
            "secret": "a-secret-of-16-chars"}  # fmt: skip
    assert system.notify.put(f"/v1/notify/webhooks/{hook}", json=body, headers=bearer(ADMIN)).status_code == 200
    created = a_ticket_created(unique("poison-ticket"), client_id=client_id)
    send(system.bootstrap, TICKETS_EVENTS, [(created.ticket_id.encode(), created.model_dump_json().encode())])
    eventually(lambda: system.receiver.to(f"/{hook}"), timeout_s=60, what="the delivery after the poison")
    assert_dead_lettered(system.bootstrap, NOTIFY_DELIVERIES, poison)
