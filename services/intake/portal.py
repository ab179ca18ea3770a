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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ticketstream_shared.contract import Channel, Priority, Role, TicketStatus
from ticketstream_shared.contract.requests import CommentBody, CsatBody, NewTicketBody, StatusBody, WorklogBody
from ticketstream_shared.runtime.auth import Principal
from ticketstream_shared.runtime.http import from_app_state
from ticketstream_shared.runtime.refusals import Forbidden
from ticketstream_shared.runtime.sign_in import SignedInPage

from .api import DESK_PEOPLE, STATUS_OF, Front, TicketFront
from .domain import (
    TRANSITIONS,
    AddComment,
    ChangeStatus,
    Command,
    DomainError,
    NotPermitted,
    RecordCsat,
    RecordWorklog,
    Ticket,
    TicketNotFound,
    child_id_for,
)
from .knowledge import Hit
from .ticket_store import Filters
from .timeline import STATUS_LINES, URGENCY, desk_timeline, timeline

PAGE = SignedInPage(
    "/tickets",
    tuple(Role),
    asked="Sign in with your API key to follow your request.",
    refused="That key is not one we know.",
)

_HTML = (
    """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:40rem;padding:0 1rem;color:#1f2328}}
ol{{list-style:none;padding:0}}li{{margin:0 0 1rem}}time{{display:block;color:#59636e;font-size:.9rem}}
blockquote{{margin:.4rem 0 0;padding:.5rem .8rem;background:#f4f5f7;border-left:3px solid #8c959f;white-space:pre-wrap}}
form{{margin:0 0 1rem}}textarea{{width:100%;box-sizing:border-box;min-height:5rem;font:inherit}}
button{{font:inherit;padding:.3rem .8rem}}
fieldset{{border:1px solid #d0d7de;margin:0 0 .5rem}}
#notice{{padding:.5rem .8rem;background:#fff1e5;border-left:3px solid #bc4c00}}
#title{{display:block;width:100%;box-sizing:border-box;margin:0 0 .5rem}}
.article{{white-space:pre-wrap;margin:.5rem 0}}details{{margin:0 0 .5rem}}h2{{font-size:1.1rem}}
.internal blockquote{{background:#fff8c5;border-left-color:#9a6700}}
.reference{{color:#59636e;font-size:.9rem}}footer{{margin-top:2rem}}</style></head>
<body><h1>{title}</h1>{notice}<p id="status">{status}</p>{actions}<ol id="{listed}">{entries}</ol>{reference}
<footer>"""
    + PAGE.sign_out_form
    + """</footer></body></html>"""
)
#: How an entry of the timeline begins, an internal note's marked.
_INTERNAL = {False: "<li>", True: '<li class="internal">'}
#: The most requests the list of a requester's own shows.
LISTED = 1000
#: A request's status in a word or two, for the list.
STATUS_WORDS = {
    TicketStatus.NEW: "received",
    TicketStatus.OPEN: "in the queue",
    TicketStatus.IN_PROGRESS: "being worked on",
    TicketStatus.WAITING_ON_CUSTOMER: "waiting for your answer",
    TicketStatus.RESOLVED: "solved",
    TicketStatus.CLOSED: "closed",
}
#: Where a request is done with: no help articles offered.
_DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
#: What the requester's choices on a resolved (or closed) request change its status to, and the reason recorded.
_CHOICES = {
    TicketStatus.CLOSED: "the requester confirmed it is solved",
    TicketStatus.OPEN: "the requester reopened it",
}

router = APIRouter(include_in_schema=False)
PortalConfig = Annotated["Portal", Depends(from_app_state("portal"))]


@dataclass(frozen=True)
class Portal:
    #: The category of a request opened on the page under none of the catalogue's services.
    other_category: str


def install(app: FastAPI, other_category: str) -> None:
    app.state.portal = Portal(other_category)
    app.include_router(router)


@router.get("/tickets")
async def requests_page(request: Request, front: Front) -> Response:
    """A requester's own requests, newest first, each linking to its page, and the form to open a new one: where the
    sign-in lands when it was asked for no request in particular."""
    if refused := await PAGE.refusal(request, back_to="/tickets"):
        return refused
    principal = await request.app.state.principal(request)
    if principal.role is not Role.REQUESTER or principal.requester_id is None:
        return _page("Requests", "This page lists a requester's own requests; this key names no requester.", 200)
    return HTMLResponse(_requests(front, principal))


