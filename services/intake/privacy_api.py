"""The right to be forgotten over HTTP (served by intake, which seals people's words on the way to the log): an
admin erases a person by shredding their data keys, after which every copy of every event shows "[erased]" for
what they wrote, while ids, times, minutes and statuses stay as they were. (No postponed annotations in this
module: FastAPI must see the dependencies.)"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.runtime.auth import require_role
from ticketstream_shared.runtime.data_keys import DataKeys
from ticketstream_shared.runtime.http import Caller

from .ticket_store import TicketStore

#: How long an erasure waits for privacy.keys to answer before it tells the admin to try again.
ERASE_TIMEOUT_S = 10.0


class Privacy:
    def __init__(self, keys: DataKeys | None, tickets: TicketStore, clock: Callable[[], datetime]) -> None:
        """`keys`: None where no master key is configured (personal fields in plain text, no one erasable)."""
        self.keys = keys
        self.tickets = tickets
        self.clock = clock


def _privacy(request: Request) -> Privacy:
    return request.app.state.privacy  # type: ignore[no-any-return]


Office = Annotated[Privacy, Depends(_privacy)]
router = APIRouter(prefix="/v1/privacy", tags=["privacy"])


@router.post("/subjects/{subject_id}/erase")
async def erase(subject_id: Identifier, principal: Caller, privacy: Office) -> JSONResponse:
    """Shred every data key of the person: what they wrote reads "[erased]" from now on, in every API, and no copy
    of any event opens it again. Hours, SLA figures and counts are unchanged. Admin keys of no single client only:
    a person is one person across clients."""
    require_role(principal, Role.ADMIN)
    if principal.client_id is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "erasing a person takes an admin key of no single client")
    if privacy.keys is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "personal fields are not sealed here, so no one can be erased: set PRIVACY_MASTER_KEY_FILE",
        )
    if not await privacy.keys.log.read_to_end(ERASE_TIMEOUT_S):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "privacy.keys does not answer; retry shortly")
    shredded = await privacy.keys.erase(subject_id)
    report: dict[str, Any] = {
        "subject_id": subject_id,
        "erased_at": privacy.clock().isoformat(),
        "keys_shredded": len(shredded),
        "tickets_requested": privacy.tickets.requested_by(subject_id),
        "erased_by": principal.actor.in_words(),
    }
    return JSONResponse(report)
