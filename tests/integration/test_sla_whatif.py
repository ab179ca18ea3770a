"""The what-if over HTTP against the real broker: tickets told through tickets.events, the sla service reading them
back for the period, compliance as it was and under a candidate policy; and nothing emitted by the asking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.builders import a_ticket_created
from tests.integration.test_sla_service import (
    ALWAYS,
    follow_up,
    policy_for,
    produce,
    sla_app,  # noqa: F401 (a fixture)
    sla_events,
    unique,
)
from tests.keys import ACME_MANAGER, ADMIN, MANAGER, TECHNICIAN, bearer
from tests.polling import eventually
from ticketstream_shared.contract import CommentAdded, TicketStatusChanged

pytestmark = pytest.mark.integration

SECOND = timedelta(seconds=1)


def test_what_if_compares_a_candidate_policy_with_what_happened(sla_app: TestClient, kafka_bootstrap: str) -> None:  # noqa: F811
    now = datetime.now(UTC)
    since = now - timedelta(minutes=4)  # within the clock skew a change may be dated back
    client_id, calendar_id, policy_id = unique("client"), unique("always"), unique("policy")
    put = sla_app.put(
        f"/v1/sla/calendars/{calendar_id}", json={**ALWAYS, "effective_at": since.isoformat()}, headers=bearer(ADMIN)
    )
    assert put.status_code == 200, put.text
    policy = policy_for(client_id, calendar_id, first=1, resolution=2)
    put = sla_app.put(
        f"/v1/sla/policies/{policy_id}", json={**policy, "effective_at": since.isoformat()}, headers=bearer(ADMIN)
    )
    assert put.status_code == 200, put.text

    # Both tickets are over before the call, so the live clocks have nothing left to emit while it runs.
    opened = now - timedelta(minutes=3)
    answered = a_ticket_created(client_id=client_id, occurred_at=opened)  # resolved after 100 s: late under 1 min
    waited = a_ticket_created(client_id=client_id, occurred_at=opened)  # 120 of its 170 s waiting on the customer
    comment = {
        "comment_id": str(uuid.uuid4()),
        "author_id": "tech-1",
        "author_role": "technician",
        "body": "On it",
        "visibility": "public",
    }
    a, w = answered.ticket_id, waited.ticket_id
    produce(
        kafka_bootstrap,
        answered,
        follow_up(CommentAdded, a, client_id, 2, opened + 20 * SECOND, **comment),
        follow_up(
            TicketStatusChanged, a, client_id, 3, opened + 100 * SECOND, from_status="open", to_status="resolved"
        ),
        waited,
        follow_up(
            TicketStatusChanged,
            w,
            client_id,
            2,
            opened + 30 * SECOND,
            from_status="new",
            to_status="waiting_on_customer",
        ),
        follow_up(
            TicketStatusChanged,
            w,
            client_id,
            3,
            opened + 150 * SECOND,
            from_status="waiting_on_customer",
            to_status="open",
        ),
        follow_up(
            TicketStatusChanged, w, client_id, 4, opened + 170 * SECOND, from_status="open", to_status="resolved"
        ),
    )

    def all_met() -> list[dict[str, Any]]:
        events = sla_events(kafka_bootstrap, {a, w})
        return events if sum(e["event_type"] == "sla.met" for e in events) == 4 else []

    emitted_before = {e["event_id"] for e in eventually(all_met, timeout_s=30, what="both tickets met")}

    candidate = {"policy": {"id": policy_id, **policy_for(client_id, calendar_id, first=1, resolution=1)}}
    body = {"from": since.isoformat(), "to": datetime.now(UTC).isoformat(), "candidate": candidate}
    response = sla_app.post("/v1/sla/what-if", json=body, headers=bearer(MANAGER))
    assert response.status_code == 200, response.text
    answer = response.json()

    actual, then = answer["actual"]["by_client"][client_id], answer["candidate"]["by_client"][client_id]
    assert (
        actual["first_response"]
        == then["first_response"]
        == {
            "clocks": 2,
            "met": 2,
            "breached": 0,
            "running": 0,
            "stopped": 0,
            "compliance_pct": 100.0,
        }
    )
    assert (actual["resolution"]["met"], actual["resolution"]["compliance_pct"]) == (2, 100.0)
    assert (then["resolution"]["met"], then["resolution"]["breached"], then["resolution"]["compliance_pct"]) == (
        1,
        1,
        50.0,
    )
    ours = [changed for changed in answer["changed"] if changed["client_id"] == client_id]
    assert [(c["ticket_id"], c["metric"], c["actual"]["verdict"], c["candidate"]["verdict"]) for c in ours] == [
        (a, "resolution", "met", "breached")
    ]
    assert datetime.fromisoformat(ours[0]["actual"]["target_at"]) == opened + 120 * SECOND
    assert datetime.fromisoformat(ours[0]["candidate"]["target_at"]) == opened + 60 * SECOND
    assert ours[0]["candidate"]["policy"] == {"id": policy_id, "version": 2}  # the candidate, after the real one

    # Asking emitted nothing and recorded nothing.
    assert {e["event_id"] for e in sla_events(kafka_bootstrap, {a, w})} == emitted_before
    versions = sla_app.get(f"/v1/sla/policies/{policy_id}", headers=bearer(ADMIN)).json()["versions"]
    assert len(versions) == 1

    # A manager scoped to acme sees acme's tickets only; people who are not managers see nothing.
    scoped = sla_app.post("/v1/sla/what-if", json=body, headers=bearer(ACME_MANAGER))
    assert scoped.status_code == 200 and set(scoped.json()["actual"]["by_client"]) <= {"acme"}
    assert sla_app.post("/v1/sla/what-if", json=body).status_code == 401
    assert sla_app.post("/v1/sla/what-if", json=body, headers=bearer(TECHNICIAN)).status_code == 403


#: Changes to a good request, each with the field it makes invalid.
BAD = [
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}, "to"),  # more than 93 days
    ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
    ({"to": "2999-01-01T00:00:00Z", "from": "2998-12-01T00:00:00Z"}, "to"),  # has not happened yet
    ({"from": "last week"}, "from"),
    ({"candidate": {}}, "candidate"),
    ({"candidate": {"policy": {"id": "p", "targets": {}}}}, "candidate.policy.targets"),
    (
        {"candidate": {"calendar": {"id": "c", "timezone": "Mars/Base", "always_open": True}}},
        "candidate.calendar.timezone",
    ),
    (
        {"candidate": {"calendar": {"id": "c", **ALWAYS, "effective_at": "2026-03-01T00:00:00Z"}}},
        "candidate.calendar.effective_at",
    ),
    (
        {
            "candidate": {
                "policy": {
                    "id": "p",
                    "targets": {"P1": {"first_response_minutes": 1, "resolution_minutes": 1}},
                    "calendar_id": "nowhere",
                }
            }
        },
        "candidate.policy.calendar_id",
    ),
]


def test_what_if_refuses_bad_requests_field_by_field(sla_app: TestClient) -> None:  # noqa: F811
    good = {
        "from": "2026-03-01T00:00:00Z",
        "to": "2026-03-08T00:00:00Z",
        "candidate": {"calendar": {"id": "c", **ALWAYS}},
    }
    assert sla_app.post("/v1/sla/what-if", json=good, headers=bearer(MANAGER)).status_code == 200
    for change, field in BAD:
        response = sla_app.post("/v1/sla/what-if", json={**good, **change}, headers=bearer(MANAGER))
        assert response.status_code == 422, (change, response.text)
        assert field in [error["field"] for error in response.json()["errors"]], (change, response.json())
