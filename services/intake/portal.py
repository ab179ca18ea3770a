"""The page a requester follows a request on, where the links in notify's mails point (PORTAL_URL is intake's address
unless an organisation puts a portal of its own there): the request, what happened in plain words (timeline.py),
and the answers it was given. Like every page, it needs a key: a browser signs in (runtime/sign_in.py) and is sent
back to the request it asked for. A key sees the requests it may see through the API, no others.

The request's requester also acts on it there, as through the API: reads the help articles that may solve it and
says one did (self-service), answers, confirms a resolution or reopens, and rates the help. Each form carries a
request key drawn when the page was shown, so a form sent twice (a double click, a reload after sending) is one
request, replayed; each comes back to the page (POST, redirect, GET). A refusal is the page again, saying why, with
what was written kept. `/tickets` lists the requester's own requests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from ticketstream_shared.contract import Channel, Priority, Role, TicketStatus
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.contract.requests import CommentBody, CsatBody, NewTicketBody, StatusBody, WorklogBody
from ticketstream_shared.runtime.auth import Principal, require_client
from ticketstream_shared.runtime.http import from_app_state
from ticketstream_shared.runtime.refusals import Forbidden
from ticketstream_shared.runtime.sign_in import SignedInPage

from .api import DESK_PEOPLE, STATUS_OF, Front, TicketFront
from .domain import (
    DONE,
    TRANSITIONS,
    AddComment,
    ChangeStatus,
    Command,
    DomainError,
    RecordCsat,
    RecordWorklog,
    Ticket,
    TicketNotFound,
    child_id_for,
)
from .ticket_store import Filters
from .timeline import STATUS_LINES, URGENCY, desk_timeline, promises, timeline

PAGE = SignedInPage(
    "/tickets",
    tuple(Role),
    asked="Sign in with your API key to follow your request.",
    refused="That key is not one we know.",
)
#: The pages' markup (templates/), every value escaped.
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,  # a template naming what it is not given fails its test, not a requester's page
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.globals.update(
    sign_out_form=Markup(PAGE.sign_out_form),
    request_key=lambda: f"page-{uuid.uuid4().hex}",  # drawn as the page is shown: a form sent twice is one request
    TicketStatus=TicketStatus,
)
#: The most requests the list of a requester's own shows.
LISTED = 1000
#: The most requests the desk's queue shows.
QUEUED = 250
#: A request's status in a word or two, for the list.
STATUS_WORDS = {
    TicketStatus.NEW: "received",
    TicketStatus.OPEN: "in the queue",
    TicketStatus.IN_PROGRESS: "being worked on",
    TicketStatus.WAITING_ON_CUSTOMER: "waiting for your answer",
    TicketStatus.RESOLVED: "solved",
    TicketStatus.CLOSED: "closed",
}
#: How urgent a new request may be, most urgent first, in the requester's words.
_URGENCIES = [(priority.value, URGENCY[priority]) for priority in reversed(Priority)]
#: What a new request's form holds before anything is written.
_NEW_REQUEST = {"service_id": "", "priority": Priority.P3.value, "title": "", "description": ""}
#: What the requester's choices on a resolved (or closed) request change its status to, and the reason recorded.
_CHOICES = {
    TicketStatus.CLOSED: "the requester confirmed it is solved",
    TicketStatus.OPEN: "the requester reopened it",
}

router = APIRouter(include_in_schema=False)
router.include_router(PAGE.router)
PortalConfig = Annotated["Portal", Depends(from_app_state("portal"))]


@dataclass(frozen=True)
class Portal:
    #: The category of a request opened on the page under none of the catalogue's services.
    other_category: str


def install(app: FastAPI, other_category: str) -> None:
    app.state.portal = Portal(other_category)
    app.include_router(router)


@dataclass(frozen=True)
class Sent:
    """A form sent from a request's page: by whom, about which ticket, its fields and its request key."""

    front: TicketFront
    ticket: Ticket
    principal: Principal
    fields: dict[str, str]

    @property
    def key(self) -> str | None:
        return _request_key(self.fields)

    def text(self, name: str) -> str:
        return self.fields.get(name, "").strip()

    @property
    def author(self) -> str | None:
        """Whose words or time it is: the requester's, or the desk key's person (or the key)."""
        if _is_desk(self.principal):
            return self.principal.subject or self.principal.name
        return self.principal.requester_id