@router.post("/tickets")
async def new_request(request: Request, front: Front, portal: PortalConfig) -> Response:
    """A new request from the form, under the service chosen (its first category) or none (`other_category`), and
    to its page, where the articles that may solve it are offered first; or the list again saying why not."""
    if refused := await PAGE.refusal(request, back_to="/tickets"):
        return refused
    principal = await request.app.state.principal(request)
    if principal.role is not Role.REQUESTER or principal.requester_id is None:
        return _page("Requests", "Only a requester's key opens a request here.", 403)
    form = await _form_fields(request)
    key = form.get("request_key", "")[:200] or None
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
        ticket, _ = await front.open(NewTicketBody.model_validate(fields), principal, key)
    except ValidationError as invalid:
        return HTMLResponse(_requests(front, principal, notice=_notice(invalid), kept=form), 422)
    except DomainError as refusal:
        return HTMLResponse(_requests(front, principal, notice=f"{refusal}.", kept=form), STATUS_OF[type(refusal)])
    return RedirectResponse(f"/tickets/{ticket.ticket_id}", status_code=303)


def _requests(
    front: TicketFront, principal: Principal, *, notice: str | None = None, kept: dict[str, str] | None = None
) -> str:
    mine = Filters(client_id=principal.client_id, requester_id=principal.requester_id)
    found = front.desk.find(mine, None, LISTED + 1)
    rows = [
        f'<li><a href="/tickets/{quote(ticket.ticket_id)}">{escape(ticket.title)}</a>'
        f"<time>{ticket.created_at:%-d %b %Y}: {escape(STATUS_WORDS[ticket.status])}</time></li>"
        for ticket in reversed(found[:LISTED])
    ]
    more = f"<p>Your first {LISTED} requests are listed here.</p>" if len(found) > LISTED else ""
    services = front.desk.catalogue.in_force(front.clock()).services
    offered = sorted(
        ((service.name, service_id) for service_id, service in services.items() if service.published),
        key=lambda named: named[0].lower(),
    )
    return _HTML.format(
        title="Your requests",
        notice=f'<p id="notice" role="alert">{escape(notice)}</p>' if notice else "",
        status="These are your requests." if rows else "You have no requests yet.",
        actions=_new_request_form(offered, kept or {}) + more,
        listed="requests",
        entries="".join(rows),
        reference="",
    )


def _new_request_form(offered: list[tuple[str, str]], kept: dict[str, str]) -> str:
    """What it is about (a published service of the catalogue, or something else), how urgent, in a few words and
    more; what was written kept after a refusal."""
    chosen = kept.get("service_id", "")
    services = "".join(
        f'<option value="{escape(service_id)}"{" selected" if service_id == chosen else ""}>{escape(name)}</option>'
        for name, service_id in offered
    )
    urgency = kept.get("priority", Priority.P3.value)
    levels = " ".join(
        f'<label><input type="radio" name="priority" value="{priority.value}"'
        f"{' checked' if priority.value == urgency else ''}> {URGENCY[priority]}</label>"
        for priority in reversed(Priority)
    )
    key = f'<input type="hidden" name="request_key" value="page-{uuid.uuid4().hex}">'
    return (
        f'<form id="new-request-form" method="post" action="/tickets">{key}<h2>Ask for help</h2>'
        f'<label for="service">What is it about?</label> <select id="service" name="service_id">{services}'
        f'<option value=""{" selected" if not chosen else ""}>Something else</option></select>'
        f"<fieldset><legend>How urgent is it?</legend>{levels}</fieldset>"
        '<label for="title">In a few words</label> <input id="title" name="title" required maxlength="200" '
        f'value="{escape(kept.get("title", ""))}"><label for="description">Tell us more (optional)</label>'
        f'<textarea id="description" name="description" maxlength="20000">{escape(kept.get("description", ""))}'
        "</textarea><button>Send your request</button></form>"
    )


@router.get("/tickets/{ticket_id}")
async def ticket_page(ticket_id: str, request: Request, front: Front) -> Response:
    shown = await _shown(request, front, ticket_id)
    return shown if isinstance(shown, Response) else HTMLResponse(_page_of(front, *shown))


