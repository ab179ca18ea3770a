"""The dashboard's sign-in: a page that says why, never a bare JSON refusal, for no key, an unknown key, and a key whose
role may not read the reports. The dashboard itself, on the real service, is in tests/e2e/test_dashboard.py."""

from __future__ import annotations

from fastapi.testclient import TestClient

from reporting import dashboard as dashboard_page
from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import ApiKeyEntry, ApiKeys, hash_key
from ticketstream_shared.runtime.http import create_service_app

KEYS = {"manager-key": Role.MANAGER, "requester-key": Role.REQUESTER}


def dashboard() -> TestClient:
    keys = ApiKeys([ApiKeyEntry(name=key, sha256=hash_key(key), role=role) for key, role in KEYS.items()])
    app = create_service_app(service="reporting", keys=keys, readiness=lambda: {})
    app.include_router(dashboard_page.router)
    return TestClient(app, raise_server_exceptions=False)


def signing_in(client: TestClient, key: str):  # type: ignore[no-untyped-def]
    return client.post("/dashboard/session", content=f"key={key}", follow_redirects=False,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip


def test_without_a_key_or_with_an_unknown_one_the_dashboard_asks_for_one():
    client = dashboard()
    asked = client.get("/dashboard")
    assert asked.status_code == 401 and "Sign in with your API key." in asked.text
    unknown = client.get("/dashboard", headers={"Authorization": "Bearer not-a-key"})
    assert unknown.status_code == 401 and "Sign in with your API key." in unknown.text
    assert signing_in(client, "not-a-key").status_code == 401


def test_a_key_whose_role_may_not_read_the_reports_is_told_so_on_the_sign_in_page():
    client = dashboard()
    refused = client.get("/dashboard", headers={"Authorization": "Bearer requester-key"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert "role requester may not do this" in refused.text
    signed = signing_in(client, "requester-key")
    assert signed.status_code == 403 and "That key is not one that may read the reports." in signed.text


def test_a_manager_signs_in_and_sees_the_dashboard():
    client = dashboard()
    signed = signing_in(client, "manager-key")
    assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
    assert client.get("/dashboard", headers={"Authorization": "Bearer manager-key"}).status_code == 200
