"""Assignment's HTTP routes: check the caller, turn the request into a team-log record, append it, answer.

A write answers 200 with the new state once this process has read its record back from the team log (so a GET
right after sees it), or 202 if that takes longer than WRITE_VISIBLE_S. A roster change (technician, shift,
routing rule, team strategy) that would change nothing appends nothing and answers 200 with the state as it is and
`Idempotent-Replayed: true`. Reads come from the desk.
(No postponed annotations in this module: FastAPI must see the `Caller` dependency, which is made per app.)
"""

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.assignment import (
    CategoryRouted,
    CategoryRoutedData,
    ShiftChanged,
    ShiftChangedData,
    Strategy,
    TeamLogEvent,
    TeamStrategyChosen,
    TeamStrategyChosenData,
    TechnicianProfiled,
    TechnicianProfileData,
    TechnicianTransferred,
    TechnicianTransferredData,
)
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.contract.personal import PLAIN_ONLY
from ticketstream_shared.privacy import KeyNotYetRead
from ticketstream_shared.runtime.auth import Principal, require_role
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData, opened_json
from ticketstream_shared.runtime.http import REPLAYED
from ticketstream_shared.runtime.ids import IdSpace, change_id
from ticketstream_shared.runtime.logging import correlation_id

from .desk import CategoryRule, Desk
from .domain import Team, Technician
from .records import PRODUCER, ManualAssignmentData, ManualAssignmentRequested
from .teamlog import TeamLog

ROSTER_WRITERS = (Role.ADMIN, Role.MANAGER)
ASSIGNERS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)
READERS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN, Role.INTEGRATION)
WRITE_VISIBLE_S = 5.0

PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
#: uuid5 namespace of roster changes (see `roster_change_id`).
ROSTER_CHANGE_IDS = IdSpace(uuid.UUID("3f8a6d21-7c4e-4b9a-8e15-c2d0b7a9e641"))


class TechnicianBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200), PLAIN_ONLY]
    team: Identifier
    tier: int = Field(ge=1, le=3)
    skills: list[Identifier] = Field(default_factory=list, max_length=100)
    capacity: int = Field(ge=0, le=1000)


class ShiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_shift: bool


class CategoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: Identifier
    skill: Identifier | None = Field(default=None, description="The skill its tickets need; default: the category.")


class TeamBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(description="round_robin, least_loaded or skills")


class ManualBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    technician_id: Identifier


def roster_change_id(record: type[TeamLogEvent], subject: str, basis: str, data: BaseModel) -> uuid.UUID:
    """`basis`: how far the team log was read when the change was judged (a team's revision)."""
    return change_id(ROSTER_CHANGE_IDS, record, subject, basis, data)


def same_profile(technician: Technician, name: str, profile: TechnicianProfileData) -> bool:
    """Whether the profile is the technician's as it is (`name`: theirs, opened; skills are a set: their order says
    nothing)."""
    known = (name, technician.team, technician.tier, technician.skills, technician.capacity)
    return known == (profile.name, profile.team, profile.tier, frozenset(profile.skills), profile.capacity)


def technician_view(technician: Technician, team: Team) -> dict[str, Any]:
    load = team.load_of(technician.technician_id)
    return {
        "id": technician.technician_id,
        "name": technician.name,
        "team": technician.team,
        "tier": technician.tier,
        "skills": sorted(technician.skills),
        "capacity": technician.capacity,
        "on_shift": technician.on_shift,
        "open_tickets": load.open_tickets,
        "weighted_load": load.weighted,
    }


def team_view(team: Team) -> dict[str, Any]:
    return {
        "team": team.name,
        "strategy": team.strategy,
        "technicians": sorted(team.technicians),
        "open_tickets": sum(1 for ticket in team.tickets.values() if ticket.is_open),
        "unassigned": sorted(team.backlog),
    }