@router.get("/tickets/{ticket_id}/rate")
async def rating_page(ticket_id: str, request: Request, front: Front) -> Response:
    """Where the rating link of notify's "solved" mail points: the request's page, at its rating form."""
    shown = await _shown(request, front, ticket_id)
    return shown if isinstance(shown, Response) else RedirectResponse(f"/tickets/{ticket_id}#rating-form", 303)


@router.post("/tickets/session")
async def open_session(request: Request) -> Response:
    return await PAGE.open_session(request)


@router.post("/tickets/session/end")
async def close_session(request: Request) -> Response:
    return await PAGE.close_session(request)


@router.post("/tickets/{ticket_id}/reply")
async def reply(ticket_id: str, request: Request, front: Front) -> Response:
    return await _act(request, front, ticket_id, _reply)


@router.post("/tickets/{ticket_id}/status")
async def change_status(ticket_id: str, request: Request, front: Front) -> Response:
    return await _act(request, front, ticket_id, _status_change)


@router.post("/tickets/{ticket_id}/rating")
async def rate(ticket_id: str, request: Request, front: Front) -> Response:
    return await _act(request, front, ticket_id, _rating)


@router.post("/tickets/{ticket_id}/worklog")
async def log_time(ticket_id: str, request: Request, front: Front) -> Response:
    return await _act(request, front, ticket_id, _worklog)


@router.post("/tickets/{ticket_id}/self-solved")
async def self_solved(ticket_id: str, request: Request, front: Front) -> Response:
    def solved(ticket: Ticket, principal: Principal, form: dict[str, str], key: str | None) -> Command:
        return front.solved_with(ticket.ticket_id, form.get("article_id", ""))

    return await _act(request, front, ticket_id, solved)


def _reply(ticket: Ticket, principal: Principal, form: dict[str, str], key: str | None) -> Command:
    """The requester's answer; or, from the desk, a reply in the name of the key's person (or the key), or an
    internal note."""
    desk = _is_desk(principal)
    author = (principal.subject or principal.name) if desk else principal.requester_id
    public = not (desk and form.get("internal") == "yes")
    words = form.get("words", "").strip()
    body = CommentBody.model_validate({"author_id": author, "body": words, "public": public})
    return AddComment(ticket.ticket_id, child_id_for(principal.name, ticket.ticket_id, key), **body.model_dump())


def _status_change(ticket: Ticket, principal: Principal, form: dict[str, str], key: str | None) -> Command:
    body = StatusBody.model_validate({"status": form.get("status", "")})
    reason = "" if _is_desk(principal) else _CHOICES.get(body.status, "")
    return ChangeStatus(ticket.ticket_id, body.status, reason)


def _worklog(ticket: Ticket, principal: Principal, form: dict[str, str], key: str | None) -> Command:
    """Time spent by the key's person (or the key), billable unless said otherwise."""
    if not _is_desk(principal):
        raise NotPermitted("only the people of the desk log time")
    fields = {
        "technician_id": principal.subject or principal.name,
        "minutes": form.get("minutes", ""),
        "billable": form.get("billable") == "yes",
        "note": form.get("note", "").strip(),
    }
    body = WorklogBody.model_validate(fields)
    return RecordWorklog(ticket.ticket_id, child_id_for(principal.name, ticket.ticket_id, key), **body.model_dump())


def _rating(ticket: Ticket, principal: Principal, form: dict[str, str], key: str | None) -> Command:
    body = CsatBody.model_validate({"rating": form.get("rating", ""), "comment": form.get("comment", "").strip()})
    return RecordCsat(ticket.ticket_id, body.rating, body.comment)


async def _shown(request: Request, front: TicketFront, ticket_id: str) -> tuple[Ticket, Principal] | Response:
    """The ticket and the signed-in key it is shown to; or the sign-in form (coming back to the ticket's page), or
    the page saying the request is not there or not theirs."""
    if refused := await PAGE.refusal(request, back_to=f"/tickets/{ticket_id}"):
        return refused
    principal = await request.app.state.principal(request)
    try:
        return await front.visible_ticket(ticket_id, principal), principal
    except TicketNotFound:
        return _page("Request not found", f"We know no request {ticket_id}.", 404)
    except Forbidden:
        return _page("Not your request", "This request is not one your key may see.", 403)


