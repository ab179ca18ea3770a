"""Crypto-shredding in intake on the real broker: with a master key, what people write (a ticket's title and
description, a comment's body, a worklog's note) reaches tickets.events and intake.tickets only sealed, under the
writer's own data key, while the API shows it in plain words; erasing a person shreds their keys, after which
their words read "[erased]" (in this replica's memory, and on a new machine restored from the changelog), while
everyone else's words, the hours and the statuses stay as they were."""

import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.conftest import NEW_TICKET, running_intake
from tests.integration.test_intake_replicas import forwarded
from tests.keys import ACME_ADMIN, ACME_MANAGER, ADMIN, ANN, INTEGRATION, MANAGER, REQUESTER, TECHNICIAN, bearer
from tests.polling import eventually
from ticketstream_shared.contract.topics import (
    INTAKE_COMMANDS,
    INTAKE_TICKETS,
    PRIVACY_ERASURES,
    TICKET_PARTITIONS,
    TICKETS_EVENTS,
)
from ticketstream_shared.privacy import ERASED
from ticketstream_shared.runtime.kafka import records_to_end
from ticketstream_shared.sealing import write_key


def raw_values(kafka_bootstrap: str, topic: str, partitions: int = TICKET_PARTITIONS) -> list[bytes]:
    """Every value `topic` holds, read with a raw consumer (no codec, no service)."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            since = {TopicPartition(topic, partition): None for partition in range(partitions)}
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
        exported = intake.get(f"/v1/privacy/subjects/{requester}/export", headers=bearer(ADMIN))
        assert exported.status_code == 200, exported.text
        [held] = exported.json()["tickets_requested"]
        assert (held["title"], held["description"]) == (words["title"], words["description"])
        assert [c["body"] for c in held["comments"]] == [words["comment"]]
        assert [w["note"] for w in held["worklogs"]] == [words["note"]]
        assert intake.get(f"/v1/privacy/subjects/{requester}/export", headers=bearer(MANAGER)).status_code == 403
        technician = intake.get("/v1/privacy/subjects/ann/export", headers=bearer(ADMIN)).json()
        [elsewhere] = [held for held in technician["written_on_other_tickets"] if held["ticket_id"] == ticket]
        assert [c["body"] for c in elsewhere["comments"]] == [words["comment"]]
        assert [w["note"] for w in elsewhere["worklogs"]] == [words["note"]]
        refused = intake.post(f"/v1/privacy/subjects/{requester}/erase", headers=bearer(MANAGER))
        assert refused.status_code == 403, refused.text
        erased = intake.post(f"/v1/privacy/subjects/{requester}/erase", headers=bearer(ADMIN))
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert (report["subject_id"], len(report["keys_shredded"]), report["tickets_requested"]) == (requester, 1, 1)
        assert "admin" in report["erased_by"] and marker not in erased.text
        recorded = [json.loads(value) for value in raw_values(kafka_bootstrap, PRIVACY_ERASURES, 1)]
        assert [r for r in recorded if r["subject_id"] == requester] == [
            {key: value for key, value in report.items() if key != "erased_by"}
        ]

        after = intake.get(f"/v1/tickets/{ticket}", headers=bearer(ADMIN)).json()
        assert (after["title"], after["description"]) == (ERASED, ERASED)
        unchanged = ("status", "version", "worklog_minutes", "requester_id", "created_at", "priority")
        assert {name: after[name] for name in unchanged} == {name: before[name] for name in unchanged}
        comments = intake.get(f"/v1/tickets/{ticket}/comments", headers=bearer(ADMIN)).json()["comments"]
        assert [c["body"] for c in comments] == [words["comment"]], "ann's words are ann's, not erased"
        timeline = intake.get(f"/v1/tickets/{ticket}/timeline", headers=bearer(TECHNICIAN)).text
        assert words["title"] not in timeline and words["description"] not in timeline

        again = intake.post(f"/v1/privacy/subjects/{requester}/erase", headers=bearer(ADMIN))
        assert again.status_code == 200 and again.json()["keys_shredded"] == [], again.text
        exported = intake.get(f"/v1/privacy/subjects/{requester}/export", headers=bearer(ADMIN)).json()
        [held] = exported["tickets_requested"]
        assert (held["id"], held["title"], held["worklog_minutes"]) == (ticket, ERASED, 40)

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


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (ADMIN, {"export": 200, "erase": 409}),  # allowed (erasing is refused only for want of a master key)
        (ACME_ADMIN, {"export": 403, "erase": 403}),  # a person is one person across clients
        (MANAGER, {"export": 403, "erase": 403}),
        (ACME_MANAGER, {"export": 403, "erase": 403}),
        (TECHNICIAN, {"export": 403, "erase": 403}),
        (ANN, {"export": 403, "erase": 403}),  # not even for herself: the desk's data protection officer does it
        (REQUESTER, {"export": 403, "erase": 403}),
        (INTEGRATION, {"export": 403, "erase": 403}),
        (None, {"export": 401, "erase": 401}),
    ],
    ids=["admin", "acme-admin", "manager", "acme-manager", "technician", "ann", "requester", "integration", "none"],
)
def test_only_an_admin_of_no_single_client_exports_or_erases_a_person(intake, key, status):
    headers = bearer(key) if key else {}
    exported = intake.get("/v1/privacy/subjects/ann/export", headers=headers)
    erased = intake.post("/v1/privacy/subjects/ann/erase", headers=headers)
    assert {"export": exported.status_code, "erase": erased.status_code} == status, (exported.text, erased.text)


def test_a_command_carried_to_the_owner_carries_the_words_sealed(kafka_bootstrap, tmp_path):
    master_key = write_key(tmp_path / "privacy-master.key")
    marker = uuid.uuid4().hex
    group = f"owners-{marker[:8]}"  # these two alone share the tickets
    with (
        running_intake(kafka_bootstrap, privacy_master_key_file=master_key, owners_group=group) as first,
        running_intake(kafka_bootstrap, privacy_master_key_file=master_key, owners_group=group) as second,
    ):
        for replica in (first, second):
            eventually(lambda r=replica: r.get("/readyz").status_code == 200, timeout_s=60, what="replica ready")
        body = {**NEW_TICKET, "requester_id": f"yves-{marker[:8]}"}
        tickets = [first.post("/v1/tickets", json=body, headers=bearer(ADMIN)).json()["id"] for _ in range(4)]
        before = forwarded(second)
        for ticket in tickets:  # decided by `first`, which owns them: `second` carries each comment to it
            comment = {"author_id": "ann", "body": f"Checked the cabling {marker}", "public": False}
            keyed = {**bearer(ANN), "Idempotency-Key": f"comment-{ticket}"}  # a retry after a 503 is answered once
            url = f"/v1/tickets/{ticket}/comments"
            eventually(
                lambda url=url, c=comment, h=keyed: second.post(url, json=c, headers=h).status_code == 201,
                what="a comment through the other replica",
            )
        assert forwarded(second) > before, "no command was carried to the owner"
        bodies = first.get(f"/v1/tickets/{tickets[0]}/comments", headers=bearer(ADMIN)).json()["comments"]
        assert [c["body"] for c in bodies] == [f"Checked the cabling {marker}"]
    calls = raw_values(kafka_bootstrap, INTAKE_COMMANDS)
    assert any(value.startswith(b"sealed:v1:") for value in calls)
    assert not [value for value in calls if marker.encode() in value], "someone's words on intake.commands"
