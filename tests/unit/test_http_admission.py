"""The bound on requests carried out at once (HTTP_MAX_IN_FLIGHT): the excess is refused at once with 503 and
Retry-After, a caller with few requests in progress finds a reserve past a full process, operations' endpoints are
always answered, and a slot is given back however a request ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
from prometheus_client import REGISTRY
from starlette.types import ASGIApp

from tests.keys import ADMIN, INTEGRATION, MANAGER, TECHNICIAN, TEST_KEYS, bearer
from ticketstream_shared.runtime.http import admitting, create_service_app

LIMIT = 2


class Desk:
    """Routes that hold their request until let go, so a test decides how many are in flight."""

    def __init__(self) -> None:
        self.entered = 0
        self.let_go = asyncio.Event()

    async def hold(self) -> dict[str, str]:
        self.entered += 1
        await self.let_go.wait()
        return {"status": "done"}

    async def fail(self) -> None:
        raise RuntimeError("a defect in a route")


def app_with(desk: Desk, max_in_flight: int) -> ASGIApp:
    app = create_service_app(service="intake", keys=TEST_KEYS, readiness=lambda: {})
    app.add_api_route("/v1/hold", desk.hold, methods=["POST"])
    app.add_api_route("/v1/fail", desk.fail, methods=["POST"])
    return admitting(app, service="intake", limit=max_in_flight, keys=TEST_KEYS)


def refused_for_load() -> float:
    return REGISTRY.get_sample_value("ticketstream_http_requests_refused_for_load_total") or 0.0


async def entered(desk: Desk, count: int) -> None:
    async with asyncio.timeout(5):
        while desk.entered < count:
            await asyncio.sleep(0)


def run(max_in_flight: int, scenario: Callable[[httpx.AsyncClient, Desk], Awaitable[None]]) -> None:
    desk = Desk()

    async def main() -> None:
        transport = httpx.ASGITransport(app=app_with(desk, max_in_flight), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake", headers=bearer(ADMIN)) as client:
            await scenario(client, desk)

    asyncio.run(main())


def test_past_the_bound_a_request_is_refused_at_once_and_says_when_to_retry() -> None:
    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        held = [asyncio.create_task(client.post("/v1/hold")) for _ in range(LIMIT)]
        await entered(desk, LIMIT)
        before = refused_for_load()

        async with asyncio.timeout(5):  # admitted, it would be held until let go
            refused = await client.post("/v1/hold")

        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert "intake is carrying out as many requests as it admits (2)" in refused.json()["detail"]
        assert "nothing was recorded" in refused.json()["detail"]
        assert refused_for_load() == before + 1
        assert desk.entered == LIMIT  # the refused one never reached its route
        desk.let_go.set()
        assert [answer.status_code for answer in await asyncio.gather(*held)] == [200] * LIMIT

    run(LIMIT, scenario)


def test_health_readiness_and_metrics_are_answered_when_the_bound_is_reached() -> None:
    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        held = [asyncio.create_task(client.post("/v1/hold")) for _ in range(LIMIT)]
        await entered(desk, LIMIT)

        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert f"ticketstream_http_requests_in_flight {LIMIT}.0" in metrics.text
        desk.let_go.set()
        await asyncio.gather(*held)

    run(LIMIT, scenario)


def test_a_slot_is_given_back_when_a_request_ends_in_an_answer_or_a_failure() -> None:
    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        for _ in range(3 * LIMIT):  # more failures than slots: each one gave its slot back
            assert (await client.post("/v1/fail")).status_code == 500
        desk.let_go.set()
        for _ in range(3 * LIMIT):
            assert (await client.post("/v1/hold")).status_code == 200
        held = [asyncio.create_task(client.post("/v1/hold")) for _ in range(LIMIT)]
        assert [answer.status_code for answer in await asyncio.gather(*held)] == [200] * LIMIT

    run(LIMIT, scenario)


def test_without_a_bound_every_request_is_carried_out() -> None:
    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        held = [asyncio.create_task(client.post("/v1/hold")) for _ in range(20)]
        await entered(desk, 20)
        desk.let_go.set()
        assert [answer.status_code for answer in await asyncio.gather(*held)] == [200] * 20

    run(0, scenario)


def test_a_flood_fills_the_process_and_other_callers_find_the_reserve() -> None:
    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        flooding = [asyncio.create_task(client.post("/v1/hold")) for _ in range(8)]  # ADMIN's key: the whole bound
        await entered(desk, 8)

        async with asyncio.timeout(5):
            flood_refused = await client.post("/v1/hold")
        others = [
            asyncio.create_task(client.post("/v1/hold", headers=bearer(key))) for key in (MANAGER, TECHNICIAN)
        ]  # one request each: few in progress, so the reserve (2 of 8) takes them
        await entered(desk, 10)
        async with asyncio.timeout(5):
            second_of_a_light_caller = await client.post("/v1/hold", headers=bearer(MANAGER))
            reserve_used_up = await client.post("/v1/hold", headers=bearer(INTEGRATION))

        assert flood_refused.status_code == 503
        assert second_of_a_light_caller.status_code == 503  # one in progress is as many as the reserve lets through
        assert reserve_used_up.status_code == 503
        desk.let_go.set()
        assert [answer.status_code for answer in await asyncio.gather(*flooding, *others)] == [200] * 10

    run(8, scenario)


def test_requests_without_a_known_key_count_as_one_caller_and_leave_the_reserve_to_the_others() -> None:
    def made_up(n: int) -> dict[str, str]:
        return {"Authorization": f"Bearer made-up-{n}"}

    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        flooding = [asyncio.create_task(client.post("/v1/hold")) for _ in range(8)]
        await entered(desk, 8)
        first_made_up = asyncio.create_task(client.post("/v1/hold", headers=made_up(0)))
        await entered(desk, 9)  # into the reserve, as any light caller

        async with asyncio.timeout(5):  # each key alone would look like another light caller
            more_made_up = [await client.post("/v1/hold", headers=made_up(n)) for n in (1, 2)]
            without_a_key = await client.post("/v1/hold", headers={"Authorization": ""})
        known = asyncio.create_task(client.post("/v1/hold", headers=bearer(MANAGER)))
        await entered(desk, 10)  # the reserve's other place is still there for a known caller

        assert [answer.status_code for answer in more_made_up] == [503, 503]
        assert without_a_key.status_code == 503
        desk.let_go.set()
        answers = await asyncio.gather(*flooding, first_made_up, known)
        assert [answer.status_code for answer in answers] == [200] * 10

    run(8, scenario)


def test_a_single_caller_has_the_whole_bound() -> None:
    async def scenario(client: httpx.AsyncClient, desk: Desk) -> None:
        held = [asyncio.create_task(client.post("/v1/hold")) for _ in range(8)]
        await entered(desk, 8)
        async with asyncio.timeout(5):
            assert (await client.post("/v1/hold")).status_code == 503
        desk.let_go.set()
        assert [answer.status_code for answer in await asyncio.gather(*held)] == [200] * 8

    run(8, scenario)
