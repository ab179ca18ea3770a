"""One idempotency contract for every mutation (README, "Retries and request keys"), against the real broker: a retry
is answered with the first outcome, a key reused for anything else is a 409 that names what differs, never a
silent drop or a 500, and keys outlive a restart since they are part of the ticket events."""

import uuid

import pytest

from tests.integration.conftest import NEW_TICKET, running_intake
from tests.keys import ADMIN, INTEGRATION, TECHNICIAN, bearer
from tests.polling import eventually

pytestmark = pytest.mark.integration

WORK = {"technician_id": "tech-1", "minutes": 30, "billable": True}
COMMENT = {"author_id": "tech-1", "body": "On it", "public": True}


def keyed(caller: str, key: str) -> dict[str, str]:
    return {**bearer(caller), "Idempotency-Key": key}


def new_ticket(intake) -> str:
    created = intake.post("/v1/tickets", json=NEW_TICKET, headers=bearer(ADMIN))
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_a_key_used_to_open_a_ticket_cannot_resolve_it(intake):
    """The report: the second call answered 200 with the unchanged open ticket, and the resolution was lost."""
    ticket_id, key = new_ticket(intake), str(uuid.uuid4())
    opened = intake.post(f"/v1/tickets/{ticket_id}/status", json={"status": "open"}, headers=keyed(ADMIN, key))
    assert opened.status_code == 200, opened.text

    resolved = intake.post(f"/v1/tickets/{ticket_id}/status", json={"status": "resolved"}, headers=keyed(ADMIN, key))
    assert resolved.status_code == 409, resolved.text
    assert resolved.json()["differs"] == ["body.status"]
    assert "body.status" in resolved.json()["detail"]
    assert intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()["status"] == "open"


@pytest.mark.parametrize(
    ("path", "body"),
    [("comments", {"author_id": "tech-1", "body": "Any news?", "public": True}), ("worklogs", WORK)],
    ids=["comment", "worklog"],
)
def test_the_same_key_on_another_route_is_a_409_naming_the_operation(intake, path, body):
    """The report: the same key on comments and on worklogs answered 500."""
    ticket_id, key = new_ticket(intake), str(uuid.uuid4())
    assert intake.post(f"/v1/tickets/{ticket_id}/status", json={"status": "open"}, headers=keyed(ADMIN, key)).is_success

    reused = intake.post(f"/v1/tickets/{ticket_id}/{path}", json=body, headers=keyed(ADMIN, key))
    assert reused.status_code == 409, reused.text
    assert reused.json()["differs"] == ["operation"]
    assert intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()["version"] == 2


def test_a_retried_worklog_is_answered_with_its_first_outcome(intake):
    ticket_id, key = new_ticket(intake), str(uuid.uuid4())
    first = intake.post(f"/v1/tickets/{ticket_id}/worklogs", json=WORK, headers=keyed(TECHNICIAN, key))
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    later = intake.post(f"/v1/tickets/{ticket_id}/worklogs", json={**WORK, "minutes": 5}, headers=bearer(TECHNICIAN))
    assert later.status_code == 201

    again = intake.post(f"/v1/tickets/{ticket_id}/worklogs", json=WORK, headers=keyed(TECHNICIAN, key))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and again.headers["ETag"] == first.headers["ETag"] == '"2"'
    assert intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()["worklog_minutes"] == 35


def test_a_key_reused_with_other_values_or_on_another_ticket_is_refused(intake):
    ticket_id, other_id, key = new_ticket(intake), new_ticket(intake), str(uuid.uuid4())
    assert intake.post(f"/v1/tickets/{ticket_id}/worklogs", json=WORK, headers=keyed(TECHNICIAN, key)).is_success

    more = intake.post(
        f"/v1/tickets/{ticket_id}/worklogs", json={**WORK, "minutes": 45}, headers=keyed(TECHNICIAN, key)
    )
    assert (more.status_code, more.json()["differs"]) == (409, ["body.minutes"])
    elsewhere = intake.post(f"/v1/tickets/{other_id}/worklogs", json=WORK, headers=keyed(TECHNICIAN, key))
    assert (elsewhere.status_code, elsewhere.json()["differs"]) == (409, ["target"])
    assert intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()["worklog_minutes"] == 30
    assert intake.get(f"/v1/tickets/{other_id}", headers=bearer(ADMIN)).json()["worklog_minutes"] == 0


def test_keys_belong_to_their_caller(intake):
    ticket_id, key = new_ticket(intake), str(uuid.uuid4())
    mine = intake.post(f"/v1/tickets/{ticket_id}/worklogs", json=WORK, headers=keyed(TECHNICIAN, key))
    theirs = intake.post(
        f"/v1/tickets/{ticket_id}/worklogs", json={**WORK, "minutes": 15}, headers=keyed(INTEGRATION, key)
    )
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in theirs.headers and mine.json()["id"] != theirs.json()["id"]
    assert intake.get(f"/v1/tickets/{ticket_id}", headers=bearer(ADMIN)).json()["worklog_minutes"] == 45


def test_a_restarted_intake_still_knows_each_key_and_its_request(intake, kafka_bootstrap):
    ticket_id, other_id, key = new_ticket(intake), new_ticket(intake), str(uuid.uuid4())
    first = intake.post(f"/v1/tickets/{ticket_id}/comments", json=COMMENT, headers=keyed(TECHNICIAN, key))
    assert first.status_code == 201, first.text

    with running_intake(kafka_bootstrap) as restarted:
        eventually(lambda: restarted.get("/readyz").status_code == 200, what="restarted intake ready")
        again = restarted.post(f"/v1/tickets/{ticket_id}/comments", json=COMMENT, headers=keyed(TECHNICIAN, key))
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        elsewhere = restarted.post(f"/v1/tickets/{other_id}/comments", json=COMMENT, headers=keyed(TECHNICIAN, key))
        assert (elsewhere.status_code, elsewhere.json()["differs"]) == (409, ["target"])


def test_a_moment_before_year_one_in_utc_is_a_422_naming_the_field(intake):
    """The fuzzer's find: 0001-01-01T00:00:00+03:00 is in year 0 in UTC and answered 500."""
    ticket_id = new_ticket(intake)
    logged = intake.post(f"/v1/tickets/{ticket_id}/worklogs", json=WORK, headers=bearer(TECHNICIAN))
    worklog_id = logged.json()["id"]
    corrected = intake.post(
        f"/v1/tickets/{ticket_id}/worklogs/{worklog_id}/correction",
        json={"minutes": 20, "performed_at": "0001-01-01T00:00:00+03:00"},
        headers=bearer(TECHNICIAN),
    )
    assert corrected.status_code == 422, corrected.text
    assert any("performed_at" in str(error) for error in corrected.json()["errors"]), corrected.text
    logged_too = intake.post(
        f"/v1/tickets/{ticket_id}/worklogs",
        json={**WORK, "performed_at": "9999-12-31T23:59:59-05:00"},
        headers=bearer(TECHNICIAN),
    )
    assert logged_too.status_code == 422, logged_too.text
