"""The service desk as one process sees it: every team folded from the team log, and what the owner publishes.

Pure (no I/O): `Desk.apply` folds one record of assignment.by_team. For a team whose partition this process owns
(`decides=True`) it also settles the team and returns the decisions to publish; otherwise it applies the owner's
recorded outcomes instead of deciding, so every process holds the same roster, loads and assignments (for reads
and for taking a team over) while exactly one decides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from ticketstream_shared.contract.assignment import (
    AssignedData,
    CategoryRouted,
    EscalatedData,
    ShiftChanged,
    TeamLogEvent,
    TeamStrategyChosen,
    TechnicianProfiled,
    TechnicianTransferred,
    TicketAssigned,
    TicketEscalated,
    TicketUnassignable,
    UnassignableData,
)

from .domain import Assigned, Escalated, Outcome, Team, Technician, Ticket, Unassignable
from .records import (
    PRODUCER,
    EscalationDue,
    ManualAssignmentRequested,
    OutcomeData,
    OutcomeRecorded,
    TicketReprioritised,
    TicketRouted,
    TicketStatusMoved,
    TicketWithdrawn,
)

#: uuid5 namespace of published events: the same decision gets the same event id in every process, on every
#: retry, so consumers deduplicate a decision published twice (e.g. around a takeover).
DECISION_IDS = uuid.UUID("5b1f0c7e-3d2a-4e6b-9f8c-a1d2e3f4a505")


@dataclass(frozen=True)
class CategoryRule:
    team: str
    skill: str


@dataclass(frozen=True)
class Decision:
    """An outcome to publish, with the record that caused it (for ids and correlation)."""

    team: str
    outcome: Outcome
    cause_id: uuid.UUID
    correlation_id: str


@dataclass
class Desk:
    teams: dict[str, Team] = field(default_factory=dict)
    rules: dict[str, CategoryRule] = field(default_factory=dict)
    #: Which team holds each ticket, and each technician: the router and the HTTP edge look them up.
    ticket_teams: dict[str, str] = field(default_factory=dict)
    technician_teams: dict[str, str] = field(default_factory=dict)

    def team(self, name: str) -> Team:
        found = self.teams.get(name)
        if found is None:
            found = self.teams[name] = Team(name)
        return found

    def ticket(self, ticket_id: str) -> Ticket | None:
        team = self.ticket_teams.get(ticket_id)
        return self.teams[team].tickets.get(ticket_id) if team else None

    def technician(self, technician_id: str) -> Technician | None:
        team = self.technician_teams.get(technician_id)
        return self.teams[team].technicians.get(technician_id) if team else None

    def apply(self, record: TeamLogEvent, *, decides: bool, instance: str) -> list[Decision]:
        """Fold one record; when this process decides for the record's team, settle it and say what to publish."""
        if isinstance(record, CategoryRouted):
            self.rules[record.data.category] = CategoryRule(record.data.team, record.data.skill)
            return []
        if isinstance(record, OutcomeRecorded):
            if record.data.decided_by != instance:  # our own outcomes were applied when we decided them
                self.team(record.data.team).apply_outcome(outcome_of(record.data))
            return []
        team, announced = self._fold(record)
        if not decides:
            return []
        outcomes = announced + team.settle()
        return [Decision(team.name, outcome, record.event_id, record.correlation_id) for outcome in outcomes]

    def settle(self, team_name: str, cause_id: uuid.UUID) -> list[Decision]:
        """Decide what waits in a team just taken over (its previous owner may have stopped mid-way)."""
        team = self.team(team_name)
        return [Decision(team.name, outcome, cause_id, "takeover") for outcome in team.settle()]

    def _fold(self, record: TeamLogEvent) -> tuple[Team, list[Outcome]]:
        """Apply a roster or ticket record to its team; returns the team and outcomes that need no settling."""
        announced: list[Outcome] = []
        if isinstance(record, TechnicianProfiled):
            profile = record.data
            team = self.team(profile.team)
            team.profile(
                Technician(
                    profile.technician_id, profile.name, profile.team, profile.tier, frozenset(profile.skills),
                    profile.capacity,
                )
            )  # fmt: skip
            self.technician_teams[profile.technician_id] = profile.team
        elif isinstance(record, TechnicianTransferred):
            team = self.team(record.data.from_team)
            team.transfer_out(record.data.technician_id)
        elif isinstance(record, ShiftChanged):
            team = self.team(record.data.team)
            team.shift(record.data.technician_id, record.data.on_shift)
        elif isinstance(record, TeamStrategyChosen):
            team = self.team(record.data.team)
            team.choose_strategy(record.data.strategy)
        elif isinstance(record, TicketRouted):
            team = self.team(record.data.team)
            snapshot = record.data.ticket
            team.route(Ticket(**snapshot.model_dump()))
            self.ticket_teams[snapshot.ticket_id] = team.name
        elif isinstance(record, TicketWithdrawn):
            team = self.team(record.data.team)
            team.withdraw(record.data.ticket_id)
            if self.ticket_teams.get(record.data.ticket_id) == team.name:
                del self.ticket_teams[record.data.ticket_id]
        elif isinstance(record, TicketStatusMoved):
            team = self.team(record.data.team)
            team.change_status(record.data.ticket_id, record.data.status, record.data.version)
        elif isinstance(record, TicketReprioritised):
            team = self.team(record.data.team)
            team.change_priority(record.data.ticket_id, record.data.priority, record.data.version)
        elif isinstance(record, EscalationDue):
            team = self.team(record.data.team)
            escalated = team.escalate(record.data.ticket_id, record.data.reason, record.data.trigger_event_id)
            announced += [escalated] if escalated else []
        elif isinstance(record, ManualAssignmentRequested):
            team = self.team(record.data.team)
            request = record.data
            manual = team.assign_by_hand(request.ticket_id, request.technician_id, request.assigned_by)
            announced += [manual] if manual else []
        else:
            raise TypeError(f"no fold for {record.event_type}")
        return team, announced


