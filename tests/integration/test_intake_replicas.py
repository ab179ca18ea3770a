"""Several intake replicas on one broker: each ticket's commands are decided by the one owner of its partition,
whichever replica the caller reached. Checked on tickets.events itself: no lost update, no version gap, no
duplicate event."""

import asyncio
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiokafka import AIOKafkaConsumer

from tests.integration.conftest import NEW_TICKET, running_intake
from tests.keys import ADMIN, INTEGRATION, bearer
from tests.polling import eventually
from ticketstream_shared.contract import decode_ticket_event
from ticketstream_shared.contract.topics import TICKETS_EVENTS

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
