"""The manager dashboard: one page, its figures fetched from the reports API.

Like every endpoint, it needs a key: a browser signs in on the page (runtime/sign_in.py). The charts are drawn by
plotly.js from the installed plotly package, served from site-packages: no CDN, works offline.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import require_role
from ticketstream_shared.runtime.http import CACHED_A_DAY, Caller
from ticketstream_shared.runtime.sign_in import SignedInPage

PAGE = files(__package__) / "dashboard.html"
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"


#: Who may look at the dashboard: those who may read the reports.
READERS = (Role.ADMIN, Role.MANAGER, Role.INTEGRATION)
SIGNED_IN = SignedInPage(
    "/dashboard", READERS, asked="Sign in with your API key.", refused="That key is not one that may read the reports."
)

router = APIRouter(include_in_schema=False)
router.include_router(SIGNED_IN.router)
_PAGE = PAGE.read_text(encoding="utf-8").replace("<!-- sign out -->", SIGNED_IN.sign_out_form)


@router.get("/dashboard")
async def dashboard(request: Request) -> Response:
    return await SIGNED_IN.refusal(request) or HTMLResponse(_PAGE)


@router.get("/dashboard/assets/plotly.min.js")
async def plotly_js(caller: Caller) -> FileResponse:
    require_role(caller, *READERS)
    return FileResponse(str(PLOTLY_JS), media_type="text/javascript", headers=CACHED_A_DAY)
