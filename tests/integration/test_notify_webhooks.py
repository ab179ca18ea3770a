"""notify's webhooks against the real broker and a real HTTP receiver: signed deliveries, retries, order per
ticket, the DLQ after the retry budget, a dead endpoint that slows no other, and what the API refuses.

Events enter as intake, sla and assignment write them (on their topics); each test registers its own webhooks on
its own receiver paths and uses its own client, so the session's other events never reach them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi.testclient import TestClient

from notify.app import build_app
from notify.settings import NotifySettings
from tests.builders import a_ticket_created
from tests.dead_letters import dead_letters, headers, parked_json
from tests.keys import ADMIN, INTEGRATION, REQUESTER, TECHNICIAN, TEST_KEYS, bearer
from tests.polling import eventually
from tests.publishing import publish
from tests.receivers import Receiver, http_receiver
from ticketstream_shared.contract import Envelope, TicketStatus, TicketStatusChanged, encode
from ticketstream_shared.contract.topics import NOTIFY_CONFIG, NOTIFY_DELIVERIES
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.sealing import write_key

pytestmark = pytest.mark.integration


def settings_for(kafka_bootstrap: str, key_file: Path, **overrides: object) -> NotifySettings:
    return NotifySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file="unused-keys-come-from-tests",
        consumer_group=f"notify-{uuid.uuid4().hex[:8]}",
        notify_secrets_key_file=key_file,
        notify_allowed_hosts="127.0.0.1",
        webhook_first_retry_s=0.1,
        webhook_longest_retry_s=0.5,
        **overrides,
    )


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with http_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def notify(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    key_file = write_key(tmp_path_factory.mktemp("notify") / "secrets.key")
    settings = settings_for(kafka_bootstrap, key_file, webhook_retry_budget_s=3.0, webhook_read_timeout_s=5.0)
    with TestClient(build_app(settings, TEST_KEYS)) as client:
        eventually(lambda: client.get("/readyz").status_code == 200, timeout_s=60, what="notify ready")
        yield client


def a_client() -> str:
    return f"client-{uuid.uuid4().hex[:8]}"


def register(notify: TestClient, receiver: Receiver, client_id: str, path: str, **body: object) -> dict:
    webhook_id = f"hook-{uuid.uuid4().hex[:8]}"
    answer = notify.put(
        f"/v1/notify/webhooks/{webhook_id}",
        json={
            "url": f"{receiver.url}{path}",
            "event_types": ["ticket.*"],
            "client_id": client_id,
            "secret": f"s3cret-{webhook_id}",
            **body,
        },
        headers=bearer(ADMIN),
    )
    assert answer.status_code == 200 and answer.json()["created"], answer.text
    return answer.json()


def status_changes(ticket_id: str, client_id: str, count: int) -> list[Envelope]:
    """A ticket's history: created, then `count` status changes back and forth (versions 2, 3, ...)."""
    created = a_ticket_created(ticket_id, client_id=client_id)
    events: list[Envelope] = [created]
    statuses = [TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.IN_PROGRESS]
    for version in range(2, count + 2):
        events.append(
            TicketStatusChanged(
                event_id=uuid.uuid4(),
                occurred_at=created.occurred_at,
                ticket_id=ticket_id,
                client_id=client_id,
                aggregate_version=version,
                producer="intake",
                correlation_id="test",
                data={"from_status": statuses[(version - 2) % 3], "to_status": statuses[(version - 1) % 3]},
            )
        )
    return events


def deliveries_of(notify: TestClient, webhook_id: str) -> list[dict]:
    answer = notify.get(f"/v1/notify/webhooks/{webhook_id}/deliveries", headers=bearer(ADMIN))
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]


