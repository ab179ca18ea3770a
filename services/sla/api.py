"""The sla HTTP routes: calendars, policies and client agreements (every PUT that changes something a new version on
sla.config, effective from `effective_at`, nothing overwritten; one that changes nothing answers with the version
in force and `Idempotent-Replayed: true`), each ticket's clocks as people read them, and the what-if (a past period
replayed under a candidate policy or calendar, beside what happened; see whatif.py).

(No postponed annotations in this module: FastAPI must see the `Caller` dependency, which is made per app.)
"""

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import Identifier, UtcDatetime
from ticketstream_shared.contract.sla import (
    CalendarChanged,
    CalendarData,
    ClientAgreementChanged,
    ClientAgreementData,
    PolicyChanged,
    PolicyData,
    SlaConfigEvent,
)
from ticketstream_shared.contract.topics import TICKET_PARTITIONS
from ticketstream_shared.runtime.auth import Principal, require_client, require_role
from ticketstream_shared.runtime.config_log import ConfigLog
from ticketstream_shared.runtime.directory import ReplicaDirectory
from ticketstream_shared.runtime.ids import IdSpace
from ticketstream_shared.runtime.kafka import partition_of
from ticketstream_shared.runtime.logging import correlation_id

from .agreements import Agreements, History, UnknownCalendar
from .clock_store import ClockStore
from .clocks import TicketClocks
from .config_log import config_key
from .history import TicketHistory
from .snapshots import UnreadableSnapshot
from .timekeeper import Timekeeper
from .views import ticket_view, what_if_view
from .whatif import Candidate, Replay, in_force

#: How far in the past an effective time may lie (clock skew between caller and service); older is a rewrite.
CLOCK_SKEW = timedelta(minutes=5)
READERS = (Role.ADMIN, Role.MANAGER)
#: Marks a request passed on to the replica holding the ticket, which answers it rather than passing it on again.
FORWARDED_BY = "X-Forwarded-By-Replica"
FORWARD_TIMEOUT_S = 5.0
#: The longest period a what-if replays: a quarter, so one request cannot hold a worker for long.
LONGEST_WHAT_IF = timedelta(days=93)
#: uuid5 namespace of configuration changes (see `change_id`).
CONFIG_CHANGE_IDS = IdSpace(uuid.UUID("9d3c2f6e-41b7-4c58-a0e2-6f1b8d7c5e30"))
REPLAYED = {"Idempotent-Replayed": "true"}