def outcome_of(data: OutcomeData) -> Outcome:
    if not data.assigned:
        return Unassignable(data.ticket_id, data.reason, announce=False, holder=data.technician_id)
    assert data.tier is not None and data.strategy is not None
    return Assigned(data.ticket_id, data.technician_id, data.tier, data.strategy, data.reason,
                    data.previous_technician_id)  # fmt: skip


def recorded(decision: Decision, instance: str, now: datetime) -> OutcomeRecorded | None:
    """The team-log record of a decision, for the processes that follow the team without deciding. Escalations
    and manual assignments need none: every process folds them from their own records."""
    outcome = decision.outcome
    if isinstance(outcome, Escalated) or (isinstance(outcome, Assigned) and outcome.assigned_by):
        return None
    assigned = outcome if isinstance(outcome, Assigned) else None
    return OutcomeRecorded(
        event_id=uuid.uuid5(DECISION_IDS, f"{decision.cause_id}:{outcome.ticket_id}:recorded"),
        occurred_at=now,
        producer=PRODUCER,
        correlation_id=decision.correlation_id,
        data=OutcomeData(
            team=decision.team,
            ticket_id=outcome.ticket_id,
            decided_by=instance,
            assigned=assigned is not None,
            technician_id=assigned.technician_id if assigned else outcome.holder,  # type: ignore[union-attr]
            tier=assigned.tier if assigned else None,
            strategy=assigned.strategy if assigned else None,
            reason=outcome.reason,
            previous_technician_id=assigned.previous_technician_id if assigned else None,
        ),
    )


def published(
    decision: Decision, ticket: Ticket, now: datetime
) -> TicketAssigned | TicketEscalated | TicketUnassignable | None:
    """The public event of a decision on assignment.events, or None when there is nothing new to tell."""
    outcome = decision.outcome
    envelope = {
        "event_id": uuid.uuid5(DECISION_IDS, f"{decision.cause_id}:{outcome.ticket_id}:{type(outcome).__name__}"),
        "occurred_at": now,
        "ticket_id": ticket.ticket_id,
        "client_id": ticket.client_id,
        "producer": PRODUCER,
        "correlation_id": decision.correlation_id,
    }
    if isinstance(outcome, Assigned):
        data = AssignedData(
            technician_id=outcome.technician_id,
            team=decision.team,
            tier=outcome.tier,
            strategy=outcome.strategy,
            reason=outcome.reason,
            previous_technician_id=outcome.previous_technician_id,
            assigned_by=outcome.assigned_by,
        )
        return TicketAssigned(**envelope, data=data)
    if isinstance(outcome, Escalated):
        escalated = EscalatedData(
            from_tier=outcome.from_tier, to_tier=outcome.to_tier, team=decision.team, reason=outcome.reason,
            trigger_event_id=outcome.trigger_event_id,
        )  # fmt: skip
        return TicketEscalated(**envelope, data=escalated)
    if outcome.announce:
        return TicketUnassignable(**envelope, data=UnassignableData(team=decision.team, reason=outcome.reason))
    return None
