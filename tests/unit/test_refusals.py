"""The one table of refusals: each answered with its status and words, a 422 naming the field, a 503 saying when to
ask again when the use case knows."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ticketstream_shared.runtime.refusals import (
    Conflict,
    Forbidden,
    InvalidField,
    NotFound,
    Unavailable,
    install_refusals,
)

REFUSED = {
    "not-found": NotFound("no technician bob"),
    "forbidden": Forbidden("not your client's"),
    "conflict": Conflict("ticket t-1 is resolved"),
    "unavailable": Unavailable("still reading its log"),
    "behind": Unavailable("privacy.keys is behind; try again", retry_after_s=1),
    "invalid": InvalidField("strategy", "manual is not a team strategy"),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_refusals(app)

    @app.get("/{case}")
    async def refuse(case: str) -> None:
        raise REFUSED[case]

    return TestClient(app)


@pytest.mark.parametrize(
    ("case", "status"), [("not-found", 404), ("forbidden", 403), ("conflict", 409), ("unavailable", 503)]
)
def test_each_refusal_is_answered_with_its_status_and_its_words(client: TestClient, case: str, status: int) -> None:
    answer = client.get(f"/{case}")
    assert answer.status_code == status
    assert answer.json() == {"detail": str(REFUSED[case])}
    assert "retry-after" not in answer.headers


def test_a_refusal_that_knows_when_to_ask_again_says_so(client: TestClient) -> None:
    answer = client.get("/behind")
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")


def test_an_invalid_field_is_named(client: TestClient) -> None:
    answer = client.get("/invalid")
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "invalid request",
        "errors": [{"field": "strategy", "message": "manual is not a team strategy"}],
    }
