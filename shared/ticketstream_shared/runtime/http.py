"""The HTTP edge every service shares: health, readiness, metrics, the API's documentation, API keys and error shapes.

(No postponed annotations in this module: FastAPI must see the per-app `principal` dependency of /metrics.)
"""

import inspect
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketstream_shared.contract import Role

from .auth import ApiKeys, Principal, authenticated, key_sent, require_role
from .consumer import EventConsumer
from .logging import configure_logging, correlation_id
from .presence import Presence
from .refusals import install_refusals
from .settings import ServiceSettings
from .sign_in import SignedInPage

S = TypeVar("S", bound=ServiceSettings)

#: Each check names a dependency and says whether it is usable now.
ReadinessCheck = Callable[[], Mapping[str, bool] | Awaitable[Mapping[str, bool]]]

#: The header of the answer to a request carried out before (a retry, a PUT of what is in force): nothing new
#: was recorded.
REPLAYED = {"Idempotent-Replayed": "true"}

REQUESTS = Counter("ticketstream_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "ticketstream_http_request_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

REFUSED_FOR_LOAD = Counter(
    "ticketstream_http_requests_refused_for_load_total",
    "Requests answered 503 at once because the process carried out as many as it admits (HTTP_MAX_IN_FLIGHT)",
)
IN_FLIGHT = Gauge("ticketstream_http_requests_in_flight", "Requests being carried out now (operations' excluded)")

#: Always admitted: an overloaded process must still answer its probes and be observed.
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_RETRY_AFTER_LOAD_S = 1


def admitting(app: ASGIApp, *, service: str, limit: int, keys: ApiKeys) -> ASGIApp:
    """`app` behind a bound of `limit` requests in flight (`_Admission`), outside everything else in it, so that a
    refusal costs the least; `app` itself for 0 (no bound)."""
    return _Admission(app, service=service, limit=limit, keys=keys) if limit else app


class _Admission:
    """Pure ASGI middleware: a bound on the requests a process carries out at once. Past it, a request is refused
    at once, 503 with Retry-After, before its body is read: nothing was recorded, so a retry is always safe.

    Without a bound, a process past its core (the GIL) queues requests without bound: each one waits longer,
    clients time out on requests that are carried out later anyway, and every collection walks the queue. Refusing
    the excess costs a fraction of carrying it out, so the requests admitted keep their latency.

    A caller with few requests in progress (an eighth of the bound) is admitted past a full process, into a reserve
    of a quarter of the bound: one integration's flood fills the process, not the others' way in. A single caller
    still has the whole bound to itself. Requests without a known key count as one caller: keys made up by the
    thousand cannot take the reserve."""

    def __init__(self, app: ASGIApp, *, service: str, limit: int, keys: ApiKeys) -> None:
        self.app = app
        self.keys = keys
        self.limit = limit
        self.light = max(1, limit // 8)
        self.with_reserve = limit + max(1, limit // 4)
        self.in_flight = 0
        self._by_caller: dict[Principal | None, int] = {}
        detail = (
            f"{service} is carrying out as many requests as it admits ({limit}); nothing was recorded, retry after "
            f"{_RETRY_AFTER_LOAD_S} s"
        )
        self._refusal = json.dumps({"detail": detail}).encode()
        IN_FLIGHT.set_function(lambda: self.in_flight)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPERATIONS_PATHS:
            await self.app(scope, receive, send)
            return
        caller = self.keys.identify(key_sent(HTTPConnection(scope)))
        held = self._by_caller.get(caller, 0)
        if self.in_flight >= self.limit and (held >= self.light or self.in_flight >= self.with_reserve):
            REFUSED_FOR_LOAD.inc()
            await self._refuse(send)
            return
        self.in_flight += 1
        self._by_caller[caller] = held + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if (left := self._by_caller[caller] - 1) == 0:
                del self._by_caller[caller]
            else:
                self._by_caller[caller] = left

    async def _refuse(self, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._refusal)).encode()),
            (b"retry-after", str(_RETRY_AFTER_LOAD_S).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._refusal})


def limiting_bodies(app: ASGIApp, limit: int) -> ASGIApp:
    """`app` refusing request bodies larger than `limit` bytes (`_BodyLimit`)."""
    return _BodyLimit(app, limit)


