"""Intake's HTTP routes: decode the request, check the caller, build a command, hand it to the desk.

Nothing else happens here; domain errors map to status codes in one table (`STATUS_OF`). (No postponed
annotations in this module: FastAPI must see the dependencies.)
"""

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, status
from fastapi.responses import JSONResponse

from ticketstream_shared.contract import CommentAdded, Priority, Role, TicketStatus
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.contract.requests import (
    CommentBody,
    CorrectionBody,
    CsatBody,
    NewTicketBody,
    SelfSolvedBody,
    StatusBody,
    UpdateTicketBody,
    VoidBody,
    WorklogBody,
)
from ticketstream_shared.runtime.auth import Principal, require_client, require_role, require_visible
from ticketstream_shared.runtime.http import REPLAYED, Caller, from_app_state
from ticketstream_shared.runtime.logging import correlation_id
from ticketstream_shared.runtime.refusals import Forbidden

from .audit import audit
from .desk import Desk
from .domain import (
    STAFF,
    AddComment,
    ChangeStatus,
    Command,
    CorrectWorklog,
    CreateTicket,
    DomainError,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidCommand,
    LifecycleRules,
    NotPermitted,
    NotReady,
    RecordCsat,
    RecordWorklog,
    SolveMyself,
    Ticket,
    TicketNotFound,
    TicketUnreadable,
    UpdateTicket,
    VersionConflict,
    VoidWorklog,
    Worklog,
    child_id_for,
    evolve,
)
from .idempotency import request_context
from .knowledge import Hit, Library
from .knowledge_api import hit_view
from .ticket_store import Filters
from .timeline import timeline

#: The people of the desk (not requesters, not integrations): who reads a ticket's audit trail, and works a ticket
#: on its page.
DESK_PEOPLE = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)

#: The status of every refusal intake gives (domain.REFUSALS), each named: a refusal without one is a defect of
#: ours and answers 500, never a guessed 409.
STATUS_OF: dict[type[DomainError], int] = {
    TicketNotFound: status.HTTP_404_NOT_FOUND,
    VersionConflict: status.HTTP_409_CONFLICT,
    IdempotencyKeyReused: status.HTTP_409_CONFLICT,
    IllegalTransition: status.HTTP_409_CONFLICT,
    NotPermitted: status.HTTP_403_FORBIDDEN,
    InvalidCommand: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NotReady: status.HTTP_503_SERVICE_UNAVAILABLE,
    TicketUnreadable: status.HTTP_503_SERVICE_UNAVAILABLE,
}
#: How long a caller told "not ready" should wait: intake catches up or takes over partitions within seconds.
RETRY_AFTER_S = 1


def refusal_response(refusal: DomainError) -> JSONResponse:
    """A refusal as its status and a body that says why: the field for a 422, what differs for a reused key."""
    content: dict[str, Any] = {"detail": str(refusal)}
    headers: dict[str, str] = {}
    if isinstance(refusal, InvalidCommand):
        content = {"detail": "invalid request", "errors": [{"field": refusal.field_name, "message": refusal.message}]}
    elif isinstance(refusal, IdempotencyKeyReused):
        content["differs"] = list(refusal.differs)
    elif isinstance(refusal, NotReady):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return JSONResponse(content, status_code=STATUS_OF[type(refusal)], headers=headers)


RequestKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
IfMatch = Annotated[str | None, Header(alias="If-Match", pattern=r'^(W/)?"?[0-9]{1,12}"?$')]


def ticket_view(ticket: Ticket, assignee_id: str | None) -> dict[str, Any]:
    return {
        "id": ticket.ticket_id,
        "client_id": ticket.client_id,
        "requester_id": ticket.requester_id,
        "title": ticket.title,
        "description": ticket.description,
        "category": ticket.category,
        "priority": ticket.priority,
        "service_id": ticket.creation.data.service_id,
        "channel": ticket.channel,
        "status": ticket.status,
        "assignee_id": assignee_id,
        "version": ticket.version,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
        "worklog_minutes": ticket.worklog_minutes,
        "csat": ticket.csat,
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
        "voided": worklog.voided,
        "corrections": worklog.corrections,
        "version": ticket.version,
    }


def comment_view(event: CommentAdded) -> dict[str, Any]:
    return {
        "id": str(event.data.comment_id),
        "ticket_id": event.ticket_id,
        "author_id": event.data.author_id,
        "author_role": event.data.author_role,
        "body": event.data.body,
        "public": event.data.public,
        "created_at": event.occurred_at.isoformat(),
    }


