"""What a ticket's clocks look like to people: each clock's target, status and remaining business time, and one
plain-language line a requester understands ("We promised a first answer by Tuesday 14:00"); a service's promise in
the same words ("We answer within 4 working hours and solve it within 2 working days (Mon–Fri 08:00–17:00,
Europe/Berlin)"); and a what-if's compliance, side by side with what happened."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ticketstream_shared.contract.sla import (
    PROMISED,
    SERVICE_PREFIX,
    CalendarData,
    ServiceData,
    ServiceTargets,
    SlaMetric,
    Weekday,
    WorkingHours,
)

from .agreements import DEFAULT_ID, Version
from .clocks import BREACH, Clock, ClockStatus, TicketClocks
from .whatif import ChangedOutcome, Comparison, Compliance, Outcome, Verdict, Verdicts, compliance_pct

#: The changed clocks listed in one answer (all are counted): a period of a busy desk may change thousands.
MAX_CHANGED = 1000
DONE = {
    SlaMetric.FIRST_RESPONSE: "We answered first",
    SlaMetric.NEXT_REPLY: "We replied to your message",
    SlaMetric.RESOLUTION: "We solved it",
}


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
        return "We no longer promise a time for this; we are still on it."
    if clock.status is ClockStatus.PAUSED:
        return f"Waiting for your reply; the clock is paused with {_duration(remaining)} of working time left."
    if BREACH in clock.raised:
        return f"We promised {PROMISED[clock.metric]} by {_when(deadline, clock, now)}; we are late and on it."
    return f"We promised {PROMISED[clock.metric]} by {_when(deadline, clock, now)}."


_DAY_NAMES = {day: day.value[:3].capitalize() for day in Weekday}
_WEEK = list(Weekday)


def _stretch_minutes(hours: WorkingHours) -> int:
    start, end = (int(t[:2]) * 60 + int(t[3:]) for t in (hours.start, hours.end))
    return end - start if end > start else end + 24 * 60 - start  # past midnight


def _working_day_minutes(calendar: CalendarData) -> int | None:
    """The length of a working day, if every working day of the week is as long; None otherwise."""
    lengths = {sum(map(_stretch_minutes, stretches)) for stretches in calendar.week.values() if stretches}
    return lengths.pop() if len(lengths) == 1 else None


def _within(minutes: int, calendar: CalendarData) -> str:
    """A target as people count it: in (working) days when it is a whole number of them, else hours or minutes."""
    working = "" if calendar.always_open else "working "
    day = 24 * 60 if calendar.always_open else _working_day_minutes(calendar)
    if day and minutes >= day and minutes % day == 0:
        count, unit = minutes // day, "day"
    elif minutes % 60 == 0:
        count, unit = minutes // 60, "hour"
    elif minutes < 60:
        count, unit = minutes, "minute"
    else:
        amount = _duration(timedelta(minutes=minutes))
        return amount if calendar.always_open else f"{amount} of working time"
    return f"{count} {working}{unit}{'' if count == 1 else 's'}"


def opening_hours(calendar: CalendarData) -> str:
    """ "Mon–Fri 08:00–17:00, Europe/Berlin": consecutive days of the same hours as one range."""
    if calendar.always_open:
        return "around the clock"
    groups: list[tuple[list[Weekday], str]] = []
    for day in _WEEK:
        if not (stretches := calendar.week.get(day)):
            continue
        hours = " and ".join(f"{stretch.start}–{stretch.end}" for stretch in stretches)
        previous = groups[-1] if groups else None
        if previous and previous[1] == hours and _WEEK.index(previous[0][-1]) == _WEEK.index(day) - 1:
            previous[0].append(day)
        else:
            groups.append(([day], hours))
    days = [
        (_DAY_NAMES[group[0]] if len(group) == 1 else f"{_DAY_NAMES[group[0]]}–{_DAY_NAMES[group[-1]]}", hours)
        for group, hours in groups
    ]
    closed = ", closed on holidays" if calendar.holidays else ""
    return f"{'; '.join(f'{names} {hours}' for names, hours in days)}, {calendar.timezone}{closed}"


def promise(targets: ServiceTargets, calendar: CalendarData) -> str:
    """What a service promises for one priority, in one sentence."""
    parts = [f"We answer within {_within(targets.first_response_minutes, calendar)}"]
    if targets.next_reply_minutes is not None:
        parts.append(f"reply to each of your messages within {_within(targets.next_reply_minutes, calendar)}")
    parts.append(f"solve it within {_within(targets.resolution_minutes, calendar)}")
    said = ", ".join(parts[:-1]) + f" and {parts[-1]}"
    return f"{said} ({opening_hours(calendar)})."


def service_view(service_id: str, version: Version[ServiceData], calendar: CalendarData) -> dict[str, Any]:
    """A service of the catalogue as it stands, with its promise per priority in plain words."""
    service = version.value
    return {
        "id": service_id,
        "name": service.name,
        "description": service.description,
        "owner_team": service.owner_team,
        "categories": service.categories,
        "published": service.published,
        "calendar": {"id": service.calendar_id or DEFAULT_ID, "hours": opening_hours(calendar)},
        "targets": {priority.value: targets.model_dump() for priority, targets in sorted(service.targets.items())},
        "promises": {
            priority.value: promise(targets, calendar) for priority, targets in sorted(service.targets.items())
        },
        "version": version.number,
        "effective_at": version.effective_at.isoformat(),
    }


def _service_of(clock: Clock) -> dict[str, Any] | None:
    """The service whose promise times the clock, if one does (rather than a policy)."""
    terms = clock.terms
    if not terms.policy_id.startswith(SERVICE_PREFIX):
        return None
    return {"id": terms.policy_id.removeprefix(SERVICE_PREFIX), "version": terms.policy_version}


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
                "service": _service_of(clock),
                "calendar": {"id": clock.terms.calendar.calendar_id, "version": clock.terms.calendar.version},
                "explanation": plain_line(clock, now),
            }
            for clock in state.clocks
        ],
    }


def _figures(verdicts: Verdicts) -> dict[str, Any]:
    return {
        "clocks": verdicts.total(),
        **{verdict.value: verdicts[verdict] for verdict in Verdict},
        "compliance_pct": compliance_pct(verdicts),
    }


def _per_metric(by_metric: dict[SlaMetric, Verdicts]) -> dict[str, Any]:
    return {metric.value: _figures(by_metric.get(metric, Verdicts())) for metric in SlaMetric}


def _compliance_view(compliance: Compliance) -> dict[str, Any]:
    return {
        "total": _per_metric(compliance.total),
        "by_priority": {
            priority.value: _per_metric(compliance.by_priority[priority]) for priority in sorted(compliance.by_priority)
        },
        "by_client": {
            client_id: _per_metric(compliance.by_client[client_id]) for client_id in sorted(compliance.by_client)
        },
    }


def _outcome_view(outcome: Outcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None  # no policy covers the ticket on this side
    return {
        "verdict": outcome.verdict.value,
        "target_at": outcome.deadline.isoformat(),
        "target_business_seconds": int(outcome.terms.target.total_seconds()),
        "policy": {"id": outcome.terms.policy_id, "version": outcome.terms.policy_version},
        "calendar": {"id": outcome.terms.calendar.calendar_id, "version": outcome.terms.calendar.version},
    }


def _changed_view(changed: ChangedOutcome) -> dict[str, Any]:
    return {
        "ticket_id": changed.ticket_id,
        "client_id": changed.client_id,
        "priority": changed.priority.value,
        "metric": changed.metric.value,
        "actual": _outcome_view(changed.actual),
        "candidate": _outcome_view(changed.candidate),
    }


def what_if_view(comparison: Comparison) -> dict[str, Any]:
    return {
        "from": comparison.opened_from.isoformat(),
        "to": comparison.until.isoformat(),
        "actual": _compliance_view(comparison.actual),
        "candidate": _compliance_view(comparison.candidate),
        "changed_total": len(comparison.changed),
        "changed": [_changed_view(changed) for changed in comparison.changed[:MAX_CHANGED]],
    }