async def _act(request: Request, front: TicketFront, ticket_id: str, command_of: _CommandOf) -> Response:
    """The form's command carried out for the signed-in requester, then back to the page; or the page saying why
    not. Another site's page cannot send it: the cookie's key is refused for it (runtime/auth.identify)."""
    shown = await _shown(request, front, ticket_id)
    if isinstance(shown, Response):
        return shown
    ticket, principal = shown
    if not (_is_requester(ticket, principal) or _is_desk(principal)):
        notice = "Only the person who asked, and the people of the desk, act here."
        return HTMLResponse(_page_of(front, ticket, principal, notice=notice), 403)
    form = await _form_fields(request)
    key = form.get("request_key", "")[:200] or None
    try:
        await front.execute(command_of(ticket, principal, form, key), principal, key)
    except ValidationError as invalid:
        page = _page_of(front, ticket, principal, notice=_notice(invalid), words=form.get("words", ""))
        return HTMLResponse(page, 422)
    except DomainError as refusal:
        page = _page_of(front, ticket, principal, notice=f"{refusal}.", words=form.get("words", ""))
        return HTMLResponse(page, STATUS_OF[type(refusal)])
    return RedirectResponse(f"/tickets/{ticket.ticket_id}", status_code=303)


async def _form_fields(request: Request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()}


def _notice(invalid: ValidationError) -> str:
    """The first field refused, in the form's words."""
    problem = invalid.errors()[0]
    return f"{_FIELD_NAMES.get(str(problem['loc'][-1]), 'That')}: {problem['msg']}."


_CommandOf = Callable[[Ticket, Principal, dict[str, str], str | None], Command]
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
}


def _is_requester(ticket: Ticket, principal: Principal) -> bool:
    """The forms are the requester's: staff act through their own tools, which see what the page leaves out."""
    return principal.role is Role.REQUESTER and principal.requester_id == ticket.requester_id


def _is_desk(principal: Principal) -> bool:
    """The people of the desk work the ticket on its page (where the links in their mails point): they read the
    internal notes too, reply or write a note, and move its status."""
    return principal.role in DESK_PEOPLE


def _page_of(
    front: TicketFront, ticket: Ticket, principal: Principal, *, notice: str | None = None, words: str = ""
) -> str:
    """The page, with the articles that may solve the problem while it is open, for its requester."""
    helpful = _is_requester(ticket, principal) and ticket.status not in _DONE
    articles = (
        [(hit, front.library.current_body(hit.article_id)) for hit in front.articles_for(ticket)] if helpful else []
    )
    assignee = front.desk.assignee_of(ticket.ticket_id)
    return render(ticket, principal, articles=articles, assignee=assignee, notice=notice, words=words)


def render(
    ticket: Ticket,
    principal: Principal,
    *,
    articles: Sequence[tuple[Hit, str]] = (),
    assignee: str | None = None,
    notice: str | None = None,
    words: str = "",
) -> str:
    """The page of `ticket` for `principal`: with the requester's forms if it is theirs, each of `articles` (a
    search hit and its body) with a button to say it solved the problem; for the desk, who wrote what, the internal
    notes, the ticket's details and the desk's forms. `notice` says why what was sent was refused, and `words`
    written are kept in the answer's box."""
    desk = _is_desk(principal)
    entries = [
        _INTERNAL[entry.internal]
        + f"<time>{entry.at:%-d %b %Y, %H:%M} UTC</time>{escape(entry.text)}"
        + (f"<blockquote>{escape(entry.words)}</blockquote>" if entry.words is not None else "")
        + "</li>"
        for entry in (desk_timeline if desk else timeline)(ticket.history)
    ]
    if desk:
        actions = _desk_forms(ticket, words)
    elif _is_requester(ticket, principal):
        actions = _forms(ticket, words) + _self_help(ticket, articles)
    else:
        actions = ""
    return _HTML.format(
        title=escape(ticket.title),
        notice=f'<p id="notice" role="alert">{escape(notice)}</p>' if notice else "",
        status=escape(_details(ticket, assignee) if desk else STATUS_LINES[ticket.status]),
        actions=actions,
        listed="timeline",
        entries="".join(entries),
        reference=f'<p class="reference">Request {escape(ticket.ticket_id)}</p>',
    )


def _details(ticket: Ticket, assignee: str | None) -> str:
    """Where the ticket stands, for the desk (the requester reads a sentence addressed to them)."""
    return (
        f"{ticket.status.value.replace('_', ' ')}, priority {ticket.priority.value}, category {ticket.category}; "
        f"requested by {ticket.requester_id} of {ticket.client_id}; "
        + (f"assigned to {assignee}" if assignee else "assigned to no one yet")
        + f"; {ticket.worklog_minutes} minutes logged"
    )


