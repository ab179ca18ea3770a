"""What a ticket's clocks look like to people: each clock's target, status and remaining business time, and one
plain-language line a requester understands ("We promised a first answer by Tuesday 14:00"); and a what-if's
compliance, side by side with what happened."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ticketstream_shared.contract.sla import SlaMetric

from .clocks import BREACH, Clock, ClockStatus, TicketClocks
from .whatif import ChangedOutcome, Comparison, Compliance, Outcome, Verdict, Verdicts, compliance_pct

#: The changed clocks listed in one answer (all are counted): a period of a busy desk may change thousands.
MAX_CHANGED = 1000
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
