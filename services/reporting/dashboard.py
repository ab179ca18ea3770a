"""The manager dashboard: one page, its figures fetched from the reports API.

Like every endpoint, it needs a key. A browser cannot send a bearer header when it navigates, so without one the
page answers 401 with a sign-in form; signing in (POST /dashboard/session) checks the key and puts it in an
HttpOnly, SameSite=Strict cookie, which the shared authentication accepts in place of the header, for the page
and for the report requests it makes. The charts are drawn by plotly.js from the installed plotly package, served
from site-packages: no CDN, works offline.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import KEY_COOKIE, require_role
from ticketstream_shared.runtime.refusals import Forbidden

PAGE = files(__package__) / "dashboard.html"
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"


#: Who may look at the dashboard: those who may read the reports.
READERS = (Role.ADMIN, Role.MANAGER, Role.INTEGRATION)
SESSION_SECONDS = 8 * 3600

SIGN_IN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Service desk: sign in</title>
<style>body{{font-family:system-ui,sans-serif;margin:3rem}}input,button{{font-size:1rem;padding:.3rem}}</style></head>
<body><h1>Service desk</h1><p>{message}</p>
<form method="post" action="/dashboard/session"><label>API key <input id="key" name="key" type="password"
autocomplete="off" required></label> <button id="sign-in">Sign in</button></form></body></html>"""


router = APIRouter(include_in_schema=False)
_PAGE = PAGE.read_text(encoding="utf-8")


def _sign_in(message: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(SIGN_IN.format(message=escape(message)), status_code, {"WWW-Authenticate": "Bearer"})


async def _sign_in_unless_reader(request: Request, unknown: str, refused: str | None = None) -> HTMLResponse | None:
    """None if the caller of `request` may read the reports; else the sign-in page saying why: `unknown` for no key
    or one we do not know, `refused` (else the refusal's own words) for a key whose role may not."""
    try:
        require_role(await request.app.state.principal(request), *READERS)
    except HTTPException as not_known:
        return _sign_in(unknown, not_known.status_code)
    except Forbidden as not_allowed:
        return _sign_in(refused or str(not_allowed), status.HTTP_403_FORBIDDEN)
    return None


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    return await _sign_in_unless_reader(request, "Sign in with your API key.") or HTMLResponse(_PAGE)


@router.post("/dashboard/session")
async def open_session(request: Request) -> Response:
    key = parse_qs((await request.body()).decode("utf-8", "replace")).get("key", [""])[0].strip()
    not_a_reader = "That key is not one that may read the reports."
    if page := await _sign_in_unless_reader(_with_bearer(request, key), not_a_reader, not_a_reader):
        return page
    signed_in = RedirectResponse("/dashboard", status_code=303)
    signed_in.set_cookie(KEY_COOKIE, key, max_age=SESSION_SECONDS, httponly=True, samesite="strict")
    return signed_in


@router.get("/dashboard/assets/plotly.min.js")
async def plotly_js() -> FileResponse:
    return FileResponse(str(PLOTLY_JS), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def _with_bearer(request: Request, key: str) -> Request:
    """The same request as if the key had come in the Authorization header."""
    scope = dict(request.scope)
    scope["headers"] = [*request.scope["headers"], (b"authorization", f"Bearer {key}".encode())]
    return Request(scope)
