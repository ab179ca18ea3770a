"""assignment's use cases, without HTTP: keep the roster and the routing, assign a ticket by hand, and read them.

A change is judged against the desk, turned into a team-log record and appended. It answers the new state once
this process has read its record back from the team log (so a read right after sees it), `ACCEPTED` if that takes
longer than WRITE_VISIBLE_S, and `UNCHANGED` with the state as it is when it would change nothing (a roster change
or routing rule that is already so appends nothing). Reads come from the desk; every answer has the technicians'
names opened. The API maps each refusal below to its status; nothing here knows FastAPI.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import islice
from typing import Any

from pydantic import BaseModel

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
from ticketstream_shared.privacy import KeyNotYetRead
from ticketstream_shared.runtime.auth import Principal, require_client
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData, opened_json
from ticketstream_shared.runtime.ids import IdSpace, change_id
from ticketstream_shared.runtime.refusals import Conflict, InvalidField, NotFound, Unavailable

from .desk import CategoryRule, Desk
from .domain import Team, Technician
from .records import PRODUCER, ManualAssignmentData, ManualAssignmentRequested
from .teamlog import TeamLog

WRITE_VISIBLE_S = 5.0
#: uuid5 namespace of roster changes (see `roster_change_id`).
ROSTER_CHANGE_IDS = IdSpace(uuid.UUID("3f8a6d21-7c4e-4b9a-8e15-c2d0b7a9e641"))


class Written(StrEnum):
    #: Appended and read back: the answer is the new state.
    SAVED = "saved"
    #: Appended, not yet read back within WRITE_VISIBLE_S.
    ACCEPTED = "accepted"
    #: Nothing to append: the answer is the state as it is.
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Answer:
    view: dict[str, Any]
    written: Written = Written.SAVED


@dataclass(frozen=True)
class TechnicianRequest:
    name: str
    team: str
    tier: int
    skills: list[str]
    capacity: int


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


class Dispatcher:
    def __init__(
        self,
        team_log: TeamLog,
        clock: Callable[[], datetime],
        correlation: Callable[[], str | None],
        personal: PersonalData = PLAIN,
    ) -> None:
        """`personal`: seals technicians' names for the team log, where the desk keeps them sealed, and opens them
        in every answer."""
        self._team_log = team_log
        self._desk: Desk = team_log.desk
        self._clock = clock
        self._correlation = correlation
        self._personal = personal
        #: Judging a roster change and appending it happen in turn in this process, so a retry racing with the
        #: request it repeats finds it done (roster changes are rare: one at a time costs nothing).
        self._one_roster_change_at_a_time = asyncio.Lock()

    # technicians

    async def put_technician(self, technician_id: str, request: TechnicianRequest, caller: Principal) -> Answer:
        profile = TechnicianProfileData(technician_id=technician_id, **vars(request))
        async with self._one_roster_change_at_a_time:
            before = self._ready().technician(technician_id)
            if before is not None and same_profile(before, await self._opened(before.name), profile):
                return await self._unchanged(self._technician_view(technician_id))
            basis = self._revision_of(before.team if before else request.team)
            change = roster_change_id(TechnicianProfiled, technician_id, basis, profile)
            records: list[TeamLogEvent] = []
            if before is not None and before.team != request.team:
                moved = TechnicianTransferredData(
                    technician_id=technician_id, from_team=before.team, to_team=request.team
                )
                moved_id = ROSTER_CHANGE_IDS(f"{change}/moved")
                records.append(TechnicianTransferred(**self._envelope(moved_id, caller), data=moved))
            sealed = await self._personal.seal_fields(profile, technician_id)
            records.append(TechnicianProfiled(**self._envelope(change, caller), data=sealed))
            return await self._write(records, lambda: self._technician_view(technician_id))

    async def change_shift(self, technician_id: str, on_shift: bool, caller: Principal) -> Answer:
        async with self._one_roster_change_at_a_time:
            technician = self._known_technician(technician_id)
            if technician.on_shift == on_shift:
                return await self._unchanged(self._technician_view(technician_id))
            shift = ShiftChangedData(technician_id=technician_id, team=technician.team, on_shift=on_shift)
            change = roster_change_id(ShiftChanged, technician_id, self._revision_of(technician.team), shift)
            shifted = ShiftChanged(**self._envelope(change, caller), data=shift)
            return await self._write([shifted], lambda: self._technician_view(technician_id))

    async def technician(self, technician_id: str) -> Answer:
        return await self._answer(self._technician_view(technician_id))

    async def technicians(self, team: str | None) -> Answer:
        desk = self._ready()
        teams = [desk.teams[team]] if team in desk.teams else [] if team else list(desk.teams.values())
        views = [technician_view(tech, each) for each in teams for tech in each.technicians.values()]
        return await self._answer({"technicians": sorted(views, key=lambda view: view["id"])})

    async def roster_changes(
        self, technician_id: str | None, team: str | None, category: str | None, limit: int
    ) -> Answer:
        """The audit trail of the roster and routing, newest first: who changed what, before and after."""
        about = self._ready().trail.newest_first(technician_id=technician_id, team=team, category=category)
        return await self._answer({"changes": [entry.view() for entry in islice(about, limit)]})

    # routing

    async def route_category(self, category: str, team: str, skill: str | None, caller: Principal) -> Answer:
        rule = CategoryRoutedData(category=category, team=team, skill=skill or category)
        async with self._one_roster_change_at_a_time:
            before = self._ready().rules.get(category)
            if before == CategoryRule(rule.team, rule.skill):
                return await self._unchanged(self._category_view(category))
            # The desk keeps no revision of its rules (a plain table) and the rule replaced may come back (A, B, A,
            # B...): the moment of the request keeps each change's id its own. A twin from another process is
            # then told by its content, and folding it changes nothing (the rule is the same, nothing waits).
            basis = f"{before.team}/{before.skill}" if before else "none"
            change = roster_change_id(CategoryRouted, category, f"{basis}@{self._clock().isoformat()}", rule)
            routed = CategoryRouted(**self._envelope(change, caller), data=rule)
            return await self._write([routed], lambda: self._category_view(category))

    async def category(self, category: str) -> Answer:
        return await self._answer(self._category_view(category))

    async def choose_strategy(self, team: str, strategy: Strategy, caller: Principal) -> Answer:
        self._ready()
        if strategy is Strategy.MANUAL:
            raise InvalidField("strategy", "manual is not a team strategy; use POST /v1/assignments")
        chosen = TeamStrategyChosenData(team=team, strategy=strategy)
        async with self._one_roster_change_at_a_time:
            known = self._desk.teams.get(team)
            if known is not None and known.strategy is strategy:
                return await self._unchanged(team_view(known))
            change = roster_change_id(TeamStrategyChosen, team, self._revision_of(team), chosen)
            record = TeamStrategyChosen(**self._envelope(change, caller), data=chosen)
            return await self._write([record], lambda: team_view(self._desk.team(team)))

    async def team(self, team: str) -> Answer:
        if team not in self._ready().teams:
            raise NotFound(f"no team {team}")
        return await self._answer(team_view(self._desk.teams[team]))

    # assignments

    async def assignment(self, ticket_id: str, caller: Principal) -> Answer:
        return await self._answer(self._assignment_view(ticket_id, caller))

    async def assign_by_hand(self, ticket_id: str, technician_id: str, caller: Principal) -> Answer:
        """A manager or technician assigns a ticket of a team to a technician of the same team."""
        ticket_view = self._assignment_view(ticket_id, caller)
        technician = self._known_technician(technician_id)
        if ticket_view["team"] is None:
            raise Conflict(f"ticket {ticket_id} is in no team: {ticket_view['unassignable_reason']}")
        if technician.team != ticket_view["team"]:
            raise Conflict(
                f"technician {technician.technician_id} is in team {technician.team}; the ticket is routed to "
                f"team {ticket_view['team']}"
            )
        if self._desk.ticket(ticket_id).is_open is False:  # type: ignore[union-attr]
            raise Conflict(f"ticket {ticket_id} is {ticket_view['status']}")
        request = ManualAssignmentData(
            team=technician.team,
            ticket_id=ticket_id,
            technician_id=technician.technician_id,
            assigned_by=caller.name,
            actor=caller.actor,
        )
        requested = ManualAssignmentRequested(**self._envelope(), data=request)
        return await self._write([requested], lambda: self._assignment_view(ticket_id, caller))

    # views

    def _technician_view(self, technician_id: str) -> dict[str, Any]:
        technician = self._known_technician(technician_id)
        return technician_view(technician, self._desk.teams[technician.team])

    def _category_view(self, category: str) -> dict[str, Any]:
        rule = self._ready().rules.get(category)
        if rule is None:
            raise NotFound(f"no routing rule for category {category}")
        return {"category": category, "team": rule.team, "skill": rule.skill}

    def _assignment_view(self, ticket_id: str, caller: Principal) -> dict[str, Any]:
        """Where the ticket is, for a caller who may see its client's tickets; one whose category no rule routes is
        waiting for one (the desk's `parked`), and says so."""
        desk = self._ready()
        found = desk.located(ticket_id)
        if found is None:
            if (waiting := desk.parked.get(ticket_id)) is None:
                raise NotFound(f"assignment knows no ticket {ticket_id}")
            require_client(caller, waiting.client_id)
            return {
                "ticket_id": ticket_id,
                "team": None,
                "technician_id": None,
                "tier": waiting.tier,
                "status": waiting.status,
                "unassignable_reason": f"no routing rule for category {waiting.category}: it waits for one",
            }
        team, ticket = found
        require_client(caller, ticket.client_id)
        return {
            "ticket_id": ticket_id,
            "team": team,
            "technician_id": ticket.assignee,
            "tier": ticket.tier,
            "status": ticket.status,
            "unassignable_reason": ticket.unassignable_reason if ticket.assignee is None else None,
        }

    # the rest

    def _ready(self) -> Desk:
        if not self._team_log.caught_up.is_set():
            raise Unavailable("assignment is still reading its team log")
        return self._desk

    def _known_technician(self, technician_id: str) -> Technician:
        technician = self._ready().technician(technician_id)
        if technician is None:
            raise NotFound(f"no technician {technician_id}")
        return technician

    def _revision_of(self, team: str) -> str:
        """The basis of a change judged against a team's roster: its name and how many roster changes it took."""
        known = self._desk.teams.get(team)
        return f"{team}@{known.roster_revision if known else 0}"

    def _envelope(self, event_id: uuid.UUID | None = None, caller: Principal | None = None) -> dict[str, Any]:
        """`caller`: who changes the roster, recorded as the change's actor."""
        return {
            "event_id": event_id or uuid.uuid4(),
            "occurred_at": self._clock(),
            "producer": PRODUCER,
            "correlation_id": self._correlation() or str(uuid.uuid4()),
            **({"actor": caller.actor} if caller else {}),
        }

    async def _opened(self, value: Any) -> Any:
        """`value` with the names in it opened."""
        try:
            return await opened_json(self._personal, value)
        except KeyNotYetRead:
            raise Unavailable("privacy.keys is behind; try again", retry_after_s=1) from None

    async def _answer(self, view: dict[str, Any]) -> Answer:
        return Answer(await self._opened(view))

    async def _unchanged(self, view: dict[str, Any]) -> Answer:
        return Answer(await self._opened(view), Written.UNCHANGED)

    async def _write(self, records: list[TeamLogEvent], view: Callable[[], dict[str, Any]]) -> Answer:
        if await self._team_log.append(records, visible_within_s=WRITE_VISIBLE_S):
            return await self._answer(view())
        return Answer({"status": "accepted"}, Written.ACCEPTED)
