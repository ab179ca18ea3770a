"""Crypto-shredding in intake on the real broker: with a master key, what people write (a ticket's title and
description, a comment's body, a worklog's note) reaches tickets.events and intake.tickets only sealed, under the
writer's own data key, while the API shows it in plain words; erasing a person shreds their keys, after which
their words read "[erased]" (in this replica's memory, and on a new machine restored from the changelog), while
everyone else's words, the hours and the statuses stay as they were."""

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.conftest import NEW_TICKET, running_intake
from tests.keys import ADMIN, ANN, MANAGER, TECHNICIAN, bearer
from tests.polling import eventually
from ticketstream_shared.contract.topics import INTAKE_TICKETS, TICKET_PARTITIONS, TICKETS_EVENTS
from ticketstream_shared.privacy import ERASED
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.sealing import write_key


def raw_values(kafka_bootstrap: str, topic: str) -> list[bytes]:
    """Every value `topic` holds, read with a raw consumer (no codec, no service)."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            since = {TopicPartition(topic, partition): None for partition in range(TICKET_PARTITIONS)}
            return [record.value or b"" async for record in records_to_end(consumer, since)]
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_people_s_words_are_sealed_at_rest_and_erased_with_their_keys(kafka_bootstrap, tmp_path):
    master_key = tmp_path / "privacy-master.key"
    write_key(master_key)
    marker = uuid.uuid4().hex
    requester = f"erin-{marker[:8]}"
    words = {
        "title": f"Erin's laptop {marker}-title",
        "description": f"Erin at desk 4.12, phone 555-{marker}-description",
        "comment": f"Reimaged it for Erin {marker}-comment",
        "note": f"Drove to Erin's home office {marker}-note",
    }
    with running_intake(kafka_bootstrap, privacy_master_key_file=master_key) as intake:
        eventually(lambda: intake.get("/readyz").status_code == 200, timeout_s=60, what="intake ready")
        body = {**NEW_TICKET, "requester_id": requester, "title": words["title"], "description": words["description"]}
        opened = intake.post("/v1/tickets", json=body, headers=bearer(ADMIN))
        assert opened.status_code == 201, opened.text
        ticket = opened.json()["id"]
        assert (opened.json()["title"], opened.json()["description"]) == (words["title"], words["description"])
        comment = {"author_id": "ann", "body": words["comment"], "public": True}
        assert intake.post(f"/v1/tickets/{ticket}/comments", json=comment, headers=bearer(ANN)).status_code == 201
        worklog = {"technician_id": "ann", "minutes": 40, "billable": True, "note": words["note"]}
        logged = intake.post(f"/v1/tickets/{ticket}/worklogs", json=worklog, headers=bearer(ANN))
        assert logged.status_code == 201 and logged.json()["note"] == words["note"], logged.text

        events = raw_values(kafka_bootstrap, TICKETS_EVENTS)
        mine = [value for value in events if ticket.encode() in value]
        assert len(mine) == 3 and all(b'"sealed:v1:' in value for value in mine)
        assert not [value for value in events if marker.encode() in value], "a person's words in plain text"
        eventually(
            lambda: [value for value in raw_values(kafka_bootstrap, INTAKE_TICKETS) if ticket.encode() in value],
            what="the ticket in intake's changelog",
        )
        assert not [value for value in raw_values(kafka_bootstrap, INTAKE_TICKETS) if marker.encode() in value]

        before = intake.get(f"/v1/tickets/{ticket}", headers=bearer(ADMIN)).json()
        refused = intake.post(f"/v1/privacy/subjects/{requester}/erase", headers=bearer(MANAGER))
        assert refused.status_code == 403, refused.text
        erased = intake.post(f"/v1/privacy/subjects/{requester}/erase", headers=bearer(ADMIN))
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert (report["subject_id"], report["keys_shredded"], report["tickets_requested"]) == (requester, 1, 1)
        assert "admin" in report["erased_by"] and marker not in erased.text

        after = intake.get(f"/v1/tickets/{ticket}", headers=bearer(ADMIN)).json()
        assert (after["title"], after["description"]) == (ERASED, ERASED)
        unchanged = ("status", "version", "worklog_minutes", "requester_id", "created_at", "priority")
        assert {name: after[name] for name in unchanged} == {name: before[name] for name in unchanged}
        comments = intake.get(f"/v1/tickets/{ticket}/comments", headers=bearer(ADMIN)).json()["comments"]
        assert [c["body"] for c in comments] == [words["comment"]], "ann's words are ann's, not erased"
        timeline = intake.get(f"/v1/tickets/{ticket}/timeline", headers=bearer(TECHNICIAN)).text
        assert words["title"] not in timeline and words["description"] not in timeline

        again = intake.post(f"/v1/privacy/subjects/{requester}/erase", headers=bearer(ADMIN))
        assert again.status_code == 200 and again.json()["keys_shredded"] == 0, again.text

    with running_intake(kafka_bootstrap, privacy_master_key_file=master_key) as new_machine:
        eventually(lambda: new_machine.get("/readyz").status_code == 200, timeout_s=60, what="new intake ready")
        restored = new_machine.get(f"/v1/tickets/{ticket}", headers=bearer(ADMIN))
        assert restored.status_code == 200, restored.text
        assert (restored.json()["title"], restored.json()["worklog_minutes"]) == (ERASED, 40)
        comments = new_machine.get(f"/v1/tickets/{ticket}/comments", headers=bearer(ADMIN)).json()["comments"]
        assert [c["body"] for c in comments] == [words["comment"]]


def test_without_a_master_key_no_one_can_be_erased(intake):
    answer = intake.post("/v1/privacy/subjects/alice/erase", headers=bearer(ADMIN))
    assert answer.status_code == 409 and "PRIVACY_MASTER_KEY_FILE" in answer.text
