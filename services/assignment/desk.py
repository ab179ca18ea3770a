"""The service desk as one process sees it: every team folded from the team log, and what the owner publishes.

Pure (no I/O): `Desk.apply` folds one record of assignment.by_team. For a team whose partition this process owns
(`decides=True`) it also settles the team and returns the decisions to publish; otherwise it applies the owner's
recorded outcomes instead of deciding, so every process holds the same roster, loads and assignments (for reads
and for taking a team over) while exactly one decides.

Tickets done with (resolved or closed, in no queue) leave memory for the desk's `shelf` (archive.py, on disk), if it
has one, when the service checkpoints the desk (`put_aside`); any record about one brings it back to be folded.

A ticket whose category no rule routes waits under that category (`parked`); the owner of the category's
partition forwards it to the team of the rule that comes for it, and forwards its later changes after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from ticketstream_shared.contract import Actor
from ticketstream_shared.contract.assignment import (
    ROSTER_EVENT_TYPES,
    CategoryRouted,
    ShiftChanged,
    TeamLogEvent,
    TeamStrategyChosen,
    TechnicianProfiled,
    TechnicianTransferred,
    TicketAssigned,
    TicketEscalated,
    TicketUnassignable,
)
from ticketstream_shared.runtime.ids import IdSpace

from .domain import DONE, Assigned, Escalated, Outcome, Team, Technician, Ticket, Unassignable
from .records import (
    ACTOR,
    PRODUCER,
    EscalationDue,
    ManualAssignmentRequested,
    OutcomeData,
    OutcomeRecorded,
    ParkedData,
    RoutedData,
    TicketParked,
    TicketRef,
    TicketReprioritised,
    TicketRouted,
    TicketSnapshot,
    TicketStatusMoved,
    TicketWithdrawn,
)
from .roster_trail import RosterTrail

#: uuid5 namespace of published events: the same decision gets the same event id in every process, on every
#: retry, so consumers deduplicate a decision published twice (e.g. around a takeover).
DECISION_IDS = IdSpace(uuid.UUID("5b1f0c7e-3d2a-4e6b-9f8c-a1d2e3f4a505"))


@dataclass(frozen=True)
class CategoryRule:
    team: str
    skill: str
    #: Why the team takes the ticket, when not a rule of its category (the service's owner team): see routing.
    routed_as: str = ""


@dataclass(frozen=True)
class Forwarded:
    """A record for a team's partition of the team log: a waiting ticket a rule routed there (or a newer snapshot
    of it), or its withdrawal when it left for another category."""

    ticket_id: str
    record: TicketRouted | TicketWithdrawn


class Decision(NamedTuple):
    """An outcome to publish (or a record to forward) for `team`, with the record that caused it (for ids and
    correlation). A tuple: one is made for every decision."""

    team: str
    outcome: Outcome | Forwarded
    #: The id of the record that caused it, as text: the ids of what the decision publishes derive from it.
    cause: str
    correlation_id: str
    #: Who decided it, when a person did (a manual assignment); assignment itself otherwise.
    actor: Actor | None = None


class Shelf(Protocol):
    """Where tickets done with (resolved or closed) wait out of memory: archive.DeskArchive on disk."""

    def put(self, team: str, ticket: Ticket) -> None: ...

    def get(self, ticket_id: str) -> tuple[str, Ticket] | None: ...

    def take(self, ticket_id: str) -> tuple[str, Ticket] | None: ...


@dataclass
class Desk:
    teams: dict[str, Team] = field(default_factory=dict)
    rules: dict[str, CategoryRule] = field(default_factory=dict)
    #: Which team holds each ticket, and each technician: the router and the HTTP edge look them up.
    ticket_teams: dict[str, str] = field(default_factory=dict)
    technician_teams: dict[str, str] = field(default_factory=dict)
    #: Tickets waiting for a rule of their category, and those a rule routed from there: (category, rule).
    parked: dict[str, TicketSnapshot] = field(default_factory=dict)
    released: dict[str, tuple[str, CategoryRule]] = field(default_factory=dict)
    #: Every roster change read, with what it replaced: the audit trail (GET /v1/roster/changes).
    trail: RosterTrail = field(default_factory=RosterTrail, repr=False, compare=False)
    #: Where tickets done with leave memory for (None: they stay); any record about one brings it back to be folded.
    shelf: Shelf | None = field(default=None, repr=False, compare=False)
    #: Whether the record being folded is one this process decides on (see `Team.deciding`).
    _deciding: bool = field(default=True, repr=False, compare=False)
    #: Tickets found done with since they were last put aside (`put_aside`); until then they stay in memory, where
    #: what often follows a closing finds them (an outcome the owner recorded meanwhile, a reopen).
    done_with: dict[str, None] = field(default_factory=dict, repr=False, compare=False)

    def team(self, name: str) -> Team:
        found = self.teams.get(name)
        if found is None:
            found = self.teams[name] = Team(name)
        found.deciding = self._deciding
        return found

    def ticket(self, ticket_id: str) -> Ticket | None:
        """The ticket as its team has it, in memory or on the shelf."""
        found = self.located(ticket_id)
        return found[1] if found is not None else None

    def located(self, ticket_id: str) -> tuple[str, Ticket] | None:
        """The team that has the ticket, and the ticket, in memory or on the shelf (one lookup on disk at most)."""
        team = self.ticket_teams.get(ticket_id)
        if team is not None:
            ticket = self.teams[team].tickets.get(ticket_id)
            return (team, ticket) if ticket is not None else None
        return self.shelf.get(ticket_id) if self.shelf is not None else None

    def technician(self, technician_id: str) -> Technician | None:
        team = self.technician_teams.get(technician_id)
        return self.teams[team].technicians.get(technician_id) if team else None

    def memory(self) -> tuple[Any, ...]:
        """What the desk holds in memory (its shelf aside), for a checkpoint once what is done with is put aside:
        `resume` takes it back."""
        return self.teams, self.rules, self.ticket_teams, self.technician_teams, self.parked, self.released, self.trail

    def resume(self, memory: tuple[Any, ...]) -> None:
        (self.teams, self.rules, self.ticket_teams, self.technician_teams, self.parked, self.released, self.trail) = (
            memory
        )

    def apply(self, record: TeamLogEvent, *, decides: bool, instance: str) -> list[Decision]:
        """Fold one record; when this process decides for the record's team, settle it and say what to publish.
        A ticket the record is about comes back from the shelf for it, to be put aside again if still done with."""
        self._deciding = decides
        named, shelf = TICKET_NAMED.get(type(record)), self.shelf
        if named is None or shelf is None:
            return self._fold(record, decides, instance)
        ticket_id = named(record)
        team = self.ticket_teams.get(ticket_id)
        if team is None and (shelved := shelf.take(ticket_id)) is not None:
            team, ticket = shelved
            self.team(team).tickets[ticket_id] = ticket  # done with: no load to count
            self.ticket_teams[ticket_id] = team
        decided = self._fold(record, decides, instance)
        team = self.ticket_teams.get(ticket_id)
        if team is not None and (held := self.teams[team].tickets.get(ticket_id)) is not None and not held.is_open:
            self.done_with[ticket_id] = None
        return decided

    def put_aside(self) -> None:
        """Tickets done with since the last time, and waiting in no queue of their team, leave memory for the
        shelf."""
        if self.shelf is None:
            return
        for ticket_id in self.done_with:
            team_name = self.ticket_teams.get(ticket_id)
            if team_name is None:
                continue
            team = self.teams[team_name]
            ticket = team.tickets.get(ticket_id)
            if ticket is None or ticket.is_open or ticket_id in team.awaiting or ticket_id in team.backlog:
                continue
            self.shelf.put(team_name, ticket)
            del team.tickets[ticket_id], self.ticket_teams[ticket_id]
        self.done_with.clear()

    def _fold(self, record: TeamLogEvent, decides: bool, instance: str) -> list[Decision]:
        if type(record) in TRAILED:
            self.trail.record(record, self)  # type: ignore[arg-type]
        fold = TEAM_FOLDS.get(type(record))
        if fold is None:
            return self._apply_routing(record, decides, instance)
        team, announced = fold(self, record)
        if not decides:
            return []
        settled = team.settle()
        if not announced and not settled:
            return []  # most status changes: no cause to spell out (str of a UUID cost 3% of a fold)
        # A manual assignment is its requester's act; what the team settles after it is assignment's own.
        by = record.data.actor if isinstance(record, ManualAssignmentRequested) else None
        cause = (str(record.event_id), record.correlation_id)
        decided = [Decision(team.name, outcome, *cause, by) for outcome in announced]
        return decided + [Decision(team.name, outcome, *cause) for outcome in settled]

    def _apply_routing(self, record: TeamLogEvent, decides: bool, instance: str) -> list[Decision]:
        """The records about no one team: a category's rule, a ticket waiting for one, a team's outcome."""
        if isinstance(record, CategoryRouted):
            rule = self.rules[record.data.category] = CategoryRule(record.data.team, record.data.skill)
            waiting = [ticket for ticket in self.parked.values() if ticket.category == record.data.category]
            forwarded = [self._release(ticket, record.data.category, rule, record) for ticket in waiting]
            return self._decided(forwarded, record) if decides else []
        if isinstance(record, TicketParked):
            forwarded = self._wait(record.data, record)
            return self._decided(forwarded, record) if decides else []
        if isinstance(record, OutcomeRecorded):
            if record.data.decided_by != instance:  # our own outcomes were applied when we decided them
                self.team(record.data.team).apply_outcome(outcome_of(record.data))
            return []
        raise TypeError(f"no fold for {record.event_type}")

    def _wait(self, parked: ParkedData, cause: TeamLogEvent) -> list[tuple[str, Forwarded]]:
        """A ticket waits under a category, or goes on to the team a rule of the category gave it; a snapshot of
        another category takes it out (withdrawn from the team, if a rule had routed it)."""
        ticket, category = parked.ticket, parked.category
        released = self.released.get(ticket.ticket_id)
        if ticket.category != category:
            if (waiting := self.parked.get(ticket.ticket_id)) is not None and waiting.category == category:
                del self.parked[ticket.ticket_id]
            if released is None or released[0] != category:
                return []
            del self.released[ticket.ticket_id]
            withdrawn = TicketWithdrawn(**_forwarding(cause, ticket.ticket_id), data=TicketRef(
                team=released[1].team, ticket_id=ticket.ticket_id))  # fmt: skip
            return [(released[1].team, Forwarded(ticket.ticket_id, withdrawn))]
        rule = released[1] if released is not None else self.rules.get(category)
        if rule is None:
            if ticket.status in DONE:  # no team needs it now; reopened, it comes back as a snapshot that waits
                self.parked.pop(ticket.ticket_id, None)
            else:
                self.parked[ticket.ticket_id] = ticket
            return []
        return [self._release(ticket, category, rule, cause)]

    def _release(
        self, ticket: TicketSnapshot, category: str, rule: CategoryRule, cause: TeamLogEvent
    ) -> tuple[str, Forwarded]:
        self.parked.pop(ticket.ticket_id, None)
        self.released[ticket.ticket_id] = (category, rule)
        snapshot = ticket.model_copy(update={"skill": rule.skill, "routed_as": rule.routed_as})
        routed = TicketRouted(**_forwarding(cause, ticket.ticket_id), data=RoutedData(team=rule.team, ticket=snapshot))
        return rule.team, Forwarded(ticket.ticket_id, routed)

    @staticmethod
    def _decided(forwarded: list[tuple[str, Forwarded]], cause: TeamLogEvent) -> list[Decision]:
        return [Decision(team, record, str(cause.event_id), cause.correlation_id) for team, record in forwarded]

    def settle(self, team_name: str, cause: str) -> list[Decision]:
        """Decide what waits in a team just taken over (its previous owner may have stopped mid-way)."""
        self._deciding = True
        team = self.team(team_name)
        team.reconsider()
        return [Decision(team.name, outcome, cause, "takeover") for outcome in team.settle()]

    # The folds of a team's records, each returning the team and the outcomes that need no settling.

    def _profiled(self, record: TechnicianProfiled) -> Folded:
        profile = record.data
        team = self.team(profile.team)
        team.profile(
            Technician(
                profile.technician_id, profile.name, profile.team, profile.tier, frozenset(profile.skills),
                profile.capacity,
            )
        )  # fmt: skip
        self.technician_teams[profile.technician_id] = profile.team
        return team, []

    def _transferred(self, record: TechnicianTransferred) -> Folded:
        team = self.team(record.data.from_team)
        team.transfer_out(record.data.technician_id)
        return team, []

    def _shift_changed(self, record: ShiftChanged) -> Folded:
        team = self.team(record.data.team)
        team.shift(record.data.technician_id, record.data.on_shift)
        return team, []

    def _strategy_chosen(self, record: TeamStrategyChosen) -> Folded:
        team = self.team(record.data.team)
        team.choose_strategy(record.data.strategy)
        return team, []

    def _routed(self, record: TicketRouted) -> Folded:
        team = self.team(record.data.team)
        snapshot = record.data.ticket
        team.route(Ticket(
            snapshot.ticket_id, snapshot.client_id, snapshot.priority, snapshot.status, snapshot.category,
            snapshot.skill, snapshot.tier, version=snapshot.version, routed_as=snapshot.routed_as,
            service_id=snapshot.service_id,
        ))  # fmt: skip
        self.ticket_teams[snapshot.ticket_id] = team.name
        self.parked.pop(snapshot.ticket_id, None)  # routed while it waited (its service's team took it)
        return team, []

    def _withdrawn(self, record: TicketWithdrawn) -> Folded:
        team = self.team(record.data.team)
        team.withdraw(record.data.ticket_id)
        if self.ticket_teams.get(record.data.ticket_id) == team.name:
            del self.ticket_teams[record.data.ticket_id]
        return team, []

    def _status_moved(self, record: TicketStatusMoved) -> Folded:
        team = self.team(record.data.team)
        team.change_status(record.data.ticket_id, record.data.status, record.data.version)
        return team, []

    def _reprioritised(self, record: TicketReprioritised) -> Folded:
        team = self.team(record.data.team)
        team.change_priority(record.data.ticket_id, record.data.priority, record.data.version)
        return team, []

    def _escalation_due(self, record: EscalationDue) -> Folded:
        team = self.team(record.data.team)
        escalated = team.escalate(record.data.ticket_id, record.data.reason, record.data.trigger_event_id)
        return team, [escalated] if escalated else []

    def _assigned_by_hand(self, record: ManualAssignmentRequested) -> Folded:
        team = self.team(record.data.team)
        request = record.data
        manual = team.assign_by_hand(request.ticket_id, request.technician_id, request.assigned_by)
        return team, [manual] if manual else []


Folded = tuple[Team, list[Outcome]]
#: The fold of each record of one team, by its exact type (records are final classes; a table, not a chain of
#: isinstance checks: those of pydantic models go through ABCMeta, ~0.1 us each, and a record took up to eleven).
TEAM_FOLDS: dict[type[TeamLogEvent], Callable[[Desk, Any], Folded]] = {
    TechnicianProfiled: Desk._profiled,
    TechnicianTransferred: Desk._transferred,
    ShiftChanged: Desk._shift_changed,
    TeamStrategyChosen: Desk._strategy_chosen,
    TicketRouted: Desk._routed,
    TicketWithdrawn: Desk._withdrawn,
    TicketStatusMoved: Desk._status_moved,
    TicketReprioritised: Desk._reprioritised,
    EscalationDue: Desk._escalation_due,
    ManualAssignmentRequested: Desk._assigned_by_hand,
}
#: The ticket a record is about, by the record's type: it is brought back from the shelf to be folded.
TICKET_NAMED: dict[type[TeamLogEvent], Callable[[Any], str]] = {
    TicketRouted: lambda record: record.data.ticket.ticket_id,
    TicketWithdrawn: lambda record: record.data.ticket_id,
    TicketStatusMoved: lambda record: record.data.ticket_id,
    TicketReprioritised: lambda record: record.data.ticket_id,
    EscalationDue: lambda record: record.data.ticket_id,
    ManualAssignmentRequested: lambda record: record.data.ticket_id,
    OutcomeRecorded: lambda record: record.data.ticket_id,
}
#: The roster changes, which the audit trail keeps.
TRAILED: frozenset[type[TeamLogEvent]] = frozenset(ROSTER_EVENT_TYPES)


def _forwarding(cause: TeamLogEvent, ticket_id: str) -> dict[str, Any]:
    """The envelope of a record forwarded because of `cause`: the same id in every process, on every retry."""
    return {
        "event_id": DECISION_IDS(f"{cause.event_id}:{ticket_id}:forwarded"),
        "occurred_at": cause.occurred_at,
        "producer": PRODUCER,
        "correlation_id": cause.correlation_id,
    }


def outcome_of(data: OutcomeData) -> Outcome:
    if not data.assigned:
        return Unassignable(data.ticket_id, data.reason, announce=False, holder=data.technician_id)
    assert data.technician_id is not None and data.tier is not None and data.strategy is not None
    return Assigned(data.ticket_id, data.technician_id, data.tier, data.strategy, data.reason,
                    data.previous_technician_id)  # fmt: skip


def recorded(decision: Decision, instance: str, now: datetime) -> TeamLogEvent | None:
    """The team-log record of a decision, for the processes that follow the team without deciding (or the record
    forwarded). Escalations and manual assignments need none: every process folds them from their own records."""
    outcome = decision.outcome
    if isinstance(outcome, Forwarded):
        return outcome.record
    if isinstance(outcome, Escalated) or (isinstance(outcome, Assigned) and outcome.assigned_by):
        return None
    assigned = outcome if isinstance(outcome, Assigned) else None
    return OutcomeRecorded(
        event_id=DECISION_IDS(f"{decision.cause}:{outcome.ticket_id}:recorded"),
        occurred_at=now,
        producer=PRODUCER,
        correlation_id=decision.correlation_id,
        data={
            "team": decision.team,
            "ticket_id": outcome.ticket_id,
            "decided_by": instance,
            "assigned": assigned is not None,
            "technician_id": assigned.technician_id if assigned else outcome.holder,  # type: ignore[union-attr]
            "tier": assigned.tier if assigned else None,
            "strategy": assigned.strategy if assigned else None,
            "reason": outcome.reason,
            "previous_technician_id": assigned.previous_technician_id if assigned else None,
        },
    )


def published(
    decision: Decision, ticket: Ticket, now: datetime
) -> TicketAssigned | TicketEscalated | TicketUnassignable | None:
    """The public event of a decision on assignment.events, or None when there is nothing new to tell. (Its `data`,
    as that of `recorded`, is given as a dict: validated in the event's own pass, a third faster than a model of
    its own.)"""
    outcome = decision.outcome
    assert not isinstance(outcome, Forwarded), "a record forwarded to a team is not published"
    envelope = {
        "event_id": DECISION_IDS(f"{decision.cause}:{outcome.ticket_id}:{type(outcome).__name__}"),
        "occurred_at": now,
        "ticket_id": ticket.ticket_id,
        "client_id": ticket.client_id,
        "producer": PRODUCER,
        "correlation_id": decision.correlation_id,
        "actor": decision.actor or ACTOR,
    }
    if isinstance(outcome, Assigned):
        data = {
            "technician_id": outcome.technician_id,
            "team": decision.team,
            "tier": outcome.tier,
            "strategy": outcome.strategy,
            "reason": outcome.reason,
            "previous_technician_id": outcome.previous_technician_id,
            "assigned_by": outcome.assigned_by,
        }
        return TicketAssigned(**envelope, data=data)
    if isinstance(outcome, Escalated):
        escalated = {
            "from_tier": outcome.from_tier, "to_tier": outcome.to_tier, "team": decision.team,
            "reason": outcome.reason, "trigger_event_id": outcome.trigger_event_id,
        }  # fmt: skip
        return TicketEscalated(**envelope, data=escalated)
    if outcome.announce:
        return TicketUnassignable(**envelope, data={"team": decision.team, "reason": outcome.reason})
    return None
