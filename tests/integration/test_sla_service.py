"""The sla service against the real broker: configuration over HTTP, ticket events in, sla events out; then the
service killed with SIGKILL mid-run and started again from its changelog: no alarm missed, none doubled."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from fastapi.testclient import TestClient

from deploy.kafka.launcher import free_ports
from deploy.processes import ServiceProcess
from sla.app import build_app
from sla.settings import SlaSettings
from tests.builders import a_ticket_created
from tests.dead_letters import dead_letters, headers
from tests.keys import ACME_ADMIN, ADMIN, MANAGER, REQUESTER, TECHNICIAN, TEST_KEYS, bearer, keys_file
from tests.metrics import EVICTED, metric
from tests.polling import eventually
from ticketstream_shared.contract import CommentAdded, Envelope, TicketStatusChanged, encode
from ticketstream_shared.contract.topics import (
    SLA_CLOCKS,
    SLA_CONFIG,
    SLA_EVENTS,
    TICKET_PARTITIONS,
    TICKETS_EVENTS,
)
from ticketstream_shared.runtime.kafka import records_to_end

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _produce(bootstrap: str, events: list[Envelope]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(TICKETS_EVENTS, encode(event), key=event.ticket_id.encode())
    finally:
        await producer.stop()


def produce(bootstrap: str, *events: Envelope) -> None:
    asyncio.run(_produce(bootstrap, list(events)))


async def _records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` (partitioned as tickets.events) so far."""
    partitions = [TopicPartition(topic, number) for number in range(TICKET_PARTITIONS)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return [record async for record in records_to_end(consumer, dict.fromkeys(partitions))]
    finally:
        await consumer.stop()


def sla_events(bootstrap: str, tickets: set[str]) -> list[dict[str, Any]]:
    """Every sla event of `tickets` so far, as JSON."""
    records = asyncio.run(_records(bootstrap, SLA_EVENTS))
    return [json.loads(record.value) for record in records if record.key is not None and record.key.decode() in tickets]


def in_changelog(bootstrap: str) -> set[bytes]:
    """The keys (ticket ids) sla.clocks has a record of."""
    return {record.key for record in asyncio.run(_records(bootstrap, SLA_CLOCKS)) if record.key is not None}


def follow_up(event_class: type[Envelope], ticket_id: str, client_id: str, version: int, at: datetime, **data: Any):
    return event_class(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ticket_id=ticket_id,
        client_id=client_id,
        aggregate_version=version,
        producer="intake",
        correlation_id="test",
        data=data,
    )


ALWAYS = {"timezone": "UTC", "always_open": True}


def policy_for(client_id: str, calendar_id: str, first: int = 60, resolution: int = 480) -> dict[str, Any]:
    targets = {"first_response_minutes": first, "resolution_minutes": resolution}
    return {
        "rank": 1,
        "match": {"client_ids": [client_id]},
        "targets": {p: targets for p in ("P1", "P2", "P3", "P4")},
        "calendar_id": calendar_id,
    }


# --- in process: configuration, clocks, the requester's view ----------------------------------------------------


@contextmanager
def running_sla(kafka_bootstrap: str) -> Iterator[TestClient]:
    """An sla worker in process, in a consumer group of its own, once it says ready."""
    settings = SlaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file=Path("unused-keys-come-from-the-test.json"),
        consumer_group=unique("sla-test"),
    )
    with TestClient(build_app(settings, TEST_KEYS)) as http:
        eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="sla ready")
        yield http


@pytest.fixture()
def sla_app(kafka_bootstrap: str) -> Iterator[TestClient]:
    with running_sla(kafka_bootstrap) as http:
        yield http


