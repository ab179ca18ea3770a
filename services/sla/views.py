"""What a ticket's clocks look like to people: each clock's target, status and remaining business time, and one
plain-language line a requester understands ("We promised a first answer by Tuesday 14:00")."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ticketstream_shared.contract.sla import SlaMetric

from .clocks import BREACH, Clock, ClockStatus, TicketClocks

PROMISE = {SlaMetric.FIRST_RESPONSE: "a first answer", SlaMetric.RESOLUTION: "a solution"}
DONE = {SlaMetric.FIRST_RESPONSE: "We answered first", SlaMetric.RESOLUTION: "We solved it"}


def _when(moment: datetime, clock: Clock, now: datetime) -> str:
    local = moment.astimezone(clock.terms.calendar.zone)
    if abs(moment - now) < timedelta(days=6):
        return f"{local:%A %H:%M} ({local:%Z})"
    return f"{local:%A %d %B %Y %H:%M} ({local:%Z})"


def _duration(amount: timedelta) -> str:
    minutes = round(abs(amount).total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def plain_line(clock: Clock, now: datetime) -> str:
    deadline = clock.deadline_at(now)
    remaining = clock.terms.target - clock.elapsed_at(now)
    if clock.status is ClockStatus.MET:
        verdict = "on time" if remaining >= timedelta() else f"{_duration(remaining)} of working time late"
        return f"{DONE[clock.metric]} on {_when(clock.since, clock, now)}, {verdict}."
    if clock.status is ClockStatus.STOPPED:
        return "No service level applies to this ticket any more."
    if clock.status is ClockStatus.PAUSED:
        return f"Waiting for your reply; the clock is paused with {_duration(remaining)} of working time left."
    if BREACH in clock.raised:
        return f"We promised {PROMISE[clock.metric]} by {_when(deadline, clock, now)}; we are late and on it."
    return f"We promised {PROMISE[clock.metric]} by {_when(deadline, clock, now)}."


def ticket_view(state: TicketClocks, now: datetime) -> dict[str, Any]:
    return {
        "ticket_id": state.ticket_id,
        "client_id": state.client_id,
        "as_of": now.isoformat(),
        "clocks": [
            {
                "metric": clock.metric.value,
                "status": clock.status.value,
                "breached": BREACH in clock.raised,
                "target_at": clock.deadline_at(now).isoformat(),
                "target_business_seconds": int(clock.terms.target.total_seconds()),
                "elapsed_business_seconds": int(clock.elapsed_at(now).total_seconds()),
                "remaining_business_seconds": int((clock.terms.target - clock.elapsed_at(now)).total_seconds()),
                "policy": {"id": clock.terms.policy_id, "version": clock.terms.policy_version},
                "calendar": {"id": clock.terms.calendar.calendar_id, "version": clock.terms.calendar.version},
                "explanation": plain_line(clock, now),
            }
            for clock in state.clocks
        ],
    }
