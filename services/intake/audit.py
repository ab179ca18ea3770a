"""A ticket's audit trail for staff: every change, who made it (from their key, never from what they wrote) and
what it was before and after, in plain words. Read from the ticket's own events, so it is as complete as the log.

A dispute over billed hours or a missed promise is settled here: each time entry shows who logged, corrected or
voided it, with which key, and for whom.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatch
from typing import Any

from pydantic_core import to_jsonable_python

from ticketstream_shared.audit import by
from ticketstream_shared.contract import (
    Actor,
    CommentAdded,
    CsatRecorded,
    TicketCreated,
    TicketEvent,
    TicketStatusChanged,
    TicketUpdated,
    WorklogCorrected,
    WorklogRecorded,
    WorklogVoided,
)
from ticketstream_shared.contract.events import WorklogCorrectedData, WorklogRecordedData

from .domain import Ticket, Worklog, evolve

#: What a time entry's before and after show.
WORKLOG_FIELDS = ("technician_id", "minutes", "billable", "note", "performed_at")


@dataclass(frozen=True)
class Change:
    version: int
    at: datetime
    event_type: str
    actor: Actor | None
    what: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def view(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "at": self.at.isoformat(),
            "event_type": self.event_type,
            "by": by(self.actor),
            "actor": None if self.actor is None else self.actor.model_dump(mode="json"),
            "what": self.what,
            "before": self.before,
            "after": self.after,
        }


def audit(history: Iterable[TicketEvent]) -> list[Change]:
    """Each event told against the ticket as it stood just before it (folded as intake folds it)."""
    ticket: Ticket | None = None
    changes = []
    for event in history:
        what, before, after = describe(event, ticket)
        changes.append(
            Change(event.aggregate_version, event.occurred_at, event.event_type, event.actor, what, before, after)
        )
        ticket = evolve(event, ticket)
    return changes


def _minutes(values: dict[str, Any]) -> str:
    return f"{values['minutes']} min{' billable' if values['billable'] else ''} by {values['technician_id']}"


def _worklog(values: WorklogRecordedData | WorklogCorrectedData | Worklog) -> dict[str, Any]:
    """A time entry's values, as an event carries them or as the ticket holds them."""
    return {name: to_jsonable_python(getattr(values, name)) for name in WORKLOG_FIELDS}


def _held(ticket: Ticket | None, worklog_id: uuid.UUID) -> dict[str, Any] | None:
    worklog = ticket.worklogs.get(worklog_id) if ticket else None
    return _worklog(worklog) if worklog else None


@singledispatch
def describe(event: TicketEvent, ticket: Ticket | None) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """(what happened, before, after) for one event; `ticket`: as it stood just before it."""
    return event.event_type, None, None


@describe.register
def _(event: TicketCreated, ticket: Ticket | None) -> tuple[str, None, dict[str, Any]]:
    data = event.data
    after = data.model_dump(mode="json", include={"requester_id", "title", "category", "priority", "service_id"})
    return f"opened \u201c{data.title}\u201d for {data.requester_id}", None, after


@describe.register
def _(event: TicketUpdated, ticket: Ticket | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    after = event.data.changes.model_dump(mode="json", exclude_none=True)
    before = event.data.previous.model_dump(mode="json", exclude_none=True)
    changed = (f"the {name} from {before.get(name)} to {after[name]}" for name in sorted(after))
    return f"changed {' and '.join(changed)}", before, after


@describe.register
def _(event: TicketStatusChanged, ticket: Ticket | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    data = event.data
    what = f"moved it from {data.from_status.value} to {data.to_status.value}"
    if data.article_id is not None:
        what += f" (solved with article {data.article_id})"
    elif data.reason:
        what += f" ({data.reason})"
    return what, {"status": data.from_status.value}, {"status": data.to_status.value}


@describe.register
def _(event: CommentAdded, ticket: Ticket | None) -> tuple[str, None, dict[str, Any]]:
    data = event.data
    kind = "a reply the requester sees" if data.public else "an internal note"
    after = {"comment_id": str(data.comment_id), "author_id": data.author_id, "visibility": data.visibility.value}
    return f"wrote {kind} as {data.author_id}", None, after


@describe.register
def _(event: WorklogRecorded, ticket: Ticket | None) -> tuple[str, None, dict[str, Any]]:
    after = _worklog(event.data)
    return f"logged {_minutes(after)}", None, {"worklog_id": str(event.data.worklog_id), **after}


@describe.register
def _(event: WorklogCorrected, ticket: Ticket | None) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
    before, after = _held(ticket, event.data.worklog_id), _worklog(event.data)
    was = f"{_minutes(before)} " if before else ""
    return f"corrected a time entry: {was}now {_minutes(after)} ({event.data.reason})", before, after


@describe.register
def _(event: WorklogVoided, ticket: Ticket | None) -> tuple[str, dict[str, Any] | None, None]:
    before = _held(ticket, event.data.worklog_id)
    entry = f" of {_minutes(before)}" if before else ""
    return f"voided the time entry{entry} ({event.data.reason})", before, None


@describe.register
def _(event: CsatRecorded, ticket: Ticket | None) -> tuple[str, None, dict[str, Any]]:
    return f"rated the help {event.data.rating} out of 5", None, {"rating": event.data.rating}