class _Effective(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effective_at: UtcDatetime | None = None


class CalendarBody(CalendarData, _Effective):
    pass


class PolicyBody(PolicyData, _Effective):
    pass


class ClientAgreementBody(ClientAgreementData, _Effective):
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


class Unprocessable(Exception):
    """A well-formed body that cannot be accepted (a calendar that does not exist, a change dated in the past)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


async def _unprocessable_answer(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Unprocessable)
    errors = [{"field": error.field, "message": error.message}]
    return JSONResponse(status_code=422, content={"detail": "invalid request", "errors": errors})


@dataclass(frozen=True)
class _Configurable:
    """One kind of configuration: what its PUT records and where its GET looks."""

    label: str
    change: type[SlaConfigEvent]
    data: type[BaseModel]
    #: The change's field naming the subject (calendar_id, policy_id, client_id).
    subject_field: str
    histories: Callable[[Agreements], dict[str, History[Any]]]


CALENDARS = _Configurable("calendar", CalendarChanged, CalendarData, "calendar_id", lambda a: a.calendars)
POLICIES = _Configurable("policy", PolicyChanged, PolicyData, "policy_id", lambda a: a.policies)
CLIENTS = _Configurable(
    "client agreement", ClientAgreementChanged, ClientAgreementData, "client_id", lambda a: a.clients
)


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


def change_id(
    kind: _Configurable, subject: str, history: History[Any] | None, data: BaseModel, effective_at: datetime | None
) -> uuid.UUID:
    """A change's event id from what it changes: the subject, how many versions it was judged against, when it
    takes effect as asked ("now" when not given, so a retry a moment later is the same change) and its content.
    Two identical PUTs judged against the same versions (two replicas at once, a retry after a timeout) get one id,
    and readers of sla.config fold it once; the same body again after another change is judged against more
    versions, so it is a change of its own."""
    basis = len(history.versions) if history else 0
    when = effective_at.isoformat() if effective_at else "now"
    content = hashlib.sha256(json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    return CONFIG_CHANGE_IDS(f"{kind.change.model_fields['event_type'].default}/{subject}/{basis}/{when}/{content}")


def _history_view(kind: str, subject: str, history: History[Any] | None, now: datetime) -> dict[str, Any]:
    if history is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {kind} {subject}")
    current = history.at(now)
    return {
        "id": subject,
        "current_version": current.number if current else None,
        "current": current.value.model_dump(mode="json") if current else None,
        "versions": [
            {
                "version": version.number,
                "effective_at": version.effective_at.isoformat(),
                "recorded_at": version.recorded_at.isoformat(),
                "changed_by": version.changed_by,
                **version.value.model_dump(mode="json"),
            }
            for version in history.versions
        ],
    }


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
    agreements = timekeeper.agreements

    def effective(body: _Effective, now: datetime) -> datetime:
        if body.effective_at is None:
            return now
        if body.effective_at < now - CLOCK_SKEW:
            raise Unprocessable("effective_at", "lies in the past: a change takes effect from now on, never before")
        return body.effective_at

    #: Judging a PUT and appending it happen in turn on this worker, so a retry racing with the request it repeats
    #: finds it in force (configuration changes are rare: one at a time costs nothing).
    one_change_at_a_time = asyncio.Lock()

    async def change(kind: _Configurable, subject: str, body: _Effective, principal: Principal) -> JSONResponse:
        """A PUT: the body becomes the subject's next version on sla.config, answered once this worker has it. A
        PUT that would change nothing (`History.in_force_from`) appends nothing and answers with the version in
        force; that comes before the check of a past `effective_at`, since it rewrites nothing, so a retry whose
        effective time has meanwhile slipped into the past is answered as its first try was."""
        require_role(principal, Role.ADMIN)
        if not config_log.caught_up.is_set():
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "sla is still reading its configuration")
        data = kind.data.model_validate(body.model_dump(exclude={"effective_at"}))
        async with one_change_at_a_time:
            now = clock()
            history = kind.histories(agreements).get(subject)
            if history is not None and history.in_force_from(body.effective_at or now, data) is not None:
                return JSONResponse(versions(kind, subject), headers=REPLAYED)
            at = effective(body, now)
            require_known_calendar(getattr(body, "calendar_id", None), at)  # policies and agreements may name one
            change = kind.change(
                event_id=change_id(kind, subject, history, data, body.effective_at),
                occurred_at=now,
                effective_at=at,
                producer="sla",
                correlation_id=correlation_id.get() or str(uuid.uuid4()),
                changed_by=principal.name,
                data=data,
                **{kind.subject_field: subject},
            )
            recorded = await config_log.append(change, config_key(change))
            return JSONResponse(versions(kind, subject), headers=None if recorded else REPLAYED)

    def versions(kind: _Configurable, subject: str) -> dict[str, Any]:
        return _history_view(kind.label, subject, kind.histories(agreements).get(subject), clock())

    def require_known_calendar(
        calendar_id: str | None, at: datetime, among: Agreements = agreements, field: str = "calendar_id"
    ) -> None:
        """A policy or agreement may only name a calendar in force at its effective time (422 otherwise)."""
        try:
            among.check_calendar(calendar_id, at)
        except UnknownCalendar as error:
            raise Unprocessable(field, str(error)) from None

    @router.put("/calendars/{calendar_id}")
    async def put_calendar(calendar_id: Identifier, body: CalendarBody, principal: Caller) -> JSONResponse:
        return await change(CALENDARS, calendar_id, body, principal)

    @router.get("/calendars/{calendar_id}")
    async def get_calendar(calendar_id: Identifier, principal: Caller) -> dict[str, Any]:
        require_role(principal, *READERS)
        return versions(CALENDARS, calendar_id)

    @router.put("/policies/{policy_id}")
    async def put_policy(policy_id: Identifier, body: PolicyBody, principal: Caller) -> JSONResponse:
        return await change(POLICIES, policy_id, body, principal)

    @router.get("/policies/{policy_id}")
    async def get_policy(policy_id: Identifier, principal: Caller) -> dict[str, Any]:
        require_role(principal, *READERS)
        return versions(POLICIES, policy_id)

    @router.put("/clients/{client_id}")
    async def put_client(client_id: Identifier, body: ClientAgreementBody, principal: Caller) -> JSONResponse:
        return await change(CLIENTS, client_id, body, principal)

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
        candidate = in_force(agreements, body.candidate.candidate())
        if body.candidate.policy is not None:
            require_known_calendar(
                body.candidate.policy.calendar_id, body.opened_from, candidate, "candidate.policy.calendar_id"
            )
        replay = Replay(body.opened_from, min(body.to, now), in_force(agreements), candidate)
        await ticket_history.replay(replay, admits=lambda event: principal.may_see_client(event.client_id))
        return what_if_view(await asyncio.to_thread(replay.comparison))

    app.include_router(router)
    app.add_exception_handler(Unprocessable, _unprocessable_answer)
