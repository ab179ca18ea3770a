"""Several intake replicas on one broker: each ticket's commands are decided by the one owner of its partition,
whichever replica the caller reached. Checked on tickets.events itself: no lost update, no version gap, no
duplicate event."""

import asyncio
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.integration.conftest import NEW_TICKET, running_intake
from tests.integration.test_intake_inbound import request
from tests.keys import ADMIN, INTEGRATION, bearer
from tests.metrics import EVICTED, metric
from tests.polling import eventually
from tests.replicas import replicas
from ticketstream_shared.contract import decode_ticket_event
from ticketstream_shared.contract.requests import inbound_ticket_id
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS, TICKETS_INBOUND

pytestmark = pytest.mark.integration

TICKETS, WORKLOGS = 6, 120


def events_of(kafka_bootstrap: str, ticket_ids: set[str], count: int) -> dict[str, list]:
    async def read() -> dict[str, list]:
        consumer = AIOKafkaConsumer(TICKETS_EVENTS, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        found: dict[str, list] = defaultdict(list)
        try:
            async with asyncio.timeout(30):
                while sum(map(len, found.values())) < count:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            if record.key.decode() in ticket_ids:
                                found[record.key.decode()].append(decode_ticket_event(record.value))
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def forwarded(replica) -> float:
    metrics = replica.get("/metrics", headers=bearer(ADMIN)).text
    line = next(
        (x for x in metrics.splitlines() if x.startswith('ticketstream_intake_commands_total{path="forwarded"}')), ""
    )
    return float(line.split()[-1]) if line else 0.0


def test_concurrent_callers_on_two_replicas_never_lose_or_repeat_an_update(kafka_bootstrap):
    with running_intake(kafka_bootstrap) as first, running_intake(kafka_bootstrap) as second:
        replicas = (first, second)
        for replica in replicas:
            eventually(lambda r=replica: r.get("/readyz").status_code == 200, timeout_s=60, what="replica ready")
        client = f"replicas-{uuid.uuid4().hex[:6]}"

        def created_here(replica) -> bool:
            """A new ticket without a key gets an id in one of the receiving replica's partitions: no forwarding."""
            before = forwarded(replica)
            answer = replica.post("/v1/tickets", json={**NEW_TICKET, "client_id": client}, headers=bearer(ADMIN))
            return answer.status_code == 201 and forwarded(replica) == before

        for replica in replicas:  # once the group has given each replica its partitions
            eventually(lambda r=replica: all(created_here(r) for _ in range(5)), what="creations decided locally")
        tickets = [
            replicas[n % 2]
            .post("/v1/tickets", json={**NEW_TICKET, "client_id": client}, headers=bearer(ADMIN))
            .json()["id"]
            for n in range(TICKETS)
        ]

        def log_work(n: int) -> int:  # ticket n % 6 was opened on replica n % 2; half the callers reach the other
            answer = replicas[(n + n // TICKETS) % 2].post(
                f"/v1/tickets/{tickets[n % TICKETS]}/worklogs",
                json={"technician_id": f"tech-{n}", "minutes": 1, "billable": True},
                headers=bearer(ADMIN),
            )
            return answer.status_code

        forwarded_before = forwarded(first)
        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = list(pool.map(log_work, range(WORKLOGS)))
        assert codes == [201] * WORKLOGS
        assert forwarded(first) - forwarded_before > 0, "some callers reached a replica that does not own the ticket"

        key = {"Idempotency-Key": f"retry-{client}"}
        on_first = first.post(
            "/v1/tickets", json={**NEW_TICKET, "client_id": client}, headers={**bearer(INTEGRATION), **key}
        )
        on_second = second.post(
            "/v1/tickets", json={**NEW_TICKET, "client_id": client}, headers={**bearer(INTEGRATION), **key}
        )
        assert on_first.status_code == on_second.status_code == 201
        assert on_first.json()["id"] == on_second.json()["id"], "a retry on another replica finds the same ticket"

        for ticket in tickets:  # both replicas answer reads with every update
            for replica in replicas:
                read = eventually(
                    lambda r=replica, t=ticket: (
                        (j := r.get(f"/v1/tickets/{t}", headers=bearer(ADMIN)).json())["version"]
                        == 1 + WORKLOGS // TICKETS
                        and j
                    ),
                    what="every replica has read every update",
                )
                assert read["worklog_minutes"] == WORKLOGS // TICKETS

    logged = events_of(kafka_bootstrap, set(tickets), TICKETS + WORKLOGS)
    for ticket in tickets:
        events = logged[ticket]
        assert [e.aggregate_version for e in events] == list(range(1, len(events) + 1)), "no gap, no repeat"
        assert len({e.event_id for e in events}) == len(events), "no duplicate event"
        assert sum(e.event_type == "ticket.worklog_recorded" for e in events) == WORKLOGS // TICKETS, "no lost update"


def test_a_replica_killed_is_removed_from_its_groups_and_its_work_done_by_the_survivor(tmp_path):
    """With a session of two minutes, the groups alone would leave a killed replica's share without an owner for two
    minutes: every command on its tickets a 503, other systems' requests on its partitions of tickets.inbound not
    read. The survivor finds nothing listening at the victim's presence port nor at its HTTP port, removes it from
    both groups, and does its work long before. (A broker of its own: a kill must not disturb the session's, nor
    these replicas read the requests other tests left on tickets.inbound.)"""
    with replicas("intake", 2, tmp_path, SESSION_TIMEOUT_SECONDS="120") as (bootstrap, (victim, survivor)):
        assert httpx.get(f"{victim.url}/healthz", timeout=10).json()["presence_port"] > 0

        def opened_by_its_owner(replica) -> str | None:
            """A ticket opened without a key, decided where it was opened: its partition is that replica's."""
            before = metric(replica.url, FORWARDED)
            answer = httpx.post(f"{replica.url}/v1/tickets", json=NEW_TICKET, headers=bearer(ADMIN), timeout=10)
            return (
                answer.json()["id"] if answer.status_code == 201 and metric(replica.url, FORWARDED) == before else None
            )

        for replica in (victim, survivor):  # once the group has settled with a share for each
            eventually(lambda r=replica: all(opened_by_its_owner(r) for _ in range(5)), what="tickets decided")
        tickets = [opened_by_its_owner(victim) for _ in range(3)]
        assert all(tickets), "the owners group changed hands while the tickets were opened"
        assert metric(survivor.url, EVICTED) == 0
        victim.kill9()

        def worklog_recorded(ticket_id: str) -> bool:
            answer = httpx.post(
                f"{survivor.url}/v1/tickets/{ticket_id}/worklogs",
                json={"technician_id": "tech-1", "minutes": 5, "billable": True},
                headers={**bearer(ADMIN), "Idempotency-Key": f"after-the-kill-{ticket_id}"},
                timeout=30,
            )
            assert answer.status_code in (201, 503), answer.text
            return answer.status_code == 201

        for ticket_id in tickets:
            eventually(lambda t=ticket_id: worklog_recorded(t), timeout_s=60, what="the survivor deciding it")
        requested = asyncio.run(request_on_every_partition(bootstrap))

        def opened(ticket_id: str) -> bool:
            answer = httpx.get(f"{survivor.url}/v1/tickets/{ticket_id}", headers=bearer(ADMIN), timeout=10)
            return answer.status_code == 200

        for ticket_id in requested:
            eventually(lambda t=ticket_id: opened(t), timeout_s=60, what="the survivor reading its request")
        eventually(lambda: metric(survivor.url, EVICTED) == 2, what="the victim removed from both groups")


async def request_on_every_partition(bootstrap: str) -> list[str]:
    """A ticket requested by another system on each partition of tickets.inbound; the tickets' ids."""
    run = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        requested = []
        for partition in range(TICKET_PARTITIONS):
            request_id = f"{run}-{partition}"
            message = request("create_ticket", request_id, {**NEW_TICKET, "channel": "monitoring"})
            ticket_id = inbound_ticket_id(request_id)
            await producer.send_and_wait(TICKETS_INBOUND, message, key=ticket_id.encode(), partition=partition)
            requested.append(ticket_id)
        return requested
    finally:
        await producer.stop()


FORWARDED = 'ticketstream_intake_commands_total{path="forwarded"}'
