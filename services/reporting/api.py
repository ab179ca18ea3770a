"""The analytics HTTP API: checks who asks and what, runs the report, answers JSON or CSV.

No `from __future__ import annotations` here: FastAPI reads the dependencies from the annotations at runtime,
and some of them are local to reports_router.
"""

from collections.abc import Callable
from typing import Annotated, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import Principal, require_client, require_role

from .reports import HoursPerClientQuery, Report, ReportsUnavailable

#: Who may read reports about effort. Technicians and requesters see their tickets in intake, not these figures.
REPORT_READERS = (Role.ADMIN, Role.MANAGER, Role.INTEGRATION)


class HoursPerClient(Protocol):
    async def hours_per_client(self, query: HoursPerClientQuery) -> Report: ...


def scoped(query: HoursPerClientQuery, caller: Principal) -> HoursPerClientQuery:
    """The query as `caller` may run it: a key scoped to a client sees that client only (403 for another)."""
    if caller.client_id is None:
        return query
    if query.client_id is not None:
        require_client(caller, query.client_id)
    return query.model_copy(update={"client_id": caller.client_id})


def reports_router(warehouse: HoursPerClient, principal: Callable[..., Principal]) -> APIRouter:
    router = APIRouter(prefix="/v1/reports", tags=["reports"])

    def report_reader(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        """A dependency, so that a caller without the role hears 403 before any word about its parameters."""
        require_role(caller, *REPORT_READERS)
        return caller

    @router.get("/hours-per-client", response_model=None)
    async def hours_per_client(
        caller: Annotated[Principal, Depends(report_reader)],
        query: Annotated[HoursPerClientQuery, Query()],
        format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
    ) -> Response:
        try:
            report = await warehouse.hours_per_client(scoped(query, caller))
        except ReportsUnavailable as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
        if format == "csv":
            return Response(
                report.csv(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": 'attachment; filename="hours-per-client.csv"'},
            )
        return JSONResponse(jsonable_encoder({"rows": report.records()}))

    return router
