"""The analytics HTTP API: checks who asks and what, runs the report, answers JSON or CSV.

No `from __future__ import annotations` here: FastAPI reads the dependencies from the annotations at runtime,
and some of them are local to reports_router.
"""

from collections.abc import Callable
from typing import Annotated, Literal, Protocol, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import Principal, require_client, require_role

from .queries import Services
from .reports import (
    BacklogQuery,
    CsatQuery,
    DeflectionsQuery,
    HoursPerClientQuery,
    Report,
    ReportQuery,
    ReportsUnavailable,
    ResponseTimesQuery,
    ServicesOverviewQuery,
    SlaComplianceQuery,
    WorkloadQuery,
)

#: Who may read reports about effort. Technicians and requesters see their tickets in intake, not these figures.
REPORT_READERS = (Role.ADMIN, Role.MANAGER, Role.INTEGRATION)

#: Every report, by the last segment of its URL under /v1/reports.
REPORTS: dict[str, type[ReportQuery]] = {
    "hours-per-client": HoursPerClientQuery,
    "sla-compliance": SlaComplianceQuery,
    "response-times": ResponseTimesQuery,
    "backlog": BacklogQuery,
    "technician-workload": WorkloadQuery,
    "csat": CsatQuery,
    "services": ServicesOverviewQuery,
    "deflections": DeflectionsQuery,
}

Q = TypeVar("Q", bound=ReportQuery)


class Reports(Protocol):
    async def report(self, query: ReportQuery, services: Services) -> Report: ...


def scoped(query: Q, caller: Principal) -> Q:
    """The query as `caller` may run it: a key scoped to a client sees that client only (403 for another)."""
    if caller.client_id is None:
        return query
    if query.client_id is not None:
        require_client(caller, query.client_id)
    return query.model_copy(update={"client_id": caller.client_id})


def reports_router(
    warehouse: Reports, principal: Callable[..., Principal], services: Callable[[], Services]
) -> APIRouter:
    """`services`: the catalogue as it stands, read when a report is asked."""
    router = APIRouter(prefix="/v1/reports", tags=["reports"])

    def report_reader(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        """A dependency, so that a caller without the role hears 403 before any word about its parameters."""
        require_role(caller, *REPORT_READERS)
        return caller

    def add_report(name: str, model: type[ReportQuery]) -> None:
        async def report(
            caller: Annotated[Principal, Depends(report_reader)],
            query: Annotated[model, Query()],  # type: ignore[valid-type]
            format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
        ) -> Response:
            try:
                result = await warehouse.report(scoped(query, caller), services())
            except ReportsUnavailable as error:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
            if format == "csv":
                return Response(
                    result.csv(),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
                )
            return JSONResponse(jsonable_encoder({"rows": result.records()}))

        router.add_api_route(f"/{name}", report, methods=["GET"], response_model=None, summary=model.__doc__, name=name)

    for name, model in REPORTS.items():
        add_report(name, model)
    return router
