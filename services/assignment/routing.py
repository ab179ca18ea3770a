"""The router: tickets.events and sla.events (keyed by ticket) re-keyed by team onto the team log. Pure.

It decides only *which team* a ticket belongs to (its category's rule, else the owner team of its service: the one
it names, or its category's in the catalogue) and forwards what a team needs: the ticket's arrival, status and
priority changes, and escalations due. Which technician is the team owner's call.
A ticket whose category no rule routes yet waits under its category on the team log (`TicketParked`), where the
rule will find it when it comes (see `Desk`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from ticketstream_shared.contract import Envelope, TicketCreated, TicketStatus, TicketStatusChanged, TicketUpdated
from ticketstream_shared.contract.assignment import TeamLogEvent, TicketUnassignable, UnassignableData
from ticketstream_shared.contract.sla import SlaBreached, SlaWarning
from ticketstream_shared.runtime.ids import IdSpace

from .desk import CategoryRule
from .records import (
    PRODUCER,
    EscalationDue,
    EscalationDueData,
    ParkedData,
    ReprioritisedData,
    TicketParked,
    TicketRef,
    TicketReprioritised,
    TicketRouted,
    TicketSnapshot,
    TicketStatusMoved,
    TicketWithdrawn,
)

#: An SLA warning at this share of the target (the last threshold) escalates, as a breach does.
ESCALATION_THRESHOLD = 0.9
#: What `route` routes; a worklog, a comment or a clock's start routes nothing, and is not decoded for it.
ROUTED_TICKET_EVENTS = (TicketCreated, TicketUpdated, TicketStatusChanged)
ESCALATING_SLA_EVENTS = (SlaWarning, SlaBreached)
ROUTING_IDS = IdSpace(uuid.UUID("0e7d9a42-6c1b-4f3e-8a5d-2b9c4e6f8a06"))


class Routed(NamedTuple):
    """Where a ticket is, as the router last sent it: with a team, or (team None) waiting for a routing rule. A status
    change after the snapshot is kept beside it and merged when the ticket is asked for: status changes are most of
    a ticket's events, and a copy of the snapshot for each cost 2% of a worker's CPU. (Tuples, as Routing: both are
    made for every ticket event.)"""

    team: str | None
    snapshot: TicketSnapshot
    #: The status and version since the snapshot, if a status change came after it.
    status: TicketStatus | None = None
    version: int = 0

    @property
    def current_status(self) -> TicketStatus:
        return self.snapshot.status if self.status is None else self.status

    @property
    def current_version(self) -> int:
        return self.snapshot.version if self.status is None else self.version

    @property
    def ticket(self) -> TicketSnapshot:
        """The ticket as it is now."""
        if self.status is None:
            return self.snapshot
        return self.snapshot.model_copy(update={"status": self.status, "version": self.version})


class Routing(NamedTuple):
    """What routing one event produced: records for the team log, a public event when no team takes the ticket,
    and where the ticket is now (None: nowhere we follow)."""

    records: list[TeamLogEvent]
    unroutable: TicketUnassignable | None = None
    where: Routed | None = None


#: The team a ticket goes to: its category's routing rule, else its service's owner team (see router.py).
RuleFor = Callable[[TicketSnapshot], CategoryRule | None]


def route(event: Envelope, known: Routed | None, rule_for: RuleFor) -> Routing:
    """Route one ticket or SLA event given where the ticket is (`known`) and how tickets find their team."""

    def envelope(kind: str) -> dict[str, Any]:
        return {
            "event_id": ROUTING_IDS(f"{event.event_id}:{kind}"),
            "occurred_at": event.occurred_at,
            "producer": PRODUCER,
            "correlation_id": event.correlation_id,
        }

    if isinstance(event, TicketCreated):
        data = event.data
        snapshot = TicketSnapshot(
            ticket_id=event.ticket_id, client_id=event.client_id, priority=data.priority, status=data.status,
            category=data.category, skill=data.category, version=event.aggregate_version, service_id=data.service_id,
        )  # fmt: skip
        return _to_team(snapshot, rule_for, envelope)
    if known is None:
        return Routing([])  # not ours: created before this service kept its tickets
    if known.team is None:
        return _while_unrouted(event, known.ticket, rule_for, envelope)
    ref = {"team": known.team, "ticket_id": known.snapshot.ticket_id}
    if isinstance(event, TicketStatusChanged):
        status, version = event.data.to_status, event.aggregate_version
        moved = {**ref, "status": status, "version": version}  # validated in the record's pass
        where = Routed(known.team, known.snapshot, status, version)
        return Routing([TicketStatusMoved(**envelope("status"), data=moved)], where=where)
    if isinstance(event, TicketUpdated):
        changes, version = event.data.changes, event.aggregate_version
        records: list[TeamLogEvent] = []
        current = known.ticket.model_copy(update={"version": version})
        if changes.priority is not None and changes.priority != known.ticket.priority:
            current = current.model_copy(update={"priority": changes.priority})
            reprioritised = ReprioritisedData(**ref, priority=changes.priority, version=version)
            records.append(TicketReprioritised(**envelope("priority"), data=reprioritised))
        if changes.category is not None and changes.category != known.ticket.category:
            recategorised = current.model_copy(update={"category": changes.category, "skill": changes.category})
            withdrawn = TicketWithdrawn(**envelope("withdrawn"), data=TicketRef(**ref))
            rerouted = _to_team(recategorised, rule_for, envelope)
            return Routing([*records, withdrawn, *rerouted.records], rerouted.unroutable, rerouted.where)
        return Routing(records, where=Routed(known.team, current))
    at_risk = isinstance(event, SlaBreached) or (
        isinstance(event, SlaWarning) and event.data.threshold >= ESCALATION_THRESHOLD
    )
    if at_risk and known.snapshot.tier == 1:
        what = "breached" if isinstance(event, SlaBreached) else f"{event.data.threshold:.0%} used"  # type: ignore[attr-defined]
        reason = f"SLA {event.data.metric} {what}: escalated to tier 2"  # type: ignore[attr-defined]
        due = EscalationDueData(**ref, reason=reason, trigger_event_id=event.event_id)
        escalated = known.ticket.model_copy(update={"tier": 2})
        return Routing([EscalationDue(**envelope("escalation"), data=due)], where=Routed(known.team, escalated))
    return Routing([], where=known)


def _while_unrouted(
    event: Envelope,
    ticket: TicketSnapshot,
    rule_for: RuleFor,
    envelope: Callable[[str], dict[str, Any]],
) -> Routing:
    """A ticket waiting for a rule changed: it waits with the newer snapshot, or goes to the team its new category
    or a service now gives it (a service of the catalogue appears without a record on the team log: a waiting
    ticket of its categories goes to its owner team with its next change). (An SLA event changes nothing yet: a
    ticket no team has is not escalated.)"""
    if isinstance(event, TicketStatusChanged):
        current = ticket.model_copy(update={"status": event.data.to_status, "version": event.aggregate_version})
    elif isinstance(event, TicketUpdated):
        changes = event.data.changes
        current = ticket.model_copy(update={"version": event.aggregate_version})
        if changes.priority is not None:
            current = current.model_copy(update={"priority": changes.priority})
        if changes.category is not None:
            current = current.model_copy(update={"category": changes.category, "skill": changes.category})
    else:
        return Routing([], where=Routed(None, ticket))
    waits = TicketParked(**envelope("parked-again"), data=ParkedData(category=ticket.category, ticket=current))
    if current.category == ticket.category:
        if rule_for(current) is not None:
            return _to_team(current, rule_for, envelope)
        return Routing([waits], where=Routed(None, current))
    moved = _to_team(current, rule_for, envelope)  # `waits`, of another category, takes it out of the old one
    return Routing([waits, *moved.records], moved.unroutable, moved.where)


def _to_team(
    snapshot: TicketSnapshot,
    rule_for: RuleFor,
    envelope: Callable[[str], dict[str, Any]],
) -> Routing:
    rule = rule_for(snapshot)
    if rule is None:
        reason = (
            f"no team takes category {snapshot.category} (PUT /v1/routing/categories/{snapshot.category}), and no "
            "service of the catalogue owns it"
        )
        unroutable = TicketUnassignable(
            **envelope("unroutable"), ticket_id=snapshot.ticket_id, client_id=snapshot.client_id,
            data=UnassignableData(reason=reason),
        )  # fmt: skip
        parked = TicketParked(**envelope("parked"), data=ParkedData(category=snapshot.category, ticket=snapshot))
        return Routing([parked], unroutable=unroutable, where=Routed(None, snapshot))
    if (snapshot.skill, snapshot.routed_as) != (rule.skill, rule.routed_as):  # a copy costs more than the test
        snapshot = snapshot.model_copy(update={"skill": rule.skill, "routed_as": rule.routed_as})
    routed = TicketRouted(**envelope("routed"), data={"team": rule.team, "ticket": snapshot})  # one pass, as above
    return Routing([routed], where=Routed(rule.team, snapshot))