def install(app: FastAPI, team_log: TeamLog, clock: Callable[[], datetime], personal: PersonalData = PLAIN) -> None:
    """Add assignment's routes to `app`. `personal`: seals technicians' names for the team log, where the desk
    keeps them sealed, and opens them in every answer."""
    Caller = Annotated[Principal, Depends(app.state.principal)]
    desk: Desk = team_log.desk
    router = APIRouter(prefix="/v1", tags=["assignment"])

    #: Judging a roster change and appending it happen in turn in this process, so a retry racing with the request
    #: it repeats finds it done (roster changes are rare: one at a time costs nothing).
    one_roster_change_at_a_time = asyncio.Lock()

    def envelope(event_id: uuid.UUID | None = None, caller: Principal | None = None) -> dict[str, Any]:
        """`caller`: who changes the roster, recorded as the change's actor."""
        return {
            "event_id": event_id or uuid.uuid4(),
            "occurred_at": clock(),
            "producer": PRODUCER,
            "correlation_id": correlation_id.get() or str(uuid.uuid4()),
            **({"actor": caller.actor} if caller else {}),
        }

    def ready_desk() -> Desk:
        if not team_log.caught_up.is_set():
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "assignment is still reading its team log")
        return desk

    async def opened(view: Any) -> Any:
        """`view` with the names in it opened."""
        try:
            return await opened_json(personal, view)
        except KeyNotYetRead:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "privacy.keys is behind; try again", {"Retry-After": "1"}
            ) from None

    async def answer(view: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(await opened(view), headers=headers)

    async def unchanged(view: dict[str, Any]) -> JSONResponse:
        return await answer(view, REPLAYED)

    async def write(records: list[TeamLogEvent], view: Callable[[], dict[str, Any]]) -> JSONResponse:
        if await team_log.append(records, visible_within_s=WRITE_VISIBLE_S):
            return await answer(view())
        return JSONResponse({"status": "accepted"}, status_code=status.HTTP_202_ACCEPTED)

    def revision_of(team: str) -> str:
        """The basis of a change judged against a team's roster: its name and how many roster changes it took."""
        known = desk.teams.get(team)
        return f"{team}@{known.roster_revision if known else 0}"

    def known_technician(technician_id: str) -> Technician:
        technician = ready_desk().technician(technician_id)
        if technician is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no technician {technician_id}")
        return technician

    def current_view(technician_id: str) -> dict[str, Any]:
        technician = known_technician(technician_id)
        return technician_view(technician, desk.teams[technician.team])

    @router.put("/technicians/{technician_id}")
    async def put_technician(technician_id: PathId, body: TechnicianBody, caller: Caller) -> JSONResponse:
        require_role(caller, *ROSTER_WRITERS)
        profile = TechnicianProfileData(technician_id=technician_id, **body.model_dump())
        async with one_roster_change_at_a_time:
            before = ready_desk().technician(technician_id)
            if before is not None and same_profile(before, await opened(before.name), profile):
                return await unchanged(current_view(technician_id))
            basis = revision_of(before.team if before else body.team)
            change = roster_change_id(TechnicianProfiled, technician_id, basis, profile)
            records: list[TeamLogEvent] = []
            if before is not None and before.team != body.team:
                moved = TechnicianTransferredData(technician_id=technician_id, from_team=before.team, to_team=body.team)
                moved_id = ROSTER_CHANGE_IDS(f"{change}/moved")
                records.append(TechnicianTransferred(**envelope(moved_id, caller), data=moved))
            sealed = await personal.seal_fields(profile, technician_id)
            records.append(TechnicianProfiled(**envelope(change, caller), data=sealed))
            return await write(records, lambda: current_view(technician_id))

    @router.post("/technicians/{technician_id}/shift")
    async def change_shift(technician_id: PathId, body: ShiftBody, caller: Caller) -> JSONResponse:
        require_role(caller, *ROSTER_WRITERS)
        async with one_roster_change_at_a_time:
            technician = known_technician(technician_id)
            if technician.on_shift == body.on_shift:
                return await unchanged(current_view(technician_id))
            shift = ShiftChangedData(technician_id=technician_id, team=technician.team, on_shift=body.on_shift)
            change = roster_change_id(ShiftChanged, technician_id, revision_of(technician.team), shift)
            shifted = ShiftChanged(**envelope(change, caller), data=shift)
            return await write([shifted], lambda: current_view(technician_id))

    @router.get("/technicians/{technician_id}")
    async def get_technician(technician_id: PathId, caller: Caller) -> JSONResponse:
        require_role(caller, *READERS)
        return await answer(current_view(technician_id))

    @router.get("/roster/changes")
    async def roster_changes(
        caller: Caller,
        technician_id: Identifier | None = None,
        team: Identifier | None = None,
        category: Identifier | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> JSONResponse:
        """The audit trail of the roster and routing, newest first: who changed what, before and after."""
        require_role(caller, *ROSTER_WRITERS)
        about = ready_desk().trail.newest_first(technician_id=technician_id, team=team, category=category)
        return await answer({"changes": [entry.view() for entry in islice(about, limit)]})

    @router.get("/technicians")
    async def list_technicians(caller: Caller, team: Identifier | None = None) -> JSONResponse:
        require_role(caller, *READERS)
        teams = [ready_desk().teams[team]] if team in desk.teams else [] if team else list(desk.teams.values())
        views = [technician_view(tech, each) for each in teams for tech in each.technicians.values()]
        return await answer({"technicians": sorted(views, key=lambda view: view["id"])})

    @router.put("/routing/categories/{category}")
    async def route_category(category: PathId, body: CategoryBody, caller: Caller) -> JSONResponse:
        require_role(caller, *ROSTER_WRITERS)
        rule = CategoryRoutedData(category=category, team=body.team, skill=body.skill or category)
        async with one_roster_change_at_a_time:
            before = ready_desk().rules.get(category)
            if before == CategoryRule(rule.team, rule.skill):
                return await unchanged(category_view(category))
            # The desk keeps no revision of its rules (a plain table) and the rule replaced may come back (A, B, A,
            # B...): the moment of the request keeps each change's id its own. A twin from another process is
            # then told by its content, and folding it changes nothing (the rule is the same, nothing waits).
            basis = f"{before.team}/{before.skill}" if before else "none"
            change = roster_change_id(CategoryRouted, category, f"{basis}@{clock().isoformat()}", rule)
            return await write([CategoryRouted(**envelope(change, caller), data=rule)], lambda: category_view(category))

    def category_view(category: str) -> dict[str, Any]:
        rule = ready_desk().rules.get(category)
        if rule is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no routing rule for category {category}")
        return {"category": category, "team": rule.team, "skill": rule.skill}

    @router.get("/routing/categories/{category}")
    async def get_category(category: PathId, caller: Caller) -> JSONResponse:
        require_role(caller, *READERS)
        return JSONResponse(category_view(category))

    @router.put("/routing/teams/{team}")
    async def choose_strategy(team: PathId, body: TeamBody, caller: Caller) -> JSONResponse:
        require_role(caller, *ROSTER_WRITERS)
        ready_desk()
        if body.strategy is Strategy.MANUAL:
            errors = [{"field": "strategy", "message": "manual is not a team strategy; use POST /v1/assignments"}]
            return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)
        chosen = TeamStrategyChosenData(team=team, strategy=body.strategy)
        async with one_roster_change_at_a_time:
            known = desk.teams.get(team)
            if known is not None and known.strategy is body.strategy:
                return await unchanged(team_view(known))
            change = roster_change_id(TeamStrategyChosen, team, revision_of(team), chosen)
            return await write(
                [TeamStrategyChosen(**envelope(change, caller), data=chosen)], lambda: team_view(desk.team(team))
            )

    @router.get("/routing/teams/{team}")
    async def get_team(team: PathId, caller: Caller) -> JSONResponse:
        require_role(caller, *READERS)
        if team not in ready_desk().teams:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no team {team}")
        return JSONResponse(team_view(desk.teams[team]))

    def assignment_view(ticket_id: str) -> dict[str, Any]:
        team = ready_desk().ticket_teams.get(ticket_id)
        ticket = desk.ticket(ticket_id)
        if team is None or ticket is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"assignment knows no ticket {ticket_id}")
        return {
            "ticket_id": ticket_id,
            "team": team,
            "technician_id": ticket.assignee,
            "tier": ticket.tier,
            "status": ticket.status,
            "unassignable_reason": ticket.unassignable_reason if ticket.assignee is None else None,
        }

    @router.get("/assignments/{ticket_id}")
    async def get_assignment(ticket_id: PathId, caller: Caller) -> JSONResponse:
        require_role(caller, *READERS)
        return JSONResponse(assignment_view(ticket_id))

    @router.post("/assignments/{ticket_id}")
    async def assign_by_hand(ticket_id: PathId, body: ManualBody, caller: Caller) -> JSONResponse:
        """A manager or technician assigns a ticket of a team to a technician of the same team."""
        require_role(caller, *ASSIGNERS)
        ticket_view = assignment_view(ticket_id)
        technician = known_technician(body.technician_id)
        if technician.team != ticket_view["team"]:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"technician {technician.technician_id} is in team {technician.team}; the ticket is routed to "
                f"team {ticket_view['team']}",
            )
        if desk.ticket(ticket_id).is_open is False:  # type: ignore[union-attr]
            raise HTTPException(status.HTTP_409_CONFLICT, f"ticket {ticket_id} is {ticket_view['status']}")
        request = ManualAssignmentData(
            team=technician.team,
            ticket_id=ticket_id,
            technician_id=technician.technician_id,
            assigned_by=caller.name,
            actor=caller.actor,
        )
        return await write([ManualAssignmentRequested(**envelope(), data=request)], lambda: assignment_view(ticket_id))

    app.include_router(router)
