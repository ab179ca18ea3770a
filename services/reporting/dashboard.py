"""The manager dashboard: one page, its figures fetched from the reports API with the manager's own key.

The page itself holds no data, so it is served without a key (a browser cannot send a bearer header when it
navigates); every figure on it comes from /v1/reports with the key the manager types in. The charts are drawn by
plotly.js from the installed plotly package, served from site-packages: no CDN, works offline.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

PAGE = files(__package__) / "dashboard.html"
PLOTLY_JS = files("plotly") / "package_data" / "plotly.min.js"


def dashboard_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = PAGE.read_text(encoding="utf-8")

    @router.get("/dashboard")
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page)

    @router.get("/dashboard/assets/plotly.min.js")
    async def plotly_js() -> FileResponse:
        return FileResponse(str(PLOTLY_JS), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    return router