def test_configuration_is_versioned_and_checked(sla_app: TestClient) -> None:
    calendar_id = unique("berlin")
    office = {"timezone": "Europe/Berlin", "week": {"monday": [{"start": "09:00", "end": "17:00"}]}}
    first = sla_app.put(f"/v1/sla/calendars/{calendar_id}", json=office, headers=bearer(ADMIN))
    assert first.status_code == 200, first.text
    second = sla_app.put(
        f"/v1/sla/calendars/{calendar_id}", json={**office, "holidays": ["2026-12-25"]}, headers=bearer(ADMIN)
    )
    assert second.json()["current_version"] == 2
    history = sla_app.get(f"/v1/sla/calendars/{calendar_id}", headers=bearer(MANAGER)).json()
    assert [v["version"] for v in history["versions"]] == [1, 2] and history["versions"][0]["holidays"] == []
    assert history["versions"][1]["changes"] == {"holidays": {"before": [], "after": ["2026-12-25"]}}

    assert sla_app.put(f"/v1/sla/calendars/{calendar_id}", json=office, headers=bearer(MANAGER)).status_code == 403
    # An admin of one client changes no calendar: every client's clocks may run on it.
    assert sla_app.put(f"/v1/sla/calendars/{calendar_id}", json=office, headers=bearer(ACME_ADMIN)).status_code == 403
    assert sla_app.get(f"/v1/sla/calendars/{calendar_id}", headers=bearer(ACME_ADMIN)).json() == history
    assert sla_app.get(f"/v1/sla/calendars/{calendar_id}", headers=bearer(TECHNICIAN)).status_code == 403
    bad = sla_app.put("/v1/sla/calendars/x", json={"timezone": "Mars/Base", "always_open": True}, headers=bearer(ADMIN))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "timezone"
    unknown = sla_app.put("/v1/sla/policies/p", json=policy_for("acme", unique("nowhere")), headers=bearer(ADMIN))
    assert unknown.status_code == 422 and unknown.json()["errors"] == [
        {"field": "calendar_id", "message": unknown.json()["errors"][0]["message"]}
    ]
    past = sla_app.put(
        f"/v1/sla/calendars/{calendar_id}",
        json={**office, "effective_at": "2020-01-01T00:00:00Z"},
        headers=bearer(ADMIN),
    )
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "effective_at"
    assert sla_app.put("/v1/sla/calendars/x", content=b"{", headers=bearer(ADMIN)).status_code == 422