def _reply(sent: Sent) -> Command:
    """The requester's answer; or, from the desk, a reply or an internal note."""
    public = not (_is_desk(sent.principal) and sent.fields.get("internal") == "yes")
    body = CommentBody.model_validate({"author_id": sent.author, "body": sent.text("words"), "public": public})
    comment_id = child_id_for(sent.principal.name, sent.ticket.ticket_id, sent.key)
    return AddComment(sent.ticket.ticket_id, comment_id, **body.model_dump())


def _status_change(sent: Sent) -> Command:
    body = StatusBody.model_validate({"status": sent.fields.get("status", "")})
    reason = "" if _is_desk(sent.principal) else _CHOICES.get(body.status, "")
    return ChangeStatus(sent.ticket.ticket_id, body.status, reason)


def _worklog(sent: Sent) -> Command:
    """Time spent, billable unless said otherwise (who may log it is the domain's to say)."""
    fields = {
        "technician_id": sent.author,
        "minutes": sent.fields.get("minutes", ""),
        "billable": sent.fields.get("billable") == "yes",
        "note": sent.text("note"),
    }
    body = WorklogBody.model_validate(fields)
    worklog_id = child_id_for(sent.principal.name, sent.ticket.ticket_id, sent.key)
    return RecordWorklog(sent.ticket.ticket_id, worklog_id, **body.model_dump())


def _rating(sent: Sent) -> Command:
    body = CsatBody.model_validate({"rating": sent.fields.get("rating", ""), "comment": sent.text("comment")})
    return RecordCsat(sent.ticket.ticket_id, body.rating, body.comment)


def _solved(sent: Sent) -> Command:
    return sent.front.solved_with(sent.ticket.ticket_id, sent.fields.get("article_id", ""))


#: The forms of a request's page, each at <page>/<action>, and the command each makes of what it sends.
ACTIONS: dict[str, Callable[[Sent], Command]] = {
    "reply": _reply,
    "status": _status_change,
    "rating": _rating,
    "worklog": _worklog,
    "self-solved": _solved,
}


@router.get("/tickets")
async def requests_page(request: Request, front: Front) -> Response:
    """Where the sign-in lands when it was asked for no request in particular: for a requester, their own requests,
    newest first, and the form to open a new one; for the desk, its open work."""
    principal = await _signed_in(request, "/tickets")
    if isinstance(principal, Response):
        return principal
    if _is_desk(principal):
        return _queue(front, principal, request.query_params)
    if _names_a_requester(principal):
        return _requests(front, principal)
    return _message("Requests", "This page lists a requester's requests, or the desk's work; this key is neither's.")


@router.post("/tickets")
async def new_request(request: Request, front: Front, portal: PortalConfig) -> Response:
    """A new request from the form, under the service chosen (its first category) or none (`other_category`), and
    to its page, where the articles that may solve it are offered first; or the list again saying why not."""
    requester = await _signed_in(request, "/tickets")
    if isinstance(requester, Response):
        return requester
    if not _names_a_requester(requester):
        return _message("Requests", "Only a requester's key opens a request here.", 403)
    form = await _form_fields(request)
    service_id = form.get("service_id") or None
    service = front.desk.catalogue.in_force(front.clock()).services.get(service_id or "")
    fields = {
        "title": form.get("title", "").strip(),
        "description": form.get("description", "").strip(),
        "category": service.categories[0] if service is not None and service.categories else portal.other_category,
        "priority": form.get("priority", ""),
        "channel": Channel.PORTAL,
        "service_id": service_id,
    }
    try:
        ticket, _ = await front.open(NewTicketBody.model_validate(fields), requester, _request_key(form))
    except (ValidationError, DomainError) as refused:
        return _requests(front, requester, refused, kept=form)
    return RedirectResponse(f"/tickets/{ticket.ticket_id}", status_code=303)


async def _signed_in(request: Request, back_to: str) -> Principal | Response:
    """The signed-in key; or the sign-in form, coming back to `back_to`."""
    if page := await PAGE.refusal(request, back_to=back_to):
        return page
    principal: Principal = await request.app.state.principal(request)
    return principal


def _names_a_requester(principal: Principal) -> bool:
    return principal.role is Role.REQUESTER and principal.requester_id is not None


