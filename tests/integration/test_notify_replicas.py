"""Two notify replicas in one consumer group, on the real broker: they share the work (each target is sent to by
the replica owning its partition of notify.deliveries, each ticket partition's events are fanned out by one), every
delivery is made, none twice while both run, and when one stops the other takes its partitions over and carries on.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fastapi.testclient import TestClient

from notify.app import build_app
from notify.settings import NotifySettings
from tests.builders import a_ticket_created
from tests.keys import ADMIN, TEST_KEYS, bearer
from tests.metrics import EVICTED, metric
from tests.polling import eventually
from tests.publishing import publish
from tests.receivers import Receiver, http_receiver
from tests.replicas import replicas
from ticketstream_shared.contract.topics import DELIVERY_PARTITIONS
from ticketstream_shared.sealing import write_key

pytestmark = pytest.mark.integration

WEBHOOKS = 12


def a_replica(kafka_bootstrap: str, group: str, key_file: Path) -> TestClient:
    settings = NotifySettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file="unused-keys-come-from-tests",
        consumer_group=group,
        notify_secrets_key_file=key_file,
        notify_allowed_hosts="127.0.0.1",
        webhook_first_retry_s=0.1,
        webhook_longest_retry_s=0.5,
        peer_probe_seconds=0,  # both in one process, at one address: neither may take the other for its former self
    )
    return TestClient(build_app(settings, TEST_KEYS))


def sending(replica: TestClient) -> set[int]:
    return set(replica.app.state.deliveries.partitions.acting)


def test_two_replicas_share_the_deliveries_and_one_carries_on_alone(kafka_bootstrap: str, tmp_path: Path) -> None:
    group = f"notify-{uuid.uuid4().hex[:8]}"
    key_file = write_key(tmp_path / "secrets.key")  # both replicas open what either sealed: one key
    client_id = f"replicas-{uuid.uuid4().hex[:8]}"
    with http_receiver() as receiver, a_replica(kafka_bootstrap, group, key_file) as first:
        eventually(lambda: first.get("/readyz").status_code == 200, timeout_s=60, what="first replica ready")
        for n in range(WEBHOOKS):
            body = {"url": f"{receiver.url}/hook-{n}", "event_types": ["ticket.created"], "client_id": client_id,
                    "secret": "a-secret-of-16-chars"}  # fmt: skip
            assert (
                first.put(f"/v1/notify/webhooks/{client_id}-{n}", json=body, headers=bearer(ADMIN)).status_code == 200
            )
        second = a_replica(kafka_bootstrap, group, key_file)
        with second:
            eventually(lambda: second.get("/readyz").status_code == 200, timeout_s=60, what="second replica ready")
            eventually(
                lambda: (
                    sending(first)
                    and sending(second)
                    and sending(first) | sending(second) == set(range(DELIVERY_PARTITIONS))
                    and not sending(first) & sending(second)
                ),
                timeout_s=60,
                what="the deliveries' partitions split between the two",
            )
            # A webhook made on one replica is known to the other: both read notify.config.
            answer = second.get(f"/v1/notify/webhooks/{client_id}-0", headers=bearer(ADMIN))
            assert answer.status_code == 200 and answer.json()["url"] == f"{receiver.url}/hook-0"

            shared = [a_ticket_created(client_id=client_id) for _ in range(30)]
            publish(kafka_bootstrap, shared)

            def missing() -> str:
                made = received(receiver, shared)
                absent = [(f"/hook-{n}", str(e.event_id)) for n in range(WEBHOOKS) for e in shared]
                absent = [pair for pair in absent if pair not in made]
                views = {
                    replica: replica.get(f"/v1/notify/webhooks/{client_id}-{path.removeprefix('/hook-')}/deliveries",
                                         headers=bearer(ADMIN)).json()
                    for replica in (first, second) for path, _ in absent[:1]
                }  # fmt: skip
                return f"{len(absent)} missing, e.g. {absent[:3]}; deliveries seen by each replica: {views}"

            try:
                eventually(
                    lambda: len(received(receiver, shared)) == 30 * WEBHOOKS, timeout_s=60, what="every delivery"
                )
            except AssertionError as failed:
                raise AssertionError(missing()) from failed
            assert set(received(receiver, shared).values()) == {1}, "a delivery made twice while both replicas ran"
            # Every webhook got its deliveries, whichever replica owns it.
            assert {path for path, _ in received(receiver, shared)} == {f"/hook-{n}" for n in range(WEBHOOKS)}
        # The second replica left the group: the first takes every partition again and delivers what comes next.
        eventually(lambda: sending(first) == set(range(DELIVERY_PARTITIONS)), timeout_s=60, what="the take-over")
        alone = [a_ticket_created(client_id=client_id) for _ in range(10)]
        publish(kafka_bootstrap, alone)
        eventually(
            lambda: len(received(receiver, alone)) == 10 * WEBHOOKS, timeout_s=60, what="every delivery after it"
        )


def test_a_replica_killed_is_removed_from_both_groups_and_the_survivor_delivers_its_share(tmp_path: Path) -> None:
    """With a session of two minutes, the groups alone would leave a killed replica's ticket partitions unread and
    its deliveries' partitions unsent for two minutes. The survivor finds nothing listening at the victim's presence
    port nor at its HTTP port, removes it from both groups (the fan-out's, co-partitioned, and the senders'), and
    delivers every event to every webhook long before."""
    settings = {
        "SESSION_TIMEOUT_SECONDS": "120",
        "NOTIFY_SECRETS_KEY_FILE": str(write_key(tmp_path / "secrets.key")),
        "NOTIFY_ALLOWED_HOSTS": "127.0.0.1",
        "WEBHOOK_FIRST_RETRY_S": "0.1",
        "WEBHOOK_LONGEST_RETRY_S": "0.5",
    }
    client_id = f"killed-{uuid.uuid4().hex[:8]}"
    with http_receiver() as receiver, replicas("notify", 2, tmp_path, **settings) as (bootstrap, (victim, survivor)):
        for n in range(WEBHOOKS):
            body = {"url": f"{receiver.url}/hook-{n}", "event_types": ["ticket.created"], "client_id": client_id,
                    "secret": "a-secret-of-16-chars"}  # fmt: skip
            answer = httpx.put(
                f"{survivor.url}/v1/notify/webhooks/{client_id}-{n}", json=body, headers=bearer(ADMIN), timeout=10
            )
            assert answer.status_code == 200, answer.text
        for group in ("notify", "notify-senders"):
            eventually(lambda g=group: members_of(bootstrap, g) == 2, timeout_s=60, what=f"both replicas in {group}")
        victim.kill9()

        events = [a_ticket_created(client_id=client_id) for _ in range(20)]  # over most ticket partitions
        publish(bootstrap, events)
        every = {(f"/hook-{n}", str(event.event_id)) for n in range(WEBHOOKS) for event in events}
        eventually(lambda: set(received(receiver, events)) == every,
                   timeout_s=60, what="every event delivered to every webhook by the survivor")  # fmt: skip
        eventually(lambda: metric(survivor.url, EVICTED) == 2, what="the victim removed from both groups")


def members_of(bootstrap: str, group: str) -> int:
    async def describe() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            (described,) = await admin.describe_consumer_groups([group])
            return sum(len(found["members"]) for found in described.to_object()["groups"])
        finally:
            await admin.close()

    return asyncio.run(describe())


def received(receiver: Receiver, events: list) -> Counter[tuple[str, str]]:
    """How many times each (webhook path, event id) of `events` was delivered so far."""
    wanted = {str(event.event_id) for event in events}
    with receiver.lock:
        requests = list(receiver.requests)
    return Counter(
        (request.path, json.loads(request.body)["event_id"])
        for request in requests
        if json.loads(request.body)["event_id"] in wanted
    )