async def _config_changes(bootstrap: str, key: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return [
            json.loads(record.value)
            async for record in records_to_end(consumer, {TopicPartition(SLA_CONFIG, 0): None})
            if record.key == key.encode()
        ]
    finally:
        await consumer.stop()


def config_changes(bootstrap: str, key: str) -> list[dict[str, Any]]:
    """Every change of sla.config under `key` ('<event type>/<id>'), as another reader of the log sees them."""
    return asyncio.run(_config_changes(bootstrap, key))


def concurrently(http: TestClient, path: str, body: dict[str, Any], times: int = 2) -> list[httpx2.Response]:
    """The same PUT sent `times` times at once into the app's own event loop: a retry racing with itself."""

    async def send_all() -> list[httpx2.Response]:
        transport = httpx2.ASGITransport(app=http.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://sla") as client:
            puts = [client.put(path, json=body, headers=bearer(ADMIN)) for _ in range(times)]
            return list(await asyncio.gather(*puts))

    assert http.portal is not None
    return http.portal.call(send_all)


def replayed(answer: httpx2.Response) -> bool:
    return answer.headers.get("Idempotent-Replayed") == "true"


def test_a_repeated_configuration_put_adds_no_version(sla_app: TestClient, kafka_bootstrap: str) -> None:
    calendar_id, policy_id, client_id = unique("retried"), unique("retried-policy"), unique("retried-client")
    puts = {
        f"sla.calendar_changed/{calendar_id}": (f"/v1/sla/calendars/{calendar_id}", ALWAYS),
        f"sla.policy_changed/{policy_id}": (f"/v1/sla/policies/{policy_id}", policy_for(client_id, calendar_id)),
        f"sla.client_agreement_changed/{client_id}": (
            f"/v1/sla/clients/{client_id}",
            {"calendar_id": calendar_id, "tier": "gold"},
        ),
    }
    for key, (path, body) in puts.items():
        first = sla_app.put(path, json=body, headers=bearer(ADMIN))
        again = sla_app.put(path, json=body, headers=bearer(ADMIN))
        assert (first.status_code, again.status_code) == (200, 200), again.text
        assert not replayed(first) and replayed(again), key
        assert again.json() == first.json() and again.json()["current_version"] == 1, key
        assert len(sla_app.get(path, headers=bearer(ADMIN)).json()["versions"]) == 1, key
        assert len(config_changes(kafka_bootstrap, key)) == 1, key

    changed = sla_app.put(f"/v1/sla/clients/{client_id}", json={"calendar_id": calendar_id}, headers=bearer(ADMIN))
    assert changed.status_code == 200 and not replayed(changed)
    assert changed.json()["current_version"] == 2 and changed.json()["current"]["tier"] == "standard"
    assert len(config_changes(kafka_bootstrap, f"sla.client_agreement_changed/{client_id}")) == 2


def test_a_repeated_future_dated_put_adds_no_version_and_taking_it_back_does(
    sla_app: TestClient, kafka_bootstrap: str
) -> None:
    calendar_id = unique("future")
    path, key = f"/v1/sla/calendars/{calendar_id}", f"sla.calendar_changed/{calendar_id}"
    office = {"timezone": "Europe/Berlin", "week": {"monday": [{"start": "09:00", "end": "17:00"}]}}
    next_week = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    assert sla_app.put(path, json=ALWAYS, headers=bearer(ADMIN)).status_code == 200

    first = sla_app.put(path, json={**office, "effective_at": next_week}, headers=bearer(ADMIN))
    again = sla_app.put(path, json={**office, "effective_at": next_week}, headers=bearer(ADMIN))
    assert not replayed(first) and replayed(again) and again.json() == first.json()
    assert [v["version"] for v in again.json()["versions"]] == [1, 2] and again.json()["current_version"] == 1

    holidays = {**office, "holidays": ["2026-12-25"], "effective_at": next_week}
    other = sla_app.put(path, json=holidays, headers=bearer(ADMIN))
    assert not replayed(other) and len(other.json()["versions"]) == 3

    # What is in force today, again from now on, is not "nothing changed": it takes the pending change back.
    back = sla_app.put(path, json=ALWAYS, headers=bearer(ADMIN))
    assert not replayed(back) and back.json()["current_version"] == 4
    assert replayed(sla_app.put(path, json=ALWAYS, headers=bearer(ADMIN)))
    assert len(config_changes(kafka_bootstrap, key)) == 4


def test_a_put_racing_with_its_own_retry_adds_one_version(sla_app: TestClient, kafka_bootstrap: str) -> None:
    calendar_id = unique("raced")
    answers = concurrently(sla_app, f"/v1/sla/calendars/{calendar_id}", ALWAYS)
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    assert sorted(map(replayed, answers)) == [False, True]
    assert {answer.json()["current_version"] for answer in answers} == {1}
    assert len(config_changes(kafka_bootstrap, f"sla.calendar_changed/{calendar_id}")) == 1


def test_two_replicas_taking_the_same_put_at_once_make_one_version(kafka_bootstrap: str) -> None:
    """Neither replica may see the other's change before it appends its own: the twin carries the same event id,
    and every reader of sla.config counts it once."""
    policy_id, client_id = unique("twin-policy"), unique("twin-client")
    path = f"/v1/sla/policies/{policy_id}"
    body = {**policy_for(client_id, "default"), "effective_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    with running_sla(kafka_bootstrap) as first, running_sla(kafka_bootstrap) as second:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda http: http.put(path, json=body, headers=bearer(ADMIN)), (first, second)))
        assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
        changes = config_changes(kafka_bootstrap, f"sla.policy_changed/{policy_id}")
        assert len({change["event_id"] for change in changes}) == 1, changes
        for http in (first, second):
            assert [v["version"] for v in http.get(path, headers=bearer(ADMIN)).json()["versions"]] == [1]
    with running_sla(kafka_bootstrap) as later:  # reading the whole log again counts the twin once too
        assert [v["version"] for v in later.get(path, headers=bearer(ADMIN)).json()["versions"]] == [1]


def test_ticket_events_in_sla_events_out(sla_app: TestClient, kafka_bootstrap: str) -> None:
    client_id, calendar_id = unique("client"), unique("always")
    assert sla_app.put(f"/v1/sla/calendars/{calendar_id}", json=ALWAYS, headers=bearer(ADMIN)).status_code == 200
    response = sla_app.put(
        f"/v1/sla/policies/{unique('policy')}", json=policy_for(client_id, calendar_id), headers=bearer(ADMIN)
    )
    assert response.status_code == 200, response.text
    now = datetime.now(UTC)
    created = a_ticket_created(client_id=client_id, occurred_at=now - timedelta(minutes=50))
    ticket = created.ticket_id
    produce(kafka_bootstrap, created)

    started = eventually(lambda: sla_events(kafka_bootstrap, {ticket}), what="clock_started")
    assert sorted(e["event_type"] for e in started)[:2] == ["sla.clock_started", "sla.clock_started"]
    # 50 of 60 minutes are gone: the 75% warning is raised at once, at its own moment (event time).
    warned = eventually(
        lambda: [e for e in sla_events(kafka_bootstrap, {ticket}) if e["event_type"] == "sla.warning"],
        what="warning",
    )
    assert warned[0]["occurred_at"].startswith((now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))

    view = sla_app.get(f"/v1/sla/tickets/{ticket}", headers=bearer(TECHNICIAN))
    assert view.status_code == 404 or view.json()["ticket_id"] == ticket  # requester is alice of acme only
    produce(
        kafka_bootstrap,
        follow_up(
            CommentAdded,
            ticket,
            client_id,
            2,
            now,
            comment_id=uuid.uuid4(),
            author_id="tech-1",
            author_role="technician",
            body="On it",
            visibility="public",
        ),
        follow_up(TicketStatusChanged, ticket, client_id, 3, now, from_status="new", to_status="waiting_on_customer"),
    )
    kinds = eventually(
        lambda: (
            {(e["event_type"], e["data"]["metric"]) for e in sla_events(kafka_bootstrap, {ticket})}
            >= {("sla.met", "first_response"), ("sla.paused", "resolution")}
        ),
        what="met and paused",
    )
    assert kinds
    clocks = sla_app.get(f"/v1/sla/tickets/{ticket}", headers=bearer(TECHNICIAN)).json()["clocks"]
    assert [(c["metric"], c["status"]) for c in clocks] == [("first_response", "met"), ("resolution", "paused")]
    assert clocks[1]["remaining_business_seconds"] == 430 * 60
    assert clocks[1]["explanation"].startswith("Waiting for your reply")


def test_requesters_see_only_their_own_clients_tickets(sla_app: TestClient, kafka_bootstrap: str) -> None:
    theirs, others = a_ticket_created(client_id="acme"), a_ticket_created(client_id=unique("globex"))
    produce(kafka_bootstrap, theirs, others)
    mine = eventually(
        lambda: (
            (r := sla_app.get(f"/v1/sla/tickets/{theirs.ticket_id}", headers=bearer(REQUESTER))).status_code == 200
            and r.json()
        ),
        what="requester view",
    )
    assert mine["clocks"][0]["explanation"].startswith("We promised a first answer by ")
    eventually(lambda: sla_app.get(f"/v1/sla/tickets/{others.ticket_id}", headers=bearer(ADMIN)).status_code == 200)
    assert sla_app.get(f"/v1/sla/tickets/{others.ticket_id}", headers=bearer(REQUESTER)).status_code == 403
    assert sla_app.get("/v1/sla/tickets/nope", headers=bearer(REQUESTER)).status_code == 404


async def _produce_raw(bootstrap: str, topic: str, value: bytes) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return (await producer.send_and_wait(topic, value)).offset
    finally:
        await producer.stop()


def test_a_poison_configuration_change_is_parked_once_and_the_log_goes_on(kafka_bootstrap: str) -> None:
    poison = {
        b"not json": "not JSON",
        b'{"event_type": "sla.calendar_changed", "schema_version": 9}': "schema_version",
        b"{" + b" " * 300_000 + b"}": "oversized",
    }
    offsets = {asyncio.run(_produce_raw(kafka_bootstrap, SLA_CONFIG, raw)): reason for raw, reason in poison.items()}
    settings = SlaSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file=Path("unused-keys-come-from-the-test.json"),
        consumer_group=unique("sla-test"),
    )
    for _ in range(2):  # a second worker reading the whole log again parks nothing twice
        with TestClient(build_app(settings, TEST_KEYS)) as http:
            eventually(lambda: http.get("/readyz").status_code == 200, timeout_s=60, what="sla ready")
            calendar_id = unique("after-poison")
            assert http.put(f"/v1/sla/calendars/{calendar_id}", json=ALWAYS, headers=bearer(ADMIN)).status_code == 200
            parked = [
                (int(found["dlq.offset"]), found["dlq.reason"])
                for found in map(headers, dead_letters(kafka_bootstrap, SLA_CONFIG))
                if int(found["dlq.offset"]) in offsets
            ]
            assert sorted(o for o, _ in parked) == sorted(offsets)
            assert all(offsets[o] in reason for o, reason in parked), parked


# --- kill -9 and restart ------------------------------------------------------------------------------------------


class SlaProcess(ServiceProcess):
    """`python -m sla` as its own process, as in production, its output in the test's."""

    def __init__(self, bootstrap: str, keys_file: Path, group: str, state_dir: Path, **settings: str) -> None:
        (port,) = free_ports(1)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "API_KEYS_FILE": str(keys_file),
            "CONSUMER_GROUP": group,
            "HTTP_PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "STATE_DIR": str(state_dir),  # kept across its restarts, as a pod's volume
            **settings,
        }
        super().__init__("sla", f"exec {sys.executable} -m sla", env, port, log=None)

    def stop(self, timeout_s: float = 20) -> bool:
        """SIGTERM, as an orchestrator stops it; the test fails if it has not stopped within 20 s."""
        assert super().stop(timeout_s), "the sla process did not stop within 20 s of SIGTERM"
        return True

    def metric(self, name: str) -> float:
        return metric(f"http://127.0.0.1:{self.port}", name)

    def put(self, path: str, body: dict[str, Any]) -> None:
        response = httpx.put(f"http://127.0.0.1:{self.port}{path}", json=body, headers=bearer(ADMIN), timeout=10)
        assert response.status_code == 200, response.text


#: When a ticket of `a_minute_policy` warns and breaches, in seconds of age: first response, then resolution.
ALARM_AGES = {"warning:0.75": (45, 90), "warning:0.9": (54, 108), "breach": (60, 120)}


def a_minute_policy(service: SlaProcess) -> str:
    """A client whose tickets must be answered in a minute and solved in two, around the clock; its id."""
    client_id, calendar_id = unique("client"), unique("always")
    # In effect a little before the (backdated) tickets were opened, as a change may be (clock skew allowance).
    since = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    service.put(f"/v1/sla/calendars/{calendar_id}", {**ALWAYS, "effective_at": since})
    policy = policy_for(client_id, calendar_id, first=1, resolution=2)
    service.put(f"/v1/sla/policies/{unique('policy')}", {**policy, "effective_at": since})
    return client_id


def ticket_events_in_the_log(bootstrap: str) -> int:
    async def ends() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            partitions = [TopicPartition(TICKETS_EVENTS, p) for p in range(TICKET_PARTITIONS)]
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await consumer.stop()

    return asyncio.run(ends())


def alarms_fall_due_around_now(kafka_bootstrap: str, client_id: str) -> list[Envelope]:
    """40 tickets whose alarms (at 45, 54, 60, 90, 108 and 120 s of age) fall over the next 50 s and before; once
    every clock has started."""
    start = datetime.now(UTC)
    tickets = [
        a_ticket_created(client_id=client_id, occurred_at=start - timedelta(seconds=110) + timedelta(seconds=i))
        for i in range(40)
    ]
    produce(kafka_bootstrap, *tickets)
    ids = {t.ticket_id for t in tickets}
    eventually(
        lambda: sum(e["event_type"] == "sla.clock_started" for e in sla_events(kafka_bootstrap, ids)) == 80,
        what="every clock started",
    )
    return tickets


def assert_every_alarm_raised_once(kafka_bootstrap: str, tickets: list[Envelope]) -> None:
    ids = {t.ticket_id for t in tickets}
    end = max(t.occurred_at for t in tickets) + timedelta(seconds=121)  # the last alarm is due by then

    def expected() -> Counter[tuple[str, str, str]]:
        return Counter(
            (t.ticket_id, metric, kind)
            for t in tickets
            for kind, seconds in ALARM_AGES.items()
            for metric, after in zip(("first_response", "resolution"), seconds, strict=True)
            if t.occurred_at + timedelta(seconds=after) <= end
        )

    def alarms() -> Counter[tuple[str, str, str]]:
        found: Counter[tuple[str, str, str]] = Counter()
        for event in sla_events(kafka_bootstrap, ids):
            if event["event_type"] == "sla.warning":
                found[(event["ticket_id"], event["data"]["metric"], f"warning:{event['data']['threshold']:g}")] += 1
            elif event["event_type"] == "sla.breached":
                found[(event["ticket_id"], event["data"]["metric"], "breach")] += 1
        return found

    eventually(
        lambda: datetime.now(UTC) > end and not set(expected()) - set(alarms()), timeout_s=90, what="every alarm"
    )
    assert alarms() == expected()
    events = sla_events(kafka_bootstrap, ids)
    assert len({e["event_id"] for e in events}) == len(events), "an sla event was published twice"
    assert sum(1 for e in events if e["event_type"] == "sla.clock_started") == 80


def test_kill_9_mid_run_neither_misses_nor_doubles_an_alarm(kafka_bootstrap: str, tmp_path: Path) -> None:
    service = SlaProcess(kafka_bootstrap, keys_file(tmp_path / "api-keys.json"), unique("sla-kill"), tmp_path / "state")
    service.start()
    try:
        eventually(service.ready, timeout_s=60, what="sla process ready")
        tickets = alarms_fall_due_around_now(kafka_bootstrap, a_minute_policy(service))
        service.kill9()
        service.start()
        eventually(service.ready, timeout_s=60, what="sla process ready again")

        # Loaded from its store (and the changelog's tail: a process killed keeps only what its store had flushed)
        # rather than by replaying tickets.events from the beginning.
        def loaded_and_replayed() -> tuple[float, float]:
            return (
                service.metric("ticketstream_sla_tickets_restored_total"),
                service.metric("ticketstream_sla_events_replayed_total"),
            )

        loaded, replayed = eventually(lambda: sum(r := loaded_and_replayed()) >= 40 and r, what="all taken over")
        assert loaded > 0 and replayed < ticket_events_in_the_log(kafka_bootstrap), (loaded, replayed)
        assert_every_alarm_raised_once(kafka_bootstrap, tickets)
    finally:
        service.stop()


def test_a_standby_takes_a_killed_replicas_partitions_over_from_its_warm_store(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Each replica follows sla.clocks of the partitions the other owns; killed, its partitions go to the survivor,
    whose store already holds their clocks: it reads the changelog's tail, not the partitions, and no alarm is missed
    or doubled."""
    keys, group = keys_file(tmp_path / "api-keys.json"), unique("sla-standby")
    victim, survivor = (
        SlaProcess(kafka_bootstrap, keys, group, tmp_path / f"state-{i}", SESSION_TIMEOUT_SECONDS="2") for i in (1, 2)
    )
    victim.start()
    survivor.start()
    try:
        eventually(lambda: victim.ready() and survivor.ready(), timeout_s=90, what="both replicas ready")
        tickets = alarms_fall_due_around_now(kafka_bootstrap, a_minute_policy(victim))
        ids = {t.ticket_id.encode() for t in tickets}
        eventually(lambda: ids <= in_changelog(kafka_bootstrap), what="every ticket's clocks in sla.clocks")
        gauge, loaded = "ticketstream_sla_tickets", "ticketstream_sla_tickets_restored_total"
        # (Other tests' tickets are in the topics too: count what changes.)
        eventually(lambda: victim.metric(gauge) and survivor.metric(gauge), what="both replicas holding tickets")
        held, own = victim.metric(gauge), survivor.metric(gauge)
        loaded_before = survivor.metric(loaded)
        victim.kill9()
        eventually(lambda: survivor.metric(gauge) == own + held, timeout_s=60, what="the survivor holding all")
        # Its own, kept through the rebalance (which took every partition away and gave its own back), were not
        # loaded again. (The victim's are held asleep by their next alarm, or loaded: none if no configuration
        # change came after they were advanced.)
        assert survivor.metric(loaded) - loaded_before <= held
        assert_every_alarm_raised_once(kafka_bootstrap, tickets)
    finally:
        victim.stop()
        survivor.stop()


def test_a_replica_whose_process_is_gone_is_removed_from_the_group_without_waiting_for_its_session(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With a session of two minutes, the group alone would leave a killed replica's partitions unheld for two
    minutes. The survivor sees nothing listen at its presence port nor at its HTTP port, removes it from the group
    and holds every ticket long before. A replica stopped gracefully keeps its presence port open until it has left
    the group itself: nobody removes it."""
    keys, group = keys_file(tmp_path / "api-keys.json"), unique("sla-presence")
    settings = {"SESSION_TIMEOUT_SECONDS": "120", "PEER_PROBE_SECONDS": "0.25"}
    stopped, victim, survivor = (
        SlaProcess(kafka_bootstrap, keys, group, tmp_path / f"state-{i}", **settings) for i in (1, 2, 3)
    )
    for replica in (stopped, victim, survivor):
        replica.start()
    try:
        eventually(lambda: all(r.ready() for r in (stopped, victim, survivor)), timeout_s=90, what="three replicas")
        assert httpx.get(f"http://127.0.0.1:{victim.port}/healthz", timeout=10).json()["presence_port"] > 0
        stopped.stop()
        tickets = alarms_fall_due_around_now(kafka_bootstrap, a_minute_policy(victim))
        ids = {t.ticket_id.encode() for t in tickets}
        eventually(lambda: ids <= in_changelog(kafka_bootstrap), what="every ticket's clocks in sla.clocks")
        gauge = "ticketstream_sla_tickets"
        eventually(lambda: victim.metric(gauge) and survivor.metric(gauge), what="both replicas holding tickets")
        assert victim.metric(EVICTED) == survivor.metric(EVICTED) == 0, "a replica stopping was removed"
        held, own = victim.metric(gauge), survivor.metric(gauge)
        victim.kill9()
        eventually(lambda: survivor.metric(gauge) == own + held, timeout_s=60, what="the survivor holding all")
        assert survivor.metric(EVICTED) == 1
        assert_every_alarm_raised_once(kafka_bootstrap, tickets)
    finally:
        for replica in (stopped, victim, survivor):
            replica.stop()


def test_a_replica_killed_and_started_again_at_its_address_removes_its_former_process_from_the_group(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A container restarted in its pod: the new process, at the same address, would wait for the session of the
    one that died (two minutes here) before the group took it in. It removes that member first, and is ready long
    before."""
    keys, group = keys_file(tmp_path / "api-keys.json"), unique("sla-restarted")
    replica = SlaProcess(kafka_bootstrap, keys, group, tmp_path / "state", SESSION_TIMEOUT_SECONDS="120")
    replica.start()
    try:
        eventually(replica.ready, timeout_s=90, what="the replica ready")
        replica.kill9()
        replica.start()
        eventually(replica.ready, timeout_s=60, what="the replica ready again")
        assert replica.metric(EVICTED) == 1
    finally:
        replica.stop()


def test_a_replica_stops_on_sigterm_while_its_group_waits_for_a_dead_member(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Started again with the watch off, a replica's join waits for the dead one's session (two minutes). Stopped
    meanwhile, it gave up on its consumer only once the JoinGroup request timed out: 34 s after SIGTERM. Its clients
    now get a bounded time to stop (SlaProcess.stop fails the test past 20 s)."""
    keys, group = keys_file(tmp_path / "api-keys.json"), unique("sla-stopping")
    settings = {"SESSION_TIMEOUT_SECONDS": "120", "PEER_PROBE_SECONDS": "0"}
    replica = SlaProcess(kafka_bootstrap, keys, group, tmp_path / "state", **settings)
    replica.start()
    try:
        eventually(replica.ready, timeout_s=90, what="the replica ready")
        replica.kill9()
        replica.start()

        def joining() -> bool:
            try:
                checks = httpx.get(f"http://127.0.0.1:{replica.port}/readyz", timeout=2).json()["checks"]
            except httpx.TransportError:
                return False
            return checks["config_read"] and not checks["clocks_rebuilt"]

        eventually(joining, timeout_s=60, what="the replica joining its group")
    finally:
        replica.stop()


def test_either_replica_answers_for_any_ticket(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Two sla processes share the partitions; a GET for a ticket held by the other one is passed to it."""
    keys, group = keys_file(tmp_path / "api-keys.json"), unique("sla-pair")
    replicas = [SlaProcess(kafka_bootstrap, keys, group, tmp_path / f"state-{i}") for i in range(2)]
    for replica in replicas:
        replica.start()
    try:
        tickets = [a_ticket_created(client_id=unique("client")) for _ in range(12)]
        produce(kafka_bootstrap, *tickets)

        def answers(replica: SlaProcess, ticket_id: str) -> int:
            url = f"http://127.0.0.1:{replica.port}/v1/sla/tickets/{ticket_id}"
            return httpx.get(url, headers=bearer(ADMIN), timeout=10).status_code

        def both_hold_partitions() -> bool:
            return all(replica.ready() for replica in replicas) and all(
                replica.metric("ticketstream_sla_tickets") > 0 for replica in replicas
            )

        eventually(both_hold_partitions, timeout_s=90, what="both replicas holding tickets")
        eventually(
            lambda: all(answers(replica, t.ticket_id) == 200 for replica in replicas for t in tickets),
            timeout_s=30,
            what="every ticket answered by both replicas",
        )
        assert {answers(replica, "no-such-ticket") for replica in replicas} == {404}

        # A resolved ticket's clocks are settled: they leave memory for the holder's store, and are answered from it.
        resolved = tickets[0]
        at = datetime.now(UTC)
        produce(kafka_bootstrap, follow_up(TicketStatusChanged, resolved.ticket_id, resolved.client_id, 2, at,
                                           from_status="new", to_status="resolved"))  # fmt: skip

        def statuses(replica: SlaProcess) -> set[str]:
            url = f"http://127.0.0.1:{replica.port}/v1/sla/tickets/{resolved.ticket_id}"
            answer = httpx.get(url, headers=bearer(ADMIN), timeout=10)
            return {clock["status"] for clock in answer.json()["clocks"]} if answer.status_code == 200 else set()

        eventually(lambda: all(statuses(replica) == {"met"} for replica in replicas), what="the resolved ticket's")
    finally:
        unstoppable = []
        for replica in replicas:
            try:
                replica.stop()
            except AssertionError as error:
                unstoppable.append(error)
        assert not unstoppable, unstoppable
