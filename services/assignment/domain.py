"""Assignment's pure core: a team's roster and tickets, the strategies that pick a technician, and why.

No I/O here. A `Team` is folded from its ordered log (roster changes and ticket work); in the team's owner
(`deciding`), changes that leave tickets waiting for a technician put them in `awaiting`, and `settle` decides each
waiting ticket with the team's strategy and applies the outcome. Other processes queue nothing: they apply the
owner's recorded outcomes (`apply_outcome`), which reach them some records after their causes, so what they would
queue themselves could differ from what the owner did. A process taking a team over queues it all once
(`reconsider`): every open ticket nobody holds, and the backlog.

Strategies are pure functions over (ticket, team) returning an outcome with its reason in plain words. Every one
of them honours on-shift, capacity (open tickets held) and tier: a ticket of tier t goes to the lowest tier >= t
that has an eligible technician.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any, NamedTuple

from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.contract.assignment import Strategy

#: Weighted load: a P1 ticket weighs as much as four P4 tickets.
PRIORITY_WEIGHT: dict[Priority, int] = {Priority.P1: 4, Priority.P2: 3, Priority.P3: 2, Priority.P4: 1}
DONE = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})
TOP_TIER = 2
DEFAULT_STRATEGY = Strategy.LEAST_LOADED


@dataclass(frozen=True)
class Technician:
    technician_id: str
    name: str
    team: str
    tier: int
    skills: frozenset[str]
    capacity: int
    on_shift: bool = False


class Ticket(NamedTuple):
    """What a team knows of one of its tickets (a tuple: a change of a ticket makes a new one, several per decision,
    and a tuple is made and copied four times faster than a frozen dataclass)."""

    ticket_id: str
    client_id: str
    priority: Priority
    status: TicketStatus
    category: str
    skill: str
    tier: int = 1
    assignee: str | None = None
    #: Who held it before it went back to the team (reopened, or its technician went off shift).
    previous_assignee: str | None = None
    #: aggregate_version of the last ticket event applied: redelivered events change nothing.
    version: int = 0
    #: Why nobody could take it, as last announced; a retry that finds the same reason announces nothing new.
    unassignable_reason: str | None = None
    #: Why the team has it, when no routing rule of its category said so (e.g. "the owner team of service VPN").
    routed_as: str = ""
    #: The service the ticket names, if any (it routes the ticket again should its category change).
    service_id: str | None = None
    #: Its team's count of arrivals when it arrived: the order the team goes through its tickets in (a ticket put
    #: aside on disk and taken back keeps its place).
    arrived: int = 0

    @property
    def is_open(self) -> bool:
        return self.status not in DONE

    @property
    def weight(self) -> int:
        return PRIORITY_WEIGHT[self.priority]

    def changed(self, **changes: Any) -> Ticket:
        """The ticket with `changes` (field names as keywords; KeyError for any other): `_replace` in 60 % of its
        time (which pops every field from the keywords), where a ticket is changed several times a decision."""
        fields = list(self)
        for name, value in changes.items():
            fields[_TICKET_FIELDS[name]] = value
        return _ticket(fields)


_TICKET_FIELDS = {name: index for index, name in enumerate(Ticket._fields)}
_ticket = Ticket._make


class Load(NamedTuple):
    """A technician's open tickets, counted and weighted (a tuple: one is made on every change of a ticket)."""

    open_tickets: int = 0
    weighted: int = 0


NO_LOAD = Load()


# --- outcomes: what a decision says, and why -------------------------------------------------------------------
# Tuples, as the ticket: one or more are made for every decision.


class Assigned(NamedTuple):
    ticket_id: str
    technician_id: str
    tier: int
    strategy: Strategy
    reason: str
    previous_technician_id: str | None = None
    assigned_by: str | None = None


class Unassignable(NamedTuple):
    """Nobody eligible; the ticket waits in the team's backlog and is tried again when the roster changes.
    `announce` is False when there is nothing new to tell (a retry that found nobody for the same reason)."""

    ticket_id: str
    reason: str
    announce: bool = True
    #: Who keeps the ticket meanwhile (an escalated ticket stays with its lower-tier technician), if anyone.
    holder: str | None = None


class Escalated(NamedTuple):
    ticket_id: str
    from_tier: int
    to_tier: int
    reason: str
    trigger_event_id: uuid.UUID | None = None


