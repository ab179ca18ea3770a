"""Every route of every service runs on the event loop: FastAPI runs a plain function (a route, or any dependency of
one) on its thread pool, a thread hop and two hand-overs of the GIL per request."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from assignment import api as assignment_api
from intake import api as intake_api
from intake import knowledge_api, privacy_api
from notify import api as notify_api
from reporting import api as reporting_api
from reporting import dashboard
from sla import api as sla_api
from sla import catalog_api
from ticketstream_shared.runtime.auth import ApiKeys
from ticketstream_shared.runtime.http import create_service_app

ROUTERS: dict[str, APIRouter] = {
    "intake tickets": intake_api.router,
    "intake knowledge": knowledge_api.router,
    "intake privacy": privacy_api.router,
    "sla": sla_api.router,
    "sla catalogue": catalog_api.router,
    "assignment": assignment_api.router,
    "notify": notify_api.router,
    "reporting": reporting_api.router,
    "reporting dashboard": dashboard.router,
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def _plain_functions(routes: list[Any]) -> list[str]:
    return [
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        if isinstance(route, APIRoute)
        for call in _calls(route.dependant)
        if not inspect.iscoroutinefunction(call) and not inspect.iscoroutinefunction(type(call).__call__)
    ]


@pytest.mark.parametrize("name", list(ROUTERS))
def test_a_services_routes_and_their_dependencies_are_coroutines(name: str) -> None:
    assert ROUTERS[name].routes, "a router without routes proves nothing"
    assert _plain_functions(ROUTERS[name].routes) == []


def test_the_routes_every_service_has_are_coroutines() -> None:
    app: FastAPI = create_service_app(service="any", keys=ApiKeys([]), readiness=lambda: {})
    assert _plain_functions(app.routes) == []


def test_a_plain_function_dependency_is_found() -> None:
    """The check itself: a route with a plain dependency is named."""
    from fastapi import Depends, Request

    def plain(request: Request) -> int:
        return 1

    router = APIRouter()

    @router.get("/x")
    async def route(value: int = Depends(plain)) -> int:
        return value

    assert _plain_functions(router.routes) == ["/x: test_a_plain_function_dependency_is_found.<locals>.plain"]
