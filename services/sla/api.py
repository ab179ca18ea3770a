"""The sla HTTP routes: calendars, policies and client agreements (every PUT that changes something a new version on
sla.config, effective from `effective_at`, nothing overwritten; one that changes nothing answers with the version
in force and `Idempotent-Replayed: true`), each ticket's clocks as people read them, and the what-if (a past period
replayed under a candidate policy or calendar, beside what happened; see whatif.py). Each checks the caller's role,
hands the request to the desk (desk.py) and shapes the answer.

(No postponed annotations in this module: FastAPI must see the dependencies.)
"""

from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import Identifier, UtcDatetime
from ticketstream_shared.contract.sla import SERVICE_PREFIX, CalendarData, ClientAgreementData, PolicyData
from ticketstream_shared.runtime.auth import require_client, require_role, require_unscoped
from ticketstream_shared.runtime.http import REPLAYED, Caller, from_app_state
from ticketstream_shared.runtime.refusals import InvalidField

from .configuration import CALENDARS, CLIENTS, POLICIES, Effective
from .desk import Changed, ClockDesk, HeldElsewhere
from .whatif import Candidate

READERS = (Role.ADMIN, Role.MANAGER)
#: Marks a request passed on to the replica holding the ticket, which answers it rather than passing it on again.
FORWARDED_BY = "X-Forwarded-By-Replica"
FORWARD_TIMEOUT_S = 5.0
#: The longest period a what-if replays: a quarter, so one request cannot hold a worker for long.
LONGEST_WHAT_IF = timedelta(days=93)


class CalendarBody(CalendarData, Effective):
    pass


class PolicyBody(PolicyData, Effective):
    pass


class ClientAgreementBody(ClientAgreementData, Effective):
    pass


class _Identified(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier = Field(description="The id it stands in for over the period, or a new id to add it beside them.")


class CandidateCalendar(CalendarData, _Identified):
    pass


class CandidatePolicy(PolicyData, _Identified):
    pass


class CandidateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    calendar: CandidateCalendar | None = None
    policy: CandidatePolicy | None = None

    @model_validator(mode="after")
    def _something(self) -> "CandidateBody":
        if self.calendar is None and self.policy is None:
            raise ValueError("give a candidate policy, a candidate calendar, or both")
        return self

    def candidate(self) -> Candidate:
        return Candidate(
            calendars={self.calendar.id: self.calendar} if self.calendar else {},
            policies={self.policy.id: self.policy} if self.policy else {},
        )


class WhatIfBody(BaseModel):
    """Tickets opened from `from` (inclusive) to `to` (exclusive), replayed under the candidate."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    opened_from: UtcDatetime = Field(alias="from")
    to: UtcDatetime
    candidate: CandidateBody

    @field_validator("to")
    @classmethod
    def _bounded(cls, to: datetime, info: ValidationInfo) -> datetime:
        opened_from = info.data.get("opened_from")
        if opened_from is not None and to <= opened_from:
            raise ValueError("must be after from")
        if opened_from is not None and to - opened_from > LONGEST_WHAT_IF:
            raise ValueError(f"the period may be {LONGEST_WHAT_IF.days} days at most")
        return to


async def _ask_holder(holder: str, request: Request) -> JSONResponse:
    """The answer of the replica holding the ticket's partition, as it gave it (it checks the key itself)."""
    headers = {"Authorization": request.headers.get("Authorization", ""), FORWARDED_BY: "sla"}
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as client:
            answer = await client.get(f"{holder}{request.url.path}", headers=headers)
    except httpx.HTTPError as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"the replica holding this ticket did not answer ({error})"
        ) from None
    try:
        return JSONResponse(answer.json(), status_code=answer.status_code)
    except ValueError:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the replica holding this ticket did not answer"
        ) from None


Desk = Annotated[ClockDesk, Depends(from_app_state("sla_desk"))]
router = APIRouter(prefix="/v1/sla", tags=["sla"])


def changed_response(changed: Changed) -> JSONResponse:
    """A configuration PUT's answer: the subject's versions, marked replayed when it recorded none."""
    return JSONResponse(changed.view, headers=None if changed.recorded else REPLAYED)


@router.put("/calendars/{calendar_id}")
async def put_calendar(calendar_id: Identifier, body: CalendarBody, principal: Caller, desk: Desk) -> JSONResponse:
    require_role(principal, *CALENDARS.writers)
    require_unscoped(principal, "a calendar")
    return changed_response(await desk.change(CALENDARS, calendar_id, body, principal))


@router.get("/calendars/{calendar_id}")
async def get_calendar(calendar_id: Identifier, principal: Caller, desk: Desk) -> dict[str, Any]:
    require_role(principal, *READERS)
    return desk.versions(CALENDARS, calendar_id)


@router.put("/policies/{policy_id}")
async def put_policy(policy_id: Identifier, body: PolicyBody, principal: Caller, desk: Desk) -> JSONResponse:
    if policy_id.startswith(SERVICE_PREFIX):
        raise InvalidField("policy_id", f"ids beginning with {SERVICE_PREFIX!r} name the catalogue's services")
    require_role(principal, *POLICIES.writers)
    require_unscoped(principal, "a policy")
    return changed_response(await desk.change(POLICIES, policy_id, body, principal))


@router.get("/policies/{policy_id}")
async def get_policy(policy_id: Identifier, principal: Caller, desk: Desk) -> dict[str, Any]:
    require_role(principal, *READERS)
    return desk.versions(POLICIES, policy_id)


@router.put("/clients/{client_id}")
async def put_client(client_id: Identifier, body: ClientAgreementBody, principal: Caller, desk: Desk) -> JSONResponse:
    require_role(principal, *CLIENTS.writers)
    require_client(principal, client_id)
    return changed_response(await desk.change(CLIENTS, client_id, body, principal))


@router.get("/clients/{client_id}")
async def get_client(client_id: Identifier, principal: Caller, desk: Desk) -> dict[str, Any]:
    require_role(principal, *READERS)
    require_client(principal, client_id)
    return desk.versions(CLIENTS, client_id)


@router.get("/tickets/{ticket_id}")
async def get_ticket(ticket_id: Identifier, principal: Caller, request: Request, desk: Desk) -> Any:
    found = desk.clocks_of(ticket_id, principal, forwarded=FORWARDED_BY in request.headers)
    if isinstance(found, HeldElsewhere):
        return await _ask_holder(found.holder, request)
    return found


@router.post("/what-if")
async def what_if(body: WhatIfBody, principal: Caller, desk: Desk) -> dict[str, Any]:
    """Compliance of the tickets opened in the period as it was and as it would have been under the candidate,
    and the clocks whose verdict changes. Emits and records nothing. A key scoped to a client sees its own."""
    require_role(principal, *READERS)
    return await desk.what_if(body.opened_from, body.to, body.candidate.candidate(), principal)


def install(app: FastAPI, desk: ClockDesk) -> None:
    app.state.sla_desk = desk
    app.include_router(router)
