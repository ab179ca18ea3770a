"""The analytics HTTP API: checks who asks and what, runs the report, answers JSON or CSV.

No `from __future__ import annotations` here: FastAPI reads the dependencies from the annotations at runtime,
and a report's query model is local to the route made for it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import Principal, require_client, require_role
from ticketstream_shared.runtime.http import Caller, from_app_state
from ticketstream_shared.runtime.refusals import Unavailable

from . import dashboard
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


@dataclass(frozen=True)
class Analytics:
    """What the report routes answer from: the warehouse, and the catalogue's services as they stand when a report
    is asked."""

    warehouse: Reports
    services: Callable[[], Services]

    async def report(self, query: ReportQuery, caller: Principal) -> Report:
        try:
            return await self.warehouse.report(scoped(query, caller), self.services())
        except ReportsUnavailable as error:
            raise Unavailable(str(error)) from error


async def report_reader(caller: Caller) -> Principal:
    """A dependency, so that a caller without the role hears 403 before any word about its parameters."""
    require_role(caller, *REPORT_READERS)
    return caller


router = APIRouter(prefix="/v1/reports", tags=["reports"])


def _add_report(name: str, model: type[ReportQuery]) -> None:
    """One route per report: each reads its own query model from the parameters (the one thing that differs)."""

    async def report(
        caller: Annotated[Principal, Depends(report_reader)],
        query: Annotated[model, Query()],  # type: ignore[valid-type]
        analytics: Annotated[Analytics, Depends(from_app_state("analytics"))],
        format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
    ) -> Response:
        result = await analytics.report(query, caller)
        if format == "csv":
            return Response(
                result.csv(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        return JSONResponse(jsonable_encoder({"rows": result.records()}))

    router.add_api_route(f"/{name}", report, methods=["GET"], response_model=None, summary=model.__doc__, name=name)


for _name, _model in REPORTS.items():
    _add_report(_name, _model)


def install(app: FastAPI, warehouse: Reports, services: Callable[[], Services]) -> None:
    """Add the reports and the dashboard to `app`."""
    app.state.analytics = Analytics(warehouse, services)
    app.include_router(router)
    app.include_router(dashboard.router)
