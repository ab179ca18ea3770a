"""The sla HTTP routes: calendars, policies and client agreements (every PUT that changes something a new version on
sla.config, effective from `effective_at`, nothing overwritten; one that changes nothing answers with the version
in force and `Idempotent-Replayed: true`), each ticket's clocks as people read them, and the what-if (a past period
replayed under a candidate policy or calendar, beside what happened; see whatif.py).

(No postponed annotations in this module: FastAPI must see the `Caller` dependency, which is made per app.)
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import Identifier, UtcDatetime
from ticketstream_shared.contract.sla import (
    SERVICE_PREFIX,
    CalendarData,
    ClientAgreementData,
    PolicyData,
    SlaConfigEvent,
)
from ticketstream_shared.contract.topics import TICKET_PARTITIONS
from ticketstream_shared.runtime.auth import Principal, require_client, require_role
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.directory import ReplicaDirectory
from ticketstream_shared.runtime.http import REPLAYED
from ticketstream_shared.runtime.kafka import partition_of

from .clock_store import ClockStore
from .clocks import TicketClocks
from .configuration import (
    CALENDARS,
    CLIENTS,
    CLOCK_SKEW,
    POLICIES,
    Configurable,
    Configuration,
    Effective,
    NotReady,
    Unprocessable,
    history_view,
)
from .history import TicketHistory
from .snapshots import UnreadableSnapshot
from .timekeeper import Timekeeper
from .views import ticket_view, what_if_view
from .whatif import Candidate, Replay, in_force

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


async def _unprocessable_answer(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Unprocessable)
    errors = [{"field": error.field, "message": error.message}]
    return JSONResponse(status_code=422, content={"detail": "invalid request", "errors": errors})


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


async def _not_ready_answer(_: Request, error: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": "sla is still reading its configuration"})


async def answer_change(
    configuration: Configuration, kind: Configurable, subject: str, body: Effective, principal: Principal
) -> JSONResponse:
    """A PUT of the sla configuration: its versions, marked replayed when it recorded none."""
    require_role(principal, *kind.writers)
    history, recorded = await configuration.change(kind, subject, body, principal)
    view = history_view(subject, history, configuration.now())
    return JSONResponse(view, headers=None if recorded else REPLAYED)


def _settled(clocks: ClockStore, ticket_id: str) -> TicketClocks | None:
    """A ticket of a partition held here whose clocks are settled: they are in the store, not in memory."""
    try:
        return clocks.load(ticket_id)
    except UnreadableSnapshot:
        return None  # its partition is being replayed from the beginning


def install(
    app: FastAPI,
    timekeeper: Timekeeper,
    clocks: ClockStore,
    config_log: ConfigLog[SlaConfigEvent],
    clock: Callable[[], datetime],
    ticket_history: TicketHistory,
    directory: ReplicaDirectory,
) -> None:
    """Add the sla routes to `app`."""
    Caller = Annotated[Principal, Depends(app.state.principal)]
    router = APIRouter(prefix="/v1/sla", tags=["sla"])
    configuration = app.state.sla_configuration = Configuration(timekeeper.agreements, config_log, clock)

    def versions(kind: Configurable, subject: str) -> dict[str, Any]:
        if (history := configuration.history(kind, subject)) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind.label} {subject}")
        return history_view(subject, history, clock())

    @router.put("/calendars/{calendar_id}")
    async def put_calendar(calendar_id: Identifier, body: CalendarBody, principal: Caller) -> JSONResponse:
        return await answer_change(configuration, CALENDARS, calendar_id, body, principal)

    @router.get("/calendars/{calendar_id}")
    async def get_calendar(calendar_id: Identifier, principal: Caller) -> dict[str, Any]:
        require_role(principal, *READERS)
        return versions(CALENDARS, calendar_id)

    @router.put("/policies/{policy_id}")
    async def put_policy(policy_id: Identifier, body: PolicyBody, principal: Caller) -> JSONResponse:
        if policy_id.startswith(SERVICE_PREFIX):
            raise Unprocessable("policy_id", f"ids beginning with {SERVICE_PREFIX!r} name the catalogue's services")
        return await answer_change(configuration, POLICIES, policy_id, body, principal)

    @router.get("/policies/{policy_id}")
    async def get_policy(policy_id: Identifier, principal: Caller) -> dict[str, Any]:
        require_role(principal, *READERS)
        return versions(POLICIES, policy_id)

    @router.put("/clients/{client_id}")
    async def put_client(client_id: Identifier, body: ClientAgreementBody, principal: Caller) -> JSONResponse:
        return await answer_change(configuration, CLIENTS, client_id, body, principal)

    @router.get("/clients/{client_id}")
    async def get_client(client_id: Identifier, principal: Caller) -> dict[str, Any]:
        require_role(principal, *READERS)
        require_client(principal, client_id)
        return versions(CLIENTS, client_id)

    @router.get("/tickets/{ticket_id}")
    async def get_ticket(ticket_id: Identifier, principal: Caller, request: Request) -> Any:
        partition = partition_of(ticket_id, TICKET_PARTITIONS)
        state = timekeeper.ticket(ticket_id)
        if state is None and directory.holds_here(partition):
            state = _settled(clocks, ticket_id)
        if state is None:
            holder = directory.holder(partition)
            if holder is not None and FORWARDED_BY not in request.headers:
                return await _ask_holder(holder, request)
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no SLA clocks for ticket {ticket_id}")
        require_client(principal, state.client_id)
        if principal.role is Role.REQUESTER and principal.requester_id not in (None, state.requester_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "requesters see only their own tickets")
        return ticket_view(state, clock())

    @router.post("/what-if")
    async def what_if(body: WhatIfBody, principal: Caller) -> dict[str, Any]:
        """Compliance of the tickets opened in the period as it was and as it would have been under the candidate,
        and the clocks whose verdict changes. Emits and records nothing. A key scoped to a client sees its own."""
        require_role(principal, *READERS)
        now = clock()
        if body.to > now + CLOCK_SKEW:
            raise Unprocessable("to", "lies in the future: a what-if replays what has happened")
        if not config_log.caught_up.is_set():
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "sla is still reading its configuration")
        agreements = configuration.agreements
        candidate = in_force(agreements, body.candidate.candidate())
        if body.candidate.policy is not None:
            configuration.require_known_calendar(
                body.candidate.policy.calendar_id, body.opened_from, candidate, "candidate.policy.calendar_id"
            )
        replay = Replay(body.opened_from, min(body.to, now), in_force(agreements), candidate)
        await ticket_history.replay(replay, admits=lambda event: principal.may_see_client(event.client_id))
        return what_if_view(await asyncio.to_thread(replay.comparison))

    app.include_router(router)
    app.add_exception_handler(Unprocessable, _unprocessable_answer)
    app.add_exception_handler(NotReady, _not_ready_answer)
