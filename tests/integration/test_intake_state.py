"""Intake's local store against the real broker: a restart on the same disk reads tickets.events only past what its
store holds; a new machine restores from the intake.tickets changelog instead of the history, and knows every
ticket, listing and request key as the replica that wrote it did."""

import asyncio
import logging
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from intake.domain import decide
from intake.ticket_store import EVENTS_PER_RECORD, LAYOUT, Logged, TicketStore
from tests.integration.conftest import NEW_TICKET, running_intake
from tests.keys import ADMIN, INTEGRATION, bearer
from tests.polling import eventually
from tests.unit.test_intake_domain import context, create
from ticketstream_shared.contract import encode, read_logged
from ticketstream_shared.contract.topics import INTAKE_TICKETS, TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.runtime.changelog import APPLIED_HEADER
from ticketstream_shared.runtime.store import Changes, LocalStore


def ends_of(kafka_bootstrap: str, topic: str) -> dict[int, int]:
    async def read() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(TICKET_PARTITIONS)])
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    return asyncio.run(read())


def changelog_keys(kafka_bootstrap: str) -> dict[str, int]:
    """Every key of intake.tickets with the `applied` header of its latest record, read with a raw consumer."""

    async def read() -> dict[str, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            partitions = [TopicPartition(INTAKE_TICKETS, p) for p in range(TICKET_PARTITIONS)]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            keys: dict[str, int] = {}
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        keys[record.key.decode()] = int(dict(record.headers)[APPLIED_HEADER])
            return keys
        finally:
            await consumer.stop()

    return asyncio.run(read())


def started_from(caplog) -> dict[str, dict[int, int]]:
    """Per topic, where the last intake started in this test read it from (its store's position)."""
    return {
        record.topic: record.__dict__["from"]
        for record in caplog.records
        if record.getMessage() == "reading from the store's position"
    }


def create_tickets(client, count: int, client_id: str) -> list[dict]:
    created = [
        client.post("/v1/tickets", json={**NEW_TICKET, "client_id": client_id}, headers=bearer(ADMIN))
        for _ in range(count)
    ]
    assert all(answer.status_code == 201 for answer in created), [answer.text for answer in created]
    for answer in created:
        worklog = {"technician_id": "tech-1", "minutes": 25, "billable": True}
        logged = client.post(f"/v1/tickets/{answer.json()['id']}/worklogs", json=worklog, headers=bearer(ADMIN))
        assert logged.status_code == 201, logged.text
    return [answer.json() for answer in created]


def listed(client, client_id: str) -> list[str]:
    page = client.get("/v1/tickets", params={"client_id": client_id, "limit": 500}, headers=bearer(ADMIN))
    assert page.status_code == 200, page.text
    return [ticket["id"] for ticket in page.json()["tickets"]]


def test_a_restart_on_the_same_disk_reads_the_log_only_past_its_store(kafka_bootstrap, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    with running_intake(kafka_bootstrap, state_dir=tmp_path / "intake") as first:
        eventually(lambda: first.get("/readyz").status_code == 200, timeout_s=60, what="intake ready")
        tickets = create_tickets(first, 5, client_id)
        ends = ends_of(kafka_bootstrap, TICKETS_EVENTS)
        # read back to the end before it stops: the offsets its store then holds are these ends
        eventually(lambda: first.get(f"/v1/tickets/{tickets[-1]['id']}", headers=bearer(ADMIN)).status_code == 200)
        eventually(lambda: listed(first, client_id) == [t["id"] for t in tickets], what="the tickets listed")
    caplog.clear()

    with running_intake(kafka_bootstrap, state_dir=tmp_path / "intake") as restarted:
        eventually(lambda: restarted.get("/readyz").status_code == 200, timeout_s=60, what="restarted intake ready")
        written = {partition: end for partition, end in ends.items() if end}
        assert started_from(caplog)[TICKETS_EVENTS] == written, "read only past its store"
        restores = [record for record in caplog.records if record.getMessage() == "restored the local store"]
        assert not restores, "its own disk, not the changelog"
        assert listed(restarted, client_id) == [ticket["id"] for ticket in tickets]
        read = restarted.get(f"/v1/tickets/{tickets[0]['id']}", headers=bearer(ADMIN)).json()
        assert (read["version"], read["worklog_minutes"]) == (2, 25)
        closed = restarted.post(
            f"/v1/tickets/{tickets[0]['id']}/status", json={"status": "in_progress"}, headers=bearer(ADMIN)
        )
        assert closed.status_code == 200 and closed.headers["ETag"] == '"3"', closed.text


def test_a_new_machine_restores_from_the_changelog_not_the_history(kafka_bootstrap, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    keyed_headers = {**bearer(INTEGRATION), "Idempotency-Key": str(uuid.uuid4())}
    new_ticket = {**NEW_TICKET, "client_id": client_id}
    with running_intake(kafka_bootstrap, state_dir=tmp_path / "first") as first:
        eventually(lambda: first.get("/readyz").status_code == 200, timeout_s=60, what="intake ready")
        tickets = create_tickets(first, 4, client_id)
        keyed = first.post("/v1/tickets", json=new_ticket, headers=keyed_headers)
        assert keyed.status_code == 201, keyed.text
        ids = {ticket["id"] for ticket in tickets} | {keyed.json()["id"]}
        runs = {f"c|{ticket_id}\x00{1:010}" for ticket_id in ids}  # each ticket's first run of events
        eventually(
            lambda: runs <= changelog_keys(kafka_bootstrap).keys(), timeout_s=30, what="the tickets changelogged"
        )
    caplog.clear()

    with running_intake(kafka_bootstrap, state_dir=tmp_path / "second") as second:
        eventually(lambda: second.get("/readyz").status_code == 200, timeout_s=60, what="a new intake ready")
        restored = [r for r in caplog.records if r.getMessage() == "restored the local store"]
        assert restored and restored[0].__dict__["records"] >= len(ids)
        started = started_from(caplog)[TICKETS_EVENTS]
        covered = restored[0].__dict__["covers"][TICKETS_EVENTS]
        assert started == covered and any(started.values()), "the history is not read again"
        assert listed(second, client_id) == [ticket["id"] for ticket in tickets] + [keyed.json()["id"]]
        read = second.get(f"/v1/tickets/{tickets[1]['id']}", headers=bearer(ADMIN)).json()
        assert (read["version"], read["worklog_minutes"]) == (2, 25)
        again = second.post("/v1/tickets", json=new_ticket, headers=keyed_headers)
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        reused = second.post(
            f"/v1/tickets/{tickets[1]['id']}/worklogs",
            json={"technician_id": "tech-1", "minutes": 5, "billable": True},
            headers=keyed_headers,
        )
        assert reused.status_code == 409, "the request key came back with the restore: " + reused.text


def test_a_store_ahead_of_the_log_is_started_over_rather_than_served(kafka_bootstrap, tmp_path, caplog):
    """A disk from another cluster, or a topic deleted and created again: the store claims offsets the log has not
    reached, and its tickets are not the log's."""
    caplog.set_level(logging.INFO)
    stale = LocalStore(tmp_path / "intake", LAYOUT)
    foreign = TicketStore(stale)
    changes = Changes()
    event = decide(None, create(ticket_id="from-another-cluster"), context())[0]
    foreign.apply(changes, Logged.of(read_logged(TICKETS_EVENTS, encode(event))), encode(event))
    changes.applied(TICKETS_EVENTS, 0, 10**9)
    changes.restored()
    stale.write(changes)
    stale.close()

    with running_intake(kafka_bootstrap, state_dir=tmp_path / "intake") as started:
        eventually(lambda: started.get("/readyz").status_code == 200, timeout_s=60, what="intake ready")
        assert any(r.getMessage() == "the local store is ahead of the log; starting it over" for r in caplog.records)
        assert any(r.getMessage() == "restored the local store" for r in caplog.records)
        assert started.get("/v1/tickets/from-another-cluster", headers=bearer(ADMIN)).status_code == 404


def test_a_ticket_with_more_history_than_kafka_takes_in_one_record_is_changelogged_and_restored(kafka_bootstrap):
    """Its events pass the 1 MB the broker accepts in one record: intake goes on, and a new machine restores it."""
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    note = "Checked the switch port, the patch panel and the cable run to the desk once more. " * 20
    with running_intake(kafka_bootstrap) as first:
        eventually(lambda: first.get("/readyz").status_code == 200, timeout_s=60, what="intake ready")
        (ticket,) = create_tickets(first, 1, client_id)
        worklog = {"technician_id": "tech-1", "minutes": 1, "billable": True, "note": note}
        for _ in range(650):
            logged = first.post(f"/v1/tickets/{ticket['id']}/worklogs", json=worklog, headers=bearer(ADMIN))
            assert logged.status_code == 201, logged.text
        version = int(logged.headers["ETag"].strip('"'))
        assert version == 652 and 650 * len(note) > 1_000_000
        runs = {f"c|{ticket['id']}\x00{first:010}" for first in range(1, version + 1, EVENTS_PER_RECORD)}
        eventually(lambda: runs <= changelog_keys(kafka_bootstrap).keys(), timeout_s=30, what="its runs changelogged")

    with running_intake(kafka_bootstrap) as new_machine:
        eventually(lambda: new_machine.get("/readyz").status_code == 200, timeout_s=60, what="a new intake ready")
        read = new_machine.get(f"/v1/tickets/{ticket['id']}", headers=bearer(ADMIN)).json()
        assert (read["version"], read["worklog_minutes"]) == (version, 25 + 650)