def install_domain_refusals(app: FastAPI) -> None:
    """Answer each of intake's refusals in STATUS_OF by refusal_response (the shared ones are answered by every
    service's app); any other error stays a 500."""

    async def refused(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        return refusal_response(error)

    for refusal in STATUS_OF:
        app.add_exception_handler(refusal, refused)


def _expected_version(if_match: str | None) -> int | None:
    return int(if_match.removeprefix("W/").strip('"')) if if_match else None


def _answer(body: Any, version: int, replayed: bool = False, code: int = status.HTTP_200_OK) -> JSONResponse:
    headers = {"ETag": f'"{version}"'}
    if replayed:
        headers.update(REPLAYED)
    return JSONResponse(body, status_code=code, headers=headers)


def _encode_cursor(ticket: Ticket) -> str:
    return base64.urlsafe_b64encode(f"{ticket.created_at.isoformat()}|{ticket.ticket_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, _, ticket_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return moment, ticket_id
    except ValueError:
        raise InvalidCommand("cursor", "is not a cursor this API gave out") from None


@dataclass(frozen=True)
class TicketFront:
    """The desk as the ticket routes reach it: a command run for a caller (its request context built from the key,
    the clock and the lifecycle rules), a ticket read by someone allowed to see it, and a ticket's view."""

    desk: Desk
    clock: Callable[[], datetime]
    rules: LifecycleRules
    #: Up to three of its articles answer a new ticket, for what its requester wrote.
    library: Library

    async def execute(self, command: Command, principal: Principal, request_key: str | None) -> tuple[Ticket, bool]:
        """Run `command` for `principal`; returns the ticket after it and whether it was a replay."""
        context = request_context(
            command,
            caller=principal.name,
            request_key=request_key,
            now=self.clock(),
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
            actor=principal.actor,
            rules=self.rules,
        )
        return await self.desk.execute(command, context)

    async def open(self, body: NewTicketBody, principal: Principal, request_key: str | None) -> tuple[Ticket, bool]:
        """A new ticket, for the client and requester the body or the key names (`whose_new_ticket`)."""
        fields = {**body.model_dump(), **whose_new_ticket(body, principal)}
        command = CreateTicket(ticket_id=self.desk.new_ticket_id(principal.name, request_key), **fields)
        return await self.execute(command, principal, request_key)

    async def visible_ticket(self, ticket_id: str, principal: Principal) -> Ticket:
        ticket = await self.desk.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(f"no ticket {ticket_id}")
        require_visible(principal, ticket.client_id, ticket.requester_id)
        return ticket

    def view(self, ticket: Ticket) -> dict[str, Any]:
        return ticket_view(ticket, self.desk.assignee_of(ticket.ticket_id))

    def solved_with(self, ticket_id: str, article_id: str) -> SolveMyself:
        """The requester's word that an article solved their problem: a published article's only."""
        article = self.library.current(article_id)
        if article is None or not article.data.published:
            raise InvalidCommand("article_id", f"no published article {article_id}")
        return SolveMyself(ticket_id, article_id)

    def articles_for(self, ticket: Ticket) -> list[Hit]:
        """The articles a new ticket is answered with: for what its requester wrote, its service's first (the one
        it names, or its category's in the catalogue now)."""
        in_force = self.desk.catalogue.in_force(self.clock())
        service_id = in_force.service_of(ticket.creation.data.service_id, ticket.category)
        return self.library.suggest(ticket.title, ticket.description, service_id, ticket.category)


Front = Annotated[TicketFront, Depends(from_app_state("ticket_front"))]
router = APIRouter(prefix="/v1/tickets", tags=["tickets"])


def whose_new_ticket(body: NewTicketBody, principal: Principal) -> dict[str, str]:
    """The client and requester of a new ticket: as the body names them, else as the key does (a requester's key
    names both, a key scoped to a client its client); the key must be allowed them."""
    client_id = body.client_id or principal.client_id
    if client_id is None:
        raise InvalidCommand("client_id", "Field required (this key is scoped to no client)")
    require_client(principal, client_id)
    requester_id = body.requester_id or (principal.requester_id if principal.role is Role.REQUESTER else None)
    if requester_id is None:
        raise InvalidCommand("requester_id", "Field required (this key names no requester)")
    if principal.role is Role.REQUESTER and principal.requester_id not in (None, requester_id):
        raise Forbidden("requesters open tickets only in their own name")
    return {"client_id": client_id, "requester_id": requester_id}


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_ticket(
    body: NewTicketBody, principal: Caller, front: Front, request_key: RequestKey = None
) -> JSONResponse:
    ticket, replayed = await front.open(body, principal, request_key)
    first = evolve(ticket.creation, None)
    assert first is not None
    suggested = [hit_view(hit) for hit in front.articles_for(first)]
    return _answer(
        {**front.view(first), "suggested_articles": suggested}, first.version, replayed, status.HTTP_201_CREATED
    )


@router.post("/{ticket_id}/self-solved")
async def self_solved(
    ticket_id: Identifier, body: SelfSolvedBody, principal: Caller, front: Front, request_key: RequestKey = None
) -> JSONResponse:
    """The requester confirms a published knowledge article solved their problem: the ticket is resolved as
    self-service (its SLA clocks met) and the article counts as a deflection."""
    command = front.solved_with(ticket_id, body.article_id)
    await front.visible_ticket(ticket_id, principal)
    ticket, replayed = await front.execute(command, principal, request_key)
    return _answer(front.view(ticket), ticket.version, replayed)


@router.get("")
async def list_tickets(
    principal: Caller,
    front: Front,
    client_id: Identifier | None = None,
    status_: Annotated[TicketStatus | None, Query(alias="status")] = None,
    assignee_id: Identifier | None = None,
    priority: Priority | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> JSONResponse:
    if principal.client_id is not None:
        if client_id is not None:
            require_client(principal, client_id)
        client_id = principal.client_id
    requester_id = principal.requester_id if principal.role is Role.REQUESTER else None
    after = _decode_cursor(cursor) if cursor else None
    filters = Filters(client_id, status_, priority, requester_id, assignee_id)
    page = front.desk.find(filters, after, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return JSONResponse(
        {"tickets": [front.view(t) for t in page], "next_cursor": _encode_cursor(page[-1]) if more else None}
    )


@router.get("/{ticket_id}")
async def get_ticket(ticket_id: str, principal: Caller, front: Front) -> JSONResponse:
    ticket = await front.visible_ticket(ticket_id, principal)
    return _answer(front.view(ticket), ticket.version)


@router.patch("/{ticket_id}")
async def update_ticket(
    ticket_id: str,
    body: UpdateTicketBody,
    principal: Caller,
    front: Front,
    request_key: RequestKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    await front.visible_ticket(ticket_id, principal)
    if not body.model_fields_set:
        raise InvalidCommand("(body)", "name at least one of title, category, priority")
    command = UpdateTicket(ticket_id=ticket_id, expected_version=_expected_version(if_match), **body.model_dump())
    ticket, replayed = await front.execute(command, principal, request_key)
    return _answer(front.view(ticket), ticket.version, replayed)


@router.post("/{ticket_id}/status")
async def change_status(
    ticket_id: str,
    body: StatusBody,
    principal: Caller,
    front: Front,
    request_key: RequestKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    await front.visible_ticket(ticket_id, principal)
    command = ChangeStatus(ticket_id=ticket_id, expected_version=_expected_version(if_match), **body.model_dump())
    ticket, replayed = await front.execute(command, principal, request_key)
    return _answer(front.view(ticket), ticket.version, replayed)


@router.post("/{ticket_id}/comments", status_code=status.HTTP_201_CREATED)
async def add_comment(
    ticket_id: str,
    body: CommentBody,
    principal: Caller,
    front: Front,
    request_key: RequestKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    await front.visible_ticket(ticket_id, principal)
    if principal.role is Role.REQUESTER and body.author_id != principal.requester_id:
        raise Forbidden("requesters comment only in their own name")
    comment_id = child_id_for(principal.name, ticket_id, request_key)
    command = AddComment(
        ticket_id=ticket_id,
        comment_id=comment_id,
        expected_version=_expected_version(if_match),
        **body.model_dump(),
    )
    ticket, replayed = await front.execute(command, principal, request_key)
    added = next(e for e in ticket.history if isinstance(e, CommentAdded) and e.data.comment_id == comment_id)
    return _answer(comment_view(added), ticket.version, replayed, status.HTTP_201_CREATED)


@router.get("/{ticket_id}/comments")
async def list_comments(ticket_id: str, principal: Caller, front: Front) -> JSONResponse:
    ticket = await front.visible_ticket(ticket_id, principal)
    internal_too = principal.role in STAFF
    comments = [
        comment_view(e) for e in ticket.history if isinstance(e, CommentAdded) and (e.data.public or internal_too)
    ]
    return _answer({"comments": comments}, ticket.version)


@router.post("/{ticket_id}/worklogs", status_code=status.HTTP_201_CREATED)
async def record_worklog(
    ticket_id: str,
    body: WorklogBody,
    principal: Caller,
    front: Front,
    request_key: RequestKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    await front.visible_ticket(ticket_id, principal)
    worklog_id = child_id_for(principal.name, ticket_id, request_key)
    command = RecordWorklog(
        ticket_id=ticket_id,
        worklog_id=worklog_id,
        expected_version=_expected_version(if_match),
        **body.model_dump(),
    )
    ticket, replayed = await front.execute(command, principal, request_key)
    return _answer(worklog_view(ticket, ticket.worklogs[worklog_id]), ticket.version, replayed, 201)


async def amend_worklog(
    front: TicketFront,
    kind: type[CorrectWorklog] | type[VoidWorklog],
    ticket_id: str,
    worklog_id: uuid.UUID,
    body: CorrectionBody | VoidBody,
    principal: Principal,
    request_key: str | None,
    if_match: str | None,
) -> JSONResponse:
    """Correct or void a worklog: staff only, by new events; answers with the worklog as it now stands."""
    await front.visible_ticket(ticket_id, principal)
    expected = _expected_version(if_match)
    command = kind(ticket_id=ticket_id, worklog_id=worklog_id, expected_version=expected, **body.model_dump())
    ticket, replayed = await front.execute(command, principal, request_key)
    return _answer(worklog_view(ticket, ticket.worklogs[worklog_id]), ticket.version, replayed)


@router.post("/{ticket_id}/worklogs/{worklog_id}/correction")
async def correct_worklog(
    ticket_id: str,
    worklog_id: uuid.UUID,
    body: CorrectionBody,
    principal: Caller,
    front: Front,
    request_key: RequestKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await amend_worklog(front, CorrectWorklog, ticket_id, worklog_id, body, principal, request_key, if_match)


@router.post("/{ticket_id}/worklogs/{worklog_id}/void")
async def void_worklog(
    ticket_id: str,
    worklog_id: uuid.UUID,
    body: VoidBody,
    principal: Caller,
    front: Front,
    request_key: RequestKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    return await amend_worklog(front, VoidWorklog, ticket_id, worklog_id, body, principal, request_key, if_match)


@router.post("/{ticket_id}/csat", status_code=status.HTTP_201_CREATED)
async def rate(
    ticket_id: str, body: CsatBody, principal: Caller, front: Front, request_key: RequestKey = None
) -> JSONResponse:
    await front.visible_ticket(ticket_id, principal)
    ticket, replayed = await front.execute(RecordCsat(ticket_id=ticket_id, **body.model_dump()), principal, request_key)
    return _answer(front.view(ticket), ticket.version, replayed, status.HTTP_201_CREATED)


@router.get("/{ticket_id}/timeline")
async def get_timeline(ticket_id: str, principal: Caller, front: Front) -> JSONResponse:
    ticket = await front.visible_ticket(ticket_id, principal)
    entries = [{"at": entry.at.isoformat(), "text": entry.text} for entry in timeline(ticket.history)]
    return _answer({"ticket_id": ticket_id, "status": ticket.status, "timeline": entries}, ticket.version)


@router.get("/{ticket_id}/audit")
async def get_audit(ticket_id: str, principal: Caller, front: Front) -> JSONResponse:
    """Every change of the ticket, who made it (from their key) and what it was before and after."""
    require_role(principal, *DESK_PEOPLE)
    ticket = await front.visible_ticket(ticket_id, principal)
    changes = [change.view() for change in audit(ticket.history)]
    return _answer({"ticket_id": ticket_id, "changes": changes}, ticket.version)


def install(app: FastAPI, desk: Desk, clock: Callable[[], datetime], rules: LifecycleRules, library: Library) -> None:
    """Add intake's ticket routes and its domain-error mapping to `app`."""
    app.state.ticket_front = TicketFront(desk, clock, rules, library)
    app.include_router(router)
    install_domain_refusals(app)