def _desk_forms(ticket: Ticket, words: str) -> str:
    """Reply to the requester or write an internal note, and move the ticket to a status it may take."""
    order = list(TicketStatus)
    moves = "".join(
        f'<option value="{status.value}">{status.value.replace("_", " ")}</option>'
        for status in sorted(TRANSITIONS[ticket.status], key=order.index)
    )
    status = _form(ticket, "status", '<label for="to">Move it to</label> '
                   f'<select id="to" name="status">{moves}</select> <button>Change the status</button>')  # fmt: skip
    if ticket.status is TicketStatus.CLOSED:
        return status
    time = _form(ticket, "worklog", '<label for="minutes">Log time: minutes</label> <input id="minutes" '
                 'name="minutes" type="number" min="1" max="1440" required> <label><input type="checkbox" '
                 'name="billable" value="yes" checked> billable</label> <label for="worklog-note">note</label> '
                 '<input id="worklog-note" name="note" maxlength="2000"> <button>Log it</button>')  # fmt: skip
    note = _form(ticket, "reply", '<label for="words">Reply to the requester, or write an internal note</label>'
                 f'<textarea id="words" name="words" required maxlength="20000">{escape(words)}</textarea>'
                 '<label><input type="checkbox" id="internal" name="internal" value="yes"> An internal note (the '
                 "requester does not see it)</label> <button>Send</button>")  # fmt: skip
    return note + status + time


def _forms(ticket: Ticket, words: str) -> str:
    """What the requester may do now: answer while it is not closed, say whether a resolution solved it, reopen
    it once closed, and rate the help once, when it is resolved or closed."""
    forms = []
    done = ticket.status in _DONE
    if ticket.status is TicketStatus.RESOLVED:
        forms.append(_form(ticket, "status", '<p>Is it solved?</p><button name="status" value="closed">Yes, it is '
                           'solved</button> <button name="status" value="open">No, reopen it</button>'))  # fmt: skip
    elif ticket.status is TicketStatus.CLOSED:
        forms.append(_form(ticket, "status", '<button name="status" value="open">Reopen it</button>'))
    if done and ticket.csat is None:
        stars = " ".join(
            f'<label><input type="radio" name="rating" value="{n}" required> {n}</label>' for n in range(1, 6)
        )
        forms.append(_form(ticket, "rating", f'<fieldset><legend>How was our help? (5 is best)</legend>{stars}'
                           '</fieldset><label for="comment">Anything to add? (optional)</label>'
                           '<textarea id="comment" name="comment" maxlength="2000"></textarea>'
                           "<button>Rate our help</button>"))  # fmt: skip
    if ticket.status is not TicketStatus.CLOSED:
        forms.append(_form(ticket, "reply", '<label for="words">Your answer</label><textarea id="words" name="words" '
                           f'required maxlength="20000">{escape(words)}</textarea><button>Send</button>'))  # fmt: skip
    return "".join(forms)


def _self_help(ticket: Ticket, articles: Sequence[tuple[Hit, str]]) -> str:
    """The help articles that may solve the problem, each to read and, if it did, to say so: the request is then
    resolved as self-service."""
    if not articles:
        return ""
    shown = [
        f'<details><summary>{escape(hit.title)}</summary><div class="article">{escape(body)}</div>'
        + _form(
            ticket,
            "self-solved",
            f'<input type="hidden" name="article_id" value="{escape(hit.article_id)}">'
            "<button>This solved my problem</button>",
            name=f"solved-by-{hit.article_id}",
        )
        + "</details>"
        for hit, body in articles
    ]
    return f'<section id="self-help"><h2>These articles may help</h2>{"".join(shown)}</section>'


def _form(ticket: Ticket, action: str, fields: str, name: str | None = None) -> str:
    key = f'<input type="hidden" name="request_key" value="page-{uuid.uuid4().hex}">'
    target = f"/tickets/{quote(ticket.ticket_id)}/{action}"
    return f'<form id="{escape(name or action)}-form" method="post" action="{escape(target)}">{key}{fields}</form>'


def _page(title: str, message: str, status_code: int) -> HTMLResponse:
    page = _HTML.format(
        title=escape(title), notice="", status=escape(message), actions="", listed="timeline", entries="", reference=""
    )
    return HTMLResponse(page, status_code)
