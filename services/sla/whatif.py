"""What-if: the tickets of a past period replayed under a candidate policy or calendar, their compliance side by
side with what happened. Pure: ticket events in, figures out; it emits nothing and writes nothing.

Both sides are one and the same replay with the clocks of clocks.py (`decide`, then `advance` to the end of the
period): once under the configuration in force, once under the same configuration with the candidate's versions, so
the candidate is the only difference between them. "What happened" is recomputed rather than read back from
sla.events: the clocks are a pure function of the ticket log and the configuration, so the two agree (a unit test
holds them to it), whereas a log written by whatever code ran at the time would blur the comparison.

Which clocks count: those of the tickets opened in the period [from, to), followed up to `to` (later events are left
out, so a clock still open then is "running"). The same tickets on both sides, whatever the candidate does to their
deadlines: counting the outcomes decided in the period, as the sla-compliance report does, would let a candidate
that pushes breaches past `to` look like an improvement.

A candidate version becomes the newest version of its id, effective from the beginning of time, so it rules the whole
period in place of the real one (same id) or beside the others (new id), as if it had always been there; everything
else, later real changes included, stays as it was.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ticketstream_shared.contract import Priority, TicketCreated, TicketEvent
from ticketstream_shared.contract.sla import CalendarData, PolicyData, SlaMetric

from .agreements import BEGINNING, Agreements, History, Terms
from .clocks import BREACH, Clock, ClockStatus, TicketClocks, advance, decide

#: Who "made" a candidate version, as its history records it.
CANDIDATE = "what-if candidate"


class Verdict(StrEnum):
    MET = "met"
    BREACHED = "breached"
    RUNNING = "running"
    STOPPED = "stopped"


Verdicts = Counter[Verdict]


def compliance_pct(verdicts: Verdicts) -> float | None:
    """Met among the decided clocks, as the sla-compliance report counts it; None while none is decided."""
    decided = verdicts[Verdict.MET] + verdicts[Verdict.BREACHED]
    return round(100 * verdicts[Verdict.MET] / decided, 1) if decided else None


@dataclass(frozen=True)
class Candidate:
    """Versions to put in force over the whole period, by id."""

    calendars: Mapping[str, CalendarData] = field(default_factory=dict)
    policies: Mapping[str, PolicyData] = field(default_factory=dict)


def in_force(agreements: Agreements, candidate: Candidate | None = None) -> Agreements:
    """A copy of `agreements` for a replay to read while the live one goes on changing, with the candidate's
    versions (if any) as the newest of their ids, effective from the beginning of time."""
    copy = Agreements(
        calendars={key: History(list(history.versions)) for key, history in agreements.calendars.items()},
        policies={key: History(list(history.versions)) for key, history in agreements.policies.items()},
        clients={key: History(list(history.versions)) for key, history in agreements.clients.items()},
        services={key: History(list(history.versions)) for key, history in agreements.services.items()},
        change_moments=list(agreements.change_moments),
    )
    if candidate is not None:
        for calendar_id, calendar in candidate.calendars.items():
            copy.calendars.setdefault(calendar_id, History()).add(BEGINNING, BEGINNING, CANDIDATE, calendar)
        for policy_id, policy in candidate.policies.items():
            copy.policies.setdefault(policy_id, History()).add(BEGINNING, BEGINNING, CANDIDATE, policy)
    return copy


@dataclass(frozen=True)
class Outcome:
    """How one clock stood at the end of the period, and under which terms."""

    verdict: Verdict
    #: For a paused clock: when it would be reached if it resumed at the end of the period.
    deadline: datetime
    terms: Terms


def _outcome(clock: Clock | None, until: datetime) -> Outcome | None:
    if clock is None:
        return None
    # Late, whether it was met afterwards, still runs, or stopped since; for next reply, late in any round.
    if BREACH in clock.raised or clock.breached_before:
        verdict = Verdict.BREACHED
    elif clock.status is ClockStatus.MET:
        verdict = Verdict.MET
    elif clock.status is ClockStatus.STOPPED:
        verdict = Verdict.STOPPED
    else:
        verdict = Verdict.RUNNING
    return Outcome(verdict, clock.deadline_at(until), clock.terms)


@dataclass
class Compliance:
    """Clocks by verdict, per metric: over every ticket of the period, per priority and per client."""

    total: defaultdict[SlaMetric, Verdicts] = field(default_factory=lambda: defaultdict(Counter))
    by_priority: defaultdict[Priority, defaultdict[SlaMetric, Verdicts]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )
    by_client: defaultdict[str, defaultdict[SlaMetric, Verdicts]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )

    def count(self, ticket: TicketClocks, metric: SlaMetric, verdict: Verdict) -> None:
        for verdicts in (
            self.total[metric],
            self.by_priority[ticket.facts.priority][metric],
            self.by_client[ticket.client_id][metric],
        ):
            verdicts[verdict] += 1


@dataclass(frozen=True)
class ChangedOutcome:
    """A clock whose verdict the candidate changes; an outcome is None where no policy covered the ticket."""

    ticket_id: str
    client_id: str
    priority: Priority
    metric: SlaMetric
    actual: Outcome | None
    candidate: Outcome | None


@dataclass(frozen=True)
class Comparison:
    opened_from: datetime
    until: datetime
    actual: Compliance
    candidate: Compliance
    #: In the order the tickets were opened.
    changed: list[ChangedOutcome]


class Replay:
    """The period's ticket log folded into both sides one event at a time: the log need not fit in memory, only
    the clocks of the tickets opened in the period (up to three per ticket)."""

    def __init__(self, opened_from: datetime, until: datetime, actual: Agreements, candidate: Agreements) -> None:
        self.opened_from = opened_from
        self.until = until
        self._sides = (actual, candidate)
        self._tickets: dict[str, tuple[TicketClocks | None, TicketClocks | None]] = {}

    def fold(self, event: TicketEvent) -> None:
        """Take one event of tickets.events (each ticket's events in log order). Events of tickets opened outside
        the period, and any after its end, are ignored, so the caller may read from a little before it."""
        if event.occurred_at >= self.until:
            return
        states = self._tickets.get(event.ticket_id)
        if states is None:
            if not isinstance(event, TicketCreated) or event.occurred_at < self.opened_from:
                return
            states = (None, None)
        actual, candidate = (
            decide(state, event, agreements)[0] for state, agreements in zip(states, self._sides, strict=True)
        )
        if actual is not None or candidate is not None:
            self._tickets[event.ticket_id] = (actual, candidate)

    def comparison(self) -> Comparison:
        """Every clock advanced to the end of the period (alarms due by then raised), then counted."""
        actual, candidate = Compliance(), Compliance()
        changed = []
        for states in self._tickets.values():
            ends = [
                None if state is None else advance(state, self.until, agreements)[0]
                for state, agreements in zip(states, self._sides, strict=True)
            ]
            ticket = next(state for state in ends if state is not None)
            for metric in SlaMetric:
                outcomes = [_outcome(None if state is None else state.clock(metric), self.until) for state in ends]
                for compliance, outcome in zip((actual, candidate), outcomes, strict=True):
                    if outcome is not None:
                        compliance.count(ticket, metric, outcome.verdict)
                verdicts = [outcome and outcome.verdict for outcome in outcomes]
                if verdicts[0] != verdicts[1]:
                    changed.append(
                        ChangedOutcome(ticket.ticket_id, ticket.client_id, ticket.facts.priority, metric, *outcomes)
                    )
        return Comparison(self.opened_from, self.until, actual, candidate, changed)