Outcome = Assigned | Unassignable | Escalated


# --- eligibility and the strategies ----------------------------------------------------------------------------


#: An eligible technician, ranked: (weighted load, open tickets, id, technician). A plain tuple, so that the least
#: of them is the least loaded (ties to the lowest id, which is unique) without a key function, and one is made
#: cheaply for every eligible technician of every decision (a named tuple cost 4x, `min` with a key 5x).
Candidate = tuple[int, int, str, Technician]


class Pool(NamedTuple):
    """The eligible technicians for one ticket, in id order, and how to describe them ("3 on-shift tier-1
    technicians with skill network"), or, when empty, why nobody is eligible."""

    candidates: tuple[Candidate, ...]
    description: str


def pool(ticket: Ticket, team: Team, need_skill: bool) -> Pool:
    skill = f" with skill {ticket.skill}" if need_skill else ""
    on_shift = team.on_shift_from(ticket.tier)
    if not on_shift:
        tiers = f"tier-{ticket.tier}" if ticket.tier == TOP_TIER else f"tier-{ticket.tier} or higher"
        return Pool((), f"no {tiers} technician of team {team.name} is on shift")
    # One pass over the on-shift roster (every decision makes one): the skilled ones counted, the free ones of
    # the lowest tier kept.
    loads, skilled, lowest = team.loads, 0, 0
    chosen: list[Candidate] = []
    for tech in on_shift:
        if need_skill and ticket.skill not in tech.skills:
            continue
        skilled += 1
        load = loads.get(tech.technician_id, NO_LOAD)
        if load.open_tickets >= tech.capacity or (chosen and tech.tier > lowest):
            continue
        if not chosen or tech.tier < lowest:
            lowest, chosen = tech.tier, []
        chosen.append((load.weighted, load.open_tickets, tech.technician_id, tech))
    if not skilled:
        lacking = f"none of the {len(on_shift)} on-shift technicians of team {team.name}"
        return Pool((), f"{lacking} has skill {ticket.skill}")
    if not chosen:
        return Pool((), f"all {skilled} on-shift technicians{skill} of team {team.name} are at capacity")
    plural = "technician" if len(chosen) == 1 else "technicians"
    return Pool(tuple(chosen), f"{len(chosen)} on-shift tier-{lowest} {plural}{skill}")


def _assigned(ticket: Ticket, technician: Technician, strategy: Strategy, reason: str) -> Assigned:
    if ticket.routed_as:
        reason = f"{reason}; the team is {ticket.routed_as}"
    return Assigned(
        ticket.ticket_id,
        technician.technician_id,
        technician.tier,
        strategy,
        reason,
        previous_technician_id=ticket.assignee or ticket.previous_assignee,
    )


def round_robin(ticket: Ticket, team: Team) -> Outcome:
    """The next eligible technician after the last one the team's rotation served, in id order."""
    found = pool(ticket, team, need_skill=False)
    if not found.candidates:
        return Unassignable(ticket.ticket_id, found.description)
    last = team.last_served
    chosen = next((c for c in found.candidates if last is None or c[2] > last), found.candidates[0])
    return _assigned(ticket, chosen[3], Strategy.ROUND_ROBIN, f"next in rotation among {found.description}")


def least_loaded(ticket: Ticket, team: Team) -> Outcome:
    """The eligible technician with the least weighted load (open tickets, P1=4 .. P4=1)."""
    found = pool(ticket, team, need_skill=False)
    if not found.candidates:
        return Unassignable(ticket.ticket_id, found.description)
    weighted, _, _, chosen = min(found.candidates)
    reason = f"least loaded (weighted load {weighted}) among {found.description}"
    return _assigned(ticket, chosen, Strategy.LEAST_LOADED, reason)


def by_skill(ticket: Ticket, team: Team) -> Outcome:
    """Only technicians with the skill the ticket's category needs; the least loaded of them."""
    found = pool(ticket, team, need_skill=True)
    if not found.candidates:
        return Unassignable(ticket.ticket_id, found.description)
    weighted, _, _, chosen = min(found.candidates)
    reason = f"least loaded (weighted load {weighted}) among {found.description}"
    return _assigned(ticket, chosen, Strategy.SKILLS, reason)


