"""A request body larger than a service takes (HTTP_MAX_BODY_BYTES) is refused with 413 and nothing is recorded,
whether it declares its length or comes in chunks, and before it is read whole: the key and the body are checked
only after the body is read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
from pydantic import BaseModel

from tests.keys import ADMIN, TEST_KEYS, bearer
from ticketstream_shared.runtime.http import create_service_app, limiting_bodies

LIMIT = 4096


class Note(BaseModel):
    text: str


class Desk:
    def __init__(self) -> None:
        self.recorded: list[str] = []

    async def record(self, note: Note) -> dict[str, int]:
        self.recorded.append(note.text)
        return {"recorded": len(note.text)}


def post(desk: Desk, content: bytes | AsyncIterator[bytes], **headers: str) -> httpx.Response:
    app = create_service_app(service="intake", keys=TEST_KEYS, readiness=lambda: {})
    app.add_api_route("/v1/notes", desk.record, methods=["POST"])
    bounded = limiting_bodies(app, LIMIT)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=bounded)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            return await client.post(
                "/v1/notes", content=content, headers={"Content-Type": "application/json", **headers}
            )

    return asyncio.run(send())


def note_of(size: int) -> bytes:
    """A note's JSON body of exactly `size` bytes."""
    return b'{"text": "' + b"x" * (size - 12) + b'"}'


async def in_chunks(body: bytes, chunk: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk):
        yield body[start : start + chunk]


def test_a_body_up_to_the_limit_is_taken() -> None:
    desk = Desk()
    body = note_of(LIMIT)
    assert len(body) == LIMIT
    answer = post(desk, body, **bearer(ADMIN))
    assert answer.status_code == 200 and answer.json() == {"recorded": LIMIT - 12}
    chunked = post(desk, in_chunks(body), **bearer(ADMIN))
    assert chunked.status_code == 200 and len(desk.recorded) == 2


def test_a_larger_body_that_says_so_is_refused_before_anything_else() -> None:
    desk = Desk()
    for headers in (bearer(ADMIN), {}):  # before the key is looked at
        answer = post(desk, note_of(LIMIT + 1), **headers)
        assert answer.status_code == 413, answer.text
        assert answer.json()["detail"] == (
            f"the request body is larger than this service takes ({LIMIT} bytes); nothing was recorded"
        )
    assert desk.recorded == []


def test_a_larger_body_in_chunks_is_refused_once_its_chunks_pass_the_limit() -> None:
    desk = Desk()
    body, pulled = note_of(10 * LIMIT), []

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in in_chunks(body):
            pulled.append(len(chunk))
            yield chunk

    answer = post(desk, counted(), **bearer(ADMIN))
    assert answer.status_code == 413 and "nothing was recorded" in answer.json()["detail"]
    assert desk.recorded == []
    assert sum(pulled) <= LIMIT + 1000, "read no further than the chunk that passed the limit"


def test_a_body_that_is_not_json_is_refused_saying_where_it_broke() -> None:
    """FastAPI names the character where the JSON broke as if it were a field ("0"); the answer names the body."""
    desk = Desk()
    answer = post(desk, b'{"text": "a", oops}', **bearer(ADMIN))
    assert answer.status_code == 422, answer.text
    why = "the body is not JSON: Expecting property name enclosed in double quotes (at character 14)"
    assert answer.json()["errors"] == [{"field": "(body)", "message": why}]
    assert desk.recorded == []