class _BodyLimit:
    """Pure ASGI middleware: a request body larger than `limit` is refused with 413, before more of it is read than
    the limit (a body is otherwise read whole into memory before anything, even the key, is checked). One that
    declares its length is refused at once; one sent in chunks, once its chunks pass the limit: the refusal is
    raised where the route reads the body, and answered as every refusal is."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._detail = f"the request body is larger than this service takes ({limit} bytes); nothing was recorded"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await JSONResponse({"detail": self._detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, self._detail)
            return message

        await self.app(scope, receive_within_limit, send)


#: On every answer: no page of ours is shown inside another's frame (a page of a sibling host, whose requests carry
#: the sign-in cookie, could otherwise lay its own page over the request page's buttons: clickjacking), and no
#: answer is read as another type than it says.
_ANSWER_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


class _EveryRequest:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): latency and counts by route template, the
    correlation id of the request (X-Correlation-Id, or a new one) for logs and events, and `_ANSWER_HEADERS` on the
    answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        incoming = dict(scope["headers"]).get(b"x-correlation-id")
        token = correlation_id.set(incoming.decode("latin-1")[:128] if incoming else str(uuid.uuid4()))

        async def send_answer(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = [*message.get("headers", ()), *_ANSWER_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, send_answer)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], template, str(status_code)).inc()
            correlation_id.reset(token)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    fields = []
    for item in error.errors():
        if item.get("type") == "json_invalid":  # its location is the character where the JSON broke, no field
            where = item["loc"][-1]
            why = item.get("ctx", {}).get("error", "not JSON")
            fields.append({"field": "(body)", "message": f"the body is not JSON: {why} (at character {where})"})
            continue
        location = [str(part) for part in item.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            location = location[1:]
        fields.append({"field": ".".join(location) or "(body)", "message": str(item.get("msg", "invalid"))})
    return fields


async def _invalid_request(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": "invalid request", "errors": _field_errors(error)})


#: The API's documentation (Swagger UI over /openapi.json), for any key the service knows.
DOCS = SignedInPage(
    "/docs", tuple(Role), asked="Sign in with your API key to read this API.", refused="That key is not one we know."
)
#: Swagger UI's files, served from the installed package rather than FastAPI's default CDN: /docs works offline.
DOCS_ASSETS = files("fastapi_offline") / "static"
#: The headers of a file a page loads that changes only with the installed release (Swagger UI's, plotly's).
CACHED_A_DAY = {"Cache-Control": "max-age=86400"}
_DOCS_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def create_service_app(
    *,
    service: str,
    keys: ApiKeys,
    readiness: ReadinessCheck,
    lifespan: Any = None,
    presence: Presence | None = None,
) -> FastAPI:
    """A FastAPI app with the endpoints every service has; the service adds its own routers."""
    # What a service tells operators is /metrics (Prometheus) and JSON logs with correlation ids. FastAPI's own
    # OpenTelemetry asked for three global providers on every request, to find none configured.
    no_telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    # The API's description is served below, behind a key like every endpoint (FastAPI's own routes for it are open).
    app = FastAPI(
        title=f"ticketstream {service}",
        lifespan=lifespan,
        telemetry=no_telemetry,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(_EveryRequest)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    install_refusals(app)  # what every service's use cases (and the checks of runtime/auth.py) raise
    principal = authenticated(keys)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str | int]:
        alive: dict[str, str | int] = {"status": "alive", "service": service}
        if presence is not None and presence.port is not None:
            alive["presence_port"] = presence.port  # the group's other members watch it (runtime/presence.py)
        return alive

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        checks = readiness()
        if inspect.isawaitable(checks):
            checks = await checks
        ready = all(checks.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not ready", "checks": dict(checks)},
        )

    @app.get("/metrics", tags=["operations"])
    async def metrics(caller: Annotated[Principal, Depends(principal)]) -> Response:
        require_role(caller, Role.ADMIN, Role.MANAGER, Role.INTEGRATION)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(caller: Annotated[Principal, Depends(principal)]) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        return await DOCS.refusal(request) or get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=app.title,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str, caller: Annotated[Principal, Depends(principal)]) -> Response:
        if name not in _DOCS_MEDIA_TYPES:
            return Response(status_code=404)
        return FileResponse(str(DOCS_ASSETS / name), media_type=_DOCS_MEDIA_TYPES[name], headers=CACHED_A_DAY)

    app.include_router(DOCS.router)
    app.state.principal = principal
    return app


async def _caller(request: Request) -> Principal:
    return await request.app.state.principal(request)


#: The authenticated caller of a route declared on a router of its own, outside the app (the app's keys).
Caller = Annotated[Principal, Depends(_caller)]


def from_app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A route's dependency on what its service's bootstrap put in `app.state` under `name`. A coroutine because
    FastAPI runs a plain function's dependency on its thread pool: a thread hop (and two GIL hand-overs) per
    request for one attribute read."""

    async def state(request: Request) -> Any:
        return getattr(request.app.state, name)

    return state


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Run `app` until SIGTERM or Ctrl-C; uvicorn then stops accepting, finishes requests in flight and runs the
    app's lifespan shutdown (where each service drains its consumers and producers)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10)


def consumer_service_app(*, service: str, keys: ApiKeys, consumer: EventConsumer) -> FastAPI:
    """The app of a service whose work is consuming: ready once it holds partitions of its group."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with consumer.running():
            yield

    return create_service_app(
        service=service, keys=keys, readiness=lambda: {"kafka": consumer.ready}, lifespan=lifespan
    )


def run_service(service: str, settings_class: type[S], build_app: Callable[[S, ApiKeys], FastAPI]) -> None:
    """A service's `__main__`: settings from the environment (failing fast, naming the variable), JSON logs,
    the API keys, then serve until SIGTERM, with the process's bounds: on requests in flight (HTTP_MAX_IN_FLIGHT) and
    on a request's body (HTTP_MAX_BODY_BYTES)."""
    settings = settings_class()
    configure_logging(service, settings.log_level)
    keys = ApiKeys.load(settings.api_keys_file)
    app = build_app(settings, keys)
    within_bounds = limiting_bodies(app, settings.http_max_body_bytes)
    admitted = admitting(within_bounds, service=service, limit=settings.http_max_in_flight, keys=keys)
    serve(admitted, settings.http_host, settings.http_port)
