"""Intake's HTTP routes: decode the request, check the caller, build a command, hand it to the ledger.

Nothing else happens here; domain errors map to status codes in one table (`STATUS_OF`). (No postponed
annotations in this module: FastAPI must see the `Caller` dependency, which is made per app.)
"""


import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ticketstream_shared.contract import Channel, Priority, Role
from ticketstream_shared.contract.events import Identifier, UtcDatetime
from ticketstream_shared.runtime.auth import Principal, require_client, require_role
from ticketstream_shared.runtime.logging import correlation_id

from .domain import (
    CommandContext,
    CreateTicket,
    DomainError,
    IdempotencyKeyReused,
    InvalidCommand,
    RecordWorklog,
    Ticket,
    TicketNotFound,
    VersionConflict,
    Worklog,
    evolve,
)
from .ledger import NotReady, TicketLedger

STATUS_OF: dict[type[DomainError], int] = {
    NotReady: status.HTTP_503_SERVICE_UNAVAILABLE,
    TicketNotFound: status.HTTP_404_NOT_FOUND,
    VersionConflict: status.HTTP_409_CONFLICT,
    IdempotencyKeyReused: status.HTTP_409_CONFLICT,
}

STAFF = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN, Role.INTEGRATION)


class CreateTicketBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: Identifier
    requester_id: Identifier
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    category: Identifier
    priority: Priority
    channel: Channel = Channel.API


class WorklogBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    technician_id: Identifier
    minutes: int = Field(gt=0, le=24 * 60)
    billable: bool
    note: str = Field(default="", max_length=2_000)
    performed_at: UtcDatetime | None = None


RequestKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
IfMatch = Annotated[str | None, Header(alias="If-Match", pattern=r'^(W/)?"?[0-9]{1,12}"?$')]


def ticket_view(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.ticket_id,
        "client_id": ticket.client_id,
        "requester_id": ticket.requester_id,
        "title": ticket.title,
        "description": ticket.description,
        "category": ticket.category,
        "priority": ticket.priority,
        "channel": ticket.channel,
        "status": ticket.status,
        "assignee_id": ticket.assignee_id,
        "version": ticket.version,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "worklog_minutes": ticket.worklog_minutes,
    }


def worklog_view(ticket: Ticket, worklog: Worklog) -> dict[str, Any]:
    return {
        "id": str(worklog.worklog_id),
        "ticket_id": ticket.ticket_id,
        "technician_id": worklog.technician_id,
        "minutes": worklog.minutes,
        "billable": worklog.billable,
        "note": worklog.note,
        "performed_at": worklog.performed_at.isoformat(),
        "recorded_at": worklog.recorded_at.isoformat(),
    }


def _expected_version(if_match: str | None) -> int | None:
    return int(if_match.removeprefix("W/").strip('"')) if if_match else None


def _answer(body: dict[str, Any], version: int, replayed: bool, code: int = status.HTTP_201_CREATED) -> JSONResponse:
    headers = {"ETag": f'"{version}"'}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=code, headers=headers)


def install(app: FastAPI, ledger: TicketLedger, clock: Callable[[], datetime]) -> None:
    """Add intake's routes and its domain-error mapping to `app`."""
    Caller = Annotated[Principal, Depends(app.state.principal)]
    router = APIRouter(prefix="/v1/tickets", tags=["tickets"])

    def context(request_key: str | None, scope: str) -> CommandContext:
        return CommandContext(
            now=clock(),
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
            command_id=f"{scope}\x00{request_key}" if request_key else str(uuid.uuid4()),
            request_key=request_key,
        )

    def visible_ticket(ticket_id: str, principal: Principal) -> Ticket:
        ticket = ledger.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(f"no ticket {ticket_id}")
        require_client(principal, ticket.client_id)
        if principal.role is Role.REQUESTER and principal.requester_id not in (None, ticket.requester_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "requesters see only their own tickets")
        return ticket

    @router.post("", status_code=status.HTTP_201_CREATED)
    async def create_ticket(
        body: CreateTicketBody, principal: Caller, request_key: RequestKey = None
    ) -> JSONResponse:
        require_client(principal, body.client_id)
        if principal.role is Role.REQUESTER and principal.requester_id not in (None, body.requester_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "requesters open tickets only in their own name")
        command = CreateTicket(
            ticket_id=CreateTicket.ticket_id_for(principal.name, request_key), **body.model_dump()
        )
        ticket, events = await ledger.execute(command, context(request_key, principal.name))
        first = evolve(ticket.creation, None)
        assert first is not None
        return _answer(ticket_view(first), first.version, replayed=not events)

    @router.get("/{ticket_id}")
    async def get_ticket(ticket_id: str, principal: Caller) -> JSONResponse:
        ticket = visible_ticket(ticket_id, principal)
        return _answer(ticket_view(ticket), ticket.version, replayed=False, code=status.HTTP_200_OK)

    @router.post("/{ticket_id}/worklogs", status_code=status.HTTP_201_CREATED)
    async def record_worklog(
        ticket_id: str,
        body: WorklogBody,
        principal: Caller,
        request_key: RequestKey = None,
        if_match: IfMatch = None,
    ) -> JSONResponse:
        require_role(principal, *STAFF)
        visible_ticket(ticket_id, principal)
        worklog_id = RecordWorklog.worklog_id_for(ticket_id, request_key)
        fields = body.model_dump(exclude={"performed_at"})
        command = RecordWorklog(
            ticket_id=ticket_id,
            worklog_id=worklog_id,
            performed_at=body.performed_at or clock(),
            expected_version=_expected_version(if_match),
            **fields,
        )
        ticket, events = await ledger.execute(command, context(request_key, f"{principal.name}:{ticket_id}"))
        return _answer(worklog_view(ticket, ticket.worklogs[worklog_id]), ticket.version, replayed=not events)

    app.include_router(router)

    @app.exception_handler(DomainError)
    async def refused(_: Request, error: Exception) -> JSONResponse:
        if isinstance(error, InvalidCommand):
            fields = [{"field": error.field_name, "message": error.message}]
            return JSONResponse(status_code=422, content={"detail": "invalid request", "errors": fields})
        return JSONResponse(status_code=STATUS_OF.get(type(error), 409), content={"detail": str(error)})
