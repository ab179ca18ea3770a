"""Assignment's HTTP routes: check the caller, turn the request into a team-log record, append it, answer.

A write answers 200 with the new state once this process has read its record back from the team log (so a GET
right after sees it), or 202 if that takes longer than WRITE_VISIBLE_S. Reads come from the desk.
(No postponed annotations in this module: FastAPI must see the `Caller` dependency, which is made per app.)
"""

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, status
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
from ticketstream_shared.runtime.auth import Principal, require_role
from ticketstream_shared.runtime.logging import correlation_id

from .desk import Desk
from .domain import Team, Technician
from .records import PRODUCER, ManualAssignmentData, ManualAssignmentRequested
from .teamlog import TeamLog

ROSTER_WRITERS = (Role.ADMIN, Role.MANAGER)
ASSIGNERS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)
READERS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN, Role.INTEGRATION)
WRITE_VISIBLE_S = 5.0

PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]


class TechnicianBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
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


def install(app: FastAPI, team_log: TeamLog, clock: Callable[[], datetime]) -> None:
    """Add assignment's routes to `app`."""
    Caller = Annotated[Principal, Depends(app.state.principal)]
    desk: Desk = team_log.desk
    router = APIRouter(prefix="/v1", tags=["assignment"])

    def envelope() -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4(),
            "occurred_at": clock(),
            "producer": PRODUCER,
            "correlation_id": correlation_id.get() or str(uuid.uuid4()),
        }

    def ready_desk() -> Desk:
        if not team_log.caught_up.is_set():
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "assignment is still reading its team log")
        return desk

    async def write(records: list[TeamLogEvent], view: Callable[[], dict[str, Any]]) -> JSONResponse:
        if await team_log.append(records, visible_within_s=WRITE_VISIBLE_S):
            return JSONResponse(view())
        return JSONResponse({"status": "accepted"}, status_code=status.HTTP_202_ACCEPTED)

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
        before = ready_desk().technician(technician_id)
        records: list[TeamLogEvent] = []
        if before is not None and before.team != body.team:
            moved = TechnicianTransferredData(technician_id=technician_id, from_team=before.team, to_team=body.team)
            records.append(TechnicianTransferred(**envelope(), data=moved))
        profile = TechnicianProfileData(technician_id=technician_id, **body.model_dump())
        records.append(TechnicianProfiled(**envelope(), data=profile))
        return await write(records, lambda: current_view(technician_id))

    @router.post("/technicians/{technician_id}/shift")
    async def change_shift(technician_id: PathId, body: ShiftBody, caller: Caller) -> JSONResponse:
        require_role(caller, *ROSTER_WRITERS)
        technician = known_technician(technician_id)
        shift = ShiftChangedData(technician_id=technician_id, team=technician.team, on_shift=body.on_shift)
        return await write([ShiftChanged(**envelope(), data=shift)], lambda: current_view(technician_id))

    @router.get("/technicians/{technician_id}")
    async def get_technician(technician_id: PathId, caller: Caller) -> JSONResponse:
        require_role(caller, *READERS)
        return JSONResponse(current_view(technician_id))

    @router.get("/technicians")
    async def list_technicians(caller: Caller, team: Identifier | None = None) -> JSONResponse:
        require_role(caller, *READERS)
        teams = [ready_desk().teams[team]] if team in desk.teams else [] if team else list(desk.teams.values())
        views = [technician_view(tech, each) for each in teams for tech in each.technicians.values()]
        return JSONResponse({"technicians": sorted(views, key=lambda view: view["id"])})

    @router.put("/routing/categories/{category}")
    async def route_category(category: PathId, body: CategoryBody, caller: Caller) -> JSONResponse:
        require_role(caller, *ROSTER_WRITERS)
        ready_desk()
        rule = CategoryRoutedData(category=category, team=body.team, skill=body.skill or category)
        return await write([CategoryRouted(**envelope(), data=rule)], lambda: category_view(category))

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
        return await write([TeamStrategyChosen(**envelope(), data=chosen)], lambda: team_view(desk.team(team)))

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
            team=technician.team, ticket_id=ticket_id, technician_id=technician.technician_id, assigned_by=caller.name
        )
        return await write([ManualAssignmentRequested(**envelope(), data=request)], lambda: assignment_view(ticket_id))

    app.include_router(router)