def test_a_delivery_is_the_event_signed_with_the_secret(
    notify: TestClient, receiver: Receiver, kafka_bootstrap: str
) -> None:
    client_id = a_client()
    webhook = register(notify, receiver, client_id, "/signed")
    created = a_ticket_created(client_id=client_id)
    publish(kafka_bootstrap, [created])

    (delivery,) = eventually(lambda: receiver.to("/signed"), what="the delivery")
    assert json.loads(delivery.body) == json.loads(encode(created))
    assert delivery.headers["X-Ticketstream-Event-Id"] == str(created.event_id)
    assert delivery.headers["X-Ticketstream-Event-Type"] == "ticket.created"
    timestamp = delivery.headers["X-Ticketstream-Timestamp"]
    expected = hmac.new(f"s3cret-{webhook['id']}".encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256)
    assert delivery.headers["X-Ticketstream-Signature"] == f"sha256={expected.hexdigest()}"
    wrong = hmac.new(b"another secret", f"{timestamp}.".encode() + delivery.body, hashlib.sha256)
    assert delivery.headers["X-Ticketstream-Signature"] != f"sha256={wrong.hexdigest()}"

    shown = notify.get(f"/v1/notify/webhooks/{webhook['id']}", headers=bearer(ADMIN)).json()
    assert "secret" not in shown and "sealed_secret" not in shown
    assert shown["status"] == "healthy"
    (listed,) = eventually(lambda: [d for d in deliveries_of(notify, webhook["id"]) if d["status"] == "delivered"])
    assert listed["event_id"] == str(created.event_id)
    assert [attempt["outcome"] for attempt in listed["attempts"]] == ["delivered"]


def test_a_refused_delivery_is_tried_again_until_it_is_taken(
    notify: TestClient, receiver: Receiver, kafka_bootstrap: str
) -> None:
    client_id = a_client()
    receiver.plans["/flaky"] = [500, 503]
    webhook = register(notify, receiver, client_id, "/flaky")
    publish(kafka_bootstrap, [a_ticket_created(client_id=client_id)])

    (delivery,) = eventually(
        lambda: [d for d in deliveries_of(notify, webhook["id"]) if d["status"] == "delivered"], what="delivered"
    )
    assert [(a["outcome"], a["status_code"]) for a in delivery["attempts"]] == [
        ("will_retry", 500),
        ("will_retry", 503),
        ("delivered", 200),
    ]
    assert [request.answered for request in receiver.to("/flaky")] == [500, 503, 200]


def test_each_ticket_s_events_arrive_in_order_through_retries(
    notify: TestClient, receiver: Receiver, kafka_bootstrap: str
) -> None:
    client_id = a_client()
    receiver.plans["/ordered"] = [500, 200, 200, 502, 500, 200, 200, 200, 503] * 3
    register(notify, receiver, client_id, "/ordered")
    tickets = [str(uuid.uuid4()) for _ in range(3)]
    histories = [status_changes(ticket_id, client_id, 12) for ticket_id in tickets]
    publish(kafka_bootstrap, [event for round_ in zip(*histories, strict=True) for event in round_])

    def accepted() -> dict[str, list[int]]:
        versions: dict[str, list[int]] = {ticket_id: [] for ticket_id in tickets}
        for request in receiver.to("/ordered"):
            if request.answered == 200:
                event = json.loads(request.body)
                versions[event["ticket_id"]].append(event["aggregate_version"])
        return versions

    eventually(lambda: all(len(v) == 13 for v in accepted().values()), timeout_s=30, what="every event delivered")
    assert all(versions == list(range(1, 14)) for versions in accepted().values()), accepted()


def test_after_the_retry_budget_the_delivery_goes_to_the_dlq_and_the_endpoint_shows_failing(
    notify: TestClient, receiver: Receiver, kafka_bootstrap: str
) -> None:
    client_id = a_client()
    receiver.always["/dead"] = 500
    webhook = register(notify, receiver, client_id, "/dead")
    created = a_ticket_created(client_id=client_id)
    publish(kafka_bootstrap, [created])

    (failed,) = eventually(
        lambda: [d for d in deliveries_of(notify, webhook["id"]) if d["status"] == "failed"], timeout_s=30
    )
    assert failed["attempts"][-1]["outcome"] == "gave_up"
    assert all(a["outcome"] == "will_retry" for a in failed["attempts"][:-1]) and len(failed["attempts"]) >= 2
    shown = notify.get(f"/v1/notify/webhooks/{webhook['id']}", headers=bearer(ADMIN)).json()
    assert shown["status"] == "failing" and shown["failing_since"] and "HTTP 500" in shown["last_error"]

    def parked() -> list:
        return [
            letter
            for letter in dead_letters(kafka_bootstrap, NOTIFY_DELIVERIES)
            if parked_json(letter).get("delivery_id") == failed["id"]
        ]

    (letter,) = eventually(parked, what="the delivery in the DLQ")
    assert "gave up after" in headers(letter)["dlq.reason"] and "HTTP 500" in headers(letter)["dlq.reason"]
    assert json.loads(json.loads(letter.value)["content"]["body"])["event_id"] == str(created.event_id)

    receiver.always.pop("/dead")
    answer = notify.post(
        f"/v1/notify/webhooks/{webhook['id']}/deliveries/{failed['id']}/redeliver", headers=bearer(INTEGRATION)
    )
    assert answer.status_code == 202, answer.text
    eventually(
        lambda: [d for d in deliveries_of(notify, webhook["id"]) if d["status"] == "delivered"], what="redelivered"
    )
    assert notify.get(f"/v1/notify/webhooks/{webhook['id']}", headers=bearer(ADMIN)).json()["status"] == "healthy"


