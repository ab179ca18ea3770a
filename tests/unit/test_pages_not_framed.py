"""No answer of any service may be shown inside another page's frame: a page of a sibling host (whose requests carry
the SameSite=Strict sign-in cookie) could otherwise lay itself over a request page's buttons ("This solved my
problem", "Yes, it is solved") and have a signed-in browser click them. Checked on each service's app as its
bootstrap builds it: pages, forms, JSON and the health checks alike."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.keys import REQUESTER, bearer

ASKED = {
    "intake": ["/healthz", "/tickets/t-1", "/docs", "/v1/tickets"],
    "sla": ["/healthz", "/docs"],
    "assignment": ["/healthz", "/docs"],
    "reporting": ["/healthz", "/dashboard", "/docs"],
    "notify": ["/healthz", "/docs"],
}


@pytest.mark.parametrize("service", list(ASKED))
def test_no_answer_may_be_framed_or_sniffed(apps: dict[str, FastAPI], service: str) -> None:
    client = TestClient(apps[service], raise_server_exceptions=False)
    for path in ASKED[service]:
        for headers in ({}, bearer(REQUESTER)):
            answer = client.get(path, headers=headers)
            assert answer.headers.get("x-frame-options") == "DENY", (path, answer.status_code)
            assert answer.headers.get("content-security-policy") == "frame-ancestors 'none'", path
            assert answer.headers.get("x-content-type-options") == "nosniff", path
