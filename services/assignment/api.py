"""Assignment's HTTP routes: check the caller, hand the request to the dispatcher, shape the answer.

A write answers 200 with the new state once this process has read its record back from the team log, or 202 if that
takes longer (dispatcher.py); one that would change nothing answers 200 with the state as it is and
`Idempotent-Replayed: true`. (No postponed annotations in this module: FastAPI must see the dependencies.)
"""

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Path, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.assignment import Strategy
from ticketstream_shared.contract.events import Identifier
from ticketstream_shared.contract.personal import PLAIN_ONLY
from ticketstream_shared.runtime.auth import require_role, require_unscoped
from ticketstream_shared.runtime.http import REPLAYED, Caller, from_app_state

from .dispatcher import Answer, Dispatcher, TechnicianRequest, Written

ROSTER_WRITERS = (Role.ADMIN, Role.MANAGER)
ASSIGNERS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)
READERS = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN, Role.INTEGRATION)

PathId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]


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


Dispatch = Annotated[Dispatcher, Depends(from_app_state("dispatcher"))]
router = APIRouter(prefix="/v1", tags=["assignment"])


def _response(answer: Answer) -> JSONResponse:
    if answer.written is Written.ACCEPTED:
        return JSONResponse(answer.view, status_code=status.HTTP_202_ACCEPTED)
    return JSONResponse(answer.view, headers=REPLAYED if answer.written is Written.UNCHANGED else None)


@router.put("/technicians/{technician_id}")
async def put_technician(
    technician_id: PathId, body: TechnicianBody, caller: Caller, dispatch: Dispatch
) -> JSONResponse:
    require_role(caller, *ROSTER_WRITERS)
    require_unscoped(caller, "the roster")
    request = TechnicianRequest(body.name, body.team, body.tier, body.skills, body.capacity)
    return _response(await dispatch.put_technician(technician_id, request, caller))


@router.post("/technicians/{technician_id}/shift")
async def change_shift(technician_id: PathId, body: ShiftBody, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *ROSTER_WRITERS)
    require_unscoped(caller, "the roster")
    return _response(await dispatch.change_shift(technician_id, body.on_shift, caller))


@router.get("/technicians/{technician_id}")
async def get_technician(technician_id: PathId, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *READERS)
    return _response(await dispatch.technician(technician_id))


@router.get("/roster/changes")
async def roster_changes(
    caller: Caller,
    dispatch: Dispatch,
    technician_id: Identifier | None = None,
    team: Identifier | None = None,
    category: Identifier | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """The audit trail of the roster and routing, newest first: who changed what, before and after."""
    require_role(caller, *ROSTER_WRITERS)
    return _response(await dispatch.roster_changes(technician_id, team, category, limit))


@router.get("/technicians")
async def list_technicians(caller: Caller, dispatch: Dispatch, team: Identifier | None = None) -> JSONResponse:
    require_role(caller, *READERS)
    return _response(await dispatch.technicians(team))


@router.put("/routing/categories/{category}")
async def route_category(category: PathId, body: CategoryBody, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *ROSTER_WRITERS)
    require_unscoped(caller, "routing")
    return _response(await dispatch.route_category(category, body.team, body.skill, caller))


@router.get("/routing/categories/{category}")
async def get_category(category: PathId, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *READERS)
    return _response(await dispatch.category(category))


@router.put("/routing/teams/{team}")
async def choose_strategy(team: PathId, body: TeamBody, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *ROSTER_WRITERS)
    require_unscoped(caller, "routing")
    return _response(await dispatch.choose_strategy(team, body.strategy, caller))


@router.get("/routing/teams/{team}")
async def get_team(team: PathId, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *READERS)
    return _response(await dispatch.team(team))


@router.get("/assignments/{ticket_id}")
async def get_assignment(ticket_id: PathId, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    require_role(caller, *READERS)
    return _response(await dispatch.assignment(ticket_id, caller))


@router.post("/assignments/{ticket_id}")
async def assign_by_hand(ticket_id: PathId, body: ManualBody, caller: Caller, dispatch: Dispatch) -> JSONResponse:
    """A manager or technician assigns a ticket of a team to a technician of the same team."""
    require_role(caller, *ASSIGNERS)
    return _response(await dispatch.assign_by_hand(ticket_id, body.technician_id, caller))


def install(app: FastAPI, dispatcher: Dispatcher) -> None:
    app.state.dispatcher = dispatcher
    app.include_router(router)
