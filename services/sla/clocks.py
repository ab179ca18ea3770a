"""A ticket's SLA clocks as pure functions of its events, of time, and of the agreements in force.

Each ticket has a first-response and a resolution clock, and a next-reply clock where its terms set a target for it.
First response and resolution start at ticket.created (event time); all three pause in the policy's pause statuses
and resume after them. First response is met by the first public comment of a technician, admin or manager (a
requester's reply or an internal note never counts), and also when the ticket is resolved or closed without one
(resolving answers the requester, as Jira Service Management counts it); resolution is met at resolved or closed and
runs on after a reopen with the business time it had. Next reply times each wait of the requester after the first
answer: a round starts at a requester's public message while no answer is awaited (neither the first response nor a
round is open, and the ticket is not resolved or closed) and is met by the next public staff reply, or by resolving;
a new round starts from nothing, and the clock remembers whether an earlier round was late. A priority or category
change, or a policy or calendar change taking effect, re-times the running clocks from the matching policy, keeping
the business time already elapsed; if no active policy matches any more, the clock stops and never warns or
breaches again.

Everything happens in event time: `advance(state, until)` fires the warnings and breaches due up to `until` and
re-times clocks at the configuration changes in between, in the order they fall, so a history read back (or
backfilled through tickets.inbound) yields the same events as the live run did. Event ids derive from what caused
them (the ticket event, or the ticket, metric, kind and deadline of an alarm), so deciding twice never doubles.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from ticketstream_shared.business_time import add_business_time, business_time_between
from ticketstream_shared.contract import (
    Actor,
    CommentAdded,
    Role,
    TicketCreated,
    TicketEvent,
    TicketStatus,
    TicketStatusChanged,
    TicketUpdated,
)
from ticketstream_shared.contract.sla import (
    ClockData,
    ClockPaused,
    ClockResumed,
    ClockRetargeted,
    ClockStarted,
    ClockStopped,
    PauseData,
    RetargetData,
    SlaBreached,
    SlaEvent,
    SlaMet,
    SlaMetric,
    SlaWarning,
    StopData,
    WarningData,
)
from ticketstream_shared.runtime.ids import IdSpace

from .agreements import Agreements, Terms, TicketFacts

PRODUCER = "sla"
#: Every clock event is sla's own decision.
ACTOR = Actor.system(PRODUCER)
SLA_EVENT_IDS = IdSpace(uuid.UUID("5b1d7c3e-9a2f-4e6b-8d0c-3f7a1e5b9c04"))
#: Roles whose public comment is an answer to the requester.
RESPONDERS = frozenset({Role.TECHNICIAN, Role.ADMIN, Role.MANAGER})
FINAL = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})
#: The clocks every ticket starts with; next reply starts at a requester's message.
AT_CREATION = (SlaMetric.FIRST_RESPONSE, SlaMetric.RESOLUTION)
#: What a staff reply answers: the first response, and the round of next reply the requester waits on.
ANSWERED_BY_A_REPLY = frozenset({SlaMetric.FIRST_RESPONSE, SlaMetric.NEXT_REPLY})
BREACH = "breach"


class ClockStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Clock:
    metric: SlaMetric
    terms: Terms
    status: ClockStatus
    #: Business time elapsed up to `since`, when the clock last changed (started, paused, resumed, re-timed).
    elapsed: timedelta
    since: datetime
    #: When a running clock reaches its target; for a stopped one, when it would have (so it can be explained).
    deadline: datetime
    #: Alarms already raised under the current terms: "breach" and "warning:<threshold>".
    raised: frozenset[str] = frozenset()
    #: The alarms still to come, (moment, kind), earliest first; only while running.
    alarms: tuple[tuple[datetime, str], ...] = ()
    #: Next reply: an earlier round was late (a ticket's next-reply promise is kept only if every reply was on time).
    breached_before: bool = False

    @property
    def awaits_answer(self) -> bool:
        return self.metric in ANSWERED_BY_A_REPLY and self.status in (ClockStatus.RUNNING, ClockStatus.PAUSED)

    def elapsed_at(self, moment: datetime) -> timedelta:
        if self.status is not ClockStatus.RUNNING or moment <= self.since:
            return self.elapsed
        return self.elapsed + business_time_between(self.terms.calendar, self.since, moment)

    def deadline_at(self, moment: datetime) -> datetime:
        """Running: the deadline. Paused: when the target is reached if it resumes at `moment`."""
        if self.status is ClockStatus.PAUSED:
            return add_business_time(self.terms.calendar, moment, self.terms.target - self.elapsed)
        return self.deadline


@dataclass(frozen=True)
class TicketClocks:
    """Everything the SLA keeps of one ticket."""

    ticket_id: str
    client_id: str
    requester_id: str
    facts: TicketFacts
    status: TicketStatus
    version: int
    #: Event time up to which the ticket has been advanced.
    as_of: datetime
    clocks: tuple[Clock, ...]

    def clock(self, metric: SlaMetric) -> Clock | None:
        return next((clock for clock in self.clocks if clock.metric is metric), None)

    @property
    def next_due(self) -> datetime | None:
        """The earliest alarm of any clock: when the deadline index must look at this ticket again."""
        return min((clock.alarms[0][0] for clock in self.clocks if clock.alarms), default=None)


Decision = tuple[TicketClocks | None, list[SlaEvent]]
#: A step of a ticket that has clocks, which keeps them.
Step = tuple[TicketClocks, list[SlaEvent]]


_State = TypeVar("_State", "Clock", "TicketClocks", TicketFacts)


def _evolve(state: _State, **changes: object) -> _State:
    """dataclasses.replace without its per-call introspection, a fifth of the clocks' CPU when measured: Clock,
    TicketClocks and TicketFacts are plain frozen dataclasses (no __post_init__, no InitVar), so a copy of the fields
    with the changes applied is all that replace would do."""
    copy = object.__new__(type(state))
    copy.__dict__.update(state.__dict__, **changes)
    return copy


# --- event construction -----------------------------------------------------------------------------------------


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


def _clock_data(clock: Clock, moment: datetime) -> dict[str, Any]:
    elapsed = _seconds(clock.elapsed_at(moment))
    target = _seconds(clock.terms.target)
    return {
        "metric": clock.metric,
        "policy_id": clock.terms.policy_id,
        "policy_version": clock.terms.policy_version,
        "calendar_id": clock.terms.calendar.calendar_id,
        "calendar_version": clock.terms.calendar.version,
        "target_business_seconds": target,
        "deadline": clock.deadline_at(moment),
        "elapsed_business_seconds": elapsed,
        "remaining_business_seconds": target - elapsed,
    }


def _event(
    event_class: Callable[..., SlaEvent],
    state: TicketClocks,
    event_id: uuid.UUID,
    moment: datetime,
    correlation_id: str,
    data: ClockData,
) -> SlaEvent:
    return event_class(
        event_id=event_id,
        occurred_at=moment,
        ticket_id=state.ticket_id,
        client_id=state.client_id,
        producer=PRODUCER,
        correlation_id=correlation_id,
        actor=ACTOR,
        data=data,
    )


def caused_id(cause: uuid.UUID | str, metric: SlaMetric, kind: str) -> uuid.UUID:
    return SLA_EVENT_IDS(f"{cause}\x00{metric}\x00{kind}")


def alarm_id(ticket_id: str, metric: SlaMetric, kind: str, deadline: datetime) -> uuid.UUID:
    """Warnings and breaches: the same alarm of the same deadline has the same id, however often it is decided."""
    return SLA_EVENT_IDS(f"{ticket_id}\x00{metric}\x00{kind}\x00{deadline.isoformat()}")


# --- clock arithmetic -------------------------------------------------------------------------------------------


def _alarm_order(alarm: tuple[datetime, str]) -> tuple[datetime, bool, str]:
    """By moment; at the same moment warnings come before the breach."""
    return alarm[0], alarm[1] == BREACH, alarm[1]


def _running(clock: Clock, since: datetime) -> Clock:
    """`clock` running from `since` with its elapsed time: its deadline and the alarms still to raise."""
    terms = clock.terms
    remaining = terms.target - clock.elapsed
    deadline = add_business_time(terms.calendar, since, remaining)
    alarms = []
    for kind, due_after in terms.warnings:
        if kind not in clock.raised:
            alarms.append((add_business_time(terms.calendar, since, due_after - clock.elapsed), kind))
    if BREACH not in clock.raised:
        alarms.append((deadline, BREACH))
    return _evolve(
        clock,
        status=ClockStatus.RUNNING,
        since=since,
        deadline=deadline,
        alarms=tuple(sorted(alarms, key=_alarm_order)),
    )


def _halted(clock: Clock, moment: datetime, status: ClockStatus) -> Clock:
    """Paused, met or stopped at `moment`: elapsed time frozen, no alarms, the deadline as it stood."""
    return _evolve(
        clock,
        status=status,
        elapsed=clock.elapsed_at(moment),
        since=moment,
        deadline=clock.deadline_at(moment),
        alarms=(),
    )


def _new_clock(metric: SlaMetric, terms: Terms, moment: datetime) -> Clock:
    return _running(Clock(metric, terms, ClockStatus.RUNNING, timedelta(), moment, moment), moment)


def _retimed(clock: Clock, terms: Terms, moment: datetime) -> Clock:
    """`clock` under new terms from `moment`, its elapsed business time kept. Alarms raised stay raised only if
    they still hold under the new target, so a tighter target warns at once and a looser one warns afresh."""
    elapsed = clock.elapsed_at(moment)
    still_true = {kind for kind, due_after in terms.warnings if elapsed >= due_after}
    if elapsed >= terms.target:
        still_true.add(BREACH)
    moved = _evolve(clock, terms=terms, elapsed=elapsed, since=moment, raised=clock.raised & frozenset(still_true))
    if clock.status is ClockStatus.RUNNING:
        return _running(moved, moment)
    return _evolve(moved, deadline=add_business_time(terms.calendar, moment, terms.target - elapsed))


# --- deciding ---------------------------------------------------------------------------------------------------


def start(event: TicketCreated, agreements: Agreements) -> Decision:
    """The clocks of a new ticket; none (and no state) when no active policy covers it."""
    facts = TicketFacts(event.client_id, event.data.priority, event.data.category, event.data.service_id)
    moment = event.occurred_at
    clocks = []
    for metric in AT_CREATION:
        terms = agreements.terms_for(facts, metric, moment)
        if terms is not None:
            clocks.append(_new_clock(metric, terms, moment))
    if not clocks:
        return None, []
    state = TicketClocks(
        ticket_id=event.ticket_id,
        client_id=event.client_id,
        requester_id=event.data.requester_id,
        facts=facts,
        status=event.data.status,
        version=event.aggregate_version,
        as_of=moment,
        clocks=tuple(clocks),
    )
    events = [
        _event(
            ClockStarted,
            state,
            caused_id(event.event_id, clock.metric, "started"),
            moment,
            event.correlation_id,
            ClockData(**_clock_data(clock, moment)),
        )
        for clock in clocks
    ]
    return state, events


def decide(state: TicketClocks | None, event: TicketEvent, agreements: Agreements) -> Decision:
    """The ticket's clocks after `event`, with the sla events it causes (alarms due before it included).
    Events already folded (by aggregate_version) change nothing, so the log may be read again at will."""
    if isinstance(event, TicketCreated):
        return start(event, agreements) if state is None else (state, [])
    if state is None or event.aggregate_version <= state.version:
        return state, []
    moment = max(event.occurred_at, state.as_of)  # a late event cannot act before what was already decided
    state, events = advance(state, moment, agreements)
    state = _evolve(state, version=event.aggregate_version)
    if isinstance(event, TicketStatusChanged):
        state, caused = _status_changed(state, event, moment)
    elif isinstance(event, CommentAdded):
        state, caused = _commented(state, event, moment, agreements)
    elif isinstance(event, TicketUpdated):
        state, caused = _updated(state, event, moment, agreements)
    else:
        caused = []
    state, due_now = advance(state, moment, agreements)  # a tighter target may already be passed
    return state, events + caused + due_now


def _status_changed(state: TicketClocks, event: TicketStatusChanged, moment: datetime) -> Step:
    to = event.data.to_status
    clocks, events = [], []
    for clock in state.clocks:
        kind, changed = _on_status(clock, to, moment)
        clocks.append(changed)
        if kind is not None:
            event_class = {"paused": ClockPaused, "resumed": ClockResumed, "met": SlaMet}[kind]
            reason = f"ticket {event.data.from_status.value} -> {to.value}"
            data = _clock_data(changed, moment)
            payload = ClockData(**data) if event_class is SlaMet else PauseData(**data, reason=reason)
            events.append(
                _event(
                    event_class,
                    state,
                    caused_id(event.event_id, clock.metric, kind),
                    moment,
                    event.correlation_id,
                    payload,
                )
            )
    return _evolve(state, status=to, clocks=tuple(clocks)), events


def _on_status(clock: Clock, to: TicketStatus, moment: datetime) -> tuple[str | None, Clock]:
    if clock.status is ClockStatus.STOPPED:
        return None, clock
    if to in FINAL:
        if clock.status is ClockStatus.MET:
            return None, clock
        return "met", _halted(clock, moment, ClockStatus.MET)
    if clock.status is ClockStatus.MET:
        if clock.metric is SlaMetric.RESOLUTION:  # a reopen: resolution runs on with the time it had
            return "resumed", _running(clock, moment)
        return None, clock
    pausing = to in clock.terms.pause_statuses
    if pausing and clock.status is ClockStatus.RUNNING:
        return "paused", _halted(clock, moment, ClockStatus.PAUSED)
    if not pausing and clock.status is ClockStatus.PAUSED:
        return "resumed", _running(clock, moment)
    return None, clock


def _commented(state: TicketClocks, event: CommentAdded, moment: datetime, agreements: Agreements) -> Step:
    comment = event.data
    if not comment.public:
        return state, []
    if comment.author_role in RESPONDERS:
        return _answered(state, event, moment)
    # The requester's own key, or an integration speaking for them (a reply by mail), as intake counts it.
    if comment.author_role is Role.REQUESTER or comment.author_id == state.requester_id:
        return _awaits_reply(state, event, moment, agreements)
    return state, []


def _answered(state: TicketClocks, event: CommentAdded, moment: datetime) -> Step:
    """A public staff reply meets the first response and the round of next reply, whichever is open."""
    clocks, events = [], []
    for clock in state.clocks:
        if clock.awaits_answer:
            clock = _halted(clock, moment, ClockStatus.MET)
            event_id = caused_id(event.event_id, clock.metric, "met")
            data = ClockData(**_clock_data(clock, moment))
            events.append(_event(SlaMet, state, event_id, moment, event.correlation_id, data))
        clocks.append(clock)
    return _evolve(state, clocks=tuple(clocks)), events


def _awaits_reply(state: TicketClocks, event: CommentAdded, moment: datetime, agreements: Agreements) -> Step:
    """A requester's message starts a round of next reply, unless an answer is awaited already, the ticket is
    resolved or closed, or its terms set no next-reply target. In a pause status the round starts paused."""
    if state.status in FINAL or any(clock.awaits_answer for clock in state.clocks):
        return state, []
    terms = agreements.terms_for(state.facts, SlaMetric.NEXT_REPLY, moment)
    if terms is None:
        return state, []
    previous = state.clock(SlaMetric.NEXT_REPLY)
    late_before = previous is not None and (previous.breached_before or BREACH in previous.raised)
    clock = _evolve(_new_clock(SlaMetric.NEXT_REPLY, terms, moment), breached_before=late_before)
    caused: list[tuple[Callable[..., SlaEvent], str, ClockData]] = [
        (ClockStarted, "started", ClockData(**_clock_data(clock, moment)))
    ]
    if state.status in terms.pause_statuses:
        clock = _halted(clock, moment, ClockStatus.PAUSED)
        reason = f"ticket {state.status.value}"
        caused.append((ClockPaused, "paused", PauseData(**_clock_data(clock, moment), reason=reason)))
    others = tuple(other for other in state.clocks if other.metric is not SlaMetric.NEXT_REPLY)
    events = [
        _event(cls, state, caused_id(event.event_id, SlaMetric.NEXT_REPLY, kind), moment, event.correlation_id, data)
        for cls, kind, data in caused
    ]
    return _evolve(state, clocks=(*others, clock)), events


def _updated(state: TicketClocks, event: TicketUpdated, moment: datetime, agreements: Agreements) -> Step:
    changes = event.data.changes
    facts = _evolve(
        state.facts,
        priority=changes.priority or state.facts.priority,
        category=changes.category or state.facts.category,
    )
    if facts == state.facts:
        return state, []
    what = ", ".join(
        f"{name} {getattr(event.data.previous, name)} -> {getattr(changes, name)}"
        for name in ("priority", "category")
        if getattr(changes, name) is not None
    )
    return _reconcile(
        _evolve(state, facts=facts), moment, agreements, str(event.event_id), event.correlation_id, f"ticket {what}"
    )


def _reconcile(
    state: TicketClocks, moment: datetime, agreements: Agreements, cause: str, correlation_id: str, reason: str
) -> Step:
    """Re-time every open clock under the terms that apply at `moment`; clocks whose terms did not change stay."""
    clocks, events = [], []
    for clock in state.clocks:
        if clock.status in (ClockStatus.MET, ClockStatus.STOPPED):
            clocks.append(clock)
            continue
        terms = agreements.terms_for(state.facts, clock.metric, moment)
        if terms is None:
            stopped = _halted(clock, moment, ClockStatus.STOPPED)
            clocks.append(stopped)
            stop = StopData(**_clock_data(stopped, moment), reason=f"{reason}: no active policy covers the ticket")
            event_id = caused_id(cause, clock.metric, "stopped")
            events.append(_event(ClockStopped, state, event_id, moment, correlation_id, stop))
            continue
        if terms.identity == clock.terms.identity:
            clocks.append(clock)
            continue
        retimed = _retimed(clock, terms, moment)
        clocks.append(retimed)
        previous = clock.terms
        data = RetargetData(
            **_clock_data(retimed, moment),
            previous_policy_id=previous.policy_id,
            previous_policy_version=previous.policy_version,
            previous_calendar_id=previous.calendar.calendar_id,
            previous_calendar_version=previous.calendar.version,
            previous_target_business_seconds=_seconds(previous.target),
            previous_deadline=clock.deadline_at(moment),
            reason=reason,
        )
        event_id = caused_id(f"{cause}\x00{terms.identity}", clock.metric, "retargeted")
        events.append(_event(ClockRetargeted, state, event_id, moment, correlation_id, data))
    return _evolve(state, clocks=tuple(clocks)), events


def _raise_alarms(state: TicketClocks, moment: datetime) -> Step:
    """Raise every alarm due at `moment` (several may share it)."""
    clocks, events = [], []
    for clock in state.clocks:
        due = [alarm for alarm in clock.alarms if alarm[0] <= moment]
        for at, kind in due:
            deadline = clock.deadline
            event_id = alarm_id(state.ticket_id, clock.metric, kind, deadline)
            data = _clock_data(clock, at)
            if kind == BREACH:
                events.append(_event(SlaBreached, state, event_id, at, state.ticket_id, ClockData(**data)))
            else:
                threshold = float(kind.removeprefix("warning:"))
                payload = WarningData(**data, threshold=threshold)
                events.append(_event(SlaWarning, state, event_id, at, state.ticket_id, payload))
        if due:
            raised = clock.raised | {kind for _, kind in due}
            clock = _evolve(clock, raised=raised, alarms=clock.alarms[len(due) :])
        clocks.append(clock)
    return _evolve(state, clocks=tuple(clocks)), events


def take_effect(state: TicketClocks, effective_at: datetime, agreements: Agreements) -> Step:
    """A configuration change read live: the ticket is re-timed at `effective_at`, or at once if it has already
    been advanced past it (the change reached the log a moment after its effective time)."""
    if state.as_of < effective_at:
        return advance(state, effective_at, agreements)
    return _reconcile_change(state, state.as_of, effective_at, agreements)


def _reconcile_change(state: TicketClocks, moment: datetime, effective_at: datetime, agreements: Agreements) -> Step:
    cause = f"config@{effective_at.isoformat()}"
    return _reconcile(state, moment, agreements, cause, state.ticket_id, "policy or calendar change")


def advance(state: TicketClocks, until: datetime, agreements: Agreements) -> tuple[TicketClocks, list[SlaEvent]]:
    """Move the ticket forward in event time to `until`: alarms due by then are raised and configuration changes
    taking effect by then re-time the clocks, in the order they fall (a change first when they coincide)."""
    events: list[SlaEvent] = []
    while True:
        alarm = state.next_due
        change = agreements.next_change_after(state.as_of)
        if change is not None and change <= until and (alarm is None or change <= alarm):
            state, caused = _reconcile_change(_evolve(state, as_of=change), change, change, agreements)
        elif alarm is not None and alarm <= until:
            state = _evolve(state, as_of=max(state.as_of, alarm))
            state, caused = _raise_alarms(state, alarm)
        else:
            break
        events.extend(caused)
    return (_evolve(state, as_of=until) if until > state.as_of else state), events
