"""A ticket's history told to its requester: one plain sentence per thing that happened, no jargon, nothing internal
(internal comments, time entries and their corrections stay out), with the words they and the desk wrote. The desk
reads it as its audit trail tells it, with everything written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatch

from ticketstream_shared.contract import (
    Actor,
    CommentAdded,
    CsatRecorded,
    Priority,
    Role,
    TicketCreated,
    TicketEvent,
    TicketStatus,
    TicketStatusChanged,
    TicketUpdated,
    WorklogRecorded,
)
from ticketstream_shared.contract.sla import PROMISED, SlaMetric

from .audit import audit
from .domain import DONE
from .ticket_store import ClockNote

URGENCY = {Priority.P1: "critical", Priority.P2: "high", Priority.P3: "normal", Priority.P4: "low"}

STATUS_LINES = {
    TicketStatus.NEW: "We have received your request and will look into it.",
    TicketStatus.OPEN: "Your request is waiting for the next free member of our team.",
    TicketStatus.IN_PROGRESS: "A technician is working on it.",
    TicketStatus.WAITING_ON_CUSTOMER: "We are waiting for your answer.",
    TicketStatus.RESOLVED: "We believe your request is resolved. If it is not, you can reopen it.",
    TicketStatus.CLOSED: "Your request is closed.",
}
REOPENED = "Your request was reopened."
SELF_SOLVED = "You solved it with one of our help articles. If the problem comes back, you can reopen it."


def promises(clocks: Iterable[ClockNote]) -> list[str]:
    """What the desk promised the requester and has not done yet, as sla last timed it: a first answer, a reply,
    a solution, by when (nothing for what was done, or is no longer timed)."""
    lines = []
    for clock in sorted(clocks, key=lambda clock: _METRICS.index(clock.metric)):
        what, by = PROMISED[clock.metric], f"{clock.deadline:%-d %b %Y, %H:%M} UTC"
        if clock.state == "paused":
            lines.append(f"Until you answer, the time we promised for {what} stands still.")
        elif clock.state in ("running", "breached"):
            late = "; we are late and on it" if clock.late else ""
            lines.append(f"We promised {what} by {by}{late}.")
    return lines


_METRICS = [SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_REPLY, SlaMetric.RESOLUTION]


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str
    #: The words of a comment, which the reader reads as they were written.
    words: str | None = None
    #: Whether it is an internal note (only the desk's timeline has them).
    internal: bool = False


def timeline(history: Iterable[TicketEvent]) -> list[TimelineEntry]:
    return [TimelineEntry(event.occurred_at, text, _words(event)) for event in history if (text := describe(event))]


def desk_timeline(history: Sequence[TicketEvent]) -> list[TimelineEntry]:
    """The timeline for the people of the desk: who did what (the audit trail's words), with what was written (the
    request's description, every comment, a time entry's note, a rating's comment), the internal notes marked."""
    entries = []
    for event, change in zip(history, audit(history), strict=True):
        if isinstance(event, CommentAdded):
            public, author = event.data.public, event.data.author_id
            said = f"{author} replied." if public else f"Internal note by {author}."
            entries.append(TimelineEntry(event.occurred_at, said, event.data.body, internal=not public))
            continue
        if isinstance(event, TicketCreated):
            data = event.data
            said = f"{data.requester_id} asked for help ({data.channel.value}): \u201c{data.title}\u201d."
        elif isinstance(event, WorklogRecorded):
            worked = event.data
            kind = "billable" if worked.billable else "not billable"
            said = f"{worked.technician_id} logged {worked.minutes} minutes ({kind})."
        else:
            said = f"{_who(event.actor)} {change.what}."
        entries.append(TimelineEntry(event.occurred_at, said, _written(event)))
    return entries


def _who(actor: Actor | None) -> str:
    """Who made a change, as the desk calls them: the key's person (or the key, or the service deciding)."""
    if actor is None:
        return "Someone"
    if actor.role == "system":
        return f"The {actor.key_name.removeprefix('system:')} service"
    who = actor.subject or f"key {actor.key_name}"
    return f"{who} for {actor.on_behalf_of}" if actor.on_behalf_of else who


def _words(event: TicketEvent) -> str | None:
    """What the requester reads as it was written: their request, the public comments, their rating's comment."""
    if isinstance(event, CommentAdded) and not event.data.public:
        return None
    return _written(event)


def _written(event: TicketEvent) -> str | None:
    if isinstance(event, CommentAdded):
        return event.data.body
    if isinstance(event, TicketCreated):
        return event.data.description or None
    if isinstance(event, WorklogRecorded):
        return event.data.note or None
    if isinstance(event, CsatRecorded):
        return event.data.comment or None
    return None


@singledispatch
def describe(event: TicketEvent) -> str | None:
    """The sentence for `event`, or None for what the requester need not see."""
    return None


@describe.register
def _(event: TicketCreated) -> str:
    return f"We received your request \u201c{event.data.title}\u201d."


@describe.register
def _(event: TicketStatusChanged) -> str:
    reopened = event.data.from_status in DONE
    if reopened and event.data.to_status is TicketStatus.OPEN:
        return REOPENED
    if event.data.article_id is not None:
        return SELF_SOLVED
    return STATUS_LINES.get(event.data.to_status, "")


@describe.register
def _(event: CommentAdded) -> str | None:
    if not event.data.public:
        return None
    return "You replied." if event.data.author_role is Role.REQUESTER else "A technician replied."


@describe.register
def _(event: TicketUpdated) -> str | None:
    changes = event.data.changes
    if changes.priority is not None:
        return f"We changed the urgency of your request to {URGENCY[changes.priority]}."
    if changes.title is not None:
        return f"We renamed your request \u201c{changes.title}\u201d."
    return None


@describe.register
def _(event: CsatRecorded) -> str:
    return f"Thank you for rating our help: {event.data.rating} out of 5."