def _requests(
    front: TicketFront,
    principal: Principal,
    refused: ValidationError | DomainError | None = None,
    kept: dict[str, str] | None = None,
) -> HTMLResponse:
    mine = Filters(client_id=principal.client_id, requester_id=principal.requester_id)
    found = front.desk.find(mine, None, LISTED + 1, newest_first=True)
    services = front.desk.catalogue.in_force(front.clock()).services
    offered = sorted(
        ({"id": service_id, "name": service.name} for service_id, service in services.items() if service.published),
        key=lambda service: service["name"].lower(),
    )
    return _shown_as(
        "requests.html.j2",
        refused,
        title="Your requests",
        status="These are your requests." if found else "You have no requests yet.",
        requests=found[:LISTED],
        more=len(found) > LISTED,
        listed=LISTED,
        status_words=STATUS_WORDS,
        services=offered,
        urgencies=_URGENCIES,
        kept={**_NEW_REQUEST, **(kept or {})},
    )


class QueueFilter(BaseModel):
    """What the desk's open work is narrowed to: a client (for a key of no client), an urgency."""

    client_id: Identifier | None = None
    priority: Priority | None = None


def _queue(front: TicketFront, principal: Principal, asked: Mapping[str, str]) -> HTMLResponse:
    """The desk's open work (of the key's client, for a scoped key; else of the client asked for, if one is), of the
    urgency asked for, if one is; each request's page a click away; and, for a technician's own key, what is
    assigned to them. A filter refused is said, and the work shown unfiltered."""
    refused: ValidationError | Forbidden | None = None
    try:
        shown = QueueFilter.model_validate({name: value for name, value in asked.items() if value})
        if shown.client_id is not None:
            require_client(principal, shown.client_id)
    except (ValidationError, Forbidden) as refusal:
        refused, shown = refusal, QueueFilter()
    client_id = principal.client_id or shown.client_id
    mine: list[Ticket] = []
    more_of_mine = False
    if principal.subject is not None:
        mine, more_of_mine = front.desk.open_work(client_id, principal.subject, QUEUED, shown.priority)
    queued, more = front.desk.open_work(client_id, None, QUEUED, shown.priority)
    return _shown_as(
        "queue.html.j2",
        refused,
        title="Open requests",
        status="The most urgent first, then the oldest." if queued else "There is no open request.",
        mine=mine,
        queued=queued,
        more=more or more_of_mine,
        listed=QUEUED,
        assignee_of=front.desk.assignee_of,
        scoped=principal.client_id is not None,
        shown=shown,
        urgencies=_URGENCIES,
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(ticket_id: str, request: Request, front: Front) -> Response:
    shown = await _shown(request, front, ticket_id)
    return shown if isinstance(shown, Response) else _page_of(front, *shown)


@router.get("/tickets/{ticket_id}/rate")
async def rating_page(ticket_id: str, request: Request, front: Front) -> Response:
    """Where the rating link of notify's "solved" mail points: the request's page, at its rating form."""
    shown = await _shown(request, front, ticket_id)
    return shown if isinstance(shown, Response) else RedirectResponse(f"/tickets/{ticket_id}#rating-form", 303)


@router.post("/tickets/{ticket_id}/{action}")
async def act(ticket_id: str, action: str, request: Request, front: Front) -> Response:
    """The form's command carried out for the signed-in requester or the desk, then back to the page; or the page
    saying why not. Another site's page cannot send it: the cookie's key is refused for it (runtime/auth.identify)."""
    shown = await _shown(request, front, ticket_id)
    if isinstance(shown, Response):
        return shown
    ticket, principal = shown
    command_of = ACTIONS.get(action)
    if command_of is None:
        return _message("Not found", f"There is nothing called {action} to do on a request.", 404)
    if not (_is_requester(ticket, principal) or _is_desk(principal)):
        refusal = Forbidden("Only the person who asked, and the people of the desk, act here")
        return _page_of(front, ticket, principal, refusal)
    sent = Sent(front, ticket, principal, await _form_fields(request))
    try:
        await front.execute(command_of(sent), principal, sent.key)
    except (ValidationError, DomainError) as refused:
        return _page_of(front, ticket, principal, refused, words=sent.fields.get("words", ""))
    return RedirectResponse(f"/tickets/{ticket.ticket_id}", status_code=303)


async def _shown(request: Request, front: TicketFront, ticket_id: str) -> tuple[Ticket, Principal] | Response:
    """The ticket and the signed-in key it is shown to; or the sign-in form (coming back to the ticket's page), or
    the page saying the request is not there or not theirs."""
    principal = await _signed_in(request, f"/tickets/{ticket_id}")
    if isinstance(principal, Response):
        return principal
    try:
        return await front.visible_ticket(ticket_id, principal), principal
    except TicketNotFound:
        return _message("Request not found", f"We know no request {ticket_id}.", 404)
    except Forbidden:
        return _message("Not your request", "This request is not one your key may see.", 403)


def _request_key(fields: dict[str, str]) -> str | None:
    """The request key the page drew for the form (as long as the API's Idempotency-Key may be)."""
    return fields.get("request_key", "")[:200] or None


async def _form_fields(request: Request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()}


#: The form's fields in the requester's words, for a refusal of what was written in one.
_FIELD_NAMES = {
    "body": "Your answer",
    "rating": "Your rating",
    "comment": "Your comment",
    "status": "Your choice",
    "minutes": "Minutes",
    "note": "The note",
    "title": "In a few words",
    "description": "Tell us more",
    "priority": "How urgent it is",
    "service_id": "What it is about",
    "client_id": "Client",
}


def _refusal(refused: ValidationError | DomainError | Forbidden) -> tuple[str, int]:
    """Why what was sent was refused, in the form's words (the first field refused), and the page's status."""
    if isinstance(refused, ValidationError):
        problem = refused.errors()[0]
        return f"{_FIELD_NAMES.get(str(problem['loc'][-1]), 'That')}: {problem['msg']}.", 422
    if isinstance(refused, Forbidden):
        return f"{refused}.", 403
    return f"{refused}.", STATUS_OF[type(refused)]


def _is_requester(ticket: Ticket, principal: Principal) -> bool:
    """The forms are the requester's: staff act through their own tools, which see what the page leaves out."""
    return principal.role is Role.REQUESTER and principal.requester_id == ticket.requester_id


def _is_desk(principal: Principal) -> bool:
    """The people of the desk work the ticket on its page (where the links in their mails point): they read the
    internal notes too, reply or write a note, and move its status."""
    return principal.role in DESK_PEOPLE


def _page_of(
    front: TicketFront,
    ticket: Ticket,
    principal: Principal,
    refused: ValidationError | DomainError | Forbidden | None = None,
    words: str = "",
) -> HTMLResponse:
    """The page of `ticket` for `principal`: for its requester, their forms and, while it is open, the articles that
    may solve the problem, each with a button to say it did; for the desk, who wrote what, the internal notes, the
    ticket's details and the desk's forms. `refused` is why what was sent was not done, and `words` written are
    kept in the answer's box."""
    desk = _is_desk(principal)
    requester = _is_requester(ticket, principal)
    helpful = requester and ticket.status not in DONE
    articles = (
        [(hit, front.library.current_body(hit.article_id)) for hit in front.articles_for(ticket)] if helpful else []
    )
    order = list(TicketStatus)
    return _shown_as(
        "request.html.j2",
        refused,
        title=ticket.title,
        status=_details(ticket, front.desk.assignee_of(ticket.ticket_id)) if desk else STATUS_LINES[ticket.status],
        ticket=ticket,
        desk=desk,
        requester=requester,
        entries=(desk_timeline if desk else timeline)(ticket.history),
        moves=sorted(TRANSITIONS[ticket.status], key=order.index),
        promised=promises(front.desk.clocks_of(ticket.ticket_id)),
        articles=articles,
        words=words,
    )


def _details(ticket: Ticket, assignee: str | None) -> str:
    """Where the ticket stands, for the desk (the requester reads a sentence addressed to them)."""
    return (
        f"{ticket.status.value.replace('_', ' ')}, priority {ticket.priority.value}, category {ticket.category}; "
        f"requested by {ticket.requester_id} of {ticket.client_id}; "
        + (f"assigned to {assignee}" if assignee else "assigned to no one yet")
        + f"; {ticket.worklog_minutes} minutes logged"
    )


def _shown_as(template: str, refused: ValidationError | DomainError | Forbidden | None, **context: Any) -> HTMLResponse:
    """A page from its template; with the refusal of what was sent said at the top, and its status."""
    notice, status_code = _refusal(refused) if refused is not None else (None, 200)
    return HTMLResponse(_TEMPLATES.get_template(template).render(notice=notice, **context), status_code)


def _message(title: str, message: str, status_code: int = 200) -> HTMLResponse:
    page = _TEMPLATES.get_template("message.html.j2").render(title=title, status=message, notice=None)
    return HTMLResponse(page, status_code)
