"""A key scoped to a client acts for that client only. What every client shares (calendars, policies, the service
catalogue, the knowledge base, the roster and routing) it may read, not change: a change would reach every other
client's tickets. The refusal comes before anything is looked at, so the apps are built as the services build them,
not started; a key of no client, sent the same request, gets past it (to the service's own answer of not being ready).
Assignments of another client's tickets are refused too (tests/integration/test_assignment_service.py)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.keys import ACME_ADMIN, ACME_MANAGER, ADMIN, MANAGER, bearer

TARGETS = {"P3": {"first_response_minutes": 60, "resolution_minutes": 480}}
#: (service, path, body, the key of its writer role scoped to acme, the unscoped one) of each write of shared things.
SHARED_WRITES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("sla", "/v1/sla/calendars/office", {"timezone": "UTC", "always_open": True}, ACME_ADMIN, ADMIN),
    ("sla", "/v1/sla/policies/gold", {"rank": 1, "match": {}, "targets": TARGETS, "calendar_id": "office"},
     ACME_ADMIN, ADMIN),
    ("sla", "/v1/catalog/services/email", {"name": "E-mail", "owner_team": "messaging", "categories": ["email"],
                                            "targets": TARGETS}, ACME_MANAGER, MANAGER),
    ("intake", "/v1/knowledge/articles/vpn", {"title": "VPN", "body": "Restart the client."}, ACME_MANAGER, MANAGER),
    ("assignment", "/v1/technicians/ann", {"name": "Ann", "team": "network", "tier": 1, "capacity": 5},
     ACME_MANAGER, MANAGER),
    ("assignment", "/v1/technicians/ann/shift", {"on_shift": True}, ACME_MANAGER, MANAGER),
    ("assignment", "/v1/routing/categories/network", {"team": "network"}, ACME_MANAGER, MANAGER),
    ("assignment", "/v1/routing/teams/network", {"strategy": "round_robin"}, ACME_MANAGER, MANAGER),
]  # fmt: skip


def send(app: FastAPI, path: str, body: dict[str, Any], key: str) -> Any:
    client = TestClient(app, raise_server_exceptions=False)
    method = client.post if path.endswith("/shift") else client.put
    return method(path, json=body, headers=bearer(key))


@pytest.mark.parametrize(
    ("service", "path", "body", "scoped", "unscoped"), SHARED_WRITES, ids=[w[1] for w in SHARED_WRITES]
)
def test_a_key_scoped_to_a_client_does_not_change_what_every_client_shares(
    apps: dict[str, FastAPI], service: str, path: str, body: dict[str, Any], scoped: str, unscoped: str
) -> None:
    refused = send(apps[service], path, body, scoped)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"].startswith("this key is scoped to client acme;")
    assert "is shared by every client, and only a key of no client changes it" in refused.json()["detail"]
    assert send(apps[service], path, body, unscoped).status_code not in (403, 422)


def test_a_key_scoped_to_a_client_sets_that_clients_agreement_only(apps: dict[str, FastAPI]) -> None:
    agreement = {"calendar_id": "office"}
    refused = send(apps["sla"], "/v1/sla/clients/globex", agreement, ACME_ADMIN)
    assert refused.status_code == 403 and refused.json()["detail"] == "this key is scoped to client acme"
    assert send(apps["sla"], "/v1/sla/clients/acme", agreement, ACME_ADMIN).status_code not in (403, 422)
    assert send(apps["sla"], "/v1/sla/clients/globex", agreement, ADMIN).status_code not in (403, 422)