STRATEGIES: dict[Strategy, Callable[[Ticket, Team], Outcome]] = {
    Strategy.ROUND_ROBIN: round_robin,
    Strategy.LEAST_LOADED: least_loaded,
    Strategy.SKILLS: by_skill,
}


def decide(ticket: Ticket, team: Team) -> Outcome:
    """A reopened ticket or one whose technician went away goes back to who held it when they are eligible;
    otherwise the team's strategy decides."""
    previous = team.technicians.get(ticket.previous_assignee or "")
    if previous is not None and ticket.assignee is None:
        found = pool(ticket, team, need_skill=team.strategy is Strategy.SKILLS)
        if any(c[3] == previous for c in found.candidates):
            why = f"back to {previous.technician_id}, who handled it before"  # an id: the event is kept forever
            return _assigned(ticket, previous, team.strategy, why)
    return STRATEGIES[team.strategy](ticket, team)


# --- the team: state folded from its log -----------------------------------------------------------------------


@dataclass
class Team:
    """One team's roster and tickets. Mutated in place by its methods (for speed), which do no I/O."""

    name: str
    strategy: Strategy = DEFAULT_STRATEGY
    technicians: dict[str, Technician] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    #: Open tickets held per technician, kept in step with `tickets` by `_put`.
    loads: dict[str, Load] = field(default_factory=dict)
    #: Tickets waiting for a decision, in arrival order (a dict as an ordered set).
    awaiting: dict[str, None] = field(default_factory=dict)
    #: Tickets nobody could take (or an escalated one still with a lower tier), tried again on roster changes.
    backlog: dict[str, None] = field(default_factory=dict)
    last_served: str | None = None
    #: How many roster changes the team has taken (profiles, transfers out, shifts, strategies): the same in every
    #: process that has read its log as far, and only ever growing, so a roster change's event id derives from it.
    roster_revision: int = 0
    #: Tickets that have arrived (`Ticket.arrived`).
    arrivals: int = 0
    #: Whether this process decides for the team (its owner): only then are tickets queued in `awaiting`.
    deciding: bool = field(default=True, compare=False)
    _roster: tuple[Technician, ...] | None = field(default=None, repr=False, compare=False)
    _on_shift: dict[int, tuple[Technician, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict[str, object]:
        """For a checkpoint (archive.py): tickets as plain tuples, which pickle in C (as namedtuples, each one costs a
        call into Python: two thirds of a checkpoint's time)."""
        return {**self.__dict__, "tickets": {key: tuple(ticket) for key, ticket in self.tickets.items()}}

    def __setstate__(self, state: dict[str, object]) -> None:
        tickets: dict[str, tuple[object, ...]] = state.pop("tickets")  # type: ignore[assignment]
        self.__dict__.update(state, tickets={key: Ticket._make(fields) for key, fields in tickets.items()})

    def roster(self) -> tuple[Technician, ...]:
        """The technicians in id order (the rotation's order), kept until the roster changes."""
        if self._roster is None:
            self._roster = tuple(sorted(self.technicians.values(), key=lambda tech: tech.technician_id))
            self._on_shift = {}
        return self._roster

    def on_shift_from(self, tier: int) -> tuple[Technician, ...]:
        """The on-shift technicians of `tier` or higher, in id order: every decision asks, the roster rarely
        changes."""
        members = self.roster()  # first: a changed roster empties the cache
        found = self._on_shift.get(tier)
        if found is None:
            found = self._on_shift[tier] = tuple(tech for tech in members if tech.on_shift and tech.tier >= tier)
        return found

    def load_of(self, technician_id: str) -> Load:
        return self.loads.get(technician_id, NO_LOAD)

    def _put(self, ticket: Ticket) -> None:
        """Store `ticket`, moving its weight from the old holder's load to the new one's."""
        old = self.tickets.get(ticket.ticket_id)
        for held, sign in ((old, -1), (ticket, 1)):
            if held is not None and held.assignee is not None and held.is_open:
                load = self.load_of(held.assignee)
                load = Load(load.open_tickets + sign, load.weighted + sign * held.weight)
                if load.open_tickets:
                    self.loads[held.assignee] = load
                else:
                    self.loads.pop(held.assignee, None)
        self.tickets[ticket.ticket_id] = ticket

    def _await(self, ticket_id: str) -> None:
        if self.deciding:
            self.backlog.pop(ticket_id, None)
            self.awaiting[ticket_id] = None

    def reconsider(self) -> None:
        """Queue, in arrival order, every open ticket nobody holds and the backlog: what a process that followed the
        team without deciding never queued, for it to decide now that it owns the team."""
        for ticket in self._in_arrival_order():
            if ticket.is_open and (ticket.assignee is None or ticket.ticket_id in self.backlog):
                self._await(ticket.ticket_id)

    def _retry_backlog(self) -> None:
        for ticket_id in list(self.backlog):
            self._await(ticket_id)

    def _offer_place(self, technician_id: str) -> None:
        """A technician has room for one more ticket: only that changed, so only the first waiting ticket they
        could take is tried again (not the whole backlog on every resolution)."""
        technician = self.technicians.get(technician_id)
        if technician is None or not technician.on_shift:
            return
        for ticket_id in self.backlog:
            ticket = self.tickets[ticket_id]
            skilled = self.strategy is not Strategy.SKILLS or ticket.skill in technician.skills
            if technician.tier >= ticket.tier and skilled and ticket.assignee != technician_id:
                self._await(ticket_id)
                return

    def _hand_back(self, technician_id: str, keep: Callable[[Ticket], bool]) -> None:
        """The technician's open tickets that `keep` does not hold back return to the team."""
        for ticket in [t for t in self._in_arrival_order() if t.assignee == technician_id and t.is_open]:
            if not keep(ticket):
                self._put(ticket.changed(assignee=None, previous_assignee=technician_id))
                self._await(ticket.ticket_id)

    # roster

    # A roster change that changes nothing (the same record appended twice: two processes taking one PUT, a retry)
    # returns at once: nothing to decide again, no revision taken.

    def profile(self, technician: Technician) -> None:
        known = self.technicians.get(technician.technician_id)
        profiled = replace(technician, on_shift=known.on_shift if known else False)
        if profiled == known:
            return
        self.technicians[technician.technician_id] = profiled
        self._roster_changed()
        self._retry_backlog()

    def _roster_changed(self) -> None:
        self._roster = None
        self.roster_revision += 1

    def transfer_out(self, technician_id: str) -> None:
        """The technician moved to another team: every open ticket of theirs here goes back to this team."""
        if self.technicians.pop(technician_id, None) is not None:
            self._roster_changed()
            self._hand_back(technician_id, keep=lambda _: False)
            self.loads.pop(technician_id, None)

    def shift(self, technician_id: str, on_shift: bool) -> None:
        """Off shift: tickets not yet in progress go back to the team; in-progress ones stay with the technician."""
        known = self.technicians.get(technician_id)
        if known is None or known.on_shift == on_shift:
            return
        self.technicians[technician_id] = replace(known, on_shift=on_shift)
        self._roster_changed()
        if on_shift:
            self._retry_backlog()
        else:
            self._hand_back(technician_id, keep=lambda ticket: ticket.status is TicketStatus.IN_PROGRESS)

    def choose_strategy(self, strategy: Strategy) -> None:
        if strategy == self.strategy:
            return
        self.strategy = strategy
        self.roster_revision += 1
        self._retry_backlog()

    # tickets

    def route(self, ticket: Ticket) -> None:
        """A ticket arrives (created, or its category moved it here); or, for one that waited for a routing rule,
        a newer snapshot comes after it (its changes while the rule's routing was on its way)."""
        known = self.tickets.get(ticket.ticket_id)
        if known is not None:  # a redelivery, or a newer snapshot
            if ticket.version > known.version:
                self._put(known.changed(priority=ticket.priority))
                self.change_status(ticket.ticket_id, ticket.status, ticket.version)
            return
        self.arrivals += 1
        self._put(ticket.changed(arrived=self.arrivals))
        if ticket.is_open:
            self._await(ticket.ticket_id)

    def _in_arrival_order(self) -> list[Ticket]:
        """(Not the dict's order: a ticket taken back from disk is put in it anew.)"""
        return sorted(self.tickets.values(), key=attrgetter("arrived"))

    def withdraw(self, ticket_id: str) -> None:
        """The ticket left the team (its category now routes elsewhere)."""
        ticket = self.tickets.get(ticket_id)
        if ticket is not None:
            self._put(ticket.changed(status=TicketStatus.CLOSED))
            del self.tickets[ticket_id]
            self.awaiting.pop(ticket_id, None)
            self.backlog.pop(ticket_id, None)

    def change_status(self, ticket_id: str, status: TicketStatus, version: int) -> None:
        """Resolved and closed free the technician's capacity (offered to the backlog); a reopened ticket is
        decided again."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None or version <= ticket.version:
            return
        changed = ticket.changed(status=status, version=version)
        if changed.is_open and not ticket.is_open:
            changed = changed.changed(assignee=None, previous_assignee=ticket.assignee or ticket.previous_assignee)
            self._put(changed)
            self._await(ticket_id)
            return
        self._put(changed)
        if not changed.is_open:
            self.awaiting.pop(ticket_id, None)
            self.backlog.pop(ticket_id, None)
            if ticket.is_open and ticket.assignee is not None:
                self._offer_place(ticket.assignee)

    def change_priority(self, ticket_id: str, priority: Priority, version: int) -> None:
        ticket = self.tickets.get(ticket_id)
        if ticket is not None and version > ticket.version:
            self._put(ticket.changed(priority=priority, version=version))

    def escalate(self, ticket_id: str, reason: str, trigger: uuid.UUID | None) -> Escalated | None:
        """An open tier-1 ticket at risk moves to tier 2 and is decided again among tier-2 technicians."""
        ticket = self.tickets.get(ticket_id)
        if ticket is None or not ticket.is_open or ticket.tier >= TOP_TIER:
            return None
        self._put(ticket.changed(tier=TOP_TIER))
        holder = self.technicians.get(ticket.assignee or "")
        if holder is None or holder.tier < TOP_TIER:
            self._await(ticket_id)
        return Escalated(ticket_id, ticket.tier, TOP_TIER, reason, trigger)

    def assign_by_hand(self, ticket_id: str, technician_id: str, assigned_by: str) -> Assigned | None:
        """A manager or technician overrides the strategy; shift and capacity are theirs to judge."""
        ticket = self.tickets.get(ticket_id)
        technician = self.technicians.get(technician_id)
        if ticket is None or technician is None or not ticket.is_open:
            return None
        outcome = Assigned(
            ticket_id,
            technician_id,
            technician.tier,
            Strategy.MANUAL,
            f"assigned by hand by {assigned_by}",
            previous_technician_id=ticket.assignee,
            assigned_by=assigned_by,
        )
        self.apply_outcome(outcome)
        return outcome

    # decisions

    def apply_outcome(self, outcome: Outcome) -> None:
        """Fold a decision (made here by `settle`, or read back from the owner's record)."""
        ticket = self.tickets.get(outcome.ticket_id)
        if ticket is None or isinstance(outcome, Escalated):
            return
        self.awaiting.pop(outcome.ticket_id, None)
        if isinstance(outcome, Assigned):
            self.backlog.pop(outcome.ticket_id, None)
            self._put(ticket.changed(assignee=outcome.technician_id, previous_assignee=None, unassignable_reason=None))
            if outcome.strategy is Strategy.ROUND_ROBIN:
                self.last_served = outcome.technician_id
        else:
            self._put(ticket.changed(assignee=outcome.holder, unassignable_reason=outcome.reason))
            if ticket.is_open:  # an outcome read back after the ticket was resolved leaves nothing to retry
                self.backlog[outcome.ticket_id] = None

    def settle(self) -> list[Outcome]:
        """Decide every waiting ticket, in arrival order; the owner's job."""
        outcomes: list[Outcome] = []
        while self.awaiting:
            ticket_id = next(iter(self.awaiting))
            ticket = self.tickets[ticket_id]
            outcome = decide(ticket, self)
            if isinstance(outcome, Unassignable) and ticket.assignee is not None:
                # An escalated ticket no tier-2 technician can take stays with its technician meanwhile.
                reason = f"stays with {ticket.assignee}: {outcome.reason}"
                outcome = Unassignable(ticket_id, reason, announce=False, holder=ticket.assignee)
            elif isinstance(outcome, Unassignable) and outcome.reason == ticket.unassignable_reason:
                outcome = outcome._replace(announce=False)
            self.apply_outcome(outcome)
            outcomes.append(outcome)
        return outcomes
