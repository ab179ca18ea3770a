"""The page a requester follows a request on, where the links in notify's mails point (PORTAL_URL is intake's address
unless an organisation puts a portal of its own there): the request, what happened in plain words (timeline.py),
and the answers it was given. Like every page, it needs a key: a browser signs in (runtime/sign_in.py) and is sent
back to the request it asked for. A key sees the requests it may see through the API, no others.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.refusals import Forbidden
from ticketstream_shared.runtime.sign_in import SignedInPage

from .api import Front
from .domain import Ticket, TicketNotFound
from .timeline import STATUS_LINES, timeline

PAGE = SignedInPage(
    "/tickets",
    tuple(Role),
    asked="Sign in with your API key to follow your request.",
    refused="That key is not one we know.",
)

_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:40rem;padding:0 1rem;color:#1f2328}}
ol{{list-style:none;padding:0}}li{{margin:0 0 1rem}}time{{display:block;color:#59636e;font-size:.9rem}}
blockquote{{margin:.4rem 0 0;padding:.5rem .8rem;background:#f4f5f7;border-left:3px solid #8c959f;white-space:pre-wrap}}
.reference{{color:#59636e;font-size:.9rem}}</style></head>
<body><h1>{title}</h1><p id="status">{status}</p><ol id="timeline">{entries}</ol>{reference}</body></html>"""

router = APIRouter(include_in_schema=False)


@router.get("/tickets/{ticket_id}")
async def ticket_page(ticket_id: str, request: Request, front: Front) -> Response:
    if refused := await PAGE.refusal(request):
        return refused
    try:
        ticket = await front.visible_ticket(ticket_id, await request.app.state.principal(request))
    except TicketNotFound:
        return _page("Request not found", f"We know no request {ticket_id}.", 404)
    except Forbidden:
        return _page("Not your request", "This request is not one your key may see.", 403)
    return HTMLResponse(render(ticket))


@router.post("/tickets/session")
async def open_session(request: Request) -> Response:
    return await PAGE.open_session(request)


def render(ticket: Ticket) -> str:
    entries = [
        f"<li><time>{entry.at:%-d %b %Y, %H:%M} UTC</time>{escape(entry.text)}"
        + (f"<blockquote>{escape(entry.words)}</blockquote>" if entry.words is not None else "")
        + "</li>"
        for entry in timeline(ticket.history)
    ]
    return _HTML.format(
        title=escape(ticket.title),
        status=escape(STATUS_LINES[ticket.status]),
        entries="".join(entries),
        reference=f'<p class="reference">Request {escape(ticket.ticket_id)}</p>',
    )


def _page(title: str, message: str, status_code: int) -> HTMLResponse:
    page = _HTML.format(title=escape(title), status=escape(message), entries="", reference="")
    return HTMLResponse(page, status_code)