def test_a_slow_endpoint_delays_no_other(notify: TestClient, receiver: Receiver, kafka_bootstrap: str) -> None:
    client_id = a_client()
    receiver.hold_s["/slow"] = 4.0
    register(notify, receiver, client_id, "/slow")
    register(notify, receiver, client_id, "/healthy")
    publish(kafka_bootstrap, [a_ticket_created(client_id=client_id) for _ in range(30)])

    eventually(lambda: len(receiver.to("/healthy")) == 30, timeout_s=30, what="every healthy delivery")
    # The slow endpoint has not finished answering even the first of its lane's deliveries while all of the
    # healthy one's were taken: nothing of it stood in their way.
    assert len(receiver.to("/slow")) <= 8


def test_the_secret_never_reaches_kafka_in_plain_text(
    notify: TestClient, receiver: Receiver, kafka_bootstrap: str
) -> None:
    webhook = register(notify, receiver, a_client(), "/sealed")

    async def config_log() -> bytes:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            records = records_to_end(consumer, {TopicPartition(NOTIFY_CONFIG, 0): None})
            return b"".join([record.value or b"" async for record in records])
        finally:
            await consumer.stop()

    written = asyncio.run(config_log())
    assert webhook["id"].encode() in written
    assert f"s3cret-{webhook['id']}".encode() not in written


def test_webhooks_refuse_what_they_must(notify: TestClient, receiver: Receiver) -> None:
    def put(body: dict, key: str = ADMIN) -> tuple[int, dict]:
        answer = notify.put(f"/v1/notify/webhooks/h-{uuid.uuid4().hex[:6]}", json=body, headers=bearer(key))
        return answer.status_code, answer.json()

    good = {"url": f"{receiver.url}/x", "event_types": ["sla.breached"], "secret": "a-secret-of-16-chars"}
    assert put(good)[0] == 200
    status, answer = put({**good, "url": "ftp://127.0.0.1/x"})
    assert status == 422 and answer["errors"][0]["field"] == "url" and "http" in answer["errors"][0]["message"]
    status, answer = put({**good, "url": "http://10.1.2.3/hook"})
    assert status == 422 and "NOTIFY_ALLOWED_HOSTS" in answer["errors"][0]["message"]
    status, answer = put({**good, "url": "http://169.254.169.254/latest/meta-data"})
    assert status == 422
    status, answer = put({**good, "secret": "short"})
    assert status == 422 and answer["errors"][0]["field"] == "secret"
    status, answer = put({key: value for key, value in good.items() if key != "secret"})
    assert status == 422 and answer["errors"][0]["field"] == "secret"
    status, answer = put({**good, "event_types": ["Not A Type"]})
    assert status == 422 and answer["errors"][0]["field"].startswith("event_types")
    assert put(good, REQUESTER)[0] == 403
    assert put(good, TECHNICIAN)[0] == 403
    assert notify.put("/v1/notify/webhooks/h", json=good).status_code == 401
    assert notify.get("/v1/notify/webhooks/nobody", headers=bearer(ADMIN)).status_code == 404


def test_the_same_put_twice_changes_nothing(notify: TestClient, receiver: Receiver) -> None:
    body = {"url": f"{receiver.url}/twice", "event_types": ["*"], "secret": "a-secret-of-16-chars"}
    first = notify.put("/v1/notify/webhooks/twice-1", json=body, headers=bearer(ADMIN))
    again = notify.put("/v1/notify/webhooks/twice-1", json=body, headers=bearer(ADMIN))
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["created"], again.json()["created"]) == (True, False)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["version"] == first.json()["version"]
    changed = notify.put("/v1/notify/webhooks/twice-1", json={**body, "active": False}, headers=bearer(ADMIN))
    assert changed.status_code == 200 and changed.json()["version"] == first.json()["version"] + 1
    assert notify.delete("/v1/notify/webhooks/twice-1", headers=bearer(ADMIN)).status_code == 204
    assert notify.get("/v1/notify/webhooks/twice-1", headers=bearer(ADMIN)).status_code == 404
