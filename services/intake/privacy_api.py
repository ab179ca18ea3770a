"""People's rights over their data, over HTTP (served by intake, which seals people's words on the way to the log):
an admin exports what intake holds about a person, or erases the person by shredding their data keys, after which
every copy of every event shows "[erased]" for what they wrote, while ids, times, minutes and statuses stay as they
were; each erasure is recorded on privacy.erasures, without the words. (No postponed annotations in this module:
FastAPI must see the dependencies.)"""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ticketstream_shared.contract import CommentAdded, Role
from ticketstream_shared.contract.erasures import SubjectErased
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.contract.topics import PRIVACY_ERASURES
from ticketstream_shared.privacy import KeyNotYetRead
from ticketstream_shared.runtime.auth import Principal, require_role
from ticketstream_shared.runtime.data_keys import DataKeys
from ticketstream_shared.runtime.http import Caller, from_app_state
from ticketstream_shared.runtime.logging import correlation_id
from ticketstream_shared.runtime.refusals import Conflict, Forbidden, Unavailable

from .api import comment_view, ticket_view, worklog_view
from .desk import Desk
from .ticket_store import Filters

#: Tickets read per step of an export.
EXPORT_PAGE = 500


class Privacy:
    def __init__(self, keys: DataKeys | None, desk: Desk, clock: Callable[[], datetime]) -> None:
        """`keys`: None where no master key is configured (personal fields in plain text, no one erasable)."""
        self.keys = keys
        self.desk = desk
        self.clock = clock
        #: Attached once the broker answers.
        self.producer: AIOKafkaProducer | None = None


Office = Annotated[Privacy, Depends(from_app_state("privacy"))]
router = APIRouter(prefix="/v1/privacy", tags=["privacy"])


def _require_data_protection_officer(principal: Principal) -> None:
    """An admin key of no single client: a person is one person across clients."""
    require_role(principal, Role.ADMIN)
    if principal.client_id is not None:
        raise Forbidden("this takes an admin key of no single client")


@router.get("/subjects/{subject_id}/export")
async def export(subject_id: Identifier, principal: Caller, privacy: Office) -> JSONResponse:
    """What intake holds about the person, in JSON (data portability): every ticket they requested, with its
    comments and worklogs, and their comments and worklogs on other tickets, their words opened (or "[erased]").
    The latter are found by a scan of every event held: seconds per million events."""
    _require_data_protection_officer(principal)
    tickets, after = [], None
    while page := privacy.desk.find(Filters(requester_id=subject_id), after, EXPORT_PAGE):
        for ticket in page:
            comments = [comment_view(event) for event in ticket.history if isinstance(event, CommentAdded)]
            worklogs = [worklog_view(ticket, worklog) for worklog in ticket.worklogs.values()]
            view = ticket_view(ticket, privacy.desk.assignee_of(ticket.ticket_id))
            tickets.append({**view, "comments": comments, "worklogs": worklogs})
        after = (page[-1].created_at, page[-1].ticket_id)
    written = []
    for ticket_id in await _tickets_written_by(privacy, subject_id):
        other = privacy.desk.ledger.get(ticket_id)
        if other is None or other.requester_id == subject_id:
            continue  # exported above, whole
        comments = [
            comment_view(event)
            for event in other.history
            if isinstance(event, CommentAdded) and event.data.author_id == subject_id
        ]
        worklogs = [worklog_view(other, w) for w in other.worklogs.values() if w.technician_id == subject_id]
        written.append(
            {"ticket_id": ticket_id, "client_id": other.client_id, "comments": comments, "worklogs": worklogs}
        )
    return JSONResponse(
        {
            "subject_id": subject_id,
            "exported_at": privacy.clock().isoformat(),
            "tickets_requested": tickets,
            "written_on_other_tickets": written,
        }
    )


async def _tickets_written_by(privacy: Privacy, person: str) -> list[str]:
    """Every ticket the person wrote on, by a scan of every event held, letting requests run between its steps."""
    found = []
    for step in privacy.desk.ledger.tickets.written_by(person):
        found.extend(step)
        await asyncio.sleep(0)
    return found


@router.post("/subjects/{subject_id}/erase")
async def erase(subject_id: Identifier, principal: Caller, privacy: Office) -> JSONResponse:
    """Shred every data key of the person: what they wrote reads "[erased]" from now on, in every API, and no copy
    of any event opens it again. Hours, SLA figures and counts are unchanged. The erasure is recorded on
    privacy.erasures (who, when, how much; none of the words) and answered with that record."""
    _require_data_protection_officer(principal)
    if privacy.keys is None:
        raise Conflict("personal fields are not sealed here, so no one can be erased: set PRIVACY_MASTER_KEY_FILE")
    if privacy.producer is None:
        raise Unavailable("intake is still connecting to Kafka; retry shortly")
    try:
        shredded = await privacy.keys.erase(subject_id)
    except KeyNotYetRead:
        raise Unavailable("privacy.keys does not answer; retry shortly", retry_after_s=1) from None
    erased = SubjectErased(
        event_id=uuid.uuid4(),
        occurred_at=privacy.clock(),
        producer="intake",
        correlation_id=correlation_id.get() or str(uuid.uuid4()),
        subject_id=subject_id,
        keys_shredded=shredded,
        tickets_requested=privacy.desk.ledger.tickets.requested_by(subject_id),
        actor=principal.actor,
    )
    await privacy.producer.send_and_wait(PRIVACY_ERASURES, erased.model_dump_json().encode(), key=subject_id.encode())
    report: dict[str, Any] = {**erased.model_dump(mode="json"), "erased_by": principal.actor.in_words()}
    return JSONResponse(report)
