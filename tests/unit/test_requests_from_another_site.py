"""A browser signed in to a service's pages carries its key in a cookie, which it sends with any request to the service,
including one another site's page makes it send (cross-site request forgery; SameSite=Strict keeps the cookie from
other sites' requests, but not from a sibling host's). Neither the sign-in nor a request that would change something
is taken with it from a page that is not the service's own; reading is, and a bearer key is taken from anywhere. Nor
does a sign-in send the browser anywhere but back to the page it was asked on (no open redirect)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from tests.keys import ADMIN, TECHNICIAN, TEST_KEYS, bearer
from ticketstream_shared.runtime.auth import KEY_COOKIE
from ticketstream_shared.runtime.http import Caller, create_service_app

#: What a browser says of the page a request came from (Fetch Metadata), from its own page and from others.
OWN_PAGE = {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"}
ANOTHER_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": "https://elsewhere.example"}
A_SIBLING_HOST = {"Sec-Fetch-Site": "same-site", "Origin": "http://wiki.testserver"}
#: A browser without Fetch Metadata still sends Origin with a POST.
ANOTHER_SITE_WITHOUT_FETCH_METADATA = {"Origin": "https://elsewhere.example"}
OWN_PAGE_WITHOUT_FETCH_METADATA = {"Origin": "http://testserver"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def service_recording_notes() -> tuple[TestClient, list[str]]:
    """A service with one route that changes something (records a note) and one that reads them."""
    notes: list[str] = []
    router = APIRouter()

    @router.post("/v1/notes", status_code=201)
    async def record(caller: Caller, note: str) -> dict[str, str]:
        notes.append(note)
        return {"by": caller.name}

    @router.get("/v1/notes")
    async def read(caller: Caller) -> list[str]:
        return notes

    app = create_service_app(service="notes", keys=TEST_KEYS, readiness=lambda: {})
    app.include_router(router)
    return TestClient(app, raise_server_exceptions=False), notes


def signed_in(client: TestClient, key: str) -> TestClient:
    opened = client.post("/docs/session", content=f"key={key}", headers={**FORM, **OWN_PAGE}, follow_redirects=False)
    assert opened.status_code == 303 and KEY_COOKIE in client.cookies
    return client


def test_a_signed_in_browser_changes_something_only_from_the_services_own_pages() -> None:
    client, notes = service_recording_notes()
    signed_in(client, TECHNICIAN)
    for elsewhere in (ANOTHER_SITE, A_SIBLING_HOST, ANOTHER_SITE_WITHOUT_FETCH_METADATA):
        refused = client.post("/v1/notes", params={"note": "forged"}, headers=elsewhere)
        assert refused.status_code == 403, elsewhere
        assert "only from this service's own pages" in refused.json()["detail"]
    assert notes == []
    for own in (OWN_PAGE, OWN_PAGE_WITHOUT_FETCH_METADATA, {}):  # {}: no browser's page at all
        taken = client.post("/v1/notes", params={"note": "mine"}, headers=own)
        assert taken.status_code == 201 and taken.json() == {"by": "technician"}, own
    assert notes == ["mine"] * 3


def test_reading_is_taken_from_any_page_and_a_bearer_key_from_anywhere() -> None:
    client, notes = service_recording_notes()
    signed_in(client, TECHNICIAN)
    # A page elsewhere may make the browser ask, but cannot read the answer (no CORS): the dashboard's links work.
    assert client.get("/v1/notes", headers=ANOTHER_SITE).status_code == 200
    # A bearer key is not something a page can make a browser send.
    client.cookies.clear()
    taken = client.post("/v1/notes", params={"note": "by an integration"}, headers={**bearer(ADMIN), **ANOTHER_SITE})
    assert taken.status_code == 201 and notes == ["by an integration"]


def test_a_sign_in_from_another_sites_page_is_refused_and_keeps_no_key() -> None:
    client, _ = service_recording_notes()
    for elsewhere in (ANOTHER_SITE, A_SIBLING_HOST, ANOTHER_SITE_WITHOUT_FETCH_METADATA, {"Origin": "null"}):
        refused = client.post("/docs/session", content=f"key={ADMIN}", headers={**FORM, **elsewhere})
        assert refused.status_code == 403 and "sent from the page of another site is not taken" in refused.text, (
            elsewhere
        )
        assert 'action="/docs/session"' in refused.text  # the form, to sign in here
        assert KEY_COOKIE not in client.cookies and "set-cookie" not in refused.headers
    signed_in(client, ADMIN)


def test_a_browser_signs_out_from_the_services_own_pages_only() -> None:
    """A shared computer: signing out makes the browser forget the key; another site's page cannot sign it out."""
    client, notes = service_recording_notes()
    signed_in(client, TECHNICIAN)
    for elsewhere in (ANOTHER_SITE, A_SIBLING_HOST):
        refused = client.post("/docs/session/end", headers={**FORM, **elsewhere}, follow_redirects=False)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers, elsewhere
    assert client.post("/v1/notes", params={"note": "still signed in"}, headers=OWN_PAGE).status_code == 201
    out = client.post("/docs/session/end", headers={**FORM, **OWN_PAGE}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/docs"
    assert KEY_COOKIE not in client.cookies
    assert client.post("/v1/notes", params={"note": "signed out"}, headers=OWN_PAGE).status_code == 401
    assert notes == ["still signed in"]


def test_a_forged_creation_is_refused_before_intake_looks_at_it(apps: dict[str, FastAPI]) -> None:
    client = signed_in(TestClient(apps["intake"], raise_server_exceptions=False), TECHNICIAN)
    forged = client.post("/v1/tickets", json={"title": "forged"}, headers=ANOTHER_SITE)
    assert forged.status_code == 403 and "nothing was recorded" in forged.json()["detail"]


def test_a_sign_in_goes_back_to_the_page_asked_for_and_nowhere_else(apps: dict[str, FastAPI]) -> None:
    client = TestClient(apps["intake"], raise_server_exceptions=False)
    asked = client.get("/tickets/t-42")  # a requester's page (intake/portal.py), as a mail's link opens it
    assert asked.status_code == 401 and 'action="/tickets/session"' in asked.text
    assert 'name="next" value="/tickets/t-42"' in asked.text

    def signing_in(back_to: str) -> str:
        signed = client.post("/tickets/session", content=f"key={TECHNICIAN}&next={back_to}",
                             headers={**FORM, **OWN_PAGE}, follow_redirects=False)  # fmt: skip
        assert signed.status_code == 303
        return str(signed.headers["location"])

    assert signing_in("/tickets/t-42") == "/tickets/t-42"
    for elsewhere in ("https://elsewhere.example/", "//elsewhere.example", "/tickets/../v1/tickets", "/ticketsx",
                      "/tickets/t-42/../../x", "/docs", ""):  # fmt: skip
        assert signing_in(elsewhere) == "/tickets", elsewhere
