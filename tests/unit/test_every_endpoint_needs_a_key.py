"""Every endpoint of every service but the health checks needs an API key: each operation of each service's own API
document, the document itself and its pages and their forms, /metrics and the dashboard. The apps are built as the
services build them, not started: a key is checked before anything a request asks for is looked at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from intake.portal import ACTIONS
from tests.keys import ADMIN, REQUESTER, bearer
from ticketstream_shared.runtime.auth import KEY_COOKIE

OPEN = {"/healthz", "/readyz"}
#: Served to browsers and scrapers, outside the API documents.
DOCS_ASSETS = ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/assets/favicon.png"]
EVERY_SERVICES = ["/docs", *DOCS_ASSETS, "/openapi.json", "/metrics"]
PAGES = {
    "intake": [*EVERY_SERVICES, "/tickets", "/tickets/t-1", "/tickets/t-1/rate"],  # a requester's pages (portal.py)
    "sla": EVERY_SERVICES,
    "assignment": EVERY_SERVICES,
    "reporting": [*EVERY_SERVICES, "/dashboard", "/dashboard/assets/plotly.min.js"],
    "notify": EVERY_SERVICES,
}
#: What the pages send (a requester's answer, choice and rating on the page of their request).
FORMS = {
    "intake": [
        "/tickets",
        *(f"/tickets/t-1/{form}" for form in (*ACTIONS, "no-such-form")),
    ]
}


def operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every operation of the app's API document, its path parameters filled in."""
    for path, methods in app.openapi()["paths"].items():
        for method in methods:
            yield method.upper(), re.sub(r"\{[^}]+\}", "x", path)


@pytest.mark.parametrize("service", list(PAGES))
def test_nothing_but_the_health_checks_answers_without_a_key(apps: dict[str, FastAPI], service: str) -> None:
    client = TestClient(apps[service], raise_server_exceptions=False)
    asked = [(method, path) for method, path in operations(apps[service]) if path not in OPEN]
    asked += [("GET", page) for page in PAGES[service]] + [("POST", form) for form in FORMS.get(service, [])]
    assert len(asked) >= 6, "too few endpoints found to prove anything"
    answered = {f"{method} {path}": client.request(method, path).status_code for method, path in asked}
    assert {endpoint: code for endpoint, code in answered.items() if code != 401} == {}
    wrong_key = {"Authorization": "Bearer not-a-key"}
    assert {path: client.get(path, headers=wrong_key).status_code for path in PAGES[service]} == dict.fromkeys(
        PAGES[service], 401
    )
    assert {path: client.get(path).status_code for path in OPEN} == {"/healthz": 200, "/readyz": 503}  # not started


def test_the_api_document_and_its_page_are_for_any_key_the_service_knows(apps: dict[str, FastAPI]) -> None:
    client = TestClient(apps["intake"], raise_server_exceptions=False)
    document = client.get("/openapi.json", headers=bearer(REQUESTER))
    assert document.status_code == 200 and document.json() == apps["intake"].openapi()
    page = client.get("/docs", headers=bearer(REQUESTER))
    assert page.status_code == 200 and "swagger-ui" in page.text and "/openapi.json" in page.text
    # Everything the page loads is served by the service itself: it works without internet access.
    assert "//" not in "".join(re.findall(r'(?:src|href|url)\s*[=:]\s*["\']([^"\']*)', page.text))
    for asset in DOCS_ASSETS:
        assert asset in page.text
        served = client.get(asset, headers=bearer(REQUESTER))
        assert served.status_code == 200 and len(served.content) > 1000, asset
    assert client.get("/docs/assets/redoc.standalone.js", headers=bearer(REQUESTER)).status_code == 404  # only these


def test_a_browser_signs_in_to_the_api_document_with_a_key(apps: dict[str, FastAPI], tmp_path: Path) -> None:
    client = TestClient(apps["sla"], raise_server_exceptions=False)
    asked = client.get("/docs")
    assert asked.status_code == 401 and asked.headers["content-type"].startswith("text/html")
    assert 'action="/docs/session"' in asked.text and "Sign in with your API key to read this API." in asked.text

    def signing_in(key: str):  # type: ignore[no-untyped-def]
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return client.post("/docs/session", content=f"key={key}", headers=form, follow_redirects=False)

    unknown = signing_in("not-a-key")
    assert unknown.status_code == 401 and KEY_COOKIE not in client.cookies
    # The key checked is the one given to the form, whatever header the request came with.
    client.headers.update(bearer(ADMIN))
    unknown = signing_in("not-a-key")
    del client.headers["Authorization"]
    assert unknown.status_code == 401 and "That key is not one we know." in unknown.text
    assert KEY_COOKIE not in client.cookies
    signed = signing_in(ADMIN)
    assert signed.status_code == 303 and signed.headers["location"] == "/docs"
    cookie = signed.headers["set-cookie"].lower()
    assert cookie.startswith(KEY_COOKIE) and "httponly" in cookie and "samesite=strict" in cookie
    # The browser now carries the key in its cookie: the page and the document it fetches are served.
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "ticketstream sla"
